/**
 * Agency: the only writer of its datasets. Creates datasets (catalog entries), appends
 * records, publishes file trees, and hands out the read capability mirrors need.
 */
import { randomBytes } from 'node:crypto'
import { CATALOG_CORE_NAME, agencyTopic, keyCheck, randomKey } from '../node/caps.js'
import { CORES_PER_KIND, Catalog, sealAgencyMeta } from '../data/catalog.js'
import { Datasets, type DatasetSummary } from '../data/datasets.js'
import { EmbassyError, isEmbassyError } from '../errors.js'
import { bytesNeeded, diskSpace, ensureRoom, toDiskFull } from '../node/disk.js'
import { FilesDataset, type PublishResult } from '../data/files-dataset.js'
import { parseKey as parseKeyZ, keyZ32, toZ32 } from '../ids.js'
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
import { DATASET_ID_BYTES, INSTANCE_CAPABILITY, kindCode, type DatasetKindName, type Receipt } from '../../protocol/index.js'
import { CustodyDesk, type CustodyStatus } from './agency-custody.js'
import { AppendNotices } from './agency-notices.js'
import { RestoreGate, type RestoreResult, type RestoreStatus } from './restore-plan.js'

export { MAX_RECEIPT_SKEW_MS, MAX_DEFERRED_RECEIPTS, type CustodyStatus, type DatasetCustody, type EmbassyCustody } from './agency-custody.js'

export { RESTORE_TICK_MS, BACKFILL_WINDOW, type RestoreResult, type RestoreStatus, type RestoreState } from './restore-plan.js'

/** Dataset names: used in file names and URLs, so kept plain. */
/** Largest record padding a dataset may ask for (bytes). */
export const MAX_RECORD_PAD = 65536

export const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface CreateDatasetOptions {
  /** @default 'log' */
  kind?: DatasetKindName
  /** @default '' */
  description?: string
  /** For log datasets: the records' media type. @default 'application/json' for logs, '' for files */
  contentType?: string
  /**
   * For log datasets: pad every record's block to a multiple of this many bytes, so a blind holder
   * sees size classes instead of record sizes (costs storage and bandwidth). @default 0 (none)
   */
  recordPad?: number
}

/** What a publish cut short by a full disk leaves (data/files-dataset.ts, README "Disk space"). */
const PUBLISH_CUT_SHORT = 'nothing of it was published (no file of it is in the index; content blocks appended before the disk filled stay in the content core, unreferenced)'

export class Agency extends BaseRole {
  readonly name = 'agency'
  #catalog: Catalog | null = null
  #datasets: Datasets | null = null
  #desk: CustodyDesk | null = null
  #cores: { length: number; map: Map<string, { core: Hypercore; dataset: string | null }> } | null = null
  #gate: RestoreGate | null = null
  /** Tells connected embassies which cores grew (custody message `appended`); null until attach. */
  #notices: AppendNotices | null = null

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
      const meta = sealAgencyMeta({ name: this.node.config.name }, readKey) // padded to a size class
      await Catalog.writeHeader(core, { agencyNodeKey: this.node.nodeKey, keyCheck: keyCheck(readKey), meta })
    }
    if (core.length > 0) await this.#catalog.checkReadKey(readKey)
    this.#datasets = new Datasets(this.node.store, this.#catalog, readKey, { writable: true })
    this.#desk = new CustodyDesk(this)
    const settings = this.node.config.restore ?? {}
    const agency = this
    this.#gate = new RestoreGate(
      {
        node: this.node,
        catalog: this.#catalog,
        readKey,
        get network() {
          return agency.network
        },
        cores: () => this.cores(),
        openDatasets: async () => {
          for (const info of await this.datasets.infos()) await this.datasets.open(info)
        },
        knownRole: (key) => this.ledger.role(key) ?? undefined,
        provenBeyond: (core) => this.ledger.provenBeyond(core.key!, { length: core.length, fork: core.fork }, this.node.config.allow),
        alarm: (a) => this.desk.alarm(a),
        notice: (level, event, message, fields) => this.notice(level, event, message, fields),
        emit: (event, ...args) => this.emit(event, ...args),
        restored: async () => {
          await this.desk.replayDeferred()
          await this.#notices?.restored().catch((err: Error) => this.notice('warn', 'appended-notices', `appended notices after the restore: ${err.message}`))
        }
      },
      { quorum: settings.quorum, force: settings.force, backfillRate: settings.backfillRate }
    )
    // The heads before any replication: growth without a write of ours means this copy was behind.
    await this.#gate.prepare()
  }

  override async _close(): Promise<void> {
    if (this.#notices) this.#notices.close()
    if (this.#gate) this.#gate.close()
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

  /** True while a restored agency has not yet reached the newest heads its embassies witnessed. */
  get restoring(): boolean {
    return this.#gate ? this.#gate.restoring : this.node.config.restoring === true
  }

  /** When writes are safe (restore, stale copies, a second live node) and the backfill. */
  get gate(): RestoreGate {
    if (!this.#gate) throw EmbassyError.closed()
    return this.#gate
  }

  #assertWritable(): void {
    this.gate.assertWritable()
  }

  /** Changes the backfill throttle of a restored agency (blocks per second; 0 pauses; null: unlimited). */
  setBackfillRate(rate: number | null): void {
    this.gate.setBackfillRate(rate)
  }

  /** Where a restore stands: `status --json` → `restore`. */
  restoreStatus(): Promise<RestoreStatus> {
    return this.gate.status()
  }

  /** The string a mirror needs: catalog key, read key, agency node key. */
  capability(): string {
    return formatReadCapability({ catalogKey: this.catalog.key, readKey: this.readKey, agencyNodeKey: this.node.nodeKey })
  }

  createDataset(name: string, opts: CreateDatasetOptions = {}): Promise<DatasetSummary> {
    return this.gate.write(() => this.#createDataset(name, opts))
  }

  async #createDataset(name: string, opts: CreateDatasetOptions = {}): Promise<DatasetSummary> {
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
    const recordPad = opts.recordPad ?? 0
    if (!Number.isInteger(recordPad) || recordPad < 0 || recordPad > MAX_RECORD_PAD) throw EmbassyError.badArgument(`record padding must be a whole number of bytes from 0 to ${MAX_RECORD_PAD}, not ${recordPad}`)
    if (recordPad > 0 && kind !== 'log') throw EmbassyError.badArgument('record padding is for log datasets (files are stored as given)')
    const info = { id: id.toString('hex'), kind, cores: [], name, description: null, contentType: null, recordPad, retired: false, seq: -1 }
    const ds = await this.datasets.open(info)
    const cores = await ds.coreKeys()
    await this.catalog.add(id, kindCode(kind), cores, {
      name,
      description: opts.description ?? '',
      contentType: opts.contentType ?? (kind === 'log' ? 'application/json' : ''),
      ...(recordPad > 0 ? { recordPad } : {})
    }, this.readKey)
    return this.datasets.summary(await this.datasets.resolve(name))
  }

  /**
   * Appends JSON records given as text (stored verbatim, so exports are byte-identical).
   * Every text is validated first: one bad record appends nothing (BAD_RECORD names its line).
   */
  appendJson(name: string, texts: readonly string[], opts: { lines?: readonly number[]; onProgress?: Progress } = {}): Promise<{ appended: number; length: number }> {
    return this.gate.write(() => this.#diskWrite(`appending to ${name}`, () => this.#appendJson(name, texts, opts)))
  }

  async #appendJson(name: string, texts: readonly string[], opts: { lines?: readonly number[]; onProgress?: Progress } = {}): Promise<{ appended: number; length: number }> {
    this.#assertWritable()
    const log = await this.datasets.openLog(name)
    const { recordPad } = await this.datasets.resolve(name)
    const blocks = LogDataset.encodeJsonTexts(texts, 1, opts.lines, recordPad)
    const length = await this.#diskWrite(`appending to ${name}`, () => log.appendEncoded(blocks, opts.onProgress), blocks.reduce((n, b) => n + b.byteLength, 0))
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
  appendBytes(name: string, values: readonly Uint8Array[]): Promise<{ appended: number; length: number }> {
    return this.gate.write(() => this.#diskWrite(`appending to ${name}`, () => this.#appendBytes(name, values)))
  }

  async #appendBytes(name: string, values: readonly Uint8Array[]): Promise<{ appended: number; length: number }> {
    this.#assertWritable()
    const log = await this.datasets.openLog(name)
    const { recordPad } = await this.datasets.resolve(name)
    const length = await log.appendEncoded(LogDataset.encodeBytes(values, recordPad))
    return { appended: values.length, length }
  }

  publish(name: string, source: string, onProgress?: Progress): Promise<PublishResult> {
    // A publish is one batch (data/files-dataset.ts): checked for room before each write, its index
    // written last, in one append. Cut short, it changes no file: publishing again does all of it.
    return this.gate.write(() => this.#diskWrite(`publishing ${name}`, () => this.#publish(name, source, onProgress), undefined, PUBLISH_CUT_SHORT))
  }

  /**
   * Runs a write; a full disk comes out as DISK_FULL (free/needed bytes) and raises a `disk-full`
   * alarm on this node (logged by `embassy run`). The write is refused whole: see files-dataset.ts
   * for what a publish cut short leaves behind.
   */
  async #diskWrite<T>(what: string, fn: () => Promise<T>, needed?: number, landed?: string): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const mapped = await toDiskFull(err, this.node.dir, what, needed, landed)
      if (isEmbassyError(mapped) && mapped.code === 'DISK_FULL' && mapped !== err) this.#diskFullAlarm(mapped)
      throw mapped
    }
  }

  #diskFullAlarm(err: EmbassyError): void {
    const detail = err.text
    let listed = true
    try {
      listed = this.ledger.alarm({ time: Date.now(), kind: 'disk-full', peer: toZ32(this.node.keyPair.publicKey), core: null, detail })
    } catch {}
    if (listed) this.notice('error', 'disk-full', `disk-full: ${detail}`, { ...err.details })
  }

  async #publish(name: string, source: string, onProgress?: Progress): Promise<PublishResult> {
    this.#assertWritable()
    const files = await this.datasets.openFiles(name)
    let started = false
    return files.publish(source, onProgress, {
      room: async (bytes, entries) => {
        const landed = started ? PUBLISH_CUT_SHORT : undefined
        started = true
        try {
          await ensureRoom(this.node.dir, `publishing ${name}`, bytesNeeded(bytes, entries), landed)
        } catch (err) {
          if (isEmbassyError(err) && err.code === 'DISK_FULL') this.#diskFullAlarm(err)
          throw err
        }
      }
    })
  }

  async list(): Promise<DatasetSummary[]> {
    return this.datasets.list()
  }

  get catalogKey(): Buffer {
    return this.catalog.key
  }

  /** Admission rule: only the embassies and mirrors this agency allowed. */
  /** This run of the agency: embassies tell two live copies of one identity apart by it. */
  readonly instance = randomBytes(16).toString('hex')

  protected override handshakeCapabilities(): string[] {
    return [INSTANCE_CAPABILITY + this.instance]
  }

  protected handshakeCatalogs(): Buffer[] {
    return [this.catalog.key]
  }

  override handlers(peer: Peer): CustodyHandlers {
    const desk = this.desk.handlers(peer)
    return {
      ...desk,
      // Witnessed heads also tell the restore gate how new the embassies' heads are.
      head: (h) => {
        this.gate.onHead(peer, h).catch(() => {})
        desk.head?.(h)
      }
    }
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
    const { lowSpaceBytes, lowSpaceFraction } = this.node.config
    const disk = await diskSpace(this.node.dir, { lowSpaceBytes, lowSpaceFraction }).catch(() => null)
    return { ...(await this.custody()), restore: await this.restoreStatus(), disk }
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
    this.bindNetwork(network)
    this.on('alarm', (a: Alarm) => this.notice('error', 'custody-alarm', `custody alarm (${a.kind}) from ${a.peer}: ${a.detail}`, { ...a }))
    // Restored: dial the embassies we know; the gate takes writes once their newest heads are here.
    if (this.restoring) for (const key of this.node.config.allow) network.joinPeer(parseKeyZ(key))
    for (const info of await this.datasets.infos()) await this.datasets.open(info)
    network.on('peer', (peer) => {
      this.ledger.setRole(keyZ32(peer), peer.role)
      if (peer.role === 'embassy' || peer.role === 'auditor') this.desk.sendHolders()
      // Mirrors get the holder list too: they admit and dial only holders we list (or they allow).
      if (peer.role === 'embassy') for (const p of network.peers.values()) if (p.role === 'mirror') this.#sendHoldersTo(p)
      if (peer.role === 'mirror') this.#sendHoldersTo(peer)
    })
    // Embassies may close idle cores: tell them which of ours grew (on connect, after appends).
    this.#notices = new AppendNotices(this, network)
    this.#notices.start().catch((err: Error) => this.notice('warn', 'appended-notices', `appended notices could not start: ${err.message}`))
    // Dial the embassies we know too: after an outage on our side, we find them as soon as our
    // network is back, without waiting for their back-off.
    for (const key of this.node.config.allow) if (this.ledger.role(key) === 'embassy') network.joinPeer(parseKeyZ(key))
    this.desk.audits.start()
    network.on('channel-error', (peer, err) => {
      this.desk.alarm({ time: Date.now(), kind: 'malformed', peer: keyZ32(peer), core: null, detail: err.message })
    })
    await network.join(agencyTopic(this.catalog.key), { server: true, client: false })
    this.gate.start()
  }

  /** Tells a mirror which embassies hold our data (the allowed peers known to be embassies). */
  #sendHoldersTo(peer: Peer): void {
    const holders = this.node.config.allow.filter((k) => this.ledger.role(k) === 'embassy').map((k) => parseKeyZ(k))
    peer.channel.send('holders', { catalog: this.catalog.key, holders })
  }

  /** An agency holds one catalog: an admitted peer may replicate every core of its store. */
  override entitledCatalogs(key: Buffer): Buffer[] | true {
    return this.isAllowed(key) ? true : []
  }

  /** Every core of this agency by hex key: the catalog and each dataset's cores. */
  async cores(): Promise<Map<string, { core: Hypercore; dataset: string | null }>> {
    // Asked for every receipt: rebuilt only when the catalog changed.
    // (A restored catalog's blocks arrive after its length: both count.)
    const length = this.catalog.core.length * 2 ** 20 + Math.min(this.catalog.core.contiguousLength, 2 ** 20 - 1)
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
