/**
 * Verification: re-checks every stored block of every held core against the core's signed Merkle
 * tree, reading hypercore's storage directly (nothing is repaired, deleted or fetched).
 *
 * Per core: the stored head (length, fork, tree hash, signature) is read; the stored tree roots
 * must hash to the tree hash and the signature must verify against the core's manifest (so the
 * roots are the writer's); then, top-down from the roots, every stored parent node must hash from
 * its two children, and every stored block must hash (BLAKE2b leaf hash, size included) to its
 * leaf. The tree is over the stored bytes — ciphertext for encrypted datasets — so a blind
 * embassy verifies without any read key. A held block is `checked` only when its leaf connects
 * to a root through matching nodes and the roots carry a valid signature.
 *
 * hypercore's own `core.audit()` (and corestore's `store.audit()`) makes the same block check but
 * deletes what fails and reports only counts, so it is not used here.
 *
 * Owns CoreVerifier, verifyCores and the report types. May import: verify/flat-tree, data/,
 * errors, ids (and hypercore internals, named below) — never the daemon, the roles, the gateway or
 * the CLI. The `embassy verify` command (with its dataset-name selection) is the daemon's
 * commands/verify.ts.
 */
import { createRequire } from 'node:module'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import type { HeldCoreRef, WindowRef } from '../data/held-core.js'
import { EmbassyError } from '../errors.js'
import { toZ32 } from '../ids.js'
import { children, depth, fullRoots, leftSpan, rightSpan } from './flat-tree.js'

/** Blocks re-read and checked together (one storage read batch): a subtree of 2^CHUNK_DEPTH blocks. */
export const CHUNK_DEPTH = 10
/** Failures listed per core (all are counted in `failed`; a damaged core has every bad block named up to this many). */
export const MAX_LISTED_FAILURES = 1000

export interface VerifyFailure {
  /** First block concerned; null for a core-level failure (head, roots, signature). */
  index: number | null
  /** For a failure covering a range of blocks: one past the last one. */
  end?: number
  error: string
}

export interface CoreVerifyReport {
  /** Catalog key (z32) of the agency the core belongs to. */
  catalog: string
  /** Dataset id (hex); null for a catalog. */
  dataset: string | null
  name: string
  /** Core key (z32). */
  key: string
  /** Newest signed length (from the stored head). */
  length: number
  fork: number
  contiguousLength: number
  /** True when the stored roots hash to the stored tree hash and its signature verifies. */
  signed: boolean
  /** Blocks held locally (below `length`). */
  held: number
  /** Held blocks whose bytes verified against the signed tree. */
  checked: number
  /** Held blocks that did not verify. */
  failed: number
  failures: VerifyFailure[]
  /** Failures beyond MAX_LISTED_FAILURES were counted, not listed. */
  failuresTruncated: boolean
}

export interface VerifyReport {
  ok: boolean
  cores: CoreVerifyReport[]
  totals: { cores: number; coresFailed: number; length: number; held: number; checked: number; failed: number }
  /** Milliseconds taken. */
  elapsed: number
}

export interface VerifyOptions {
  /** Blocks processed so far, over all cores, and the total to process. */
  onProgress?: (done: number, total: number) => void
}

// ---- hypercore internals used here (hypercore 11 / hypercore-storage 3; no stability guarantees) ----

interface TreeNode {
  index: number
  size: number
  hash: Buffer
}

interface StoredHead {
  fork: number
  length: number
  rootHash: Buffer | null
  signature: Buffer | null
}

interface StorageRead {
  getHead(): Promise<StoredHead | null>
  getBlock(index: number): Promise<Buffer | null>
  getTreeNode(index: number): Promise<TreeNode | null>
  tryFlush(): void
}

interface CoreStorage {
  read(): StorageRead
}

interface SignableTree {
  length: number
  fork: number
  hash(): Buffer
  signable(manifestHash: Uint8Array): Buffer
  signableCompat(noHeader: boolean): Buffer
}

interface CoreInternals {
  state: { storage: CoreStorage }
  verifier: { verify(batch: SignableTree, signature: Uint8Array): boolean } | null
  bitfield: { get(index: number): boolean } | null
}

interface HypercoreCaps {
  treeSignable(manifestHash: Uint8Array, treeHash: Uint8Array, length: number, fork: number): Buffer
  treeSignableCompat(treeHash: Uint8Array, length: number, fork: number, noHeader: boolean): Buffer
}

let caps: HypercoreCaps | null = null

/** hypercore's signable encoding of a tree (its own code, so signatures are checked exactly as it does). */
function hypercoreCaps(): HypercoreCaps {
  if (!caps) caps = createRequire(import.meta.url)('hypercore/lib/caps.js') as HypercoreCaps
  return caps
}

function internals(core: Hypercore): CoreInternals {
  const c = core.core as CoreInternals | null
  if (!c || !c.state || !c.state.storage) throw EmbassyError.internal('the core is not open')
  return c
}

// ---- verification ----

/** Why the blocks below a tree node cannot be trusted; reported once, when a held block is below it. */
interface Break {
  node: number
  error: string
  reported: boolean
}

interface Tally {
  held: number
  checked: number
  failed: number
  failures: VerifyFailure[]
  breaks: Break[]
}

class CoreVerifier {
  readonly ref: HeldCoreRef
  readonly report: CoreVerifyReport
  readonly storage: CoreStorage
  readonly internals: CoreInternals
  readonly progress: (blocks: number) => void

  constructor(ref: HeldCoreRef, progress: (blocks: number) => void) {
    this.ref = ref
    this.internals = internals(ref.core)
    this.storage = this.internals.state.storage
    this.progress = progress
    this.report = emptyReport(ref, 0)
  }

  fail(f: VerifyFailure): void {
    if (this.report.failures.length < MAX_LISTED_FAILURES) this.report.failures.push(f)
    else this.report.failuresTruncated = true
  }

  async run(head: StoredHead | null): Promise<CoreVerifyReport> {
    const r = this.report
    if (!head || head.length === 0) return r
    r.length = head.length
    r.fork = head.fork
    const rootIndices = fullRoots(head.length)
    const roots = await this.readNodes(rootIndices)
    // Nothing below the roots is trusted unless the roots give the signed tree hash.
    let coreBreak: Break | null = null
    const missing = rootIndices.filter((_, i) => !roots[i])
    if (missing.length > 0) {
      coreBreak = { node: -1, error: `tree root node(s) ${missing.join(', ')} missing from storage`, reported: true }
    } else {
      const treeHash = crypto.tree(roots as TreeNode[])
      if (head.rootHash && !treeHash.equals(head.rootHash)) {
        coreBreak = { node: -1, error: 'the stored tree roots do not hash to the stored tree hash', reported: true }
      } else if (!this.signatureValid(treeHash, head)) {
        coreBreak = { node: -1, error: `the tree signature does not verify (length ${head.length}, fork ${head.fork})`, reported: true }
      }
    }
    if (coreBreak) this.fail({ index: null, error: coreBreak.error })
    else r.signed = true
    for (let i = 0; i < rootIndices.length; i++) {
      await this.descend(rootIndices[i]!, roots[i] ?? null, coreBreak)
    }
    return r
  }

  signatureValid(treeHash: Buffer, head: StoredHead): boolean {
    const verifier = this.internals.verifier
    if (!verifier || !head.signature) return false
    const { treeSignable, treeSignableCompat } = hypercoreCaps()
    const { length, fork } = head
    const tree: SignableTree = {
      length,
      fork,
      hash: () => treeHash,
      signable: (manifestHash) => treeSignable(manifestHash, treeHash, length, fork),
      signableCompat: (noHeader) => treeSignableCompat(treeHash, length, fork, noHeader)
    }
    try {
      return verifier.verify(tree, head.signature)
    } catch {
      return false
    }
  }

  async readNodes(indices: number[]): Promise<Array<TreeNode | null>> {
    const rx = this.storage.read()
    const all = indices.map((i) => rx.getTreeNode(i))
    rx.tryFlush()
    return Promise.all(all)
  }

  /** From a (root) node down to chunk-sized subtrees, level by level, then each chunk. */
  async descend(top: number, node: TreeNode | null, brk: Break | null): Promise<void> {
    let level: Array<{ index: number; node: TreeNode | null; brk: Break | null }> = [{ index: top, node, brk }]
    for (let d = depth(top); d > CHUNK_DEPTH; d--) {
      const kids = level.flatMap((e) => children(e.index))
      const nodes = await this.readNodes(kids)
      const next: typeof level = []
      level.forEach((e, k) => {
        const left = nodes[2 * k] ?? null
        const right = nodes[2 * k + 1] ?? null
        const childBrk = checkParent(e.index, e.node, left, right, e.brk)
        next.push({ index: kids[2 * k]!, node: left, brk: childBrk }, { index: kids[2 * k + 1]!, node: right, brk: childBrk })
      })
      level = next
    }
    for (const e of level) await this.chunk(e.index, e.node, e.brk)
  }

  /** Verifies the subtree under `top` in memory; a chunk with failures is re-read once (a block may have been landing). */
  async chunk(top: number, topNode: TreeNode | null, brk: Break | null): Promise<void> {
    let tally = await this.checkChunk(top, topNode, brk)
    if (tally.failed > 0) tally = await this.checkChunk(top, topNode, brk)
    const r = this.report
    r.held += tally.held
    r.checked += tally.checked
    r.failed += tally.failed
    for (const f of tally.failures) this.fail(f)
    for (const b of tally.breaks) {
      if (b.reported) continue
      b.reported = true
      const range = b.node >= 0 ? { index: leftSpan(b.node) / 2, end: rightSpan(b.node) / 2 + 1 } : { index: null }
      this.fail({ ...range, error: b.error })
    }
    this.progress(rightSpan(top) / 2 - leftSpan(top) / 2 + 1)
  }

  /**
   * Reads the tree nodes first..last and their blocks in one storage batch. A read that fails
   * (damaged storage: the store reports corruption) does not end the core's verification: the
   * chunk is read again one item at a time, an unreadable block is reported with its index and
   * an unreadable tree node counts as missing.
   */
  async readChunk(first: number, last: number, top: number, topNode: TreeNode | null): Promise<{ nodes: Array<TreeNode | null>; blocks: Array<Buffer | null>; blockErrors: Map<number, string> }> {
    const blockErrors = new Map<number, string>()
    try {
      const rx = this.storage.read()
      const nodeReads: Array<Promise<TreeNode | null>> = []
      const blockReads: Array<Promise<Buffer | null>> = []
      for (let i = first; i <= last; i++) {
        nodeReads.push(i === top ? Promise.resolve(topNode) : rx.getTreeNode(i))
        if (i % 2 === 0) blockReads.push(rx.getBlock(i / 2))
      }
      rx.tryFlush()
      const settled = await Promise.allSettled([Promise.all(nodeReads), Promise.all(blockReads)])
      if (settled[0].status === 'fulfilled' && settled[1].status === 'fulfilled') return { nodes: settled[0].value, blocks: settled[1].value, blockErrors }
    } catch {
      // read again below, one item at a time
    }
    const one = async <T>(read: (rx: StorageRead) => Promise<T | null>): Promise<T | null | Error> => {
      try {
        const rx = this.storage.read()
        const p = read(rx)
        rx.tryFlush()
        return await p
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err))
      }
    }
    const nodes: Array<TreeNode | null> = []
    const blocks: Array<Buffer | null> = []
    for (let i = first; i <= last; i++) {
      const node = i === top ? topNode : await one((rx) => rx.getTreeNode(i))
      nodes.push(node instanceof Error ? null : node)
      if (i % 2 !== 0) continue
      const block = await one((rx) => rx.getBlock(i / 2))
      if (block instanceof Error) {
        blockErrors.set(i / 2, block.message || 'read failed')
        blocks.push(null)
      } else blocks.push(block)
    }
    return { nodes, blocks, blockErrors }
  }

  async checkChunk(top: number, topNode: TreeNode | null, brk: Break | null): Promise<Tally> {
    const first = leftSpan(top)
    const last = rightSpan(top)
    const firstBlock = first / 2
    const { nodes, blocks, blockErrors } = await this.readChunk(first, last, top, topNode)
    const bitfield = this.internals.bitfield
    const tally: Tally = { held: 0, checked: 0, failed: 0, failures: [], breaks: [] }

    const walk = (index: number, node: TreeNode | null, b: Break | null): void => {
      if (index % 2 === 0) {
        const block = blocks[index / 2 - firstBlock] ?? null
        const seq = index / 2
        const unreadable = blockErrors.get(seq)
        if (unreadable !== undefined) {
          tally.held++
          tally.failed++
          tally.failures.push({ index: seq, error: `block cannot be read from storage (damaged storage): ${unreadable}` })
          return
        }
        if (!block) {
          if (bitfield && bitfield.get(seq)) {
            tally.failed++
            tally.failures.push({ index: seq, error: 'block is marked as held but missing from storage' })
          }
          return
        }
        tally.held++
        if (!node) {
          tally.failed++
          tally.failures.push({ index: seq, error: 'no Merkle tree leaf is stored for this held block' })
          return
        }
        if (node.size !== block.byteLength || !crypto.data(block).equals(node.hash)) {
          tally.failed++
          const sizes = node.size === block.byteLength ? '' : `; ${block.byteLength} bytes stored, ${node.size} in the tree`
          tally.failures.push({ index: seq, error: `block bytes do not match the signed Merkle tree (hash mismatch${sizes})` })
          return
        }
        if (b) {
          tally.failed++
          if (!tally.breaks.includes(b)) tally.breaks.push(b)
          return
        }
        tally.checked++
        return
      }
      const [l, r] = children(index)
      const left = nodes[l - first] ?? null
      const right = nodes[r - first] ?? null
      const childBrk = checkParent(index, node, left, right, b)
      walk(l, left, childBrk)
      walk(r, right, childBrk)
    }
    walk(top, topNode, brk)
    return tally
  }
}

/** What the children of a parent node inherit: null when they connect to it, else why not. */
function checkParent(index: number, parent: TreeNode | null, left: TreeNode | null, right: TreeNode | null, inherited: Break | null): Break | null {
  if (inherited) return inherited
  if (!parent) return { node: index, error: `tree node ${index} is missing`, reported: false }
  if (!left && !right) return { node: index, error: `the tree nodes below node ${index} are missing`, reported: false }
  if (!left || !right) return { node: index, error: `tree node ${index} has one of its two children missing`, reported: false }
  if (parent.size !== left.size + right.size || !crypto.parent(left, right).equals(parent.hash)) {
    return { node: index, error: `tree node ${index} does not match its children (altered tree)`, reported: false }
  }
  return null
}

/**
 * Verifies every given core; never throws for a bad core (its failures are in the report, as
 * are those of a core that could not be opened).
 */
export async function verifyCores(refs: readonly WindowRef[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now()
  const heads: Array<StoredHead | null> = []
  const errors: Array<Error | null> = []
  for (const ref of refs) {
    if ('error' in ref) {
      heads.push(null)
      errors.push(ref.error)
      continue
    }
    try {
      await ref.core.ready()
      const rx = internals(ref.core).state.storage.read()
      const head = rx.getHead()
      rx.tryFlush()
      heads.push(await head)
      errors.push(null)
    } catch (err) {
      heads.push(null)
      errors.push(err as Error)
    }
  }
  const total = heads.reduce((n, h) => n + (h ? h.length : 0), 0)
  let done = 0
  const tick = (blocks: number): void => {
    done += blocks
    opts.onProgress?.(done, total)
  }
  const cores: CoreVerifyReport[] = []
  for (let i = 0; i < refs.length; i++) {
    const ref = refs[i]!
    const error = errors[i]
    if (error || 'error' in ref) {
      cores.push(errored(ref, error!)) // a core not opened has its error here too
      continue
    }
    try {
      cores.push(await new CoreVerifier(ref, tick).run(heads[i] ?? null))
    } catch (err) {
      cores.push(errored(ref, err as Error))
    }
  }
  const totals = { cores: cores.length, coresFailed: 0, length: 0, held: 0, checked: 0, failed: 0 }
  for (const c of cores) {
    if (c.failures.length > 0) totals.coresFailed++
    totals.length += c.length
    totals.held += c.held
    totals.checked += c.checked
    totals.failed += c.failed
  }
  return { ok: totals.coresFailed === 0, cores, totals, elapsed: Date.now() - started }
}

/** A report for `ref` with nothing checked yet (one that could not be opened: nothing held known). */
function emptyReport(ref: WindowRef, length: number): CoreVerifyReport {
  const core = 'core' in ref ? ref.core : null
  const key = 'core' in ref ? ref.core.key : ref.key
  return {
    catalog: toZ32(ref.catalog),
    dataset: ref.dataset,
    name: ref.name,
    key: key ? toZ32(key) : '',
    length,
    fork: 0,
    contiguousLength: core ? core.contiguousLength : 0,
    signed: false,
    held: 0,
    checked: 0,
    failed: 0,
    failures: [],
    failuresTruncated: false
  }
}

function errored(ref: WindowRef, err: Error): CoreVerifyReport {
  return { ...emptyReport(ref, 'core' in ref ? ref.core.length : ref.length), failures: [{ index: null, error: `could not verify: ${err.message}` }] }
}
