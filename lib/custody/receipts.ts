/**
 * Custody receipts: embassies sign what they hold; the agency verifies each receipt against its
 * own Merkle tree (checkReceipt) and keeps the newest valid one in its ledger (ledger.ts).
 * A receipt that does not verify is never stored as custody: it raises an alarm.
 *
 * Owns: custody/ (may import node/, data/, net/, errors, ids, protocol/; never roles/ or above).
 */
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import unslab from 'unslab'
import { toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import { treeHashAt } from '../data/tree.js'
import { receiptSignable, type Receipt } from '../../protocol/index.js'

export type AlarmKind =
  | 'bad-signature'
  | 'tree-mismatch'
  | 'length-beyond'
  | 'unknown-core'
  | 'fork-mismatch'
  | 'malformed'
  /** A signed truncation or fork of history a holder verified (the holder kept its history). */
  | 'history-rewrite'
  /** Two writer-signed heads of one core that cannot both be true. */
  | 'equivocation'
  /** An embassy reported holding less of a core than it proved before. */
  | 'custody-regressed'
  /** A stored block of a held core failed its check when served (core and index in the alarm); it was cleared to be fetched again. */
  | 'damaged-block'
  /** A receipt dated further ahead than the allowed clock skew (refused). */
  | 'future-receipt'
  /** A receipt from a peer the agency did not admit as an embassy (ignored). */
  | 'not-an-embassy'
  /** Another live node signs with this agency's key (an embassy holds a head this node did not write). */
  | 'second-live-node'
  /** An embassy's quota for an agency (`follow --max-bytes/--max-cores`) is nearly used up. */
  | 'quota-near'
  /** An agency publishes more than an embassy's quota for it: the embassy holds only what fits. */
  | 'quota-exceeded'
  /** A holder failed an audit challenge: wrong, missing or late answers (custody not counted). */
  | 'audit-failed'
  /** Embassy: a followed agency not reached since `embassy follow`, past `neverReachedAlarmSeconds`. */
  | 'never-reached'
  /** This node's disk is full: a write (append, publish, download) was refused with DISK_FULL. */
  | 'disk-full'

/** A head in an alarm's evidence (keys and hashes as hex; signatures as hex). */
export interface HeadEvidence {
  length: number
  fork: number
  treeHash: string
  signature: string | null
  /** Node key (z32) of the holder that witnessed it, when known. */
  witness: string | null
}

export interface Alarm {
  time: number
  kind: AlarmKind
  /** Node key (z32) of the peer that sent it (or offered the rewrite). */
  peer: string
  /** Core key (z32), when known. */
  core: string | null
  detail: string
  /** history-rewrite: what the holder verified and keeps. */
  held?: { length: number; fork: number; treeHash: string | null }
  /** history-rewrite: what it was offered. */
  offered?: { length: number; fork: number }
  /** Node key (z32) of the holder that reported it, when it came from another node. */
  reportedBy?: string
  /** equivocation: the signed heads that cannot both be true (self-verifying with the writer's key). */
  evidence?: HeadEvidence[]
  /** damaged-block: the block's index (each damaged block is its own alarm). */
  block?: number
  /**
   * damaged-block: when the block was fetched again from another holder and verified. A resolved
   * alarm stays in the history (and its count) but is no longer active.
   */
  resolvedAt?: number
  /** Further alarms of the same kind from the same peer about the same core within the quiet window. */
  repeats?: number
}

export interface StoredReceipt {
  length: number
  treeHash: string
  fork: number
  /** Sender's clock. */
  time: number
  /** When the agency verified it. */
  receivedAt: number
  signature: string
}


export function signReceipt(keyPair: KeyPair, r: Omit<Receipt, 'signature'>): Receipt {
  return { ...r, signature: crypto.sign(receiptSignable(r), keyPair.secretKey) }
}

/**
 * `r` with its byte fields copied together into one small allocation of their own, for a receipt
 * kept while its core is held (an embassy's newest receipt per core): as signed, its tree hash and
 * signature are views of Node's shared 8 KiB Buffer pool, and keeping them keeps the slab alive.
 */
export function compactReceipt(r: Receipt): Receipt {
  const [core, treeHash, signature] = unslab.all([r.core, r.treeHash, r.signature])
  return { ...r, core: core!, treeHash: treeHash!, signature: signature! }
}

export function verifyReceiptSignature(r: Receipt, publicKey: Uint8Array): boolean {
  try {
    return crypto.verify(receiptSignable(r), r.signature, publicKey)
  } catch {
    return false
  }
}

export type ReceiptVerdict = { ok: true; preRewrite: boolean } | { ok: false; kind: AlarmKind; detail: string }

/**
 * Checks a receipt against the agency's own core: signature, fork, length and tree hash. A receipt
 * for an older fork than ours is from a holder that kept the history from before our rewrite
 * (append-only holders refuse rewrites): it is valid as a statement, shown as pre-rewrite history,
 * and cannot be checked against our tree.
 */
export async function checkReceipt(r: Receipt, sender: Uint8Array, core: Hypercore | null): Promise<ReceiptVerdict> {
  if (!verifyReceiptSignature(r, sender)) return { ok: false, kind: 'bad-signature', detail: 'signature does not verify with the sender\'s node key' }
  if (!core) return { ok: false, kind: 'unknown-core', detail: `core ${toZ32(r.core)} is not one of this agency's` }
  if (r.fork < core.fork) return { ok: true, preRewrite: true }
  if (r.fork !== core.fork) return { ok: false, kind: 'fork-mismatch', detail: `claims fork ${r.fork}; the agency is on fork ${core.fork}` }
  if (r.length > core.length) return { ok: false, kind: 'length-beyond', detail: `claims length ${r.length}; the agency's own length is ${core.length}` }
  if (r.length === 0) return { ok: true, preRewrite: false }
  const own = await treeHashAt(core, r.length)
  if (!Buffer.from(own).equals(Buffer.from(r.treeHash))) {
    return { ok: false, kind: 'tree-mismatch', detail: `tree hash at length ${r.length} differs from the agency's (a lie or a fork)` }
  }
  return { ok: true, preRewrite: false }
}
