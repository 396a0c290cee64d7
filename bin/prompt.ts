/**
 * Asking on the terminal without echo (a kit passphrase). What to ask, and when, is the library's
 * (commands/kit.ts); this only reads the keys.
 *
 * Owns: raw-mode terminal input. May import: lib/index.ts.
 */
import * as cli from '../lib/daemon/index.js'

/** A hidden prompt when stdin and stderr are terminals; null when there is no one to ask. */
export function terminalPrompt(): ((question: string) => Promise<string>) | null {
  return process.stdin.isTTY && process.stderr.isTTY ? askHidden : null
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin
    process.stderr.write(prompt)
    let text = ''
    stdin.setRawMode(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (err: Error | null) => {
      stdin.setRawMode(false)
      stdin.pause()
      stdin.off('data', ondata)
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(text)
    }
    const ondata = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null)
        if (ch === '\u0003') return done(cli.usageError('cancelled'))
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
        else text += ch
      }
    }
    stdin.on('data', ondata)
  })
}
