#!/usr/bin/env node
/**
 * The `embassy` CLI: argv → parse → runCommand() → print the result or the error → exit code.
 * What each command does, its options, help and human text live in lib/daemon/commands/.
 *
 * Owns: stdout/stderr, exit codes. May import: lib/index.ts, the CLI entry lib/daemon/index.ts, bin/.
 * Only the CLI entry: lib/index.ts would load the whole library (the network included) at every call.
 */
import * as cli from '../lib/daemon/index.js'
import { parse } from './parse.js'
import { ProgressBar } from './progress.js'
import { terminalPrompt } from './prompt.js'
import { onceSignal, untilSignal } from './signals.js'

const { EmbassyError } = cli

async function main(argv: string[]): Promise<number> {
  const wantsJson = argv.includes('--json')
  const debug = argv.includes('--debug')
  const progress = new ProgressBar(!wantsJson && !!process.stderr.isTTY && !process.env.CI)
  let command: cli.AnyCommand | undefined
  try {
    const p = parse(argv)
    if ('help' in p) {
      process.stdout.write(p.help)
      return 0
    }
    if (p.opts.help) {
      process.stdout.write(cli.commandHelp(p.command.spec))
      return 0
    }
    command = p.command
    const io: cli.CallerIO = {
      json: wantsJson,
      tty: !!process.stdout.isTTY,
      progress: (label, done, total) => progress.update(label, done, total, label === 'append' || label === 'verify' ? 'items' : 'bytes'),
      line: (text) => {
        process.stdout.write(text + '\n')
      },
      write: (text) => {
        process.stdout.write(text)
      },
      notice: (text) => {
        process.stderr.write(text + '\n')
      },
      status: (text) => {
        if (process.stderr.isTTY) process.stderr.write(text + '\n')
      }
    }
    const result = await cli.runCommand(p.command.name, { args: p.args, opts: { ...p.opts } }, io, {
      env: process.env,
      stdin: process.stdin,
      prompt: terminalPrompt(),
      untilSignal,
      onceSignal
    })
    progress.done()
    if (result === null) return 0
    if (wantsJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else process.stdout.write(p.command.format(result, io))
    return p.command.exitCode?.(result) ?? 0
  } catch (err) {
    progress.done()
    const e = err instanceof EmbassyError ? err : null
    if (wantsJson) {
      const body = e ? e.toJSON() : { code: 'INTERNAL', message: (err as Error)?.message ?? String(err), details: {} }
      process.stdout.write(JSON.stringify({ error: body }, null, 2) + '\n')
    }
    if (e) {
      // An error can quote a peer's or a catalog's text: no control characters reach the terminal.
      process.stderr.write(`embassy: ${cli.escapeText(e.message)}\n`)
      if (command?.formatError && !wantsJson) process.stderr.write(command.formatError(e))
      if (debug && e.cause) process.stderr.write(`cause: ${(e.cause as Error)?.stack ?? String(e.cause)}\n`)
      return e.exitCode
    }
    process.stderr.write(`embassy: INTERNAL: ${cli.escapeText((err as Error)?.message ?? String(err))}\n`)
    if (debug) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    else process.stderr.write('(run again with --debug for the stack)\n')
    return 1
  }
}

const code = await main(process.argv.slice(2))
// Let stdout drain before exiting, even when piped.
process.stdout.write('', () => {
  process.exitCode = code
})
