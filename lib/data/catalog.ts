/**
 * Catalog: the agency's signed, unencrypted index of its datasets (one Hypercore).
 * Block 0 is a header; every later block adds, updates or retires a dataset.
 * Blind holders read keys and kinds; names and descriptions are sealed with the read key.
 */
import type Hypercore from 'hypercore'
import { metadataKey, keyCheck } from '../node/caps.js'
import { EmbassyError } from '../errors.js'
import { toHex } from '../ids.js'
import { open as openSealed, seal } from '../node/seal.js'
import {
  CATALOG_PROTOCOL,
  CatalogType,
  FORMAT_VERSION,
  catalogBlock,
  datasetMeta,
  decode,
  encode,
  kindName,
  type CatalogBlock,
  type CatalogHeader,
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
  retired: boolean
  /** Catalog index of the entry that added it. */
  seq: number
}

export interface CatalogProblem {
  seq: number
  error: string
}

export class Catalog {
  readonly core: Hypercore
  #blocks: Array<CatalogBlock | null> = []
  #problems: CatalogProblem[] = []
  /** datasets() results by (read key, retired flag), valid while no new block was decoded. */
  #views = new Map<string, { blocks: number; list: DatasetInfo[] }>()

  constructor(core: Hypercore) {
    this.core = core
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

  /** Decodes every locally available block not seen yet (never waits for the network). */
  async refresh(): Promise<void> {
    const length = this.core.length
    for (let seq = this.#blocks.length; seq < length; seq++) {
      const block = await this.core.get(seq, { wait: false })
      if (!block) break // not downloaded yet: stop at the first gap, resume next time
      try {
        this.#blocks.push(decode(catalogBlock, block))
      } catch (err) {
        this.#blocks.push(null)
        this.#problems.push({ seq, error: (err as Error).message })
      }
    }
  }

  /** Datasets, newest state of each; names only when `readKey` is given. */
  async datasets(readKey: Uint8Array | null = null, opts: { includeRetired?: boolean } = {}): Promise<DatasetInfo[]> {
    await this.refresh()
    // Every receipt and request asks; decoding and unsealing the whole catalog each time is O(n).
    const viewKey = `${readKey ? Buffer.from(readKey).toString('hex') : '-'}/${opts.includeRetired ? 1 : 0}`
    const cached = this.#views.get(viewKey)
    if (cached && cached.blocks === this.#blocks.length) return cached.list.map((d) => ({ ...d }))
    const list = this.#materialise(readKey, !!opts.includeRetired)
    this.#views.set(viewKey, { blocks: this.#blocks.length, list })
    return list.map((d) => ({ ...d }))
  }

  #materialise(readKey: Uint8Array | null, includeRetired: boolean): DatasetInfo[] {
    const metaKey = readKey ? metadataKey(readKey) : null
    const byId = new Map<string, DatasetInfo>()
    for (let seq = 1; seq < this.#blocks.length; seq++) {
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
        this.#problems.push({ seq, error: `unknown dataset kind ${b.kind}` })
        continue
      }
      const meta = metaKey ? openMeta(b.meta, metaKey) : null
      if (b.type === CatalogType.ADD && prev) continue // ids are unique: a second add is ignored
      if (b.type === CatalogType.UPDATE && !prev) continue
      byId.set(id, {
        id,
        kind,
        cores: b.cores.map((k) => Buffer.from(k)),
        name: meta?.name ?? null,
        description: meta?.description ?? null,
        contentType: meta?.contentType ?? null,
        retired: false,
        seq: prev ? prev.seq : seq
      })
    }
    return [...byId.values()].filter((d) => includeRetired || !d.retired)
  }

  /** Every core key the catalog lists (what an embassy must hold), retired ones included. */
  async coreKeys(): Promise<Buffer[]> {
    const all = await this.datasets(null, { includeRetired: true })
    return all.flatMap((d) => d.cores)
  }

  /** Appends an ADD entry (agency only). */
  async add(id: Uint8Array, kind: number, cores: Uint8Array[], meta: DatasetMeta, readKey: Uint8Array): Promise<number> {
    const sealed = seal(encode(datasetMeta, meta), metadataKey(readKey))
    const { length } = await this.core.append(encode(catalogBlock, { type: CatalogType.ADD, id, kind, cores, meta: sealed }))
    return length - 1
  }
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
