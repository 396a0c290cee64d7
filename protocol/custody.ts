/**
 * The custody channel (`data-embassy/custody/1`): a Protomux channel beside Corestore
 * replication on every connection. protocol/SPEC.md describes every byte.
 * Messages are numbered by their order in CUSTODY_MESSAGES: new ones only ever go at the end.
 */
import c from 'compact-encoding'
import type { Codec } from './codecs.js'

/** Protomux protocol name of the channel. */
export const CUSTODY_PROTOCOL = 'data-embassy/custody/1'

/** Major and minor version this build speaks. A peer with another major gets an error, then close. */
export const CUSTODY_MAJOR = 1
export const CUSTODY_MINOR = 0

/** Largest message we accept on the channel (bytes). */
export const MAX_CUSTODY_MESSAGE = 64 * 1024
/** Most catalogs a handshake may list. */
export const MAX_HANDSHAKE_CATALOGS = 4096

export const PeerRole = {
  AGENCY: 1,
  EMBASSY: 2,
  MIRROR: 3
} as const
export type PeerRoleCode = (typeof PeerRole)[keyof typeof PeerRole]

export function peerRoleName(code: number): 'agency' | 'embassy' | 'mirror' | 'unknown' {
  return code === 1 ? 'agency' : code === 2 ? 'embassy' : code === 3 ? 'mirror' : 'unknown'
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
}

export const handshake: Codec<Handshake> = {
  preencode(state, m) {
    c.uint.preencode(state, m.major)
    c.uint.preencode(state, m.minor)
    c.uint.preencode(state, m.role)
    c.uint.preencode(state, 0) // flags
    c.array(c.string).preencode(state, m.capabilities)
    c.array(c.fixed32).preencode(state, m.catalogs)
  },
  encode(state, m) {
    c.uint.encode(state, m.major)
    c.uint.encode(state, m.minor)
    c.uint.encode(state, m.role)
    c.uint.encode(state, 0)
    c.array(c.string).encode(state, m.capabilities)
    c.array(c.fixed32).encode(state, m.catalogs)
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
    // Fields added in later minors follow; skip what we do not know.
    state.start = state.end
    return { major, minor, role, capabilities, catalogs }
  }
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

/** Every message of the custody channel, by name, with its value type. */
export interface CustodyMessages {
  error: ErrorMessage
  receipt: Receipt
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
  { name: 'receipt', codec: receipt }
]

/** Message indices on the custody channel (positions in CUSTODY_MESSAGES). */
export const CustodyMessage = {
  ERROR: 0,
  RECEIPT: 1
} as const
