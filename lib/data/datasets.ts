/**
 * Datasets: opens an agency's datasets by name, given its catalog and read key.
 * The agency opens them writable (by name in its Corestore); mirrors open them read-only (by key).
 * Each dataset is opened once and kept until close().
 */
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import Hyperdrive from 'hyperdrive'
import { checkBlocksOnRead } from './checked-blocks.js'
import { printable, unsafeDatasetName, type SkippedEntry } from './safe-paths.js'
import { datasetEncryptionKey } from '../node/caps.js'
import type { Catalog, DatasetInfo } from './catalog.js'
import { EmbassyError } from '../errors.js'
import { FilesDataset } from './files-dataset.js'
import { toZ32 } from '../ids.js'
import { LogDataset, type Progress, type ReadOptions, type RecordView, type WaitOptions } from './log-dataset.js'

export type Dataset = LogDataset | FilesDataset

export interface DatasetSummary {
  name: string
  kind: 'log' | 'files'
  description: string
  contentType: string
  /** Dataset id (hex). */
  id: string
  /** The dataset's first core key (z32): the log, or the file index. */
  key: string
  /** Every core key (z32). */
  cores: string[]
  /** Blocks held: log records, or file-index entries. */
  length: number
  /** Bytes held in all of the dataset's cores. */
  byteLength: number
  /** Files datasets: the tree's version. */
  version?: number
}

/**
 * DatasetReader: what every reading command needs, whatever the role holding the data
 * (the agency reads its own datasets; a mirror reads one or more agencies').
 */
export interface ExportResult {
  kind: string
  path: string
  files?: number
  records?: number
  bytes: number
  /** Files: relative links recreated inside DIR. */
  links?: number
  /** Files: entries not written (unsafe names, links leaving the tree, links in the way), with why; at most MAX_LISTED_SKIPPED. */
  skipped?: SkippedEntry[]
  /** Files: every entry not written. */
  skippedCount?: number
}

/** One agency's catalog a reader can read, with the Datasets that read it without waiting on peers. */
export interface ReadableCatalog {
  catalogKey: Buffer
  /** The agency's node key, when the reader knows it (else it is in the catalog header). */
  agencyNodeKey: Buffer | null
  datasets: Datasets
}

export interface DatasetReader {
  list(): Promise<DatasetSummary[]>
  read(name: string, opts?: ReadOptions): AsyncGenerator<RecordView>
  export(name: string, dir: string, onProgress?: Progress): Promise<ExportResult>
  openFiles(name: string): Promise<FilesDataset>
  openLog(name: string): Promise<LogDataset>
  /**
   * The catalogs behind this reader (an agency's one, a mirror's sources). Optional: a reader that
   * does not say is read through the methods above only.
   */
  catalogs?(): ReadableCatalog[]
  /**
   * Bytes a stream may fetch ahead of what it has read without pushing out what it has not read
   * yet (a sparse mirror's cache); null or absent: no such bound.
   */
  readAheadBytes?(): number | null
}

/** Core names of an agency's own datasets in its Corestore. */
export function datasetCoreName(id: string): string {
  return `data-embassy/dataset/${id}`
}

export class Datasets implements DatasetReader {
  readonly store: Corestore
  readonly catalog: Catalog
  readonly readKey: Buffer
  readonly writable: boolean
  #open = new Map<string, Promise<Dataset>>()

  constructor(store: Corestore, catalog: Catalog, readKey: Buffer, opts: { writable: boolean }) {
    this.store = store
    this.catalog = catalog
    this.readKey = readKey
    this.writable = opts.writable
  }

  async infos(): Promise<DatasetInfo[]> {
    return this.catalog.datasets(this.readKey)
  }

  /** The catalog entry of dataset `name`; UNKNOWN_DATASET when none. */
  async resolve(name: string): Promise<DatasetInfo> {
    const found = (await this.infos()).find((d) => d.name === name)
    if (!found) throw EmbassyError.unknownDataset(name)
    return found
  }

  /** Opens (once) the dataset described by `info`. */
  open(info: DatasetInfo): Promise<Dataset> {
    let p = this.#open.get(info.id)
    if (!p) {
      p = this.#openDataset(info)
      this.#open.set(info.id, p)
      p.catch(() => this.#open.delete(info.id))
    }
    return p
  }

  async #openDataset(info: DatasetInfo): Promise<Dataset> {
    const encryptionKey = datasetEncryptionKey(this.readKey, Buffer.from(info.id, 'hex'))
    if (info.kind === 'log') {
      const core = this.writable
        ? this.store.get({ name: datasetCoreName(info.id), encryption: { key: encryptionKey } })
        : this.store.get({ key: info.cores[0] as Buffer, encryption: { key: encryptionKey } })
      await core.ready()
      await checkBlocksOnRead(core)
      return new LogDataset(core)
    }
    const drive = this.writable
      ? new Hyperdrive(this.store.namespace(datasetCoreName(info.id)), { encryptionKey })
      : new Hyperdrive(this.store.session(), info.cores[0] as Buffer, { encryptionKey })
    // The content core may open later (a reader's, once replicated): check its blocks from then on.
    drive.on('blobs', (blobs: { core: Hypercore }) => void checkBlocksOnRead(blobs.core).catch(() => {}))
    await drive.ready()
    await checkBlocksOnRead(drive.core)
    if (drive.blobs) await checkBlocksOnRead(drive.blobs.core)
    return new FilesDataset(drive)
  }

  async openLog(name: string): Promise<LogDataset> {
    const info = await this.resolve(name)
    if (info.kind !== 'log') throw EmbassyError.wrongKind(name, info.kind, 'log')
    return (await this.open(info)) as LogDataset
  }

  async openFiles(name: string): Promise<FilesDataset> {
    const info = await this.resolve(name)
    if (info.kind !== 'files') throw EmbassyError.wrongKind(name, info.kind, 'files')
    return (await this.open(info)) as FilesDataset
  }

  async summary(info: DatasetInfo): Promise<DatasetSummary> {
    const ds = await this.open(info)
    const base = {
      name: info.name ?? '',
      kind: info.kind,
      description: info.description ?? '',
      contentType: info.contentType ?? '',
      id: info.id,
      key: toZ32(info.cores[0] as Buffer),
      cores: info.cores.map(toZ32)
    }
    if (ds instanceof LogDataset) return { ...base, length: ds.length, byteLength: ds.byteLength }
    return { ...base, length: ds.length, byteLength: ds.byteLength(), version: ds.version }
  }

  /** This agency's one catalog (for readers such as the gateway that read it without waiting). */
  catalogs(): ReadableCatalog[] {
    return [{ catalogKey: this.catalog.key, agencyNodeKey: null, datasets: this }]
  }

  async list(): Promise<DatasetSummary[]> {
    const out: DatasetSummary[] = []
    for (const info of await this.infos()) out.push(await this.summary(info))
    return out
  }

  async *read(name: string, opts: ReadOptions = {}): AsyncGenerator<RecordView> {
    const log = await this.openLog(name)
    yield* log.read(opts)
  }

  /** Exports a dataset into `dir`: a log as DIR/NAME.ndjson, files as the tree; `opts.wait` fetches blocks not held (a mirror). */
  async export(name: string, dir: string, onProgress?: Progress, opts: WaitOptions = {}): Promise<ExportResult> {
    const info = await this.resolve(name)
    const ds = await this.open(info)
    if (ds instanceof LogDataset) {
      const unsafe = unsafeDatasetName(name)
      if (unsafe) throw EmbassyError.unsafePath(`dataset name "${printable(name)}" cannot be a file name (${unsafe})`, { name: printable(name) })
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, `${name}.ndjson`)
      const r = await ds.exportTo(file, onProgress, opts)
      return { kind: 'log', path: file, records: r.records, bytes: r.bytes }
    }
    const r = await ds.exportTo(dir, onProgress, opts)
    return { kind: 'files', path: path.resolve(dir), files: r.files, bytes: r.bytes, links: r.links, skipped: r.skipped, skippedCount: r.skippedCount }
  }

  async close(): Promise<void> {
    const all = [...this.#open.values()]
    this.#open.clear()
    for (const p of all) {
      try {
        await (await p).close()
      } catch {
        // best effort: a dataset that failed to open has nothing to close
      }
    }
  }
}
