/**
 * Witnessed heads: holders cosign the newest writer-signed head they verified for each core and
 * gossip it (protocol `head` message). A HeadBook keeps, per core, the distinct heads seen and
 * who witnessed them, and finds pairs of writer-signed heads that cannot both be true:
 *   - equivocation: the same length and fork with different tree hashes;
 *   - history rewrite: a higher fork than a head that was witnessed (the writer truncated
 *     witnessed history).
 * Both heads of such a pair are evidence anyone can check with the writer's public key.
 */
import crypto from 'hypercore-crypto'
import unslab from 'unslab'
import { toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import { headSignable, type WitnessedHead } from '../../protocol/index.js'
import type { HeadEvidence } from './receipts.js'

/** Distinct heads kept per core (newest kept; the oldest dropped). */
export const MAX_HEADS_PER_CORE = 16

/** Heads compactHead made (its result is not copied again). */
const compacted = new WeakSet<WitnessedHead>()

/**
 * `h` with its byte fields copied together into one small allocation of their own. A head is
 * kept for as long as its core is held: its 32- and 64-byte fields otherwise stay views of
 * Node's shared 8 KiB Buffer pool (signing, hashing) or of the received message, and keeping
 * one keeps those kilobytes alive (measured: ~1 KiB per held core, most of it others' bytes).
 */
export function compactHead(h: WitnessedHead): WitnessedHead {
  if (compacted.has(h)) return h
  const [core, treeHash, agencySignature, witness, signature] = unslab.all([h.core, h.treeHash, h.agencySignature, h.witness, h.signature])
  const out = { ...h, core: core!, treeHash: treeHash!, agencySignature: agencySignature!, witness: witness!, signature: signature! }
  compacted.add(out)
  return out
}

export function signWitnessedHead(keyPair: KeyPair, head: Omit<WitnessedHead, 'signature' | 'witness'>): WitnessedHead {
  const body = { ...head, witness: keyPair.publicKey }
  return { ...body, signature: crypto.sign(headSignable(body), keyPair.secretKey) }
}

export function verifyWitnessSignature(h: WitnessedHead): boolean {
  try {
    return crypto.verify(headSignable(h), h.signature, h.witness)
  } catch {
    return false
  }
}

export function headEvidence(h: WitnessedHead | { length: number; fork: number; treeHash: Uint8Array; agencySignature: Uint8Array | null; witness?: Uint8Array | null }): HeadEvidence {
  return {
    length: h.length,
    fork: h.fork,
    treeHash: Buffer.from(h.treeHash).toString('hex'),
    signature: h.agencySignature ? Buffer.from(h.agencySignature).toString('hex') : null,
    witness: h.witness ? toZ32(h.witness) : null
  }
}

interface KnownHead {
  length: number
  fork: number
  treeHash: Buffer
  /** One writer-signed copy of it (its evidence). */
  head: WitnessedHead
  /** Witnesses (hex node key) that cosigned it. */
  witnesses: Set<string>
}

export type HeadVerdict =
  | { kind: 'ok'; isNew: boolean }
  | { kind: 'equivocation' | 'history-rewrite'; known: WitnessedHead; offered: WitnessedHead }

/** What a node knows of one core's heads, for status: the newest and how many holders cosigned it. */
export interface HeadSummary {
  length: number
  fork: number
  treeHash: string
  cosigners: number
}

export class HeadBook {
  #cores = new Map<string, KnownHead[]>()

  /**
   * Adds a head whose witness and writer signatures the caller checked. Returns whether it is
   * consistent with every head known for that core, or the conflicting pair.
   */
  add(h: WitnessedHead): HeadVerdict {
    const id = Buffer.from(h.core).toString('hex')
    const list = this.#cores.get(id) ?? []
    const treeHash = Buffer.from(h.treeHash.buffer, h.treeHash.byteOffset, h.treeHash.byteLength)
    for (const k of list) {
      if (k.fork === h.fork && k.length === h.length && !k.treeHash.equals(treeHash)) return { kind: 'equivocation', known: k.head, offered: h }
      if (h.fork > k.fork && k.witnesses.size > 0 && h.length < k.length) return { kind: 'history-rewrite', known: k.head, offered: h }
    }
    const same = list.find((k) => k.fork === h.fork && k.length === h.length)
    const witness = Buffer.from(h.witness).toString('hex')
    if (same) {
      const isNew = !same.witnesses.has(witness)
      same.witnesses.add(witness)
      return { kind: 'ok', isNew }
    }
    const head = compactHead(h)
    list.push({ length: h.length, fork: h.fork, treeHash: Buffer.from(head.treeHash.buffer, head.treeHash.byteOffset, head.treeHash.byteLength), head, witnesses: new Set([witness]) })
    list.sort((a, b) => a.fork - b.fork || a.length - b.length)
    if (list.length > MAX_HEADS_PER_CORE) list.splice(0, list.length - MAX_HEADS_PER_CORE)
    this.#cores.set(id, list)
    return { kind: 'ok', isNew: true }
  }

  /** The known head of `core` at `length` on `fork` (one writer-signed copy of it), if any. */
  at(core: Uint8Array, length: number, fork: number): WitnessedHead | null {
    const list = this.#cores.get(Buffer.from(core).toString('hex'))
    return list?.find((k) => k.length === length && k.fork === fork)?.head ?? null
  }

  /** Forgets what is known of `core` (after an accepted rewrite, its old heads are history). */
  forget(core: Uint8Array): void {
    this.#cores.delete(Buffer.from(core).toString('hex'))
  }

  /** The newest head known for `core` and how many holders cosigned it. */
  newest(core: Uint8Array): HeadSummary | null {
    const list = this.#cores.get(Buffer.from(core).toString('hex'))
    const k = list?.[list.length - 1]
    if (!k) return null
    return { length: k.length, fork: k.fork, treeHash: k.treeHash.toString('hex'), cosigners: k.witnesses.size }
  }
}
