/**
 * Catalog: the agency's signed, unencrypted index of its datasets (one Hypercore).
 * Block 0 is a header; every later block adds, updates or retires a dataset.
 * Blind holders read keys and kinds; names and descriptions are sealed with the read key.
 */
import type Hypercore from 'hypercore'
import { metadataKey, keyCheck } from '../node/caps.js'
import { EmbassyError } from '../errors.js'
import { toHex } from '../ids.js'
import { open as openSealed, sealPadded } from '../node/seal.js'
import { printable, unsafeDatasetName } from './safe-paths.js'
import {
  CATALOG_PROTOCOL,
  CatalogType,
  DatasetKind,
  MAX_SEALED_META_BYTES,
  FORMAT_VERSION,
  catalogBlock,
  agencyMeta,
  datasetMeta,
  decode,
  encode,
  kindName,
  type CatalogBlock,
  type AgencyMeta,
  type CatalogHeader,
  type Codec,
  type DatasetKindName,
  type DatasetMeta
} from '../../protocol/index.js'

export interface DatasetInfo {
  /** Random dataset id (hex); stable for the dataset's life. */
  id: string
  kind: DatasetKindName
  /** Every core of the dataset: [log] or [files index, files blobs]. */
  cores: Buffer[]
  /** Null where the read key is not known (blind holders). */
  name: string | null
  description: string | null
  contentType: string | null
  /** Log datasets: records padded to a multiple of this many bytes (0: not padded, or not known). */
  recordPad: number
  retired: boolean
  /** Catalog index of the entry that added it. */
  seq: number
}

export interface CatalogProblem {
  seq: number
  error: string
}

/** Largest catalog block decoded (bytes): sealed metadata at most, plus id, kind and two core keys. Checked before decoding. */
export const MAX_CATALOG_BLOCK_BYTES = MAX_SEALED_META_BYTES + 1024
/** Cores a dataset entry lists: a log has one, a file tree two (index and content). */
export const CORES_PER_KIND: Record<number, number> = { [DatasetKind.LOG]: 1, [DatasetKind.FILES]: 2 }
/** Distinct cores one agency's catalog may make a holder open (entries beyond are skipped and reported). */
export const MAX_CORES_PER_AGENCY = 8192

export interface CatalogOptions {
  /** Distinct cores accepted from this catalog. @default MAX_CORES_PER_AGENCY */
  maxCores?: number
}

/** One read key's folded view of the catalog (datasets()). */
interface CatalogView {
  /** Blocks applied so far (block 0 is the header). */
  upto: number
  metaKey: Uint8Array | null
  byId: Map<string, DatasetInfo>
  /** Every core listed so far (hex), for the per-agency cap. */
  cores: Set<string>
  /** Cached lists by "retired included", until the next block. */
  lists: Map<boolean, DatasetInfo[]>
}

export class Catalog {
  readonly core: Hypercore
  #blocks: Array<CatalogBlock | null> = []
  #refreshing: Promise<void> | null = null
  #problems: CatalogProblem[] = []
  #problemKeys = new Set<string>()
  /**
   * datasets() state per read key, folded incrementally: each decoded block is applied once (a
   * catalog of n entries costs O(n) over its life, not O(n) per new block), and the lists (with
   * and without retired datasets) are cached until the next block.
   */
  #views = new Map<string, CatalogView>()
  readonly maxCores: number

  constructor(core: Hypercore, opts: CatalogOptions = {}) {
    this.core = core
    this.maxCores = opts.maxCores ?? MAX_CORES_PER_AGENCY
  }

  /** Records a problem once (materialising again finds the same ones). */
  #problem(seq: number, error: string): void {
    const k = `${seq}\u0000${error}`
    if (this.#problemKeys.has(k)) return
    this.#problemKeys.add(k)
    this.#problems.push({ seq, error })
  }

  get key(): Buffer {
    return this.core.key!
  }

  /** Blocks that could not be decoded (skipped, never fatal for a holder). */
  get problems(): readonly CatalogProblem[] {
    return this.#problems
  }

  static async writeHeader(core: Hypercore, h: Omit<CatalogHeader, 'type' | 'protocol' | 'version'>): Promise<void> {
    if (core.length !== 0) throw EmbassyError.badCatalog('catalog already has a header')
    await core.append(
      encode(catalogBlock, { type: CatalogType.HEADER, protocol: CATALOG_PROTOCOL, version: FORMAT_VERSION, ...h })
    )
  }

  /** The header; waits for it from peers when `wait` (bounded by `timeout` ms). */
  async header(opts: { wait?: boolean; timeout?: number } = {}): Promise<CatalogHeader> {
    const block = await this.core.get(0, { wait: opts.wait ?? false, timeout: opts.timeout ?? 0 })
    if (!block) throw EmbassyError.notAvailable('the catalog header is not here yet')
    let decoded: CatalogBlock
    try {
      decoded = decode(catalogBlock, block)
    } catch (err) {
      throw EmbassyError.badCatalog(`catalog header: ${(err as Error).message}`, err)
    }
    if (decoded.type !== CatalogType.HEADER) throw EmbassyError.badCatalog('catalog block 0 is not a header')
    return decoded
  }

  /** Throws WRONG_READ_KEY unless `readKey` matches the header's key-check value. */
  async checkReadKey(readKey: Uint8Array, opts: { wait?: boolean; timeout?: number } = {}): Promise<void> {
    const h = await this.header(opts)
    if (!Buffer.from(h.keyCheck).equals(keyCheck(readKey))) throw EmbassyError.wrongReadKey()
  }

  /**
   * Decodes every locally available block not seen yet (never waits for the network). One runs at
   * a time: concurrent callers share it (two loops would push the same block twice).
   */
  refresh(): Promise<void> {
    if (this.#refreshing) {
      const again = (): Promise<void> => this.refresh()
      return this.#refreshing.then(again, again)
    }
    const run = this.#refresh().finally(() => {
      if (this.#refreshing === run) this.#refreshing = null
    })
    this.#refreshing = run
    return run
  }

  async #refresh(): Promise<void> {
    const length = this.core.length
    for (let seq = this.#blocks.length; seq < length; seq++) {
      const block = await this.core.get(seq, { wait: false })
      if (!block) break // not downloaded yet: stop at the first gap, resume next time
      if (block.byteLength > MAX_CATALOG_BLOCK_BYTES) {
        this.#blocks.push(null)
        this.#problem(seq, `catalog block of ${block.byteLength} bytes is over ${MAX_CATALOG_BLOCK_BYTES}; not decoded`)
        continue
      }
      let b: CatalogBlock
      try {
        b = decode(catalogBlock, block)
      } catch (err) {
        this.#blocks.push(null)
        this.#problem(seq, (err as Error).message)
        continue
      }
      const tooMany = b.type === CatalogType.HEADER ? null : entryCoresProblem(b.type, b.kind, b.cores.length)
      if (tooMany) {
        this.#blocks.push(null)
        this.#problem(seq, tooMany)
        continue
      }
      this.#blocks.push(b)
    }
  }

  /** Datasets, newest state of each; names only when `readKey` is given. */
  async datasets(readKey: Uint8Array | null = null, opts: { includeRetired?: boolean } = {}): Promise<DatasetInfo[]> {
    await this.refresh()
    // Every receipt and request asks: unsealing the whole catalog each time would be O(n).
    const viewKey = readKey ? Buffer.from(readKey).toString('hex') : '-'
    let view = this.#views.get(viewKey)
    if (!view) this.#views.set(viewKey, (view = { upto: 1, metaKey: readKey ? metadataKey(readKey) : null, byId: new Map(), cores: new Set(), lists: new Map() }))
    if (view.upto < this.#blocks.length) {
      this.#fold(view)
      view.lists.clear()
    }
    const includeRetired = !!opts.includeRetired
    let list = view.lists.get(includeRetired)
    if (!list) {
      // The view's own entries (a fold clears the lists before it changes one); callers get copies.
      list = [...view.byId.values()].filter((d) => includeRetired || !d.retired)
      view.lists.set(includeRetired, list)
    }
    return list.map((d) => ({ ...d }))
  }

  /** Applies the blocks decoded since `view` was last brought up to date (in order). */
  #fold(view: CatalogView): void {
    const { metaKey, byId, cores } = view
    for (let seq = view.upto; seq < this.#blocks.length; seq++) {
      view.upto = seq + 1
      const b = this.#blocks[seq]
      if (!b || b.type === CatalogType.HEADER) continue
      const id = toHex(b.id)
      const prev = byId.get(id)
      if (b.type === CatalogType.RETIRE) {
        if (prev) prev.retired = true
        continue
      }
      const kind = kindName(b.kind)
      if (!kind) {
        this.#problem(seq, `unknown dataset kind ${b.kind}`)
        continue
      }
      if (b.type === CatalogType.ADD && prev) continue // ids are unique: a second add is ignored
      if (b.type === CatalogType.UPDATE && !prev) continue
      // Every core ever listed is held (retired ones too): cap how many one agency can make us open.
      const fresh = b.cores.map((k) => Buffer.from(k).toString('hex')).filter((k) => !cores.has(k))
      if (cores.size + new Set(fresh).size > this.maxCores) {
        this.#problem(seq, `the agency lists more than ${this.maxCores} cores; this entry (${b.cores.length} more) is skipped`)
        continue
      }
      for (const k of fresh) cores.add(k)
      const meta = metaKey ? openMeta(b.meta, metaKey) : null
      let name = meta?.name ?? null
      const unsafe = name === null ? null : unsafeDatasetName(name)
      if (name !== null && unsafe) {
        this.#problem(seq, `dataset name "${printable(name)}" is not a safe name (${unsafe}); the dataset is not readable by name`)
        name = null
      }
      // An update replaces the entry (Map.set keeps its place in the list; it keeps its first seq).
      byId.set(id, {
        id,
        kind,
        cores: b.cores.map((k) => Buffer.from(k)),
        name,
        description: meta?.description ?? null,
        contentType: meta?.contentType ?? null,
        recordPad: meta?.recordPad ?? 0,
        retired: false,
        seq: prev ? prev.seq : seq
      })
    }
  }

  /** Every core key the catalog lists (what an embassy must hold), retired ones included. */
  async coreKeys(): Promise<Buffer[]> {
    const all = await this.datasets(null, { includeRetired: true })
    return all.flatMap((d) => d.cores)
  }

  /** Appends an ADD entry (agency only). */
  async add(id: Uint8Array, kind: number, cores: Uint8Array[], meta: DatasetMeta, readKey: Uint8Array): Promise<number> {
    const sealed = sealDatasetMeta(meta, readKey)
    const { length } = await this.core.append(encode(catalogBlock, { type: CatalogType.ADD, id, kind, cores, meta: sealed }))
    return length - 1
  }
}

/**
 * Seals metadata with the read key, padded (flag META_PADDED) so that the sealed blob is a size
 * class long (node/seal.ts: powers of two from 128 bytes): a blind holder learns the class, not
 * the exact length of a name or description. BAD_ARGUMENT when it cannot fit in a catalog block.
 */
export function sealMetaPadded<T extends { padding?: number }>(codec: Codec<T>, meta: T, readKey: Uint8Array, what: string): Buffer {
  const { padding: _ignored, ...fields } = meta
  const sealed = sealPadded((padding) => encode(codec, { ...fields, padding } as T), metadataKey(readKey), MAX_SEALED_META_BYTES)
  if (sealed.byteLength > MAX_SEALED_META_BYTES) {
    throw EmbassyError.badArgument(`${what} is ${sealed.byteLength} bytes sealed, over the ${MAX_SEALED_META_BYTES} a catalog entry holds: shorten it`)
  }
  return sealed
}

/** A dataset's name, description and content type, sealed and padded (a catalog entry's `meta`). */
export function sealDatasetMeta(meta: DatasetMeta, readKey: Uint8Array): Buffer {
  return sealMetaPadded(datasetMeta, meta, readKey, 'the dataset\'s name and description')
}

/** The agency's name, sealed and padded (the catalog header's `meta`). */
export function sealAgencyMeta(meta: AgencyMeta, readKey: Uint8Array): Buffer {
  return sealMetaPadded(agencyMeta, meta, readKey, 'the agency name')
}

/** Why an entry's core list is refused (before anything is opened), or null. */
function entryCoresProblem(type: number, kind: number, count: number): string | null {
  if (type === CatalogType.RETIRE) return count > 2 ? `a retire entry lists ${count} cores` : null
  const expected = CORES_PER_KIND[kind]
  if (expected === undefined) return null // an unknown kind is reported when materialised
  if (count !== expected) return `a ${kindName(kind)} entry lists ${count} cores (exactly ${expected} expected); skipped`
  return null
}

function openMeta(sealed: Uint8Array, key: Uint8Array): DatasetMeta | null {
  const plain = openSealed(sealed, key)
  if (!plain) return null
  try {
    return decode(datasetMeta, plain)
  } catch {
    return null
  }
}
