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
 */
import { createRequire } from 'node:module'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import type { CommandInput, CommandIO, Handler, Host } from '../daemon/commands.js'
import { EmbassyError } from '../errors.js'
import type { HeldCoreRef } from '../daemon/host.js'
import { toZ32 } from '../ids.js'

/** Blocks re-read and checked together (one storage read batch): a subtree of 2^CHUNK_DEPTH blocks. */
export const CHUNK_DEPTH = 10
/** Failures listed per core (all are counted). */
export const MAX_LISTED_FAILURES = 100

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
  if (!c || !c.state || !c.state.storage) throw new EmbassyError('INTERNAL', 'the core is not open')
  return c
}

// ---- flat-tree arithmetic (in-order node indices; safe beyond 2^31) ----

function depth(index: number): number {
  let d = 0
  while (index % 2 === 1) {
    index = (index - 1) / 2
    d++
  }
  return d
}

function leftSpan(index: number): number {
  return index - (2 ** depth(index) - 1)
}

function rightSpan(index: number): number {
  return index + (2 ** depth(index) - 1)
}

function children(index: number): [number, number] {
  const half = 2 ** (depth(index) - 1)
  return [index - half, index + half]
}

/** The root indices of a tree of `length` blocks. */
function fullRoots(length: number): number[] {
  const out: number[] = []
  let rest = length
  let offset = 0
  while (rest > 0) {
    let factor = 1
    while (factor * 2 <= rest) factor *= 2
    out.push(offset + factor - 1)
    offset += 2 * factor
    rest -= factor
  }
  return out
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

  async checkChunk(top: number, topNode: TreeNode | null, brk: Break | null): Promise<Tally> {
    const first = leftSpan(top)
    const last = rightSpan(top)
    const firstBlock = first / 2
    const rx = this.storage.read()
    const nodeReads: Array<Promise<TreeNode | null>> = []
    const blockReads: Array<Promise<Buffer | null>> = []
    for (let i = first; i <= last; i++) {
      nodeReads.push(i === top ? Promise.resolve(topNode) : rx.getTreeNode(i))
      if (i % 2 === 0) blockReads.push(rx.getBlock(i / 2))
    }
    rx.tryFlush()
    const nodes = await Promise.all(nodeReads)
    const blocks = await Promise.all(blockReads)
    const bitfield = this.internals.bitfield
    const tally: Tally = { held: 0, checked: 0, failed: 0, failures: [], breaks: [] }

    const walk = (index: number, node: TreeNode | null, b: Break | null): void => {
      if (index % 2 === 0) {
        const block = blocks[index / 2 - firstBlock] ?? null
        const seq = index / 2
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

/** Verifies every given core; never throws for a bad core (its failures are in the report). */
export async function verifyCores(refs: readonly HeldCoreRef[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now()
  const heads: Array<StoredHead | null> = []
  const errors: Array<Error | null> = []
  for (const ref of refs) {
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
    if (error) {
      cores.push(errored(ref, error))
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

/** A report for `ref` with nothing checked yet. */
function emptyReport(ref: HeldCoreRef, length: number): CoreVerifyReport {
  return {
    catalog: ref.catalog,
    dataset: ref.dataset,
    name: ref.name,
    key: ref.core.key ? toZ32(ref.core.key) : '',
    length,
    fork: 0,
    contiguousLength: ref.core.contiguousLength,
    signed: false,
    held: 0,
    checked: 0,
    failed: 0,
    failures: [],
    failuresTruncated: false
  }
}

function errored(ref: HeldCoreRef, err: Error): CoreVerifyReport {
  return { ...emptyReport(ref, ref.core.length), failures: [{ index: null, error: `could not verify: ${err.message}` }] }
}

// ---- CLI handler: `embassy verify [NAME]` ----

type HostWithCores = Host & { heldCores(): Promise<HeldCoreRef[]> }

/**
 * Verifies every held core (or those NAME selects: a dataset name on an agency or mirror; a core
 * key or catalog key (z32 or hex) anywhere; `catalog` for the catalog cores). Returns the report
 * when everything verifies; throws VERIFY_FAILED (exit 1) with the report as details otherwise.
 */
export const verifyHandler: Handler = async (host: Host, input: CommandInput, io: CommandIO): Promise<VerifyReport> => {
  const h = host as Partial<HostWithCores> & Host
  if (typeof h.heldCores !== 'function') throw new EmbassyError('INTERNAL', 'this host cannot list its held cores')
  const refs = await labelled(host, await h.heldCores())
  const name = input.args[0]
  const selected = name ? await select(host, refs, name) : refs
  const report = await verifyCores(selected, { onProgress: (done, total) => io.progress('verify', done, total) })
  if (!report.ok) {
    const bad = report.cores.filter((c) => c.failures.length > 0)
    const first = bad[0]!.failures[0]!
    throw new EmbassyError(
      'VERIFY_FAILED',
      `${report.totals.failed} block(s) in ${bad.length} core(s) do not verify; first: ${bad[0]!.name}${first.index === null ? '' : ` block ${first.index}`}: ${first.error}`,
      { details: { ...report } }
    )
  }
  return report
}

/** Dataset names for a mirror's cores (heldCores labels them by key); agencies are labelled already. */
async function labelled(host: Host, refs: HeldCoreRef[]): Promise<HeldCoreRef[]> {
  if (host.node.role !== 'mirror') return refs
  const names = await coreNames(host)
  return refs.map((r) => ({ ...r, name: names.get(toZ32(r.core.key!)) ?? r.name }))
}

/** Core key (z32) → dataset label, from the catalog(s) this node can read (local only, never waits). */
async function coreNames(host: Host): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const role = host.node.role
  if (role === 'embassy') return out
  try {
    const readers = role === 'agency' ? [(await host.agency()).datasets] : [...(await host.mirror()).sources.values()].map((s) => s.datasets)
    for (const datasets of readers) {
      for (const info of await datasets.infos()) {
        if (info.name === null) continue // a wrong read key: labelled by key
        const [first, second] = info.cores.map(toZ32)
        if (info.kind === 'files') {
          if (first) out.set(first, `${info.name}/index`)
          if (second) out.set(second, `${info.name}/content`)
        } else if (first) out.set(first, info.name)
      }
    }
  } catch {
    // names are a convenience: without them cores are labelled by key
  }
  return out
}

async function select(host: Host, refs: HeldCoreRef[], name: string): Promise<HeldCoreRef[]> {
  const names = await coreNames(host)
  const byName = new Set([...names].filter(([, label]) => label === name || label.startsWith(`${name}/`)).map(([key]) => key))
  const text = name.trim()
  const wanted = /^[0-9a-f]{64}$/i.test(text) ? toZ32(Buffer.from(text, 'hex')) : text
  const out = refs.filter((r) => {
    const key = toZ32(r.core.key!)
    return (name === 'catalog' && r.dataset === null) || byName.has(key) || r.name === name || key === wanted || r.catalog === wanted
  })
  if (out.length === 0) {
    if (host.node.role === 'embassy') throw new EmbassyError('NOT_FOUND', `no held core or catalog has the key "${name.slice(0, 80)}"`, { details: { name } })
    throw EmbassyError.unknownDataset(name)
  }
  return out
}
