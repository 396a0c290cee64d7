/**
 * A CLI command as one typed record: its spec (usage, help, options), how its input is prepared
 * on the caller's side and read on the node's side, what it does, and how its result reads to a
 * person. Every command is defined with defineCommand() (it runs on an open node: here or in a
 * running node over the control socket) or defineLocalCommand() (it runs in the caller's process
 * without a node host: init, run, bootstrap, demo, kit import).
 *
 * Owns: the command types and the small readers of command lines every record shares.
 * May import: errors, ids, node/config, daemon/host (types); never a command, the CLI or process state.
 */
import type { ParseArgsConfig } from 'node:util'
import { EmbassyError, withArticle } from '../errors.js'
import { parseKey } from '../ids.js'
import { parseHostPort } from '../node/config.js'
import type { Host } from './host.js'

export type Options = NonNullable<ParseArgsConfig['options']>

export interface CommandSpec {
  usage: string
  summary: string
  /** Longer help: arguments and options, one per line. */
  details?: string[]
  options: Options
  /**
   * String options whose value may be left out (`--wait-for-custody [N]`): the value they take
   * then. A value is only taken from the next word when it is a whole number.
   */
  optionalValues?: Record<string, string>
  /** Allowed number of positional arguments. */
  args: [min: number, max: number]
}

/**
 * A command line as parsed, and as it crosses the control socket (protocol/SPEC.md §7): plain
 * JSON, so a running node can run it.
 */
export interface CommandInput {
  args: string[]
  opts: Record<string, string | boolean | undefined>
  /** append: the records, already split (and their line numbers). */
  records?: { texts: string[]; lines: number[] }
}

/** What a handler streams back while it runs; crosses the control socket. */
export interface CommandIO {
  /** The caller wants one JSON document: no streamed lines. */
  json: boolean
  /** Progress of long work, in units (bytes or records). */
  progress(label: string, done: number, total: number): void
  /** One line of streamed output (read). */
  line(text: string): void
}

/** The caller's side of the output (the CLI prints; the library never does). */
export interface CallerIO extends CommandIO {
  /** stdout is a terminal: status bars, screen redraws. */
  tty: boolean
  /** Text for stdout, as is, before the command ends (status --watch frames, bootstrap's address). */
  write(text: string): void
  /** A line for the operator (stderr): the demo's story, run's events, bootstrap's hint. */
  notice(text: string): void
  /** A passing remark, worth showing on a terminal only ("waiting for the node starting in …"). */
  status(text: string): void
}

/** What the calling program lends a command beyond its output: environment, stdin, prompt, signals. */
export interface CallerProcess {
  env: Readonly<Record<string, string | undefined>>
  stdin: AsyncIterable<string | Uint8Array> & { isTTY?: boolean }
  /** Asks on the terminal without echo; null when there is no terminal to ask on. */
  prompt: ((question: string) => Promise<string>) | null
  /** Resolves once the process is asked to stop (SIGINT/SIGTERM) and `close` ran. */
  untilSignal(close: () => Promise<void>): Promise<void>
  /** Calls `stop` on the first SIGINT/SIGTERM only. */
  onceSignal(stop: () => void): void
}

/** Everything a command gets on the caller's side. */
export interface Caller extends CallerProcess {
  /** The node directory: --dir, else $EMBASSY_DIR, else the platform data directory. */
  dir: string
  io: CallerIO
}

/** How a result is shown to a person. */
export interface FormatView {
  /** stdout is a terminal. */
  tty: boolean
}

interface CommandBase<O> {
  /** As typed: `status`, `dataset create`. */
  readonly name: string
  readonly spec: CommandSpec
  /** The human text of a result (stdout); --json prints the result itself. */
  format(result: O, view: FormatView): string
  /** More about a failure, for stderr in human mode (verify lists the failing blocks). */
  formatError?(err: EmbassyError): string
  /** The exit code of a result that is a finding, not an error (audit: 1 when any embassy failed). @default 0 */
  exitCode?(result: O): number
}

/** A command that runs on an open node: one the caller opens, or the running one (control socket). */
export interface NodeCommand<I, O> extends CommandBase<O> {
  readonly kind: 'node'
  /**
   * Caller side, first: finishes the command line the caller's way — paths against the caller's
   * working directory, records from stdin, a passphrase from the environment or a prompt.
   */
  prepare?(line: CommandInput, caller: Caller): Promise<CommandInput>
  /**
   * The typed input from a command line: required arguments and options present, numbers are
   * numbers (BAD_ARGUMENT otherwise). Runs where the handler runs; what the values mean (keys,
   * names, files) is the handler's to check.
   */
  input(line: CommandInput): I
  handler(host: Host, input: I, io: CommandIO): Promise<O>
  /**
   * Caller side, instead of running once: `status --watch` runs `once` again and again and shows
   * each result itself. Null: nothing left to print.
   */
  around?(input: I, caller: Caller, once: () => Promise<O>): Promise<O | null>
}

/** A command that runs in the caller's process without a node host. */
export interface LocalCommand<I, O> extends CommandBase<O> {
  readonly kind: 'local'
  input(line: CommandInput): I
  /** Null: printed already (or nothing to print). */
  run(input: I, caller: Caller): Promise<O | null>
}

export type Command<I, O> = NodeCommand<I, O> | LocalCommand<I, O>
/** Any command, for tables (methods are bivariant, so every typed record fits). */
export type AnyCommand = Command<unknown, unknown>

/** A node command record, fully typed from its input reader and handler. */
export function defineCommand<I, O>(command: Omit<NodeCommand<I, O>, 'kind'>): NodeCommand<I, O> {
  return { kind: 'node', ...command }
}

/** A local command record, fully typed from its input reader and run(). */
export function defineLocalCommand<I, O>(command: Omit<LocalCommand<I, O>, 'kind'>): LocalCommand<I, O> {
  return { kind: 'local', ...command }
}

/** The handler on a command line, as the control socket and runCommand() run it. */
export function runOnHost<I, O>(command: NodeCommand<I, O>, host: Host, line: CommandInput, io: CommandIO): Promise<O> {
  return command.handler(host, command.input(line), io)
}

/** The input of a command that takes none. */
export type NoInput = Record<string, never>

export function noInput(): NoInput {
  return {}
}

/** BAD_ARGUMENT that points at the command's help. */
export function usageError(msg: string, name?: string): EmbassyError {
  return EmbassyError.badArgument(`${msg}${name ? ` (see \`embassy ${name} --help\`)` : ' (see `embassy --help`)'}`)
}

/** Positional argument `i`, required. */
export function arg(line: CommandInput, i: number, name: string): string {
  const v = line.args[i]
  if (v === undefined || v === '') throw EmbassyError.badArgument(`missing ${name}`)
  return v
}

/**
 * A 32-byte key given on the command line (`what` names it: "core key"). Its error never quotes
 * the text: a capability pasted there by mistake is a secret.
 */
export function keyArg(text: string, what: string): Buffer {
  if (/^\s*embassy-[a-z]+:/i.test(text)) throw EmbassyError.badArgument(`that is a capability (a secret: not shown), not ${withArticle(what)}`)
  try {
    return parseKey(text, what)
  } catch (err) {
    throw EmbassyError.badArgument(`the ${what} given is not a 32-byte key (z32 or hex; ${String(text).trim().length} characters given, not shown)`, err)
  }
}

export function strOpt(line: CommandInput, name: string): string | undefined {
  const v = line.opts[name]
  return typeof v === 'string' ? v : undefined
}

/** A whole number ≥ 0, or undefined when absent. */
export function intOpt(line: CommandInput, name: string): number | undefined {
  const v = line.opts[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw EmbassyError.badArgument(`--${name} must be a whole number ≥ 0`)
  return n
}

/** A UDP port (0-65535) from an option's text, or undefined when absent. */
export function parsePort(text: string | undefined, command: string, name = 'port'): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!/^\d+$/.test(text) || n > 65535) throw usageError(`--${name} must be a port number (0-65535)`, command)
  return n
}

/** --bootstrap host:port[,host:port…] from the option's text, checked; undefined when absent. */
export function parseBootstrap(text: string | undefined, command: string): string[] | undefined {
  if (text === undefined) return undefined
  const list = text.split(',').map((x) => x.trim()).filter(Boolean)
  if (list.length === 0) throw usageError('--bootstrap needs host:port[,host:port…]', command)
  for (const hp of list) parseHostPort(hp)
  return list
}
