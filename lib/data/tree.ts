/** Merkle-tree facts Hypercore keeps but does not expose publicly. */
import type Hypercore from 'hypercore'
import { createRequire } from 'node:module'

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
