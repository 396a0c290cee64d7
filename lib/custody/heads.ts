/**
 * Witnessed heads: holders cosign the newest writer-signed head they verified for each core and
 * gossip it (protocol `head` message). A HeadBook keeps, per core, the distinct heads seen and
 * who witnessed them, and finds pairs of writer-signed heads that cannot both be true:
 *   - equivocation: the same length and fork with different tree hashes;
 *   - history rewrite: a higher fork than a head that was witnessed (the writer truncated
 *     witnessed history).
 * Both heads of such a pair are evidence anyone can check with the writer's public key.
 */
import b4a from 'b4a'
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
  /** One writer-signed copy of it (its evidence), compact. */
  head: WitnessedHead
  /** Witnesses (hex node key, interned) that cosigned it: a handful, the holders of its agency. */
  witnesses: string[]
}

/** Cosigners counted per head (the holders of one agency are far fewer). */
export const MAX_WITNESSES_PER_HEAD = 256

/** Witness keys interned per book (a key is one string however many heads it cosigned), at most. */
const MAX_INTERNED_WITNESSES = 4096

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
  #witnesses = new Map<string, string>()

  /**
   * Adds a head whose witness and writer signatures the caller checked. Returns whether it is
   * consistent with every head known for that core, or the conflicting pair.
   */
  add(h: WitnessedHead): HeadVerdict {
    const id = Buffer.from(h.core).toString('hex')
    const list = this.#cores.get(id) ?? []
    for (const k of list) {
      if (k.fork === h.fork && k.length === h.length && !b4a.equals(k.head.treeHash, h.treeHash)) return { kind: 'equivocation', known: k.head, offered: h }
      if (h.fork > k.fork && k.witnesses.length > 0 && h.length < k.length) return { kind: 'history-rewrite', known: k.head, offered: h }
    }
    const same = list.find((k) => k.fork === h.fork && k.length === h.length)
    const witness = this.#witness(h.witness)
    if (same) {
      const isNew = !same.witnesses.includes(witness)
      if (isNew && same.witnesses.length < MAX_WITNESSES_PER_HEAD) same.witnesses.push(witness)
      return { kind: 'ok', isNew }
    }
    list.push({ length: h.length, fork: h.fork, head: compactHead(h), witnesses: [witness] })
    list.sort((a, b) => a.fork - b.fork || a.length - b.length)
    if (list.length > MAX_HEADS_PER_CORE) list.splice(0, list.length - MAX_HEADS_PER_CORE)
    this.#cores.set(id, list)
    return { kind: 'ok', isNew: true }
  }

  /** The hex form of witness key `key`, one string per key (up to a bound). */
  #witness(key: Uint8Array): string {
    const hex = Buffer.from(key).toString('hex')
    const have = this.#witnesses.get(hex)
    if (have) return have
    if (this.#witnesses.size < MAX_INTERNED_WITNESSES) this.#witnesses.set(hex, hex)
    return hex
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
    return { length: k.length, fork: k.fork, treeHash: Buffer.from(k.head.treeHash).toString('hex'), cosigners: k.witnesses.length }
  }
}
