/** Tampering below Hypercore (through hypercore-storage), for verification and hostile-peer tests. */
import type Hypercore from 'hypercore'
import hcrypto from 'hypercore-crypto'

/** The part of hypercore-storage a test uses to put bytes under hypercore's feet. */
interface RawTreeNode {
  index: number
  size: number
  hash: Buffer
}

interface RawHead {
  fork: number
  length: number
  rootHash: Buffer
  signature: Buffer
  [field: string]: unknown
}

interface RawStorage {
  read(): {
    getBlock(i: number): Promise<Buffer | null>
    getTreeNode(i: number): Promise<RawTreeNode | null>
    getHead(): Promise<RawHead | null>
    tryFlush(): void
  }
  write(): { putBlock(i: number, data: Buffer): void; putTreeNode(node: RawTreeNode): void; setHead(head: RawHead): void; flush(): Promise<void> }
}

export function rawStorage(core: Hypercore): RawStorage {
  return (core.core as { state: { storage: RawStorage } }).state.storage
}

/** Flips one byte of block `index` directly in storage (below hypercore: no tree, no signature touched). */
export async function corruptBlock(core: Hypercore, index: number): Promise<void> {
  const storage = rawStorage(core)
  const rx = storage.read()
  const read = rx.getBlock(index)
  rx.tryFlush()
  const block = await read
  if (!block) throw new Error(`block ${index} is not stored`)
  const bad = Buffer.from(block)
  const at = bad.byteLength >> 1
  bad[at] = bad[at]! ^ 0x5a
  const tx = storage.write()
  tx.putBlock(index, bad)
  await tx.flush()
}

/**
 * What a hostile holder does: flips one byte of block `index` AND rewrites its Merkle leaf to
 * match, so its own pre-serve check passes and the block goes out; the receiver's proof (the leaf
 * up to the signed roots) then fails.
 */
export async function forgeBlock(core: Hypercore, index: number): Promise<void> {
  await corruptBlock(core, index)
  const storage = rawStorage(core)
  const rx = storage.read()
  const readBlock = rx.getBlock(index)
  const readLeaf = rx.getTreeNode(2 * index)
  rx.tryFlush()
  const [bad, leaf] = await Promise.all([readBlock, readLeaf])
  if (!bad || !leaf) throw new Error(`block ${index} or its leaf is not stored`)
  const tx = storage.write()
  tx.putTreeNode({ index: leaf.index, size: leaf.size, hash: hcrypto.data(bad) })
  await tx.flush()
}

/** Flips one byte of the hash of Merkle tree node `index` in storage. */
export async function corruptTreeNode(core: Hypercore, index: number): Promise<void> {
  const storage = rawStorage(core)
  const rx = storage.read()
  const read = rx.getTreeNode(index)
  rx.tryFlush()
  const node = await read
  if (!node) throw new Error(`tree node ${index} is not stored`)
  const hash = Buffer.from(node.hash)
  hash[0] = hash[0]! ^ 0x01
  const tx = storage.write()
  tx.putTreeNode({ index: node.index, size: node.size, hash })
  await tx.flush()
}

