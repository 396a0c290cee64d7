/**
 * Agency: the only writer of its datasets. Creates datasets (catalog entries), appends
 * records, publishes file trees, and hands out the read capability mirrors need.
 */
import { CATALOG_CORE_NAME, agencyTopic, keyCheck, metadataKey, randomKey } from '../node/caps.js'
import { CORES_PER_KIND, Catalog } from '../data/catalog.js'
import { Datasets, type DatasetSummary } from '../data/datasets.js'
import { EmbassyError } from '../errors.js'
import { FilesDataset, type PublishResult } from '../data/files-dataset.js'
import { parseKey as parseKeyZ, toZ32 } from '../ids.js'
import { LogDataset, type Progress } from '../data/log-dataset.js'
import type { EmbassyNode } from '../node/node.js'
import type { Network, Peer } from '../net/network.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { seal } from '../node/seal.js'
import { BaseRole } from './role.js'
import type Hypercore from 'hypercore'
import type { Alarm, CustodyLedger, HeadBook } from '../custody/index.js'
import { formatReadCapability } from '../data/read-capability.js'
import { DATASET_ID_BYTES, agencyMeta, encode, kindCode, type DatasetKindName, type Receipt } from '../../protocol/index.js'
import { CustodyDesk, type CustodyStatus } from './agency-custody.js'

export { MAX_RECEIPT_SKEW_MS, MAX_DEFERRED_RECEIPTS, type CustodyStatus, type DatasetCustody, type EmbassyCustody } from './agency-custody.js'

/** How long a restoring agency waits for more embassies after the first one connects. */
export const RESTORE_GRACE_MS = 2000

export interface RestoreResult {
  cores: number
  blocks: number
  bytes: number
  /** Embassies connected when the lengths were taken. */
  embassies: string[]
  ms: number
}

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

export class Agency extends BaseRole {
  readonly name = 'agency'
  #catalog: Catalog | null = null
  #datasets: Datasets | null = null
  #desk: CustodyDesk | null = null
  #cores: { length: number; map: Map<string, { core: Hypercore; dataset: string | null }> } | null = null

  constructor(node: EmbassyNode) {
    super(node)
  }

  override async _open(): Promise<void> {
    await this.openNode()
    const hex = this.node.keys.readKey
    if (!hex) throw EmbassyError.badConfig(`${this.node.dir}/keys.json has no read key`)
    const readKey = Buffer.from(hex, 'hex')
    const core = this.node.store.get({ name: CATALOG_CORE_NAME })
    await core.ready()
    this.#catalog = new Catalog(core)
    // A new agency's catalog starts with its header (a restored one gets it from its embassies).
    if (core.length === 0 && !this.restoring) {
      const meta = seal(encode(agencyMeta, { name: this.node.config.name }), metadataKey(readKey))
      await Catalog.writeHeader(core, { agencyNodeKey: this.node.nodeKey, keyCheck: keyCheck(readKey), meta })
    }
    if (core.length > 0) await this.#catalog.checkReadKey(readKey)
    this.#datasets = new Datasets(this.node.store, this.#catalog, readKey, { writable: true })
    this.#desk = new CustodyDesk(this)
  }

  override async _close(): Promise<void> {
    if (this.#desk) this.#desk.close()
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

  /** True while a restored agency has not yet synced from its embassies. */
  get restoring(): boolean {
    return this.node.config.restoring === true
  }

  #assertWritable(): void {
    if (this.restoring) {
      throw EmbassyError.notSynced(
        'this agency was restored from a recovery kit and is still syncing from its embassies; writes are refused until `embassy run` reports restore-complete (writing earlier would fork its feeds)'
      )
    }
  }

  /** The string a mirror needs: catalog key, read key, agency node key. */
  capability(): string {
    return formatReadCapability({ catalogKey: this.catalog.key, readKey: this.readKey, agencyNodeKey: this.node.nodeKey })
  }

  async createDataset(name: string, opts: CreateDatasetOptions = {}): Promise<DatasetSummary> {
    this.#assertWritable()
    if (!DATASET_NAME.test(name)) {
      throw EmbassyError.badArgument(`dataset name "${name.slice(0, 80)}" must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit`)
    }
    const kind = opts.kind ?? 'log'
    if (kind !== 'log' && kind !== 'files') throw EmbassyError.badArgument(`--kind must be log or files, not "${kind}"`)
    const existing = await this.datasets.infos()
    if (existing.some((d) => d.name === name)) throw EmbassyError.datasetExists(name)
    // Holders refuse an agency that lists more cores than the cap: refuse here, before they would.
    const listed = existing.reduce((n, d) => n + d.cores.length, 0)
    const adding = CORES_PER_KIND[kindCode(kind)] ?? 1
    if (listed + adding > this.catalog.maxCores) {
      throw EmbassyError.badArgument(`this agency already lists ${listed} cores; holders hold at most ${this.catalog.maxCores} per agency`)
    }

    const id = randomKey(DATASET_ID_BYTES)
    const info = { id: id.toString('hex'), kind, cores: [], name, description: null, contentType: null, retired: false, seq: -1 }
    const ds = await this.datasets.open(info)
    const cores = await ds.coreKeys()
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
    this.#assertWritable()
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
    this.#assertWritable()
    const log = await this.datasets.openLog(name)
    const length = await log.appendEncoded(LogDataset.encodeBytes(values))
    return { appended: values.length, length }
  }

  async publish(name: string, source: string, onProgress?: Progress): Promise<PublishResult> {
    this.#assertWritable()
    const files = await this.datasets.openFiles(name)
    return files.publish(source, onProgress)
  }

  async list(): Promise<DatasetSummary[]> {
    return this.datasets.list()
  }

  get catalogKey(): Buffer {
    return this.catalog.key
  }

  /** Admission rule: only the embassies and mirrors this agency allowed. */
  protected handshakeCatalogs(): Buffer[] {
    return [this.catalog.key]
  }

  override handlers(peer: Peer): CustodyHandlers {
    return this.desk.handlers(peer)
  }

  get desk(): CustodyDesk {
    if (!this.#desk) throw EmbassyError.closed()
    return this.#desk
  }

  get ledger(): CustodyLedger {
    return this.desk.ledger
  }

  /** Heads holders witnessed, cross-checked against our own tree. */
  get heads(): HeadBook {
    return this.desk.heads
  }

  /** A receipt from a peer (see CustodyDesk.onreceipt). */
  onreceipt(peer: Peer, r: Receipt): Promise<void> {
    return this.desk.onreceipt(peer, r)
  }

  /** Per dataset and embassy: what it proved it holds, how far behind, how fresh the proof is. */
  custody(now = Date.now()): Promise<CustodyStatus> {
    return this.desk.custody(now)
  }

  reader(): Datasets {
    return this.datasets
  }

  async status(): Promise<Record<string, unknown>> {
    return { ...(await this.custody()) }
  }

  /** The catalog and every dataset core, labelled by dataset name. */
  async heldCores(): Promise<HeldCoreRef[]> {
    const catalog = this.catalog.key
    const out: HeldCoreRef[] = [{ catalog, dataset: null, name: 'catalog', core: this.catalog.core }]
    for (const info of await this.datasets.infos()) {
      const ds = await this.datasets.open(info)
      const name = info.name ?? info.id
      for (const { part, core } of await ds.cores()) out.push({ catalog, dataset: info.id, name: part === 'log' ? name : `${name}/${part}`, core })
    }
    return out
  }

  /** Goes online: every dataset core is opened (so it replicates) and the agency topic announced. */
  async attach(network: Network): Promise<void> {
    this.network = network
    this.on('alarm', (a: Alarm) => this.notice('error', 'custody-alarm', `custody alarm (${a.kind}) from ${a.peer}: ${a.detail}`, { ...a }))
    if (this.restoring) {
      this.notice('info', 'restoring', 'restored agency: syncing every core from its embassies before accepting writes')
      // Restored: dial the embassies we know; the sync runs in the background.
      for (const key of this.node.config.allow) network.joinPeer(parseKeyZ(key))
      this.#restore(network).then(
        (r) => {
          this.emit('restored', r)
          this.notice('info', 'restore-complete', `restore complete: ${r.cores} cores, ${r.blocks} blocks, ${r.bytes} bytes from ${r.embassies.length} embassies in ${(r.ms / 1000).toFixed(1)} s; writes allowed`, { ...r })
        },
        (err) => {
          this.emit('restore-error', err)
          this.notice('error', 'restore-error', `restore failed: ${(err as Error).message}`)
        }
      )
    }
    for (const info of await this.datasets.infos()) await this.datasets.open(info)
    network.on('peer', (peer) => {
      this.ledger.setRole(toZ32(peer.key), peer.role)
      if (peer.role === 'embassy') this.desk.sendHolders()
    })
    // Dial the embassies we know too: after an outage on our side, we find them as soon as our
    // network is back, without waiting for their back-off.
    for (const key of this.node.config.allow) if (this.ledger.role(key) === 'embassy') network.joinPeer(parseKeyZ(key))
    network.on('channel-error', (peer, err) => {
      this.desk.alarm({ time: Date.now(), kind: 'malformed', peer: toZ32(peer.key), core: null, detail: err.message })
    })
    await network.join(agencyTopic(this.catalog.key), { server: true, client: false })
  }

  /**
   * Rebuilds a restored agency from its embassies: waits for them, downloads the catalog and every
   * dataset core to the newest length they hold, checks the read key, then allows writes again.
   */
  async #restore(network: Network): Promise<RestoreResult> {
    const started = Date.now()
    const embassies = () => [...network.peers.values()].filter((p) => p.role === 'embassy')
    await new Promise<void>((resolve) => {
      if (embassies().length > 0) return resolve()
      const onpeer = (p: Peer) => {
        if (p.role !== 'embassy') return
        network.off('peer', onpeer)
        resolve()
      }
      network.on('peer', onpeer)
    })
    // Give the other embassies a moment: we want the newest length any of them holds.
    const allowed = this.node.config.allow.length
    const graceUntil = Date.now() + RESTORE_GRACE_MS
    while (embassies().length < allowed && Date.now() < graceUntil) await new Promise((r) => setTimeout(r, 50))

    const sync = async (core: Hypercore) => {
      await core.update({ wait: true, force: true })
      if (core.length > 0) await core.download({ start: 0, end: core.length }).done()
    }
    const catalog = this.catalog.core
    await sync(catalog)
    await this.catalog.checkReadKey(this.readKey, { wait: true })
    for (const info of await this.datasets.infos()) await this.datasets.open(info)
    const cores = await this.cores()
    let blocks = 0
    let bytes = 0
    // Every dataset core at once: one connection carries them all.
    await Promise.all([...cores.values()].filter(({ core }) => core !== catalog).map(({ core }) => sync(core)))
    for (const { core } of cores.values()) {
      if (core.contiguousLength !== core.length) throw EmbassyError.notSynced(`core ${toZ32(core.key!)} is incomplete after sync`)
      blocks += core.length
      bytes += core.byteLength
    }
    this.node.updateConfig((c) => {
      delete c.restoring
    })
    await this.desk.replayDeferred()
    return { cores: cores.size, blocks, bytes, embassies: embassies().map((p) => toZ32(p.key)), ms: Date.now() - started }
  }


  /** Every core of this agency by hex key: the catalog and each dataset's cores. */
  async cores(): Promise<Map<string, { core: Hypercore; dataset: string | null }>> {
    // Asked for every receipt: rebuilt only when the catalog changed.
    const length = this.catalog.core.length
    if (this.#cores && this.#cores.length === length) return this.#cores.map
    const map = await this.#buildCores()
    this.#cores = { length, map }
    return map
  }

  async #buildCores(): Promise<Map<string, { core: Hypercore; dataset: string | null }>> {
    const out = new Map<string, { core: Hypercore; dataset: string | null }>()
    for (const ref of await this.heldCores()) out.set(ref.core.key!.toString('hex'), { core: ref.core, dataset: ref.dataset })
    return out
  }
}

export { FilesDataset }
