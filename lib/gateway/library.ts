/**
 * What the gateway reads, whatever the reader: agencies ("shelves") and their datasets, looked up
 * without ever waiting on the network. A reader that names its catalogs (`reader.catalogs()`: a
 * mirror's sources, an agency's Datasets) is read through each catalog's Datasets directly (a
 * Mirror's own methods wait up to MIRROR_WAIT_MS for peers); any other DatasetReader through its
 * methods, each bounded by a timeout.
 * Imports: lib/data, lib/node, lib/ids, lib/errors, protocol/ and ./http.ts; never lib/roles/.
 */
import type Hypercore from 'hypercore'
import { keyCheck, metadataKey } from '../node/caps.js'
import type { Datasets, DatasetSummary } from '../data/datasets.js'
import { EmbassyError, type ErrorCode } from '../errors.js'
import { FilesDataset } from '../data/files-dataset.js'
import { errorResponse } from './http.js'
import { toZ32 } from '../ids.js'
import { LogDataset } from '../data/log-dataset.js'
import type { DatasetReader } from '../data/datasets.js'
import { open as openSealed } from '../node/seal.js'
import { agencyMeta, decode } from '../../protocol/index.js'

/** How long a call into a reader the gateway does not know may take before it answers 503. */
export const READER_TIMEOUT_MS = 2000
/** How long a read waits for a missing block when peers are connected. */
export const BLOCK_WAIT_MS = 2500

export type OpenDataset = LogDataset | FilesDataset

export interface AgencyInfo {
  /** Catalog key (z32); null when the reader does not say. */
  catalog: string | null
  /** The agency's node key (z32), when known. */
  nodeKey: string | null
  /** The agency's name from its sealed catalog header, when held. */
  name: string | null
}

export interface DatasetEntry {
  agency: AgencyInfo
  summary: DatasetSummary
  open(): Promise<OpenDataset>
}

export interface AgencyView extends AgencyInfo {
  /** ready: catalog held and readable; replicating: catalog not held yet; error: e.g. a wrong read key. */
  state: 'ready' | 'replicating' | 'error'
  error: { code: ErrorCode; message: string } | null
  datasets: DatasetEntry[]
  /** Datasets listed by the catalog whose summary could not be built (name → error). */
  problems: Array<{ name: string; status: number; code: ErrorCode; message: string }>
}

interface Shelf {
  describe(): Promise<AgencyInfo>
  entries(): Promise<{ entries: DatasetEntry[]; problems: AgencyView['problems'] }>
}

/** One agency read through its Datasets (agency or mirror source): nothing here waits for peers. */
class DatasetsShelf implements Shelf {
  #info: AgencyInfo | null = null

  constructor(
    readonly datasets: Datasets,
    readonly catalog: string,
    readonly nodeKey: string | null
  ) {}

  async describe(): Promise<AgencyInfo> {
    if (this.#info) return this.#info
    const base = { catalog: this.catalog, nodeKey: this.nodeKey, name: null }
    let header
    try {
      header = await this.datasets.catalog.header({ wait: false })
    } catch (err) {
      if ((err as EmbassyError).code === 'NOT_AVAILABLE') {
        throw EmbassyError.notReplicated(`catalog ${this.catalog} is not replicated here yet (no holder has sent it)`)
      }
      throw err
    }
    if (!Buffer.from(header.keyCheck).equals(keyCheck(this.datasets.readKey))) throw EmbassyError.wrongReadKey()
    let name: string | null = null
    const plain = openSealed(header.meta, metadataKey(this.datasets.readKey))
    if (plain) {
      try {
        name = decode(agencyMeta, plain).name || null
      } catch {
        name = null
      }
    }
    this.#info = { ...base, nodeKey: this.nodeKey ?? toZ32(header.agencyNodeKey), name }
    return this.#info
  }

  async entries(): Promise<{ entries: DatasetEntry[]; problems: AgencyView['problems'] }> {
    const agency = await this.describe()
    const entries: DatasetEntry[] = []
    const problems: AgencyView['problems'] = []
    for (const info of await this.datasets.infos()) {
      try {
        const summary = await this.datasets.summary(info)
        entries.push({ agency, summary, open: () => this.datasets.open(info) })
      } catch (err) {
        const e = errorResponse(err)
        problems.push({ name: info.name ?? info.id, status: e.status, code: e.code, message: e.message })
      }
    }
    return { entries, problems }
  }
}

/** Any other DatasetReader: one anonymous agency, every call bounded by READER_TIMEOUT_MS. */
class ReaderShelf implements Shelf {
  constructor(readonly reader: DatasetReader) {}

  async describe(): Promise<AgencyInfo> {
    return { catalog: null, nodeKey: null, name: null }
  }

  async entries(): Promise<{ entries: DatasetEntry[]; problems: AgencyView['problems'] }> {
    const agency = await this.describe()
    const list = await bounded(this.reader.list(), 'listing datasets')
    const entries = list.map((summary) => ({
      agency,
      summary,
      open: (): Promise<OpenDataset> =>
        summary.kind === 'log'
          ? bounded(this.reader.openLog(summary.name), `opening ${summary.name}`)
          : bounded(this.reader.openFiles(summary.name), `opening ${summary.name}`)
    }))
    return { entries, problems: [] }
  }
}

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(EmbassyError.notReplicated(`${what} took over ${READER_TIMEOUT_MS / 1000} s`)), READER_TIMEOUT_MS)
  })
  p.catch(() => {})
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

export interface Resolved {
  entry: DatasetEntry
  dataset: OpenDataset
}

/** The gateway's view of a reader. Shelves are listed on every call (mirrors gain sources live). */
export class Library {
  readonly reader: DatasetReader
  #shelves = new Map<unknown, Shelf>()

  constructor(reader: DatasetReader) {
    this.reader = reader
  }

  #shelf(key: unknown, make: () => Shelf): Shelf {
    let s = this.#shelves.get(key)
    if (!s) {
      s = make()
      this.#shelves.set(key, s)
    }
    return s
  }

  shelves(): Shelf[] {
    const r = this.reader
    const catalogs = r.catalogs?.()
    if (!catalogs) return [this.#shelf(r, () => new ReaderShelf(r))]
    return catalogs.map((c) =>
      this.#shelf(c.datasets, () => new DatasetsShelf(c.datasets, toZ32(c.catalogKey), c.agencyNodeKey ? toZ32(c.agencyNodeKey) : null))
    )
  }

  /** Every agency with its datasets; an agency not readable yet says why instead of failing. */
  async agencies(): Promise<AgencyView[]> {
    const out: AgencyView[] = []
    for (const shelf of this.shelves()) {
      const fallback: AgencyInfo = shelf instanceof DatasetsShelf ? { catalog: shelf.catalog, nodeKey: shelf.nodeKey, name: null } : { catalog: null, nodeKey: null, name: null }
      try {
        const { entries, problems } = await shelf.entries()
        out.push({ ...entries[0]?.agency ?? (await shelf.describe()), state: 'ready', error: null, datasets: entries, problems })
      } catch (err) {
        const e = errorResponse(err)
        out.push({ ...fallback, state: e.status === 503 ? 'replicating' : 'error', error: { code: e.code, message: e.message }, datasets: [], problems: [] })
      }
    }
    return out
  }

  /**
   * The dataset `name` (in agency `catalog` when given). 404 when no readable agency has it,
   * 503 when an agency that might have it is not replicated yet, 409 when several have it.
   */
  async resolve(name: string, catalog: string | null = null): Promise<Resolved> {
    const agencies = await this.agencies()
    const scope = catalog === null ? agencies : agencies.filter((a) => a.catalog === catalog)
    if (catalog !== null && scope.length === 0) throw EmbassyError.unknownAgency(`this node reads no agency with catalog ${catalog}`)
    const hits = scope.flatMap((a) => a.datasets.filter((d) => d.summary.name === name))
    if (hits.length > 1) throw EmbassyError.ambiguousDataset(name, hits.length)
    const hit = hits[0]
    if (!hit) {
      const problem = scope.flatMap((a) => a.problems).find((p) => p.name === name)
      // Re-raised with the code it failed with: errorResponse() gives it the same status again.
      if (problem) throw new EmbassyError(problem.code, problem.message)
      const waiting = scope.find((a) => a.state !== 'ready')
      if (waiting) {
        const why = waiting.error ? waiting.error.message : 'not readable'
        throw new EmbassyError(waiting.error?.code ?? 'NOT_REPLICATED', `dataset "${name}" is not known here (yet): ${why}`)
      }
      if (agencies.length === 0) throw EmbassyError.notReplicated('this node reads no agency yet')
      throw EmbassyError.unknownDataset(name)
    }
    return { entry: hit, dataset: await hit.open() }
  }
}

export interface CoreRef {
  /** log: the records; index: a files dataset's file tree; content: its file contents. */
  role: 'log' | 'index' | 'content'
  core: Hypercore
}

/** The cores behind an open dataset, its first core first. */
export function coresOf(ds: OpenDataset): CoreRef[] {
  if (ds instanceof LogDataset) return [{ role: 'log', core: ds.core }]
  const out: CoreRef[] = [{ role: 'index', core: ds.drive.core }]
  if (ds.drive.blobs) out.push({ role: 'content', core: ds.drive.blobs.core })
  return out
}

export interface CoreProvenance {
  role: CoreRef['role']
  /** Core key (z32). */
  key: string
  /** Length of the newest signed tree this node verified. */
  length: number
  /** Blocks held from the start without a gap. */
  contiguousLength: number
  fork: number
  /** Merkle tree root hash at `length` (hex): what the agency signed. */
  treeHash: string | null
  byteLength: number
  peers: number
}

export async function provenanceOf(ref: CoreRef): Promise<CoreProvenance> {
  const { core } = ref
  const length = core.length
  let treeHash: string | null = null
  try {
    treeHash = (await core.treeHash(length)).toString('hex')
  } catch {
    treeHash = null
  }
  return {
    role: ref.role,
    key: toZ32(core.key!),
    length,
    contiguousLength: core.contiguousLength,
    fork: core.fork,
    treeHash,
    byteLength: core.byteLength,
    peers: core.peers.length
  }
}

/** Options for a read from `core`: wait briefly when a peer could send the block, else not at all. */
export function readOpts(core: Hypercore): { wait: boolean; timeout: number } {
  // Writable cores too: a restored agency serves while it backfills its old blocks.
  return core.peers.length > 0 ? { wait: true, timeout: BLOCK_WAIT_MS } : { wait: false, timeout: 0 }
}

/**
 * Reads blocks of `core` in order, fetching those not held on request from any connected holder: a
 * download range of `window` blocks (up to `limit`) is kept ahead of the reader, and each block is
 * waited for at most BLOCK_WAIT_MS (with no holder connected, not at all). A block that was evicted
 * (a sparse mirror's cache) before it was read is simply asked for again; the gateway keeps the
 * window within half such a cache (`DatasetReader.readAheadBytes`), so that this stays the exception.
 */
export class BlockStream {
  readonly core: Hypercore
  readonly limit: number
  readonly window: number
  #range: { destroy(): void } | null = null
  #end = 0

  constructor(core: Hypercore, limit: number, window: number) {
    this.core = core
    this.limit = limit
    this.window = window
  }

  /** Block `seq`, or null when it is not held and no holder sent it within BLOCK_WAIT_MS. */
  async get(seq: number): Promise<Buffer | null> {
    const opts = readOpts(this.core)
    if (opts.wait && seq >= this.#end) {
      this.#range?.destroy()
      this.#range = null
      this.#end = Math.min(this.limit, seq + this.window)
      if (!(await this.core.has(seq, this.#end))) this.#range = this.core.download({ start: seq, end: this.#end })
    }
    try {
      return await this.core.get(seq, opts)
    } catch (err) {
      if ((err as { code?: string }).code === 'REQUEST_TIMEOUT') return null
      throw err
    }
  }

  close(): void {
    this.#range?.destroy()
    this.#range = null
  }
}

/**
 * Blocks [start, end) of `core`, fetched on request from any connected holder where not held
 * (one download range, blocks in parallel). True once all are held; false when they cannot be had
 * now: no peer is connected, none sent a block for BLOCK_WAIT_MS (the wait is bounded by progress,
 * so a long range that keeps arriving is not cut, and one nobody can serve fails quickly), or the
 * client left (`signal`).
 */
export async function fetchBlocks(core: Hypercore, start: number, end: number, signal?: AbortSignal): Promise<boolean> {
  if (end <= start || (await core.has(start, end))) return true
  if (!readOpts(core).wait || signal?.aborted) return false
  const range = core.download({ start, end })
  let timer: NodeJS.Timeout | undefined
  let finish: () => void = () => {}
  const stalled = new Promise<void>((resolve) => (finish = resolve))
  const arrived = (): void => {
    clearTimeout(timer)
    timer = setTimeout(finish, BLOCK_WAIT_MS)
  }
  arrived()
  core.on('download', arrived)
  signal?.addEventListener('abort', finish)
  try {
    await Promise.race([range.done().catch(() => {}), stalled])
  } finally {
    clearTimeout(timer)
    core.off('download', arrived)
    signal?.removeEventListener('abort', finish)
    range.destroy()
  }
  return core.has(start, end)
}

export { LogDataset, FilesDataset }
