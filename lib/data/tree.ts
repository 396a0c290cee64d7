/** Merkle-tree and signature facts Hypercore keeps but does not expose publicly (pinned by tests). */
import type Hypercore from 'hypercore'
import { createRequire } from 'node:module'
import crypto from 'hypercore-crypto'

const require = createRequire(import.meta.url)

interface MerkleTreeStatic {
  getRoots(state: unknown, length: number): Promise<Array<{ size: number }>>
}

let tree: MerkleTreeStatic | null = null
try {
  tree = (require('hypercore/lib/merkle-tree.js') as { MerkleTree: MerkleTreeStatic }).MerkleTree
} catch {
  tree = null
}

/**
 * Bytes of `core`'s first `length` blocks, from its own Merkle tree (exact). Falls back to an
 * estimate from the average block size if Hypercore's internals ever move.
 */
export async function byteLengthAt(core: Hypercore, length: number): Promise<number> {
  if (length >= core.length) return core.byteLength
  if (length <= 0) return 0
  const state = (core as unknown as { state?: unknown }).state
  if (tree && state) {
    try {
      // The roots of the tree at `length` cover exactly its first `length` blocks.
      // Like core.byteLength, leave out the per-block padding of encrypted sessions.
      const roots = await tree.getRoots(state, length)
      return roots.reduce((n, r) => n + r.size, 0) - length * core.padding
    } catch {
      // fall through to the estimate
    }
  }
  return Math.round((core.byteLength / Math.max(1, core.length)) * length)
}

/** An agency-signed head of a core: its length, fork, Merkle tree hash and the signature over them. */
export interface SignedHead {
  length: number
  fork: number
  treeHash: Buffer
  /** The writer's signature, as Hypercore stores it (its assembled multisig form). */
  signature: Buffer
}

interface TreeSignableModule {
  treeSignable(manifestHash: Uint8Array, treeHash: Uint8Array, length: number, fork: number): Buffer
}

interface HeadVerifier {
  verify(batch: { length: number; fork: number; signable(ns: Uint8Array): Buffer }, signature: Uint8Array): boolean
}

let caps: TreeSignableModule | null = null
try {
  caps = require('hypercore/lib/caps.js') as TreeSignableModule
} catch {
  caps = null
}

/** Blocks under flat-tree node `index`: 2^depth, its depth being its number of trailing one bits. */
function blocksUnder(index: number): number {
  let blocks = 1
  while (index % 2 === 1) {
    blocks *= 2
    index = (index - 1) / 2
  }
  return blocks
}

/**
 * The newest head this node verified for `core` (what it can witness), with the writer's signature
 * from Hypercore's own state; null for an empty core or when Hypercore's internals moved.
 *
 * Never waits for the network: the tree hash is that of the roots Hypercore keeps in memory for
 * its signed length. (`core.treeHash()` first fetches the last block, and with no peer that has
 * it — the writer went offline between the signed length and its last block — it waits until one
 * does: whoever awaited it, the history guard's tick, stood still that long.)
 */
export async function signedHead(core: Hypercore): Promise<SignedHead | null> {
  const state = stateOf(core)
  if (!state || !state.signature || state.length === 0) return null
  const length = state.length
  const fork = state.fork
  const signature = Buffer.from(state.signature)
  const roots = rootsAt(state, length)
  if (roots) return { length, fork, treeHash: crypto.tree(roots), signature }
  // Hypercore's state moved: ask the core, but only when that cannot wait for a peer.
  if (!(await core.has(length - 1))) return null
  const treeHash = Buffer.from(await core.treeHash(length))
  // A concurrent append moved the head while we hashed: the caller asks again later.
  if (state.length !== length || state.fork !== fork) return null
  return { length, fork, treeHash, signature }
}

/**
 * `core`'s tree hash at `length`, as `core.treeHash(length)`; at its signed length (what receipts
 * and heads mostly name) from the roots in memory: no storage read, no block fetched.
 */
export async function treeHashAt(core: Hypercore, length: number): Promise<Buffer> {
  const state = stateOf(core)
  const roots = state ? rootsAt(state, length) : null
  return roots ? crypto.tree(roots) : Buffer.from(await core.treeHash(length))
}

interface TreeState {
  length: number
  fork: number
  signature: Buffer | null
  roots?: Array<{ index: number; size: number; hash: Buffer }>
}

function stateOf(core: Hypercore): TreeState | null {
  return (core as unknown as { state?: TreeState }).state ?? null
}

/** The roots Hypercore keeps for its signed length, when that is `length` (and they say so). */
function rootsAt(state: TreeState, length: number): TreeState['roots'] | null {
  const roots = state.roots
  if (length === 0 || state.length !== length || !roots || roots.length === 0) return null
  return roots.reduce((n, r) => n + blocksUnder(r.index), 0) === length ? roots : null
}

/**
 * True when `head` carries a valid signature of `core`'s writer (checked with the core's own
 * manifest): a self-verifying statement that the writer published that head.
 */
export function verifySignedHead(core: Hypercore, head: { length: number; fork: number; treeHash: Uint8Array; signature: Uint8Array }): boolean {
  const verifier = (core as unknown as { core?: { verifier?: HeadVerifier | null } }).core?.verifier
  if (!caps || !verifier) return false
  const t = caps
  try {
    return verifier.verify({ length: head.length, fork: head.fork, signable: (ns) => t.treeSignable(ns, head.treeHash, head.length, head.fork) }, head.signature)
  } catch {
    return false
  }
}
