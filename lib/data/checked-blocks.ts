/**
 * Blocks re-checked against their Merkle leaf every time they are read. Hypercore verifies a block
 * when it arrives from a peer, never again when it reads it back from its own storage: a byte
 * flipped at rest would be decrypted and served as if the agency had signed it. Every dataset core
 * is block-encrypted, and Hypercore hands every stored block to its encryption provider before
 * decrypting it; CheckedEncryption wraps that provider and first compares the stored ciphertext's
 * BLAKE2b leaf hash (hypercore-crypto `data()`: leaf prefix, size, bytes) with the leaf node the
 * core's signed tree holds for that block. A mismatch fails that read only, with TAMPERED.
 *
 * Cost: one BLAKE2b of the block per read; leaf nodes are read LEAF_BATCH at a time with one range
 * read (measured ad hoc: about 1.3–1.5× a read without the check). The leaf node itself is trusted
 * as stored; `embassy verify` checks the whole tree up to the signature.
 * Uses hypercore internals (the core's storage), like lib/verify/verify.ts.
 * Imports: errors, ids, hypercore-crypto.
 */
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { toZ32 } from '../ids.js'

type Provider = Hypercore.EncryptionProvider

interface StoredNode {
  index: number
  size: number
  hash: Uint8Array
}

/** The internal Core hypercore passes to its encryption provider (hypercore 11). */
interface CoreInternals {
  key?: Uint8Array | null
  state?: {
    fork?: number
    storage?: {
      read(): { getTreeNode(index: number): Promise<StoredNode | null>; tryFlush(): void }
      createTreeNodeStream?(opts: { gte: number; lt: number }): AsyncIterable<StoredNode>
    }
  }
}

/** Leaf nodes read together on a miss (sequential reads, the common case, then pay one storage read per batch). */
export const LEAF_BATCH = 64
/** Leaf nodes kept per core. */
const LEAF_CACHE = 4096

/** Blocks checked and found tampered since the process started (for tests and metrics). */
export const checkedBlockStats = { checked: 0, tampered: 0 }

export class CheckedEncryption implements Provider {
  readonly inner: Provider
  /** Leaf nodes by block index, read ahead in batches; valid for one fork. */
  #leaves = new Map<number, StoredNode | null>()
  #fork = -1

  constructor(inner: Provider) {
    this.inner = inner
  }

  padding(core: unknown, index: number): number {
    return this.inner.padding(core, index)
  }

  encrypt(index: number, block: Buffer, fork: number, core: unknown): void | Promise<void> {
    return this.inner.encrypt(index, block, fork, core)
  }

  async decrypt(index: number, block: Buffer, core: unknown): Promise<void> {
    await this.#check(core as CoreInternals, index, block)
    await this.inner.decrypt(index, block, core)
  }

  /** Block `index`'s stored leaf node; a miss reads LEAF_BATCH leaves from `index` on in one storage read. */
  async #leaf(core: CoreInternals, index: number): Promise<StoredNode | null | undefined> {
    const state = core.state
    if (!state?.storage) return undefined
    const fork = state.fork ?? 0
    if (fork !== this.#fork) {
      this.#leaves.clear()
      this.#fork = fork
    }
    const cached = this.#leaves.get(index)
    if (cached) return cached
    const storage = state.storage
    if (!storage.createTreeNodeStream) {
      const rx = storage.read()
      const read = rx.getTreeNode(2 * index)
      rx.tryFlush()
      return read
    }
    // One range read over the next LEAF_BATCH leaves (and the parents between them).
    if (this.#leaves.size + LEAF_BATCH > LEAF_CACHE) this.#leaves.clear()
    let found: StoredNode | null = null
    for await (const node of storage.createTreeNodeStream({ gte: 2 * index, lt: 2 * (index + LEAF_BATCH) })) {
      if (node.index % 2 !== 0) continue
      if (node.index === 2 * index) found = node
      else this.#leaves.set(node.index / 2, node)
    }
    return found
  }

  /** Throws TAMPERED unless `block` (as stored: ciphertext) hashes to block `index`'s leaf. */
  async #check(core: CoreInternals, index: number, block: Buffer): Promise<void> {
    const leaf = await this.#leaf(core, index)
    if (leaf === undefined) return // hypercore's internals moved: nothing to check against (verify still does)
    checkLeaf(core, index, block, leaf)
  }
}

function checkLeaf(core: CoreInternals, index: number, block: Buffer, leaf: StoredNode | null): void {
  checkedBlockStats.checked++
  const coreName = core.key ? toZ32(Buffer.from(core.key)) : 'unknown'
  if (!leaf) {
    checkedBlockStats.tampered++
    throw EmbassyError.tampered(`block ${index} of core ${coreName} has no Merkle leaf in storage; run \`embassy verify\``, { core: coreName, index })
  }
  if (leaf.size !== block.byteLength || !crypto.data(block).equals(Buffer.from(leaf.hash))) {
    checkedBlockStats.tampered++
    throw EmbassyError.tampered(`block ${index} of core ${coreName} does not match the signed Merkle tree (changed in storage); it is not served — run \`embassy verify\``, {
      core: coreName,
      index
    })
  }
}

/** Makes every later read of `core` (and of its sessions) check blocks against their leaf. */
export async function checkBlocksOnRead(core: Hypercore): Promise<void> {
  await core.ready()
  const current = core.encryption
  if (!current || current instanceof CheckedEncryption) return
  await core.setEncryption(new CheckedEncryption(current))
}

/** Why a stored block was not served. */
export interface DamagedBlock {
  /** Core key (z32). */
  core: string
  index: number
  reason: string
}

/** The storage object hypercore's replicator reads served blocks through (hypercore 11: `core.core.storage`). */
interface ServingStorage {
  read(...args: unknown[]): { getBlock(index: number): Promise<Buffer | null>; [k: string]: unknown }
}

const GUARDED = Symbol('embassy.guardedServing')

/**
 * Blocks checked before they are served to a peer. Hypercore's replicator reads a requested block
 * with `core.core.storage.read()`; a storage read that throws (a damaged RocksDB block) makes its
 * request handler reject and the peer's whole connection is destroyed, and a block whose bytes no
 * longer match its leaf is sent and the peer stops asking this holder for that core. Here the
 * replicator's reads go through a wrapper whose `getBlock` resolves null for such a block, which
 * hypercore answers with "not available": only that request fails and the peer asks elsewhere.
 * The node's own reads (sessions, verify) use the core's state storage and are not changed.
 * `onDamaged` is called for every block refused (once per core and index).
 * Works blind (the check is over the stored bytes). Uses hypercore internals, like verify.
 */
export function guardServedBlocks(core: Hypercore, onDamaged: (d: DamagedBlock) => void): boolean {
  const c = core.core as (CoreInternals & { storage?: ServingStorage; [GUARDED]?: boolean }) | null
  const state = c?.state
  if (!c || !c.storage || !state?.storage || c[GUARDED]) return false
  const inner = c.storage
  const own = state.storage
  const reported = new Set<number>()
  const coreName = (): string => (c.key ? toZ32(Buffer.from(c.key)) : 'unknown')
  const damaged = (index: number, reason: string): null => {
    checkedBlockStats.tampered++
    if (!reported.has(index)) {
      reported.add(index)
      try {
        onDamaged({ core: coreName(), index, reason })
      } catch {
        // a listener's failure must not fail the request
      }
    }
    return null
  }
  const checked = async (index: number, read: Promise<Buffer | null>): Promise<Buffer | null> => {
    let block: Buffer | null
    try {
      block = await read
    } catch (err) {
      return damaged(index, `storage read failed: ${(err as Error).message}`)
    }
    if (!block) return block
    let leaf: StoredNode | null
    try {
      const rx = own.read()
      const node = rx.getTreeNode(2 * index)
      rx.tryFlush()
      leaf = await node
    } catch (err) {
      return damaged(index, `its Merkle leaf cannot be read: ${(err as Error).message}`)
    }
    checkedBlockStats.checked++
    if (!leaf) return damaged(index, 'no Merkle leaf is stored for it')
    if (leaf.size !== block.byteLength || !crypto.data(block).equals(Buffer.from(leaf.hash))) {
      return damaged(index, 'its bytes do not match the signed Merkle tree (changed in storage)')
    }
    return block
  }
  const read = (...args: unknown[]) => {
    const batch = inner.read(...args)
    const getBlock = batch.getBlock.bind(batch)
    batch.getBlock = (index: number) => {
      const p = checked(index, getBlock(index))
      p.catch(() => {})
      return p
    }
    return batch
  }
  // Everything else goes to the real storage, with itself as `this` (it may use private fields).
  const wrapper = new Proxy(inner as object, {
    get(target, prop) {
      if (prop === 'read') return read
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
    set(target, prop, value) {
      return Reflect.set(target, prop, value, target)
    }
  }) as ServingStorage
  c.storage = wrapper
  c[GUARDED] = true
  return true
}
