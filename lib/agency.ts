/**
 * Agency: the only writer of its datasets. Creates datasets (catalog entries), appends
 * records, publishes file trees, and hands out the read capability mirrors need.
 */
import ReadyResource from 'ready-resource'
import { CATALOG_CORE_NAME, agencyTopic, randomKey } from './caps.js'
import { Catalog } from './catalog.js'
import { Datasets, type DatasetSummary } from './datasets.js'
import { EmbassyError } from './errors.js'
import { FilesDataset, type PublishResult } from './files-dataset.js'
import { toZ32 } from './ids.js'
import { LogDataset, type Progress } from './log-dataset.js'
import type { EmbassyNode } from './node.js'
import type { Network } from './network.js'
import { formatReadCapability } from './capability.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, DATASET_ID_BYTES, PeerRole, kindCode, type DatasetKindName, type Handshake } from '../protocol/index.js'

/** Dataset names: used in file names and URLs, so kept plain. */
export const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface CreateDatasetOptions {
  /** @default 'log' */
  kind?: DatasetKindName
  /** @default '' */
  description?: string
  /** For log datasets: the records' media type. @default 'application/json' for logs, '' for files */
  contentType?: string
}

export class Agency extends ReadyResource {
  readonly node: EmbassyNode
  #catalog: Catalog | null = null
  #datasets: Datasets | null = null

  constructor(node: EmbassyNode) {
    super()
    this.node = node
  }

  override async _open(): Promise<void> {
    await this.node.ready()
    if (this.node.role !== 'agency') throw EmbassyError.wrongRole('this', this.node.role, 'agency')
    const hex = this.node.keys.readKey
    if (!hex) throw EmbassyError.badConfig(`${this.node.dir}/keys.json has no read key`)
    const readKey = Buffer.from(hex, 'hex')
    const core = this.node.store.get({ name: CATALOG_CORE_NAME })
    await core.ready()
    this.#catalog = new Catalog(core)
    if (core.length > 0) await this.#catalog.checkReadKey(readKey)
    this.#datasets = new Datasets(this.node.store, this.#catalog, readKey, { writable: true })
  }

  override async _close(): Promise<void> {
    if (this.#datasets) await this.#datasets.close()
    if (this.#catalog) await this.#catalog.core.close()
  }

  get catalog(): Catalog {
    if (!this.#catalog) throw EmbassyError.closed()
    return this.#catalog
  }

  get datasets(): Datasets {
    if (!this.#datasets) throw EmbassyError.closed()
    return this.#datasets
  }

  get readKey(): Buffer {
    return this.datasets.readKey
  }

  /** The string a mirror needs: catalog key, read key, agency node key. */
  capability(): string {
    return formatReadCapability({ catalogKey: this.catalog.key, readKey: this.readKey, agencyNodeKey: this.node.nodeKey })
  }

  async createDataset(name: string, opts: CreateDatasetOptions = {}): Promise<DatasetSummary> {
    if (!DATASET_NAME.test(name)) {
      throw EmbassyError.badArgument(`dataset name "${name.slice(0, 80)}" must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit`)
    }
    const kind = opts.kind ?? 'log'
    if (kind !== 'log' && kind !== 'files') throw EmbassyError.badArgument(`--kind must be log or files, not "${kind}"`)
    const existing = await this.datasets.infos()
    if (existing.some((d) => d.name === name)) throw EmbassyError.datasetExists(name)

    const id = randomKey(DATASET_ID_BYTES)
    const info = { id: id.toString('hex'), kind, cores: [], name, description: null, contentType: null, retired: false, seq: -1 }
    const ds = await this.datasets.open(info)
    const cores = ds instanceof LogDataset ? [ds.core.key!] : await ds.coreKeys()
    await this.catalog.add(id, kindCode(kind), cores, {
      name,
      description: opts.description ?? '',
      contentType: opts.contentType ?? (kind === 'log' ? 'application/json' : '')
    }, this.readKey)
    return this.datasets.summary(await this.datasets.resolve(name))
  }

  /**
   * Appends JSON records given as text (stored verbatim, so exports are byte-identical).
   * Every text is validated first: one bad record appends nothing (BAD_RECORD names its line).
   */
  async appendJson(name: string, texts: readonly string[], opts: { lines?: readonly number[]; onProgress?: Progress } = {}): Promise<{ appended: number; length: number }> {
    const log = await this.datasets.openLog(name)
    const blocks = LogDataset.encodeJsonTexts(texts, 1, opts.lines)
    const length = await log.appendEncoded(blocks, opts.onProgress)
    return { appended: blocks.length, length }
  }

  /** Appends JSON values (serialised with JSON.stringify). */
  async append(name: string, values: readonly unknown[]): Promise<{ appended: number; length: number }> {
    return this.appendJson(name, values.map((v) => {
      const text = JSON.stringify(v)
      if (text === undefined) throw EmbassyError.badArgument('a record must be a JSON value')
      return text
    }))
  }

  /** Appends raw byte records. */
  async appendBytes(name: string, values: readonly Uint8Array[]): Promise<{ appended: number; length: number }> {
    const log = await this.datasets.openLog(name)
    const length = await log.appendEncoded(LogDataset.encodeBytes(values))
    return { appended: values.length, length }
  }

  async publish(name: string, source: string, onProgress?: Progress): Promise<PublishResult> {
    const files = await this.datasets.openFiles(name)
    return files.publish(source, onProgress)
  }

  async list(): Promise<DatasetSummary[]> {
    return this.datasets.list()
  }

  get catalogKey(): string {
    return toZ32(this.catalog.key)
  }

  /** Admission rule: the embassies and mirrors this agency allowed. */
  isAllowed(key: Buffer): boolean {
    return this.node.config.allow.includes(toZ32(key))
  }

  handshake(): Handshake {
    return { major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.AGENCY, capabilities: [], catalogs: [this.catalog.key] }
  }

  /** Goes online: every dataset core is opened (so it replicates) and the agency topic announced. */
  async attach(network: Network): Promise<void> {
    for (const info of await this.datasets.infos()) await this.datasets.open(info)
    await network.join(agencyTopic(this.catalog.key), { server: true, client: false })
  }
}

export { FilesDataset }
