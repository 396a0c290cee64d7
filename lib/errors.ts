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
  TIMEOUT: ExitCode.UNREACHABLE,
  // Codes the read-only HTTP gateway answers with (its status per code lives in gateway/http.ts).
  BAD_PATH: ExitCode.USAGE,
  METHOD_NOT_ALLOWED: ExitCode.USAGE,
  UNKNOWN_HOST: ExitCode.USAGE,
  URI_TOO_LONG: ExitCode.USAGE,
  RANGE_NOT_SATISFIABLE: ExitCode.FAILED,
  NOT_REPLICATED: ExitCode.FAILED,
  NOT_READY: ExitCode.FAILED,
  UNKNOWN_AGENCY: ExitCode.FAILED,
  // Custody channel refusals (the peer broke the protocol, or speaks a version we do not).
  UNSUPPORTED_VERSION: ExitCode.FAILED,
  // Data that does not match its signed Merkle tree where it is stored (tampering at rest).
  TAMPERED: ExitCode.FAILED,
  // A name (file path, link target, dataset name) that could reach outside its folder.
  UNSAFE_PATH: ExitCode.FAILED,
  // The gateway's request limits (per client and in all).
  TOO_MANY_REQUESTS: ExitCode.FAILED,
  BUSY: ExitCode.FAILED,
  // A node directory, store or control socket that other local users could read or replace.
  INSECURE_PERMISSIONS: ExitCode.USAGE,
  // A capability (read or verify) whose text is damaged: wrong prefix, not z-base-32, checksum differs.
  BAD_CAPABILITY: ExitCode.USAGE,
  // A --port (HTTP gateway, DHT bootstrap) that another process already listens on.
  PORT_IN_USE: ExitCode.USAGE,
  // A control-socket request over its size limit (the connection is closed; the node keeps running).
  REQUEST_TOO_LARGE: ExitCode.USAGE,
  // The file system holding the node directory is full (ENOSPC): nothing was written; free space and retry.
  DISK_FULL: ExitCode.FAILED,
  // `embassy repair`: damaged blocks no holder could replace with a copy that verifies (named in details).
  REPAIR_FAILED: ExitCode.FAILED,
  // A copied node directory (cp -a, rsync, a restored backup; a rename is followed): refused until the operator accepts the copy.
  NODE_MOVED: ExitCode.USAGE,
  // A direct lane (net/lane.ts) answered with a Noise key other than the one we dialled: not our peer.
  WRONG_PEER: ExitCode.FAILED
} as const satisfies Record<string, ExitCode>

export type ErrorCode = keyof typeof EXIT_BY_CODE

export interface ErrorDetails {
  [key: string]: unknown
}

export interface ErrorOptions {
  cause?: unknown
  details?: ErrorDetails
  /** Extra response headers when the error is answered over HTTP (e.g. Retry-After). */
  headers?: Record<string, string>
}

export class EmbassyError extends Error {
  readonly code: ErrorCode
  readonly exitCode: ExitCode
  readonly details: ErrorDetails
  readonly headers: Record<string, string>

  /** Prefer the static factories: one per code, so every code's wording lives here. */
  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(`${code}: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'EmbassyError'
    this.code = code
    this.exitCode = EXIT_BY_CODE[code] ?? ExitCode.FAILED
    this.details = opts.details ?? {}
    this.headers = opts.headers ?? {}
  }

  /** An error that crossed a process boundary (the control socket) as `toJSON()`. */
  static fromJSON(o: { code: string; message: string; details?: ErrorDetails }): EmbassyError {
    const code = (o.code in EXIT_BY_CODE ? o.code : 'INTERNAL') as ErrorCode
    return new EmbassyError(code, o.message, { details: o.details ?? {} })
  }

  /** Any thrown value as an EmbassyError (unknown ones become INTERNAL, the original kept as cause). */
  static from(err: unknown): EmbassyError {
    if (err instanceof EmbassyError) return err
    return EmbassyError.internal((err as Error)?.message ?? String(err), err)
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

  static alreadyInitialised(dir: string, msg = `${dir} already holds a node`) {
    return new EmbassyError('ALREADY_INITIALISED', msg, { details: { dir } })
  }

  static dirLocked(dir: string, cause?: unknown) {
    return new EmbassyError(
      'DIR_LOCKED',
      `${dir} is in use by another process (is \`embassy run\` running without its control socket?)`,
      { cause, details: { dir } }
    )
  }

  static wrongRole(action: string, role: string, needs: string) {
    return new EmbassyError('WRONG_ROLE', `${action} needs ${withArticle(needs)} node; this one is ${withArticle(role)}`, {
      details: { role, needs }
    })
  }

  /** Reading datasets on an embassy. */
  static blindHolder() {
    return new EmbassyError('WRONG_ROLE', 'an embassy is blind: it holds ciphertext only and cannot read datasets (use a mirror)', {
      details: { role: 'embassy', needs: 'agency or mirror' }
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

  static wrongReadKey(msg = 'the read key does not match this agency\'s catalog (key-check value differs)') {
    return new EmbassyError('WRONG_READ_KEY', msg)
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

  static internal(msg: string, cause?: unknown) {
    return new EmbassyError('INTERNAL', msg, { cause })
  }

  static badInput(msg: string, opts: { details?: ErrorDetails; cause?: unknown } = {}) {
    return new EmbassyError('BAD_INPUT', msg, opts)
  }

  static notFound(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('NOT_FOUND', msg, { details })
  }

  static notSynced(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('NOT_SYNCED', msg, { details })
  }

  static ambiguousDataset(name: string, agencies: number) {
    return new EmbassyError('AMBIGUOUS_DATASET', `"${name}" exists in ${agencies} agencies`, { details: { name, agencies } })
  }

  static peerUnreachable(msg: string, cause?: unknown) {
    return new EmbassyError('PEER_UNREACHABLE', msg, { cause })
  }

  static verifyFailed(msg: string, details: ErrorDetails) {
    return new EmbassyError('VERIFY_FAILED', msg, { details })
  }

  static repairFailed(msg: string, details: ErrorDetails) {
    return new EmbassyError('REPAIR_FAILED', msg, { details })
  }

  /** PEER_UNREACHABLE with details (a repair whose damaged blocks have no holder to come from). */
  static noSource(msg: string, details: ErrorDetails) {
    return new EmbassyError('PEER_UNREACHABLE', msg, { details })
  }

  /** A node directory copied (cp -a, rsync, a restored backup): `how` says what gave it away. */
  static nodeMoved(dir: string, how: string, was: string | null = null) {
    return new EmbassyError(
      'NODE_MOVED',
      `${dir} is a copy of a node directory (${how}). Two running copies of one node share its identity and fight over its peers. ` +
        `If this is now the only copy (the original is stopped and deleted, never to run again), accept it: remove ${dir}/node-dir.json and ${dir}/store/CORESTORE, then start again ` +
        '(README: Moving and rebuilding a node)',
      { details: { dir, was, how } }
    )
  }

  static alreadyRunning(dir: string) {
    return new EmbassyError('DIR_LOCKED', `a node is already running in ${dir}`, { details: { dir } })
  }

  /** A wrong custody-protocol message from a peer; `code` is the channel's numeric error code. */
  static badPeerMessage(msg: string, channelCode: number) {
    return new EmbassyError('BAD_MESSAGE', msg, { details: { channelCode } })
  }

  static unsupportedVersion(msg: string, channelCode: number) {
    return new EmbassyError('UNSUPPORTED_VERSION', msg, { details: { channelCode } })
  }

  // The gateway's own codes (HTTP status per code in gateway/http.ts).

  static badPath(msg: string) {
    return new EmbassyError('BAD_PATH', msg)
  }

  static methodNotAllowed(msg: string, headers: Record<string, string> = {}) {
    return new EmbassyError('METHOD_NOT_ALLOWED', msg, { headers })
  }

  static unknownHost(msg: string) {
    return new EmbassyError('UNKNOWN_HOST', msg)
  }

  static uriTooLong(msg: string) {
    return new EmbassyError('URI_TOO_LONG', msg)
  }

  static rangeNotSatisfiable(msg: string, size?: number) {
    return new EmbassyError('RANGE_NOT_SATISFIABLE', msg, { headers: size === undefined ? {} : { 'Content-Range': `bytes */${size}` } })
  }

  /** Data this node does not hold yet (or cannot fetch now). */
  static notReplicated(msg: string, cause?: unknown, headers: Record<string, string> = {}) {
    return new EmbassyError('NOT_REPLICATED', msg, { cause, headers })
  }

  static unknownAgency(msg: string) {
    return new EmbassyError('UNKNOWN_AGENCY', msg)
  }

  static notReady(msg: string, headers: Record<string, string> = {}) {
    return new EmbassyError('NOT_READY', msg, { headers })
  }

  static noBootstrap() {
    return new EmbassyError(
      'NO_BOOTSTRAP',
      'no DHT bootstrap nodes configured: pass --bootstrap host:port[,host:port…] or set "bootstrap" in config.json (the public DHT is never used)'
    )
  }

  /** A stored block whose bytes do not hash to its leaf of the signed Merkle tree. */
  static tampered(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('TAMPERED', msg, { details })
  }

  /** A name that could reach outside its folder (.., absolute, control characters). */
  static unsafePath(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('UNSAFE_PATH', msg, { details })
  }

  /** One client has too many requests in flight at the gateway. */
  static tooManyRequests(msg: string, headers: Record<string, string> = {}) {
    return new EmbassyError('TOO_MANY_REQUESTS', msg, { headers })
  }

  /** The gateway has too many requests in flight in all. */
  static busy(msg: string, headers: Record<string, string> = {}) {
    return new EmbassyError('BUSY', msg, { headers })
  }

  /** A node directory, its store or a control socket that other local users can reach (refused, never changed). */
  static insecurePermissions(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('INSECURE_PERMISSIONS', msg, { details })
  }

  /** A capability string that is damaged (mistyped, truncated, checksum differs); never quotes the secret. */
  static badCapability(msg: string, cause?: unknown) {
    return new EmbassyError('BAD_CAPABILITY', msg, { cause })
  }

  static requestTooLarge(msg: string, details: ErrorDetails = {}) {
    return new EmbassyError('REQUEST_TOO_LARGE', msg, { details })
  }

  /**
   * `--port N` is taken by another process (`--port 0` picks a free one). `advice` replaces the
   * `--port` advice where the port comes from elsewhere (the lane's `lane.listen` in config.json).
   */
  static portInUse(host: string, port: number, cause?: unknown, advice = 'choose another --port, or --port 0 for any free one') {
    return new EmbassyError('PORT_IN_USE', `${host}:${port} is already in use by another process; ${advice}`, {
      cause,
      details: { host, port }
    })
  }

  /**
   * The disk holding the node directory is full: the write was refused whole (nothing acknowledged is
   * lost). `free`/`needed` are bytes, null when unknown.
   */
  static diskFull(what: string, opts: { dir: string; free: number | null; needed?: number | null; cause?: unknown; reopen?: boolean; landed?: string; checked?: boolean }) {
    const free = opts.free === null ? 'unknown' : `${opts.free} byte(s)`
    const needed = opts.needed === undefined || opts.needed === null ? '' : `, about ${opts.needed} byte(s) needed`
    // The store (RocksDB) keeps refusing writes after it ran out of space, even once space is freed;
    // a write refused before it started (`checked`) never reached the store.
    const advice = opts.checked
      ? 'free some space and retry (no restart needed)'
      : opts.reopen ? 'space is free again, but the open store refuses writes until it is reopened: restart the node (`embassy run`), then retry' : 'free some space, restart the node if it runs (`embassy run`), and retry'
    const landed = opts.landed ?? (opts.checked ? 'refused before anything was written' : 'nothing of it was acknowledged')
    return new EmbassyError('DISK_FULL', `no space left on the disk of ${opts.dir} while ${what} (free: ${free}${needed}); ${landed}: ${advice}`, {
      cause: opts.cause,
      details: { dir: opts.dir, free: opts.free, needed: opts.needed ?? null, reopen: opts.reopen === true, ...(opts.checked ? { checked: true } : {}) }
    })
  }

  /** `append --wait-for-custody`: the records were appended at home, but not enough embassies held them in time. */
  static custodyTimeout(msg: string, details: ErrorDetails) {
    return new EmbassyError('TIMEOUT', msg, { details })
  }

  /** A direct lane (net/lane.ts) could not be opened: no TCP connection, or no Noise handshake in time. */
  static laneUnreachable(host: string, port: number, why: string, cause?: unknown) {
    return new EmbassyError('PEER_UNREACHABLE', `lane to ${host}:${port}: ${why}`, { cause, details: { host, port } })
  }

  /** A direct lane's peer proved a Noise key other than the one we dialled (the stream is closed, nothing replicated). */
  static wrongPeer(host: string, port: number, expected: string, got: string) {
    return new EmbassyError('WRONG_PEER', `lane to ${host}:${port}: the peer there is ${got}, not ${expected}; nothing was replicated`, { details: { host, port, expected, got } })
  }
}

/** `word` with its indefinite article: "an agency", "an embassy or mirror", "a mirror". */
export function withArticle(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`
}

export function isEmbassyError(err: unknown): err is EmbassyError {
  return err instanceof EmbassyError
}
