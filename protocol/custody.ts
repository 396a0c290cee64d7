/**
 * The custody channel (`data-embassy/custody/1`): a Protomux channel beside Corestore
 * replication on every connection. protocol/SPEC.md describes every byte.
 * Messages are numbered by their order in CUSTODY_MESSAGES: new ones only ever go at the end.
 */
import c from 'compact-encoding'
import { decode, encode, type Codec } from './codecs.js'

/** Protomux protocol name of the channel. */
export const CUSTODY_PROTOCOL = 'data-embassy/custody/1'

/** Major and minor version this build speaks. A peer with another major gets an error, then close. */
export const CUSTODY_MAJOR = 1
export const CUSTODY_MINOR = 5

/** Largest message we accept on the channel (bytes). */
export const MAX_CUSTODY_MESSAGE = 64 * 1024
/** Most catalogs a handshake may list. */
export const MAX_HANDSHAKE_CATALOGS = 4096

export const PeerRole = {
  AGENCY: 1,
  EMBASSY: 2,
  MIRROR: 3,
  /** A blind auditor: holds a verify capability, audits holders, stores and serves nothing. (minor 2) */
  AUDITOR: 4
} as const
export type PeerRoleCode = (typeof PeerRole)[keyof typeof PeerRole]

export function peerRoleName(code: number): 'agency' | 'embassy' | 'mirror' | 'auditor' | 'unknown' {
  return code === 1 ? 'agency' : code === 2 ? 'embassy' : code === 3 ? 'mirror' : code === 4 ? 'auditor' : 'unknown'
}

/** Channel handshake: who the peer is and what it speaks. */
export interface Handshake {
  major: number
  minor: number
  role: number
  /** Optional features the sender supports (e.g. 'receipts'). */
  capabilities: string[]
  /** Agency: its catalog key. Holders: the catalogs they hold. */
  catalogs: Uint8Array[]
  /**
   * The UDP port of the sender's DHT server socket (where a direct dial or a probe reaches it);
   * 0: not said. Absent from handshakes of minors < 4 (and not encoded when undefined). (minor 4)
   */
  dhtPort?: number
}

export const handshake: Codec<Handshake> = {
  preencode(state, m) {
    c.uint.preencode(state, m.major)
    c.uint.preencode(state, m.minor)
    c.uint.preencode(state, m.role)
    c.uint.preencode(state, 0) // flags
    c.array(c.string).preencode(state, m.capabilities)
    c.array(c.fixed32).preencode(state, m.catalogs)
    if (m.dhtPort !== undefined) c.uint.preencode(state, checkDhtPort(m.dhtPort))
  },
  encode(state, m) {
    c.uint.encode(state, m.major)
    c.uint.encode(state, m.minor)
    c.uint.encode(state, m.role)
    c.uint.encode(state, 0)
    c.array(c.string).encode(state, m.capabilities)
    c.array(c.fixed32).encode(state, m.catalogs)
    if (m.dhtPort !== undefined) c.uint.encode(state, m.dhtPort)
  },
  decode(state) {
    const major = c.uint.decode(state)
    const minor = c.uint.decode(state)
    const role = c.uint.decode(state)
    c.uint.decode(state)
    // A later major may lay out the rest differently: stop here and let the caller refuse it.
    if (major !== CUSTODY_MAJOR) {
      state.start = state.end
      return { major, minor, role, capabilities: [], catalogs: [] }
    }
    const capabilities = c.array(c.string).decode(state)
    const catalogs = c.array(c.fixed32).decode(state)
    if (catalogs.length > MAX_HANDSHAKE_CATALOGS) throw new Error('too many catalogs')
    // Minor 4: the sender's DHT server port, when it said it (older senders end here).
    const dhtPort = state.start < state.end ? checkDhtPort(c.uint.decode(state)) : undefined
    // Fields added in later minors follow; skip what we do not know.
    state.start = state.end
    return dhtPort === undefined ? { major, minor, role, capabilities, catalogs } : { major, minor, role, capabilities, catalogs, dhtPort }
  }
}

/** A handshake's DHT port: 0 (not said) or 1…65535; anything else is a malformed handshake. */
function checkDhtPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`handshake DHT port ${port} is not 0…65535`)
  return port
}

/** Error codes sent on the channel. */
export const ChannelError = {
  UNSUPPORTED_VERSION: 1,
  BAD_MESSAGE: 2,
  NOT_ALLOWED: 3
} as const

export interface ErrorMessage {
  code: number
  message: string
}

export const errorMessage: Codec<ErrorMessage> = {
  preencode(state, m) {
    c.uint.preencode(state, m.code)
    c.string.preencode(state, m.message)
  },
  encode(state, m) {
    c.uint.encode(state, m.code)
    c.string.encode(state, m.message)
  },
  decode(state) {
    return { code: c.uint.decode(state), message: c.string.decode(state).slice(0, 1024) }
  }
}

/** Namespace of the bytes an embassy signs for a receipt (domain separation). */
export const RECEIPT_SIGNING_NAMESPACE = 'data-embassy/custody/receipt/1'

/**
 * A custody receipt: the sender holds `core` contiguously up to `length`, whose Merkle tree hash
 * at that length is `treeHash`, on `fork`, as of `time`. Signed with the sender's node key.
 */
export interface Receipt {
  core: Uint8Array
  length: number
  treeHash: Uint8Array
  fork: number
  /** Milliseconds since the epoch, the sender's clock. */
  time: number
  /** Ed25519 signature over receiptSignable(...) by the sender's node key. */
  signature: Uint8Array
}

/** The signed fields of a receipt, in wire order (shared by the message and its signing bytes). */
const receiptBody: Codec<Omit<Receipt, 'signature'>> = {
  preencode(state, m) {
    c.fixed32.preencode(state, m.core)
    c.uint.preencode(state, m.length)
    c.fixed32.preencode(state, m.treeHash)
    c.uint.preencode(state, m.fork)
    c.uint.preencode(state, m.time)
  },
  encode(state, m) {
    c.fixed32.encode(state, m.core)
    c.uint.encode(state, m.length)
    c.fixed32.encode(state, m.treeHash)
    c.uint.encode(state, m.fork)
    c.uint.encode(state, m.time)
  },
  decode(state) {
    return {
      core: c.fixed32.decode(state),
      length: c.uint.decode(state),
      treeHash: c.fixed32.decode(state),
      fork: c.uint.decode(state),
      time: c.uint.decode(state)
    }
  }
}

export const receipt: Codec<Receipt> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    receiptBody.preencode(state, m)
    c.fixed64.preencode(state, m.signature)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    receiptBody.encode(state, m)
    c.fixed64.encode(state, m.signature)
  },
  decode(state) {
    c.uint.decode(state)
    const m = { ...receiptBody.decode(state), signature: c.fixed64.decode(state) }
    state.start = state.end // fields of later minors
    return m
  }
}

/** The exact bytes a receipt's signature covers. */
export function receiptSignable(m: Omit<Receipt, 'signature'>): Buffer {
  const body = { core: m.core, length: m.length, treeHash: m.treeHash, fork: m.fork, time: m.time }
  const state = c.state()
  c.string.preencode(state, RECEIPT_SIGNING_NAMESPACE)
  receiptBody.preencode(state, body)
  state.buffer = Buffer.allocUnsafe(state.end)
  c.string.encode(state, RECEIPT_SIGNING_NAMESPACE)
  receiptBody.encode(state, body)
  return state.buffer as Buffer
}

/**
 * A head a holder verified and witnesses: the agency-signed state of one core (`length`, `fork`,
 * Merkle `treeHash` and the agency's `agencySignature` over them, checkable with the core's own
 * manifest), cosigned by the holder (`witness`, `signature`). Two agency-signed heads that cannot
 * both be true are self-verifying evidence of equivocation. (minor 1)
 */
export interface WitnessedHead {
  core: Uint8Array
  length: number
  fork: number
  treeHash: Uint8Array
  /** The agency's signature over Hypercore's tree signable for this head (as Hypercore stores it). */
  agencySignature: Uint8Array
  /** Node key of the holder that cosigned it. */
  witness: Uint8Array
  /** Milliseconds since the epoch, the witness's clock (informative only). */
  time: number
  /** The witness's Ed25519 signature over headSignable(...). */
  signature: Uint8Array
}

/** Largest agency signature a head may carry (Hypercore's assembled signature is 68 bytes). */
export const MAX_HEAD_SIGNATURE = 1024

function boundedBuffer(state: Parameters<Codec<unknown>['decode']>[0], max: number, what: string): Buffer {
  const b = c.buffer.decode(state) as Buffer | null
  if (!b || b.byteLength === 0) throw new Error(`empty ${what}`)
  if (b.byteLength > max) throw new Error(`${what} of ${b.byteLength} bytes (at most ${max})`)
  return b
}

/** The signed fields of a witnessed head, in wire order. */
const headBody: Codec<Omit<WitnessedHead, 'signature'>> = {
  preencode(state, m) {
    c.fixed32.preencode(state, m.core)
    c.uint.preencode(state, m.length)
    c.uint.preencode(state, m.fork)
    c.fixed32.preencode(state, m.treeHash)
    c.buffer.preencode(state, m.agencySignature)
    c.fixed32.preencode(state, m.witness)
    c.uint.preencode(state, m.time)
  },
  encode(state, m) {
    c.fixed32.encode(state, m.core)
    c.uint.encode(state, m.length)
    c.uint.encode(state, m.fork)
    c.fixed32.encode(state, m.treeHash)
    c.buffer.encode(state, m.agencySignature)
    c.fixed32.encode(state, m.witness)
    c.uint.encode(state, m.time)
  },
  decode(state) {
    return {
      core: c.fixed32.decode(state),
      length: c.uint.decode(state),
      fork: c.uint.decode(state),
      treeHash: c.fixed32.decode(state),
      agencySignature: boundedBuffer(state, MAX_HEAD_SIGNATURE, 'agency signature'),
      witness: c.fixed32.decode(state),
      time: c.uint.decode(state)
    }
  }
}

export const witnessedHead: Codec<WitnessedHead> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    headBody.preencode(state, m)
    c.fixed64.preencode(state, m.signature)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    headBody.encode(state, m)
    c.fixed64.encode(state, m.signature)
  },
  decode(state) {
    c.uint.decode(state)
    const m = { ...headBody.decode(state), signature: c.fixed64.decode(state) }
    state.start = state.end // fields of later minors
    return m
  }
}

/** Namespace of the bytes a witness signs for a head (domain separation). */
export const HEAD_SIGNING_NAMESPACE = 'data-embassy/custody/head/1'

/** The exact bytes a witness's head signature covers. */
export function headSignable(m: Omit<WitnessedHead, 'signature'>): Buffer {
  const state = c.state()
  c.string.preencode(state, HEAD_SIGNING_NAMESPACE)
  headBody.preencode(state, m)
  state.buffer = Buffer.allocUnsafe(state.end)
  c.string.encode(state, HEAD_SIGNING_NAMESPACE)
  headBody.encode(state, m)
  return state.buffer as Buffer
}

/** Alarm kinds a holder reports to its agency and to the other holders. (minor 1) */
export const AlarmCode = {
  HISTORY_REWRITE: 1,
  EQUIVOCATION: 2,
  /** An embassy near its quota for this agency (lib/roles/quota.ts). */
  QUOTA_NEAR: 3,
  /** An embassy over its quota for this agency. */
  QUOTA_EXCEEDED: 4,
  /**
   * Two live nodes connect with the agency's key: the holder saw connections from two instances
   * of it alternate (`instance:` handshake capability). `core` is the catalog key; no heads.
   */
  SECOND_LIVE_NODE: 5,
  /**
   * A holder found a damaged block of a core in its own storage (it is not served) or repaired one:
   * `core` the core key, `length` the block index, `fork` the core's fork, `offeredLength` 0
   * damaged / 1 repaired, `offeredFork` 0, `offeredBy` zeros, no heads. Agencies that do not know
   * the code ignore it (additive: no new message, no new minor).
   */
  DAMAGED_BLOCK: 6
} as const

/** Handshake capability an agency sends: `instance:` + 32 hex characters, new at every start. */
export const INSTANCE_CAPABILITY = 'instance:'
export type AlarmCodeValue = (typeof AlarmCode)[keyof typeof AlarmCode]

/**
 * A holder refused a signed rewrite of a core's history (a higher fork, or a head that conflicts
 * with one it verified) and keeps what it verified. Sent to the agency and to the other holders.
 * `heads` carries the signed evidence: for a rewrite, the kept head (and the offered one when the
 * holder has its signature); for an equivocation, the two heads that cannot both be true. (minor 1)
 */
export interface AlarmReport {
  code: number
  core: Uint8Array
  /** Length and fork the holder keeps. */
  length: number
  fork: number
  /** Length and fork it was offered. */
  offeredLength: number
  offeredFork: number
  /** Node key of the peer that offered the rewrite (zeros when unknown). */
  offeredBy: Uint8Array
  time: number
  heads: WitnessedHead[]
}

/** Most heads one alarm report carries. */
export const MAX_REPORT_HEADS = 4

export const alarmReport: Codec<AlarmReport> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    c.uint.preencode(state, m.code)
    c.fixed32.preencode(state, m.core)
    c.uint.preencode(state, m.length)
    c.uint.preencode(state, m.fork)
    c.uint.preencode(state, m.offeredLength)
    c.uint.preencode(state, m.offeredFork)
    c.fixed32.preencode(state, m.offeredBy)
    c.uint.preencode(state, m.time)
    c.array(c.buffer).preencode(state, m.heads.map((h) => encode(witnessedHead, h)))
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    c.uint.encode(state, m.code)
    c.fixed32.encode(state, m.core)
    c.uint.encode(state, m.length)
    c.uint.encode(state, m.fork)
    c.uint.encode(state, m.offeredLength)
    c.uint.encode(state, m.offeredFork)
    c.fixed32.encode(state, m.offeredBy)
    c.uint.encode(state, m.time)
    c.array(c.buffer).encode(state, m.heads.map((h) => encode(witnessedHead, h)))
  },
  decode(state) {
    c.uint.decode(state)
    const code = c.uint.decode(state)
    const core = c.fixed32.decode(state)
    const length = c.uint.decode(state)
    const fork = c.uint.decode(state)
    const offeredLength = c.uint.decode(state)
    const offeredFork = c.uint.decode(state)
    const offeredBy = c.fixed32.decode(state)
    const time = c.uint.decode(state)
    // Each head is length-prefixed, so a head of a later minor (longer) still decodes here.
    const raw = c.array(c.buffer).decode(state) as Array<Uint8Array | null>
    if (raw.length > MAX_REPORT_HEADS) throw new Error(`${raw.length} heads in one report (at most ${MAX_REPORT_HEADS})`)
    const heads = raw.map((b) => decode(witnessedHead, b ?? new Uint8Array(0)))
    state.start = state.end // fields of later minors
    return { code, core, length, fork, offeredLength, offeredFork, offeredBy, time, heads }
  }
}

/**
 * The holders of one agency's data that the agency admitted (its embassies), so they can find,
 * admit and cross-check each other (agency → embassy). The connection authenticates the sender as
 * the agency. (minor 1)
 */
export interface HolderList {
  catalog: Uint8Array
  holders: Uint8Array[]
}

/** Most holders one list names. */
export const MAX_HOLDERS = 256

export const holderList: Codec<HolderList> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    c.fixed32.preencode(state, m.catalog)
    c.array(c.fixed32).preencode(state, m.holders)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    c.fixed32.encode(state, m.catalog)
    c.array(c.fixed32).encode(state, m.holders)
  },
  decode(state) {
    c.uint.decode(state)
    const catalog = c.fixed32.decode(state)
    const holders = c.array(c.fixed32).decode(state)
    if (holders.length > MAX_HOLDERS) throw new Error(`${holders.length} holders (at most ${MAX_HOLDERS})`)
    state.start = state.end // fields of later minors
    return { catalog, holders }
  }
}

/** Most block indices one challenge names. */
export const MAX_CHALLENGE_INDICES = 256
/** Bytes of an audit nonce and of each answered value (BLAKE2b-256). */
export const AUDIT_NONCE_BYTES = 32
export const AUDIT_VALUE_BYTES = 32

/**
 * An audit challenge (auditor → holder): prove you hold blocks `indices` of `core` by answering,
 * per index, BLAKE2b-256(nonce ‖ the block's bytes as stored: ciphertext on an encrypted core).
 * `id` pairs the answer with the challenge; `nonce` is fresh and random for every challenge. (minor 2)
 */
export interface Challenge {
  id: number
  core: Uint8Array
  nonce: Uint8Array
  indices: number[]
}

/** Reads a uint array whose length is checked against `max` before any element is decoded. */
function boundedUints(state: Parameters<Codec<unknown>['decode']>[0], max: number, what: string): number[] {
  const n = c.uint.decode(state)
  if (n > max) throw new Error(`${n} ${what} (at most ${max})`)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(c.uint.decode(state))
  return out
}

function boundedHashes(state: Parameters<Codec<unknown>['decode']>[0], max: number, what: string): Uint8Array[] {
  const n = c.uint.decode(state)
  if (n > max) throw new Error(`${n} ${what} (at most ${max})`)
  // Each value is 32 bytes: the remaining bytes must hold them all (checked before decoding).
  if (state.end - state.start < n * AUDIT_VALUE_BYTES) throw new Error(`${n} ${what} do not fit in the message`)
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) out.push(c.fixed32.decode(state))
  return out
}

export const challenge: Codec<Challenge> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    c.uint.preencode(state, m.id)
    c.fixed32.preencode(state, m.core)
    c.fixed32.preencode(state, m.nonce)
    c.array(c.uint).preencode(state, m.indices)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    c.uint.encode(state, m.id)
    c.fixed32.encode(state, m.core)
    c.fixed32.encode(state, m.nonce)
    c.array(c.uint).encode(state, m.indices)
  },
  decode(state) {
    c.uint.decode(state)
    const id = c.uint.decode(state)
    const core = c.fixed32.decode(state)
    const nonce = c.fixed32.decode(state)
    const indices = boundedUints(state, MAX_CHALLENGE_INDICES, 'indices in one challenge')
    if (indices.length === 0) throw new Error('a challenge names no block')
    state.start = state.end // fields of later minors
    return { id, core, nonce, indices }
  }
}

/** How a holder answered a challenge. */
export const AnswerStatus = {
  /** `values` has one value per index (32 zero bytes for a block the holder does not have). */
  OK: 0,
  /** The holder does not hold the core (or refuses this challenger): no values. */
  NOT_HELD: 1,
  /** The nonce was used before: a replayed challenge is never answered again. */
  REPLAYED: 2,
  /** Too many challenges at once from this challenger: ask again later. */
  BUSY: 3
} as const

/**
 * An audit answer (holder → auditor), signed by the holder's node key over answerSignable(...):
 * the challenger, the challenge (core, nonce, indices), the status, the holder's time and the
 * values. Kept in the auditor's audit log as evidence anyone with the keys can check. (minor 2)
 */
export interface Answer {
  id: number
  core: Uint8Array
  nonce: Uint8Array
  status: number
  /** Milliseconds since the epoch, the holder's clock (informative). */
  time: number
  values: Uint8Array[]
  signature: Uint8Array
}

export const answer: Codec<Answer> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    c.uint.preencode(state, m.id)
    c.fixed32.preencode(state, m.core)
    c.fixed32.preencode(state, m.nonce)
    c.uint.preencode(state, m.status)
    c.uint.preencode(state, m.time)
    c.array(c.fixed32).preencode(state, m.values)
    c.fixed64.preencode(state, m.signature)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    c.uint.encode(state, m.id)
    c.fixed32.encode(state, m.core)
    c.fixed32.encode(state, m.nonce)
    c.uint.encode(state, m.status)
    c.uint.encode(state, m.time)
    c.array(c.fixed32).encode(state, m.values)
    c.fixed64.encode(state, m.signature)
  },
  decode(state) {
    c.uint.decode(state)
    const id = c.uint.decode(state)
    const core = c.fixed32.decode(state)
    const nonce = c.fixed32.decode(state)
    const status = c.uint.decode(state)
    const time = c.uint.decode(state)
    const values = boundedHashes(state, MAX_CHALLENGE_INDICES, 'values in one answer')
    const signature = c.fixed64.decode(state)
    state.start = state.end // fields of later minors
    return { id, core, nonce, status, time, values, signature }
  }
}

/** Namespace of the bytes a holder signs for an answer (domain separation). */
export const ANSWER_SIGNING_NAMESPACE = 'data-embassy/custody/answer/1'

/** The exact bytes an answer's signature covers: who asked, what was asked, what was answered. */
export function answerSignable(challenger: Uint8Array, ch: Pick<Challenge, 'core' | 'nonce' | 'indices'>, m: Pick<Answer, 'status' | 'time' | 'values'>): Buffer {
  const state = c.state()
  const fields = (enc: 'preencode' | 'encode') => {
    c.string[enc](state, ANSWER_SIGNING_NAMESPACE)
    c.fixed32[enc](state, challenger)
    c.fixed32[enc](state, ch.core)
    c.fixed32[enc](state, ch.nonce)
    c.array(c.uint)[enc](state, ch.indices)
    c.uint[enc](state, m.status)
    c.uint[enc](state, m.time)
    c.array(c.fixed32)[enc](state, m.values)
  }
  fields('preencode')
  state.buffer = Buffer.allocUnsafe(state.end)
  fields('encode')
  return state.buffer as Buffer
}

/** Longest host a lane offer may name (a DNS name is at most 253 characters). */
export const MAX_LANE_HOST = 253

/**
 * A lane offer (any admitted peer → its peer): "dial my bulk lane at host:port" — a direct TCP
 * connection with the same Noise keys (lib/net/lane.ts). An empty `host` means the address the
 * receiver sees the sender's swarm connection come from. (minor 3)
 */
export interface LaneOffer {
  host: string
  port: number
}

export const laneOffer: Codec<LaneOffer> = {
  preencode(state, m) {
    c.uint.preencode(state, 0) // flags
    c.string.preencode(state, m.host)
    c.uint.preencode(state, m.port)
  },
  encode(state, m) {
    c.uint.encode(state, 0)
    c.string.encode(state, m.host)
    c.uint.encode(state, m.port)
  },
  decode(state) {
    c.uint.decode(state)
    // The length is checked before the bytes are read: a long host is refused, never decoded.
    const at = state.start
    const n = c.uint.decode(state)
    if (n > MAX_LANE_HOST) throw new Error(`a lane host of ${n} bytes (at most ${MAX_LANE_HOST})`)
    state.start = at
    const host = c.string.decode(state)
    if (/[\s/@]/.test(host)) throw new Error('a lane host has no spaces, slashes or @')
    const port = c.uint.decode(state)
    if (!(port >= 1 && port <= 65535)) throw new Error(`lane port ${port} is not 1…65535`)
    state.start = state.end // fields of later minors
    return { host, port }
  }
}

/** Most cores one `appended` notice lists (a sender splits a longer list into several notices). */
export const MAX_APPENDED_CORES = 1024

/** Bytes of the smallest entry of an `appended` notice: the core key and two one-byte uints. */
const MIN_APPENDED_ENTRY = 32 + 1 + 1

/** One core of an `appended` notice: the sender's head of it. */
export interface AppendedCore {
  core: Buffer
  length: number
  fork: number
}

/**
 * An appended notice (agency → embassy): "these cores of my catalog now have these heads", so
 * that a holder which closed an idle core knows to open it again. A hint only: whatever the
 * holder fetches is verified against the writer's signature as always. (minor 5)
 */
export interface AppendedNotice {
  catalog: Buffer
  cores: AppendedCore[]
}

/** A decoded fixed32 as a Buffer (it already is one when the message came in a Buffer). */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

function checkAppendedCount(n: number): void {
  if (n > MAX_APPENDED_CORES) throw new Error(`${n} cores in one appended notice (at most ${MAX_APPENDED_CORES})`)
}

export const appendedNotice: Codec<AppendedNotice> = {
  preencode(state, m) {
    checkAppendedCount(m.cores.length) // never sent either
    c.fixed32.preencode(state, m.catalog)
    c.uint.preencode(state, m.cores.length)
    for (const e of m.cores) {
      c.fixed32.preencode(state, e.core)
      c.uint.preencode(state, e.length)
      c.uint.preencode(state, e.fork)
    }
  },
  encode(state, m) {
    c.fixed32.encode(state, m.catalog)
    c.uint.encode(state, m.cores.length)
    for (const e of m.cores) {
      c.fixed32.encode(state, e.core)
      c.uint.encode(state, e.length)
      c.uint.encode(state, e.fork)
    }
  },
  decode(state) {
    let catalog: Buffer
    let n: number
    try {
      catalog = asBuffer(c.fixed32.decode(state))
      n = c.uint.decode(state)
    } catch {
      throw new Error('an appended notice shorter than its catalog key and count (truncated)')
    }
    // The count is checked against the limit and the bytes left before any entry is read.
    checkAppendedCount(n)
    if (state.end - state.start < n * MIN_APPENDED_ENTRY) throw new Error(`${n} cores of an appended notice do not fit in the message (truncated)`)
    const cores: AppendedCore[] = []
    for (let i = 0; i < n; i++) {
      try {
        cores.push({ core: asBuffer(c.fixed32.decode(state)), length: c.uint.decode(state), fork: c.uint.decode(state) })
      } catch {
        throw new Error(`core ${i + 1} of ${n} of an appended notice is truncated`)
      }
    }
    state.start = state.end // fields of later minors
    return { catalog, cores }
  }
}

/** Every message of the custody channel, by name, with its value type. */
export interface CustodyMessages {
  error: ErrorMessage
  receipt: Receipt
  /** minor 1 */
  head: WitnessedHead
  /** minor 1 */
  alarm: AlarmReport
  /** minor 1 */
  holders: HolderList
  /** minor 2 */
  challenge: Challenge
  /** minor 2 */
  answer: Answer
  /** minor 3 */
  lane: LaneOffer
  /** minor 5 */
  appended: AppendedNotice
}
export type CustodyMessageName = keyof CustodyMessages

/** One row of the message table. */
export type CustodyMessageSpec = { [N in CustodyMessageName]: { name: N; codec: Codec<CustodyMessages[N]> } }[CustodyMessageName]

/**
 * The custody channel's message table, in protocol order: Protomux numbers messages by their
 * position, so new messages are only ever appended here (and to SPEC.md), never inserted.
 */
export const CUSTODY_MESSAGES: readonly CustodyMessageSpec[] = [
  { name: 'error', codec: errorMessage },
  { name: 'receipt', codec: receipt },
  { name: 'head', codec: witnessedHead },
  { name: 'alarm', codec: alarmReport },
  { name: 'holders', codec: holderList },
  { name: 'challenge', codec: challenge },
  { name: 'answer', codec: answer },
  { name: 'lane', codec: laneOffer },
  { name: 'appended', codec: appendedNotice }
]

/** Message indices on the custody channel (positions in CUSTODY_MESSAGES). */
export const CustodyMessage = {
  ERROR: 0,
  RECEIPT: 1,
  HEAD: 2,
  ALARM: 3,
  HOLDERS: 4,
  CHALLENGE: 5,
  ANSWER: 6,
  LANE: 7,
  APPENDED: 8
} as const

/** The first minor version that has each message (a peer on an older minor is not sent it). */
export const MESSAGE_SINCE_MINOR: Record<CustodyMessageName, number> = { error: 0, receipt: 0, head: 1, alarm: 1, holders: 1, challenge: 2, answer: 2, lane: 3, appended: 5 }
