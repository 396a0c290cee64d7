/**
 * Mirror: reads agencies' data during a crisis. For each source (catalog key + read key) it holds
 * a copy like an embassy (so it can serve other mirrors), verifies it, and decrypts it to read. It
 * serves before it holds everything: every read fetches what it needs on request from any holder,
 * and the rest is prefetched in the background (./mirror-fetch.ts: newest first, or sparse: only
 * what was asked for, up to a cache limit). It never writes datasets.
 */
import { parseReadCapability } from '../data/read-capability.js'
import { agencyTopic } from '../node/caps.js'
import { Datasets, type DatasetSummary } from '../data/datasets.js'
import { EmbassyError } from '../errors.js'
import type { FilesDataset } from '../data/files-dataset.js'
import { Holder, type HeldCore } from './holder.js'
import { parseKey, keyZ32, toZ32 } from '../ids.js'
import type { LogDataset, Progress, ReadOptions, RecordView } from '../data/log-dataset.js'
import type { Network } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import type { DatasetReader, ExportResult, ReadableCatalog } from '../data/datasets.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { BaseRole } from './role.js'
import { MirrorFetch, type FetchStatus } from './mirror-fetch.js'
import type { MirrorSettings } from '../node/config.js'
import { GUARD_TICK_MS, HistoryGuard } from './guard.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Peer } from '../net/network.js'
import type { AlarmKind } from '../custody/index.js'
import type { HolderList } from '../../protocol/index.js'

/** How long an online mirror waits for a catalog header or a block before saying so. */
export const MIRROR_WAIT_MS = 15_000

interface Source {
  catalogKey: string
  agencyNodeKey: string
  holder: Holder
  datasets: Datasets
}

export interface SourceStatus {
  catalogKey: string
  agencyNodeKey: string
  complete: boolean
  cores: HeldCore[]
  /** How much is held (status() only). */
  held?: HeldSummary
}

/** How much of a source is held (blocks of its dataset cores and catalog), from status(). */
export interface HeldSummary {
  /** Blocks held, wherever they are (a newest-first backfill holds the end first). */
  heldBlocks: number
  /** Blocks the newest verified heads list. */
  totalBlocks: number
  /** waiting: the catalog is not known yet; backfilling: prefetch runs; partial: prefetch off or sparse; complete: every verified block held. */
  state: 'waiting' | 'backfilling' | 'partial' | 'complete'
}

export class Mirror extends BaseRole implements DatasetReader {
  readonly name = 'mirror'
  /** A mirror reads from any holder of its agencies' data it finds on their topics. */
  override readonly dialsAnyone = true
  readonly sources = new Map<string, Source>()

  constructor(node: EmbassyNode) {
    super(node)
  }

  #guard: HistoryGuard | null = null
  #guardTimer: NodeJS.Timeout | null = null
  #fetch: MirrorFetch | null = null

  override async _open(): Promise<void> {
    await this.openNode()
    this.#fetch = new MirrorFetch(this.node.config.mirror)
    this.#fetch.onError = (err) => this.notice('error', 'error', `prefetch: ${err.message}`)
    this.#guard = new HistoryGuard({
      node: this.node,
      network: () => this.network,
      holders: () => [...this.sources.values()].map((s) => s.holder),
      notice: (level, event, message, fields) => this.notice(level, event, message, fields)
    })
    for (const s of this.node.config.sources) await this.#openSource(s.catalogKey, s.agencyNodeKey)
  }

  override async _close(): Promise<void> {
    if (this.#guardTimer) clearInterval(this.#guardTimer)
    this.#guardTimer = null
    this.#fetch?.close()
    for (const s of this.sources.values()) {
      await s.datasets.close()
      await s.holder.close()
    }
    this.sources.clear()
    this.#guard?.close()
  }

  get guard(): HistoryGuard {
    if (!this.#guard) throw EmbassyError.closed()
    return this.#guard
  }

  get fetcher(): MirrorFetch {
    if (!this.#fetch) throw EmbassyError.closed()
    return this.#fetch
  }

  /**
   * Changes how this mirror fetches (persisted in config.json, applied live): `prefetch`
   * newest | oldest | off, or `sparse` with a `cacheBytes` limit. Only the fields given change.
   */
  configure(change: MirrorSettings): MirrorSettings {
    if (change.cacheBytes !== undefined && (!Number.isSafeInteger(change.cacheBytes) || change.cacheBytes < 1)) {
      throw EmbassyError.badArgument(`cache size must be a whole number of bytes ≥ 1, not ${String(change.cacheBytes).slice(0, 40)}`)
    }
    const settings: MirrorSettings = { ...(this.node.config.mirror ?? {}), ...change }
    if (settings.sparse === false) delete settings.sparse
    if (!settings.sparse) delete settings.cacheBytes
    if (settings.prefetch === 'newest') delete settings.prefetch
    this.node.updateConfig((c) => {
      if (Object.keys(settings).length > 0) c.mirror = settings
      else delete c.mirror
    })
    this.fetcher.configure(settings)
    return settings
  }

  /** The operator takes the refused rewrite of one held core (explicit, persisted). */
  acceptRewrite(coreKey: Buffer, fork?: number): { core: Buffer; fork: number } {
    return this.guard.acceptRewrite(coreKey, fork)
  }

  override handlers(peer: Peer): CustodyHandlers {
    return { ...this.guard.handlers(peer), holders: (list) => this.#onHolders(peer, list) }
  }

  /**
   * A source agency lists the embassies that hold its data: admitted both ways and dialled (and
   * remembered: a mirror reaches them when the agency is gone). Only from that agency, for its catalog.
   */
  #onHolders(peer: Peer, list: HolderList): void {
    const agency = keyZ32(peer)
    const source = this.node.config.sources.find((x) => x.agencyNodeKey === agency && parseKey(x.catalogKey).equals(Buffer.from(list.catalog)))
    if (!source) return
    const own = this.node.nodeKey
    const holders = [...new Set(list.holders.filter((k) => !own.equals(Buffer.from(k))).map((k) => toZ32(k)))].sort()
    if (JSON.stringify(holders) !== JSON.stringify([...(source.holders ?? [])].sort())) {
      this.node.updateConfig((c) => {
        const entry = c.sources.find((x) => x.catalogKey === source.catalogKey)
        if (!entry) return
        if (holders.length > 0) entry.holders = holders
        else delete entry.holders
      })
      this.notice('info', 'holders-learnt', `agency ${agency} lists ${holders.length} holder(s) of its data`, { agency, holders })
      this.network?.rescope()
    }
    for (const h of holders) this.network?.joinPeer(parseKey(h))
  }

  /** Adds an agency from its read capability (persisted: config + keys.json). */
  async add(capability: string): Promise<{ catalogKey: string; agencyNodeKey: string; added: boolean }> {
    const cap = parseReadCapability(capability)
    const catalogKey = toZ32(cap.catalogKey)
    const agencyNodeKey = toZ32(cap.agencyNodeKey)
    const added = !this.node.config.sources.some((s) => s.catalogKey === catalogKey)
    this.node.updateKeys((k) => {
      k.readKeys = { ...(k.readKeys ?? {}), [catalogKey]: Buffer.from(cap.readKey).toString('hex') }
    })
    if (added) this.node.updateConfig((c) => c.sources.push({ catalogKey, agencyNodeKey }))
    const source = await this.#openSource(catalogKey, agencyNodeKey)
    if (this.network) this.#goOnline(source)
    return { catalogKey, agencyNodeKey, added }
  }

  async #openSource(catalogKey: string, agencyNodeKey: string): Promise<Source> {
    const have = this.sources.get(catalogKey)
    if (have) return have
    const hex = this.node.keys.readKeys?.[catalogKey]
    if (!hex) throw EmbassyError.badConfig(`keys.json has no read key for catalog ${catalogKey}; run \`embassy mirror READ_CAPABILITY\` again`)
    const fetch = this.fetcher
    const holder = new Holder(this.node.store, parseKey(catalogKey), this.guard.accepted(), { download: (core, info) => fetch.add(core, info) })
    this.guard.watch(holder)
    await holder.open()
    const datasets = new Datasets(this.node.store, holder.catalog, Buffer.from(hex, 'hex'), { writable: false })
    const source = { catalogKey, agencyNodeKey, holder, datasets }
    this.sources.set(catalogKey, source)
    return source
  }

  /** Admission rule: the agencies it reads, besides explicitly allowed peers (other mirrors). */
  protected override trusts(key: Buffer): boolean {
    const z = toZ32(key)
    return this.node.config.sources.some((s) => s.agencyNodeKey === z || (s.holders ?? []).includes(z))
  }

  /** Entitlement: a source agency and the holders it listed get that agency's catalog (and only it). */
  protected override trustedCatalogs(key: Buffer): Buffer[] {
    const z = toZ32(key)
    return this.node.config.sources.filter((s) => s.agencyNodeKey === z || (s.holders ?? []).includes(z)).map((s) => parseKey(s.catalogKey))
  }

  protected override catalogOfAgency(agencyNodeKey: string): Buffer | null {
    const s = this.node.config.sources.find((x) => x.agencyNodeKey === agencyNodeKey)
    return s ? parseKey(s.catalogKey) : null
  }

  protected override scopeableAgencies(): string[] {
    return this.node.config.sources.map((s) => s.agencyNodeKey)
  }

  protected handshakeCatalogs(): Buffer[] {
    return [...this.sources.values()].map((s) => s.holder.key)
  }

  reader(): DatasetReader {
    return this
  }

  async status(): Promise<Record<string, unknown>> {
    const sources = []
    for (const s of this.sourceStatus()) sources.push({ ...s, held: await this.held(s.catalogKey) })
    return { sources, fetch: this.fetchStatus(), alarms: [...this.guard.alarms.alarms], alarmCounts: { ...this.guard.alarms.counts } as Record<AlarmKind, number> }
  }

  /** Every held core (a full copy), labelled by its key. */
  async heldCores(): Promise<HeldCoreRef[]> {
    const out: HeldCoreRef[] = []
    for (const s of this.sources.values()) out.push(...(await s.holder.refs()))
    return out
  }

  async attach(network: Network): Promise<void> {
    this.bindNetwork(network)
    this.#guardTimer = setInterval(() => {
      this.guard.tick().catch((err) => this.notice('error', 'error', `history guard: ${(err as Error).message}`))
    }, GUARD_TICK_MS)
    this.#guardTimer.unref?.()
    network.on('peer', (peer) => this.guard.greet(peer))
    this.fetcher.online()
    for (const s of this.sources.values()) this.#goOnline(s)
    for (const p of this.node.config.peers) network.joinPeer(parseKey(p))
  }

  #goOnline(s: Source): void {
    const network = this.network
    if (!network) return
    s.holder.on('core-added', (k) => this.notice('info', 'dataset-picked-up', `holding core ${toZ32(k)} of catalog ${s.catalogKey}`, { catalog: s.catalogKey, core: toZ32(k) }))
    s.holder.on('caught-up', (core) => this.notice('info', 'caught-up', `core ${keyZ32(core)} complete at length ${core.length}`, { core: keyZ32(core), length: core.length }))
    s.holder.on('error', (err) => this.notice('error', 'error', err.message))
    this.offerHeld(s.holder)
    network.joinPeer(parseKey(s.agencyNodeKey))
    for (const h of this.node.config.sources.find((x) => x.catalogKey === s.catalogKey)?.holders ?? []) network.joinPeer(parseKey(h))
    void network.join(agencyTopic(s.holder.key), { server: true, client: true })
  }

  get online(): boolean {
    return this.network !== null
  }

  /** Checks the read key against the catalog (waiting for the header when online). */
  async #checked(s: Source): Promise<Source> {
    try {
      await s.datasets.catalog.checkReadKey(s.datasets.readKey, { wait: this.online, timeout: MIRROR_WAIT_MS })
    } catch (err) {
      if ((err as { code?: string }).code === 'REQUEST_TIMEOUT') {
        throw EmbassyError.timeout(`no holder of catalog ${s.catalogKey} answered within ${MIRROR_WAIT_MS / 1000} s`)
      }
      if ((err as EmbassyError).code === 'NOT_AVAILABLE') {
        throw EmbassyError.notAvailable(`catalog ${s.catalogKey} is not replicated here yet; run \`embassy run\` to fetch it`)
      }
      throw err
    }
    if (this.online) await this.#catchUpCatalog(s)
    return s
  }

  /**
   * Online, a name may be in catalog blocks not downloaded yet: fetch the catalog to the newest
   * length the peers know before resolving names (bounded by MIRROR_WAIT_MS).
   */
  async #catchUpCatalog(s: Source): Promise<void> {
    const core = s.holder.catalog.core
    const work = (async () => {
      await core.update({ wait: true })
      if (core.contiguousLength < core.length) await core.download({ start: 0, end: core.length }).done()
    })()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, MIRROR_WAIT_MS)
    })
    try {
      await Promise.race([work.catch(() => {}), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  async #find(name: string): Promise<Source> {
    const hits: Source[] = []
    for (const s of this.sources.values()) {
      await this.#checked(s)
      if ((await s.datasets.infos()).some((d) => d.name === name)) hits.push(s)
    }
    if (hits.length === 0) {
      if (this.sources.size === 0) throw EmbassyError.notAvailable('this mirror reads no agency yet: run `embassy mirror READ_CAPABILITY`')
      throw EmbassyError.unknownDataset(name)
    }
    if (hits.length > 1) throw EmbassyError.ambiguousDataset(name, hits.length)
    return hits[0] as Source
  }

  async list(): Promise<DatasetSummary[]> {
    const out: DatasetSummary[] = []
    for (const s of this.sources.values()) out.push(...(await (await this.#checked(s)).datasets.list()))
    return out
  }

  async *read(name: string, opts: ReadOptions = {}): AsyncGenerator<RecordView> {
    const s = await this.#find(name)
    const log = await s.datasets.openLog(name)
    const wait = opts.wait ?? this.online
    if (wait) await log.core.update({ wait: true })
    yield* log.read({ timeout: MIRROR_WAIT_MS, ...opts, wait })
  }

  /** Exports a dataset; online, blocks not held are fetched from any holder (each within MIRROR_WAIT_MS). */
  async export(name: string, dir: string, onProgress?: Progress): Promise<ExportResult> {
    const s = await this.#find(name)
    return s.datasets.export(name, dir, onProgress, { wait: this.online, timeout: MIRROR_WAIT_MS })
  }

  async openFiles(name: string): Promise<FilesDataset> {
    const s = await this.#find(name)
    return s.datasets.openFiles(name)
  }

  async openLog(name: string): Promise<LogDataset> {
    const s = await this.#find(name)
    return s.datasets.openLog(name)
  }

  /** Each agency read, with its Datasets (which never wait for peers, unlike the methods above). */
  catalogs(): ReadableCatalog[] {
    return [...this.sources.values()].map((s) => ({ catalogKey: parseKey(s.catalogKey), agencyNodeKey: parseKey(s.agencyNodeKey), datasets: s.datasets }))
  }

  /** How this mirror fetches, and its sparse cache. */
  fetchStatus(): FetchStatus {
    return this.fetcher.status()
  }

  /** Sparse: half the cache may be fetched ahead of a reader (the rest holds what was read); else no bound. */
  readAheadBytes(): number | null {
    const s = this.fetcher.status()
    return s.sparse && s.cacheBytes !== null ? Math.floor(s.cacheBytes / 2) : null
  }

  /** How much of source `catalogKey` is held: blocks of every core (the catalog included) against the verified lengths. */
  async held(catalogKey: string): Promise<HeldSummary> {
    const s = this.sources.get(catalogKey)
    if (!s) throw EmbassyError.unknownAgency(`this mirror reads no agency with catalog ${catalogKey}`)
    let heldBlocks = 0
    let totalBlocks = 0
    const waiting = s.holder.catalog.core.length === 0
    // A peer that has more than this core's verified length: the newer head is still on its way.
    let behind = false
    let prefetching = false
    for (const core of s.holder.allCores()) {
      if (core.closing || !core.opened) continue
      const length = core.length
      totalBlocks += length
      heldBlocks += length > 0 ? await core.count(0, length) : 0
      if (core.peers.some((p) => p.remoteLength > length)) behind = true
      if (this.fetcher.prefetching(core)) prefetching = true
    }
    const state = waiting ? 'waiting' : heldBlocks === totalBlocks && !behind ? 'complete' : prefetching && this.fetcher.prefetch !== 'off' ? 'backfilling' : 'partial'
    return { heldBlocks, totalBlocks, state }
  }

  /** Per agency read: how complete the local copy is. */
  sourceStatus(): SourceStatus[] {
    return [...this.sources.values()].map((s) => ({
      catalogKey: s.catalogKey,
      agencyNodeKey: s.agencyNodeKey,
      complete: s.holder.complete,
      cores: s.holder.held()
    }))
  }
}
