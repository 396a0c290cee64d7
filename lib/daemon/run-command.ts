/**
 * runCommand(): how any command runs, whoever calls it. A node command is prepared on the caller's
 * side, then passed to the node running in the directory over its control socket, or run here on
 * the directory opened for it (waiting for a node that is just starting); a local command runs
 * here. The CLI parses arguments, calls this, prints the result.
 *
 * Owns: the dispatch. May import: command, commands/index, control (client), host, lock-wait,
 * node/ (exists, the default directory).
 *
 * What it loads: a command that a running node serves needs only the control socket's client
 * here; the node itself (host, lock-wait: Corestore, the roles) is imported only when this process
 * opens the directory (CLI start-up: BENCHMARKS.md "CLI start-up, lazily").
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import { CONFIG_FILE, defaultDir } from '../node/config.js'
import { runOnHost, usageError, type Caller, type CallerIO, type CallerProcess, type CommandInput, type CommandIO, type NodeCommand } from './command.js'
import { findCommand } from './commands/index.js'
import { callControl } from './control.js'
import type { NodeHost } from './host.js'

/**
 * Whether `dir` holds a node: EmbassyNode.exists() (node/node.ts), without loading the node's
 * module (Corestore, RocksDB) before the control socket is tried.
 */
export function nodeExists(dir: string): boolean {
  return fs.existsSync(path.join(path.resolve(dir), CONFIG_FILE))
}

/**
 * Runs the command `name` on the command line `line` (its --dir, else $EMBASSY_DIR, else the
 * platform data directory). Resolves its result, or null when it printed its output itself
 * through `io` (bootstrap, status --watch). Errors are EmbassyErrors with their exit codes.
 */
export async function runCommand(name: string, line: CommandInput, io: CallerIO, lent: CallerProcess): Promise<unknown> {
  const command = findCommand(name)
  if (!command) throw usageError(`unknown command "${name}"`)
  const dir = typeof line.opts.dir === 'string' ? line.opts.dir : defaultDir({ ...lent.env })
  const caller: Caller = { ...lent, dir, io }
  if (command.kind === 'local') return command.run(command.input(line), caller)
  const prepared = command.prepare ? await command.prepare(line, caller) : line
  const once = () => runOnNode(command, dir, prepared, io)
  return command.around ? command.around(command.input(prepared), caller, once) : once()
}

/**
 * Runs a node command on `dir`: in the node running there (control socket), or on the directory
 * opened here. A node that is starting holds the directory before its control socket listens:
 * then this waits for the socket (STARTING_NODE_WAIT_MS), saying so on a terminal.
 */
export async function runOnNode<I, O>(command: NodeCommand<I, O>, dir: string, line: CommandInput, io: CommandIO & Partial<Pick<CallerIO, 'status'>>): Promise<O> {
  if (!nodeExists(dir)) throw EmbassyError.notInitialised(dir)
  const remote = async (): Promise<{ value: O } | undefined> => {
    const r = await callControl(dir, command.name, line, io)
    // The running node ran the same record: its result is this command's output type.
    return r.running ? { value: r.value as O } : undefined
  }
  const first = await remote()
  if (first) return first.value
  const [{ NodeHost }, { openHost, STARTING_NODE_WAIT_MS, waitForDirectory }] = await Promise.all([import('./host.js'), import('./lock-wait.js')])
  const opened = await waitForDirectory<{ host: NodeHost } | { value: O }>(async () => ({ host: await openHost(new NodeHost(dir)) }), {
    waitMs: STARTING_NODE_WAIT_MS,
    onWait: () => io.status?.(`waiting for the node starting in ${dir}…`),
    retry: remote
  })
  if ('value' in opened) return opened.value
  try {
    return await runOnHost(command, opened.host, line, io)
  } finally {
    await opened.host.close()
  }
}
