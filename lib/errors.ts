/**
 * One error class with stable codes. The message always starts with `CODE: `;
 * `exitCode` is what the CLI exits with (0 ok, 1 failed, 2 usage/config, 3 unreachable/timeout).
 */

export const ExitCode = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  UNREACHABLE: 3
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

const EXIT_BY_CODE = {
  BAD_ARGUMENT: ExitCode.USAGE,
  BAD_CONFIG: ExitCode.USAGE,
  NOT_INITIALISED: ExitCode.USAGE,
  ALREADY_INITIALISED: ExitCode.USAGE,
  WRONG_ROLE: ExitCode.USAGE,
  NO_BOOTSTRAP: ExitCode.USAGE,
  DIR_LOCKED: ExitCode.FAILED,
  UNKNOWN_DATASET: ExitCode.FAILED,
  DATASET_EXISTS: ExitCode.FAILED,
  AMBIGUOUS_DATASET: ExitCode.FAILED,
  WRONG_KIND: ExitCode.FAILED,
  BAD_RECORD: ExitCode.FAILED,
  BAD_INPUT: ExitCode.FAILED,
  WRONG_READ_KEY: ExitCode.FAILED,
  BAD_CATALOG: ExitCode.FAILED,
  BAD_MESSAGE: ExitCode.FAILED,
  NOT_FOUND: ExitCode.FAILED,
  NOT_AVAILABLE: ExitCode.FAILED,
  NOT_SYNCED: ExitCode.FAILED,
  VERIFY_FAILED: ExitCode.FAILED,
  CLOSED: ExitCode.FAILED,
  INTERNAL: ExitCode.FAILED,
  PEER_UNREACHABLE: ExitCode.UNREACHABLE,
  TIMEOUT: ExitCode.UNREACHABLE
} as const satisfies Record<string, ExitCode>

export type ErrorCode = keyof typeof EXIT_BY_CODE

export interface ErrorDetails {
  [key: string]: unknown
}

export class EmbassyError extends Error {
  readonly code: ErrorCode
  readonly exitCode: ExitCode
  readonly details: ErrorDetails

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(`${code}: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'EmbassyError'
    this.code = code
    this.exitCode = EXIT_BY_CODE[code] ?? ExitCode.FAILED
    this.details = opts.details ?? {}
  }

  /** The message without its `CODE: ` prefix. */
  get text(): string {
    return this.message.slice(this.code.length + 2)
  }

  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.text, details: this.details }
  }

  static badArgument(msg: string, cause?: unknown) {
    return new EmbassyError('BAD_ARGUMENT', msg, { cause })
  }

  static badConfig(msg: string, cause?: unknown) {
    return new EmbassyError('BAD_CONFIG', msg, { cause })
  }

  static notInitialised(dir: string) {
    return new EmbassyError('NOT_INITIALISED', `no node in ${dir}; run \`embassy init --role agency|embassy|mirror --dir ${dir}\` first`, {
      details: { dir }
    })
  }

  static alreadyInitialised(dir: string) {
    return new EmbassyError('ALREADY_INITIALISED', `${dir} already holds a node`, { details: { dir } })
  }

  static dirLocked(dir: string, cause?: unknown) {
    return new EmbassyError(
      'DIR_LOCKED',
      `${dir} is in use by another process (is \`embassy run\` running without its control socket?)`,
      { cause, details: { dir } }
    )
  }

  static wrongRole(action: string, role: string, needs: string) {
    return new EmbassyError('WRONG_ROLE', `${action} needs a ${needs} node; this one is ${role === 'agency' || role === 'embassy' ? 'an' : 'a'} ${role}`, {
      details: { role, needs }
    })
  }

  static unknownDataset(name: string) {
    return new EmbassyError('UNKNOWN_DATASET', `no dataset named "${name}"`, { details: { name } })
  }

  static datasetExists(name: string) {
    return new EmbassyError('DATASET_EXISTS', `a dataset named "${name}" already exists`, { details: { name } })
  }

  static wrongKind(name: string, kind: string, needs: string) {
    return new EmbassyError('WRONG_KIND', `dataset "${name}" is a ${kind} dataset; this needs a ${needs} dataset`, {
      details: { name, kind, needs }
    })
  }

  static badRecord(line: number, reason: string) {
    return new EmbassyError('BAD_RECORD', `line ${line}: ${reason}; nothing was appended`, { details: { line } })
  }

  static wrongReadKey() {
    return new EmbassyError('WRONG_READ_KEY', 'the read key does not match this agency\'s catalog (key-check value differs)')
  }

  static badCatalog(msg: string, cause?: unknown) {
    return new EmbassyError('BAD_CATALOG', msg, { cause })
  }

  static badMessage(msg: string, cause?: unknown) {
    return new EmbassyError('BAD_MESSAGE', msg, { cause })
  }

  static notAvailable(msg: string) {
    return new EmbassyError('NOT_AVAILABLE', msg)
  }

  static timeout(msg: string) {
    return new EmbassyError('TIMEOUT', msg)
  }

  static closed() {
    return new EmbassyError('CLOSED', 'the node is closed')
  }

  static noBootstrap() {
    return new EmbassyError(
      'NO_BOOTSTRAP',
      'no DHT bootstrap nodes configured: pass --bootstrap host:port[,host:port…] or set "bootstrap" in config.json (the public DHT is never used)'
    )
  }
}

export function isEmbassyError(err: unknown): err is EmbassyError {
  return err instanceof EmbassyError
}
