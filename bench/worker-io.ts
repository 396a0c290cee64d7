/**
 * What every bench worker process shares: its JSON config (inline or @FILE), JSON-line events on
 * stdout, closers run in reverse on SIGTERM/SIGINT or when the runner's pipe closes.
 */
import fs from 'node:fs'

/** The config comes inline, or as @FILE when too big for the command line. */
export function workerConfig<T>(): T {
  const arg = process.argv[2] ?? '{}'
  return JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg) as T
}

/** One JSON-line event on stdout, stamped with the time. */
export function out(e: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ time: Date.now(), ...e }) + '\n')
}

export const closers: Array<() => Promise<void>> = []
let closing = false
let graceMs = 5000

/** Runs the closers (newest first), then exits; a hung closer is cut off after the grace time. */
export async function shutdown(code = 0): Promise<never> {
  if (!closing) {
    closing = true
    const timer = setTimeout(() => process.exit(code), graceMs)
    timer.unref()
    for (const c of closers.reverse()) await c().catch(() => {})
    // stdout to a pipe is written asynchronously: exiting now would drop the end of a large last
    // event (a 150 KiB core listing), which the runner then never sees.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
  }
  process.exit(code)
}

/** Wires signals and the runner's stdin: `onmessage` gets each JSON line the runner sends. */
export function startWorker(opts: { graceMs?: number; onmessage?: (msg: any) => void } = {}): void {
  graceMs = opts.graceMs ?? graceMs
  process.on('SIGTERM', () => void shutdown(0))
  process.on('SIGINT', () => void shutdown(0))
  let inbuf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (d: string) => {
    inbuf += d
    let nl: number
    while ((nl = inbuf.indexOf('\n')) !== -1) {
      const line = inbuf.slice(0, nl)
      inbuf = inbuf.slice(nl + 1)
      try {
        opts.onmessage?.(JSON.parse(line))
      } catch {}
    }
  })
  process.stdin.on('end', () => void shutdown(0))
  process.stdin.resume()
}

/** Runs the role named in the config; an unknown role or a failure is reported as an error event. */
export function runRole(roles: Record<string, () => Promise<unknown>>, role: string): void {
  const run = roles[role]
  if (!run) {
    out({ event: 'error', message: `unknown role ${role}` })
    process.exit(2)
  }
  run().catch((err) => {
    out({ event: 'error', message: (err as Error).stack ?? String(err) })
    void shutdown(1)
  })
}
