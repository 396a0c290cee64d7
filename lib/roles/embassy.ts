/**
 * Embassy: holds blind, full, live copies of every dataset of the agencies it follows, and serves
 * them to allowed peers (mirrors, other embassies) — also when the agency is gone.
 */
import { agencyTopic } from '../node/caps.js'
import { EmbassyError } from '../errors.js'
import { Holder, type HeldCore, type HeldCoreUse } from './holder.js'
import { parseKey, keyZ32, toZ32 } from '../ids.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import type Hypercore from 'hypercore'
import { compactReceipt, signReceipt } from '../custody/receipts.js'
import { treeHashAt } from '../data/tree.js'
import type { HeldCoreEntry, HeldCoreRef, WindowRef } from '../data/held-core.js'
import { BaseRole } from './role.js'
import { CAUGHT_UP_LOG_MS, CaughtUpLog } from './milestones.js'
import { NEVER_REACHED_ALARM_SECONDS } from '../node/config.js'
import { GUARD_TICK_MS, HistoryGuard } from './guard.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import { ChallengeAnswerer, InOrder, type Alarm, type AlarmKind } from '../custody/index.js'
import { AlarmCode, INSTANCE_CAPABILITY, type AppendedNotice, type HolderList, type Receipt } from '../../protocol/index.js'
import { DEFAULT_MAX_OPEN_CORES, OpenCores, readerWindow } from './open-cores.js'

/** How long after two instances of one agency alternated an embassy keeps telling each of them. */
export const TWIN_REPORT_MS = 10 * 60_000
import { QuotaDesk, type QuotaLimits, type QuotaStatus, type UnlimitedStatus } from './quota.js'

/** At most one receipt per core per this many ms while catching up; at once when caught up. */
export const RECEIPT_INTERVAL_MS = 1000

export interface AgencyHolding {
  nodeKey: string
  catalogKey: string | null
  connected: boolean
  /** When the newest receipt went to this agency (ms since epoch), null if never. */
  lastReceiptAt: number | null
  receiptsSent: number
  complete: boolean
  cores: HeldCore[]
  problems: string[]
  /** Its quota (`follow --max-bytes/--max-cores`): limits, and state and usage once its catalog is held. */
  quota: QuotaStatus | UnlimitedStatus | QuotaLimits
}

export interface EmbassyEvents {
  /** Learnt an agency's catalog key from the agency itself. */
  'catalog-learnt': [agencyKey: string, catalogKey: string]
  'core-added': [catalogKey: string, coreKey: string]
  'caught-up': [catalogKey: string, coreKey: string, length: number]
  error: [err: Error]
}

export class Embassy extends BaseRole {
  readonly name = 'embassy'
  readonly holders = new Map<string, Holder>()
  #problems = new Map<string, string[]>()
  /** Cores (hex key) whose receipt is due at the next tick, with their holder. */
  #dirty = new Map<string, { holder: Holder; core: Hypercore }>()
  #lastSent = new Map<string, number>()
  /**
   * Cores just opened (picked up, or opened again) whose receipt waits for a peer's first sync
   * (hex key): a core just opened has length 0 until then, so an empty core's receipt waits for a
   * peer to confirm it (else every core would get a length-0 receipt on pick-up, a third of all
   * receipts at scale); a core complete here gets one once the agency confirms it has no more.
   * Those that fetch blocks get theirs when the blocks arrive. Checked by the one tick.
   */
  #awaitingSync = new Map<string, { holder: Holder; core: Hypercore }>()
  /** The newest receipt sent per core (hex key): re-sent for a closed core when its agency reconnects. */
  #receipts = new Map<string, Receipt>()
  /** Each core's receipts leave in the order they were begun. */
  #sends = new InOrder()
  /** Catalogs (hex) whose agency sends no `appended` notices (minor < 5): their cores stay open. */
  #noNotices = new Set<string>()
  #bound: OpenCores | null = null
  /** The length each core last caught up at (hex key → length). */
  #caughtUpAt = new Map<string, number>()
  /** Per followed agency (z32): its recent instances (newest last), and when two alternated. */
  #instances = new Map<string, { recent: string[]; twinAt: number }>()
  #timer: NodeJS.Timeout | null = null
  #guardTimer: NodeJS.Timeout | null = null
  #guard: HistoryGuard | null = null
  #receiptsByAgency = new Map<string, { at: number; count: number }>()
  /** `caught-up` log lines as milestones (milestones.ts), not one per append. */
  #caughtUpLog = new CaughtUpLog(
    (level, event, message, fields) => this.notice(level, event, message, fields),
    () => (this.node.config.caughtUpLogSeconds ?? CAUGHT_UP_LOG_MS / 1000) * 1000
  )
  #quotas: QuotaDesk | null = null
  #answerer: ChallengeAnswerer | null = null

  constructor(node: EmbassyNode) {
    super(node)
  }

  override async _open(): Promise<void> {
    await this.openNode()
    this.#bound = new OpenCores(this.node.config.maxOpenCores ?? DEFAULT_MAX_OPEN_CORES)
    this.#guard = new HistoryGuard({
      node: this.node,
      network: () => this.network,
      holders: () => this.holders.values(),
      notice: (level, event, message, fields) => this.notice(level, event, message, fields)
    })
    for (const f of this.node.config.follow) if (f.catalogKey) await this.#hold(f.nodeKey, f.catalogKey)
  }

  override async _close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    if (this.#guardTimer) clearInterval(this.#guardTimer)
    this.#timer = null
    this.#guardTimer = null
    this.#quotas?.close() // first: no quota evaluation runs on cores being closed
    this.#bound?.close() // pick-up waiting for a slot gives up
    for (const h of this.holders.values()) await h.close()
    this.holders.clear()
    this.#caughtUpLog.close()
    this.#guard?.close()
  }

  get guard(): HistoryGuard {
    if (!this.#guard) throw EmbassyError.closed()
    return this.#guard
  }

  /** The operator takes the refused rewrite of one held core (explicit, persisted). */
  acceptRewrite(coreKey: Buffer, fork?: number): { core: Buffer; fork: number } {
    return this.guard.acceptRewrite(coreKey, fork)
  }

  /** This embassy's alarms (refused rewrites, equivocations, bad heads), newest last. */
  get alarms(): readonly Alarm[] {
    return this.guard.alarms.alarms
  }

  /** Follows an agency by node key: allows it, dials it, learns its catalog key from it. */
  /** Per-agency quotas (quota.ts). */
  get quotas(): QuotaDesk {
    this.#quotas ??= new QuotaDesk({
      follow: () => this.node.config.follow,
      alarms: this.guard.alarms,
      notice: (level, event, message, fields) => this.notice(level, event, message, fields),
      agencyPeer: (agency) => this.network?.connectedTo(parseKey(agency)) ?? null
    })
    return this.#quotas
  }

  async follow(agencyNodeKey: string, quota?: FollowQuota): Promise<{ nodeKey: string; catalogKey: string | null; added: boolean; quota: QuotaStatus | UnlimitedStatus | QuotaLimits }> {
    const key = parseKey(agencyNodeKey, 'agency node key')
    const z = toZ32(key)
    const existing = this.node.config.follow.find((f) => f.nodeKey === z)
    if (!existing) this.node.updateConfig((c) => c.follow.push({ nodeKey: z, catalogKey: null }))
    this.network?.joinPeer(key)
    if (quota) setQuota(this, z, quota)
    const status = (quota ? await this.quotas.update(z) : null) ?? this.quotas.status(z)
    return { nodeKey: z, catalogKey: existing?.catalogKey ?? null, added: !existing, quota: status }
  }

  /** Admission rule: followed agencies and the other holders they listed, besides explicitly allowed peers. */
  protected override trusts(key: Buffer): boolean {
    const z = toZ32(key)
    return this.node.config.follow.some((f) => f.nodeKey === z || (f.holders ?? []).includes(z))
  }

  /** Entitlement: a followed agency and the holders it listed get that agency's catalog (and only it). */
  protected override trustedCatalogs(key: Buffer): Buffer[] {
    const z = toZ32(key)
    return this.node.config.follow.filter((f) => f.catalogKey && (f.nodeKey === z || (f.holders ?? []).includes(z))).map((f) => parseKey(f.catalogKey!))
  }

  protected override catalogOfAgency(agencyNodeKey: string): Buffer | null {
    const f = this.node.config.follow.find((x) => x.nodeKey === agencyNodeKey)
    return f?.catalogKey ? parseKey(f.catalogKey) : null
  }

  protected override scopeableAgencies(): string[] {
    return this.node.config.follow.map((f) => f.nodeKey)
  }

  /** Answers audit challenges from this embassy's own storage (custody/audit.ts). */
  get answerer(): ChallengeAnswerer {
    // A held core closed while idle is opened again for the answer; the answer reads through a
    // session of its own, so the bound never closes the core under it.
    this.#answerer ??= new ChallengeAnswerer(this.node.keyPair, async (key) => {
      for (const h of this.holders.values()) {
        if (!h.holds(key)) continue
        const core = h.find(key) ?? (await h.wake(key))
        if (!core || core.closing) return null
        const session = core.session()
        await session.ready()
        return { core: session, release: () => void session.close().catch(() => {}) }
      }
      return null
    })
    return this.#answerer
  }

  override handlers(peer: Peer): CustodyHandlers {
    return {
      ...this.guard.handlers(peer),
      challenge: (ch) => this.answerer.handle(peer, ch),
      holders: (list) => this.#onHolders(peer, list),
      appended: (n) => this.#onAppended(peer, n)
    }
  }

  /**
   * The agency says which of its cores grew (on connect, and after appends): a held core closed
   * while idle is opened again when the agency has more than it held (waiting for a slot under
   * the bound). Only the followed agency of that catalog is listened to; unknown cores are ignored.
   * A notice is a hint: what is fetched is verified against the writer's signature as always.
   */
  #onAppended(peer: Peer, n: AppendedNotice): void {
    if (peer.role !== 'agency') return
    const agency = keyZ32(peer)
    const f = this.node.config.follow.find((x) => x.nodeKey === agency)
    if (!f?.catalogKey || !parseKey(f.catalogKey).equals(Buffer.from(n.catalog))) return
    const holder = this.holders.get(Buffer.from(n.catalog).toString('hex'))
    if (!holder) return
    for (const c of n.cores) holder.announce(c.core, c.length, c.fork)
  }

  /**
   * A peer opened the channel of a held core that is closed (the bound of open cores): open it
   * again if that peer may replicate its catalog (the network attaches it within scope).
   */
  async #onCoreWanted(dk: Buffer, peer: Peer): Promise<void> {
    const scope = this.network?.scopeOf(peer)
    if (!scope) return
    for (const holder of this.holders.values()) {
      const key = holder.byDiscoveryKey(dk)
      if (!key) continue
      const entitled = scope.all || scope.catalogs.some((c) => c.equals(holder.key)) || scope.downloadOnly.some((c) => c.equals(holder.key))
      if (!entitled) return
      const conn = peer.conn as { destroyed?: boolean }
      const core = await holder.wake(key, { for: { key: peer.key, gone: () => conn.destroyed === true } })
      // Offered when it opened ('core-opened'); attached to this connection once ready.
      if (core && !core.opened) await core.ready().catch(() => {})
      return
    }
  }

  /**
   * Whether an open, caught-up core is settled, so the bound may close it: its agency sends
   * notices, no quota measures it, the agency (when connected) confirmed it has no more, and the
   * receipt for what is held went (re-sent from memory on reconnect). With the agency away, a core
   * no connected peer has more of is settled too: the agency's notice on reconnect says what grew.
   */
  #settled(holder: Holder, agencyKey: string, core: Hypercore): boolean {
    if (this.#noNotices.has(holder.key.toString('hex')) || this.quotas.limited(agencyKey)) return false
    const hex = core.key!.toString('hex')
    if (this.#dirty.has(hex)) return false
    const agency = this.#agencyPeer(holder)
    for (const p of core.peers) {
      if (p.remoteFork === core.fork && p.remoteLength > core.length) return false // more is coming
    }
    if (!agency) return !this.#awaitingSync.has(hex) || core.peers.length === 0
    if (this.#awaitingSync.has(hex)) return false
    const own = core.peers.find((p) => agency.key.equals(Buffer.from(p.remotePublicKey)))
    if (!own || (own as { remoteSynced?: boolean }).remoteSynced !== true) return false
    const r = this.#receipts.get(hex)
    return !!r && r.length === core.contiguousLength && r.fork === core.fork
  }

  /** The agency lists its embassies: admit them, dial them, cross-check heads with them. */
  #onHolders(peer: Peer, list: HolderList): void {
    const agency = keyZ32(peer)
    const f = this.node.config.follow.find((x) => x.nodeKey === agency)
    if (!f || !f.catalogKey || !parseKey(f.catalogKey).equals(Buffer.from(list.catalog))) return
    const own = this.node.nodeKey
    const holders = [...new Set(list.holders.filter((k) => !own.equals(Buffer.from(k))).map((k) => toZ32(k)))].sort()
    if (JSON.stringify(holders) !== JSON.stringify([...(f.holders ?? [])].sort())) {
      this.node.updateConfig((c) => {
        const entry = c.follow.find((x) => x.nodeKey === agency)
        if (!entry) return
        if (holders.length > 0) entry.holders = holders
        else delete entry.holders
      })
      this.notice('info', 'holders-learnt', `agency ${agency} lists ${holders.length} other holder(s) of its data`, { agency, holders })
      this.network?.rescope()
    }
    for (const h of holders) this.network?.joinPeer(parseKey(h))
  }

  protected handshakeCatalogs(): Buffer[] {
    return [...this.holders.values()].map((h) => h.key)
  }

  /** Blind: an embassy reads nothing. */
  reader(): null {
    return null
  }

  async status(): Promise<Record<string, unknown>> {
    return { agencies: this.holdings(), openCores: this.openCores(), alarms: [...this.guard.alarms.alarms], alarmCounts: { ...this.guard.alarms.counts } as Record<AlarmKind, number> }
  }

  /**
   * The bound of open held cores (`maxOpenCores`): how many are open now, how many are held in
   * all, and how often cores were closed and opened again since start.
   */
  openCores(): OpenCoresStatus {
    let held = 0
    let closed = 0
    let reopened = 0
    for (const h of this.holders.values()) {
      held += h.cores.size
      closed += h.stats.closed
      reopened += h.stats.reopened
    }
    return { max: this.#bound?.max ?? 0, open: this.#bound?.open ?? 0, held, closes: closed, reopens: reopened }
  }

  /**
   * Runs `fn` over the held cores `select` picks (from every held core, described without
   * opening it), a window at a time (readerWindow of the bound: at most the bound plus one window
   * of cores are open): each window's cores are opened (closed ones at once), kept open while its
   * `fn` runs, then released — those opened for it closed again, the bound closing what else is
   * over it. A core that cannot be opened reaches `fn` described, with why. At least one window
   * (an empty one when nothing is selected). Returns each window's result, in order.
   */
  async forHeldCores<T>(select: (entries: HeldCoreEntry[]) => HeldCoreEntry[], fn: (refs: WindowRef[]) => Promise<T>): Promise<T[]> {
    const all: HeldCoreEntry[] = []
    for (const h of this.holders.values()) all.push(...h.entries())
    const chosen = select(all)
    const size = readerWindow(this.#bound?.max ?? DEFAULT_MAX_OPEN_CORES)
    const out: T[] = []
    let at = 0
    do {
      out.push(await this.#window(chosen.slice(at, at + size), fn))
      at += size
    } while (at < chosen.length)
    return out
  }

  /** One window of forHeldCores: its cores taken from their holders, `fn` run, each released (also on error). */
  async #window<T>(entries: HeldCoreEntry[], fn: (refs: WindowRef[]) => Promise<T>): Promise<T> {
    const taken = await Promise.allSettled(
      entries.map((e): Promise<HeldCoreUse> => {
        const holder = this.holders.get(e.catalog.toString('hex'))
        return holder ? holder.use(e) : Promise.resolve({ ref: { ...e, error: EmbassyError.closed() }, release: async () => {} })
      })
    )
    const uses = taken.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
    try {
      const failed = taken.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
      return await fn(uses.map((u) => u.ref))
    } finally {
      await Promise.all(uses.map((u) => u.release()))
      this.#bound?.poke()
    }
  }

  /** Every held core (ciphertext), labelled by its key (closed ones opened again). */
  async heldCores(): Promise<HeldCoreRef[]> {
    const out: HeldCoreRef[] = []
    for (const h of this.holders.values()) out.push(...(await h.refs()))
    return out
  }

  /** Goes online: dials followed agencies, announces every held catalog's topic. */
  async attach(network: Network): Promise<void> {
    this.bindNetwork(network)
    for (const h of this.holders.values()) this.offerHeld(h)
    this.on('catalog-learnt', (agency, catalog) => this.notice('info', 'catalog-learnt', `agency ${agency} publishes catalog ${catalog}`, { agency, catalog }))
    this.on('core-added', (catalog, core) => this.notice('info', 'dataset-picked-up', `holding core ${core} of catalog ${catalog}`, { catalog, core }))
    this.on('caught-up', (catalog, core, length) => this.#caughtUpLog.caughtUp(catalog, core, length))
    this.on('error', (err) => this.notice('error', 'error', err.message))
    network.on('peer', (peer) => {
      this.#onpeer(peer)
      this.guard.greet(peer)
    })
    network.on('peer-lost', (peer) => this.guard.farewell(peer))
    network.wanted = (dk, peer) => this.#onCoreWanted(dk, peer)
    this.#timer = setInterval(() => this.#tick(), RECEIPT_INTERVAL_MS / 4)
    this.#timer.unref?.()
    this.#guardTimer = setInterval(() => {
      this.guard.tick().catch((err) => this.notice('error', 'error', `history guard: ${(err as Error).message}`))
      this.#checkNeverReached()
    }, GUARD_TICK_MS)
    this.#guardTimer.unref?.()
    for (const f of this.node.config.follow) {
      network.joinPeer(parseKey(f.nodeKey))
      for (const h of f.holders ?? []) network.joinPeer(parseKey(h))
    }
    for (const h of this.holders.values()) void network.join(agencyTopic(h.key), { server: true, client: true })
  }

  /**
   * Two live copies of one agency (a kit imported while the original runs) knock each other's
   * connection off here as both redial. A restart shows a new instance once (A → B); two live
   * copies alternate (A → B → A). Then: an alarm here, and a report to every connection of that
   * agency for TWIN_REPORT_MS, so each copy learns it (the agency stops writing on a quorum).
   */
  #checkInstance(peer: Peer, agency: string, catalog: Buffer): void {
    const cap = peer.handshake?.capabilities.find((x) => x.startsWith(INSTANCE_CAPABILITY))
    const instance = cap && /^[0-9a-f]{32}$/.test(cap.slice(INSTANCE_CAPABILITY.length)) ? cap.slice(INSTANCE_CAPABILITY.length) : null
    let seen = this.#instances.get(agency)
    if (!seen) this.#instances.set(agency, (seen = { recent: [], twinAt: 0 }))
    const now = Date.now()
    if (instance) {
      const at = seen.recent.indexOf(instance)
      if (at !== -1 && at !== seen.recent.length - 1) {
        const first = now - seen.twinAt >= TWIN_REPORT_MS
        seen.twinAt = now
        if (first) {
          const detail = `two live nodes connect with agency ${agency}'s key (instances alternate: ${seen.recent.map((x) => x.slice(0, 8)).join(', ')}): a kit imported while the original runs? Tell its operator; one of them must stand down`
          if (this.guard.alarms.add({ time: now, kind: 'second-live-node', peer: agency, core: toZ32(catalog), detail })) this.notice('error', 'second-live-node', detail, { agency })
        }
      }
      // A new instance is a restart (the operator stood one copy down and restarted the other):
      // stop reporting; if two still run, they alternate again and are reported again.
      if (at === -1) seen.twinAt = 0
      if (at !== -1) seen.recent.splice(at, 1)
      seen.recent.push(instance)
      if (seen.recent.length > 4) seen.recent.shift()
    }
    if (seen.twinAt > 0 && now - seen.twinAt < TWIN_REPORT_MS && peer.channel.supports('alarm')) {
      peer.channel.send('alarm', { code: AlarmCode.SECOND_LIVE_NODE, core: catalog, length: 0, fork: 0, offeredLength: 0, offeredFork: 0, offeredBy: Buffer.alloc(32), time: now, heads: [] })
    }
  }

  #onpeer(peer: Peer): void {
    if (peer.role !== 'agency' || !peer.handshake) return
    const z = keyZ32(peer)
    const f = this.node.config.follow.find((x) => x.nodeKey === z)
    const catalog = peer.handshake.catalogs[0]
    if (!f || !catalog) return
    this.#checkInstance(peer, z, Buffer.from(catalog))
    const catalogKey = toZ32(catalog)
    if (f.catalogKey === catalogKey) {
      // Reconnected: tell the agency at once what we hold.
      const holder = this.holders.get(Buffer.from(catalog).toString('hex'))
      if (holder) {
        this.#notices(holder, peer)
        void this.#sendAll(holder)
      }
      this.quotas.greet(z)
      return
    }
    if (f.catalogKey !== null) {
      this.#problem(z, `agency now names catalog ${catalogKey}, but ${f.catalogKey} is held; keeping the held one`)
      return
    }
    this.node.updateConfig((c) => {
      const entry = c.follow.find((x) => x.nodeKey === z)
      if (entry) entry.catalogKey = catalogKey
    })
    this.emit('catalog-learnt', z, catalogKey)
    this.#hold(z, catalogKey).catch((err) => this.emit('error', err))
  }

  /**
   * An agency that sends no `appended` notices (minor < 5) would never say a closed core grew:
   * its cores are all opened again and stay open (the bound closes none of them).
   */
  #notices(holder: Holder, peer: Peer): void {
    const hex = holder.key.toString('hex')
    if (peer.channel.supports('appended')) {
      this.#noNotices.delete(hex)
      return
    }
    if (this.#noNotices.has(hex)) return
    this.#noNotices.add(hex)
    for (const e of [...holder.cores.values()]) if (!e.core) void holder.wake(e.key)
  }

  async #hold(agencyKey: string, catalogKey: string): Promise<Holder> {
    const key = parseKey(catalogKey, 'catalog key')
    const hex = key.toString('hex')
    const have = this.holders.get(hex)
    if (have) return have
    const holder: Holder = new Holder(this.node.store, key, this.guard.accepted(), {
      ...this.quotas.holderOptions(agencyKey, key),
      ...(this.#bound ? { bound: this.#bound } : {}),
      parkable: (core) => this.#settled(holder, agencyKey, core),
      beforePark: (core) => this.guard.witness(holder, core, { gossip: false })
    })
    this.quotas.attach(agencyKey, holder)
    this.holders.set(hex, holder)
    this.guard.watch(holder)
    holder.on('core-added', (k) => this.emit('core-added', catalogKey, toZ32(k)))
    // Its receipt goes once a peer's sync confirms what it holds (#tick), or when blocks arrive.
    holder.on('core-opened', (k, core) => this.#awaitingSync.set(k.toString('hex'), { holder, core }))
    holder.on('core-closing', (k, core) => {
      this.network?.release(core)
      const hex = k.toString('hex')
      if (this.#awaitingSync.get(hex)?.core === core) this.#awaitingSync.delete(hex)
      if (this.#dirty.get(hex)?.core === core) this.#dirty.delete(hex)
    })
    holder.on('caught-up', (core) => this.emit('caught-up', catalogKey, keyZ32(core), core.length))
    holder.on('progress', (core) => this.#onprogress(holder, core))
    holder.on('error', (err) => this.emit('error', err))
    await holder.open()
    this.offerHeld(holder)
    this.#checkHeader(agencyKey, holder).catch(() => {})
    if (this.network) void this.network.join(agencyTopic(key), { server: true, client: true })
    return holder
  }

  #onprogress(holder: Holder, core: Hypercore): void {
    const hex = core.key!.toString('hex')
    // Caught up (every live append ends here): send at once. Catching up: at most once a second.
    if (core.contiguousLength === core.length) {
      this.#dirty.delete(hex)
      // Several blocks can complete the same length (the tail of a transfer): one receipt for it.
      if (this.#caughtUpAt.get(hex) === core.length) return
      this.#caughtUpAt.set(hex, core.length)
      void this.#send(holder, core)
    } else {
      this.#dirty.set(hex, { holder, core })
    }
  }

  #tick(): void {
    const now = Date.now()
    this.#bound?.poke() // pick-up waiting for a slot: a core may have become closable meanwhile
    for (const [hex, { holder, core }] of this.#awaitingSync) {
      if (core.closing || core.contiguousLength !== core.length) {
        this.#awaitingSync.delete(hex) // fetching: its receipt goes when its blocks arrive
        continue
      }
      // A peer's first sync says how long the core is: no longer there (a longer one is fetched first).
      const synced = core.peers.filter((p) => (p as { remoteSynced?: boolean }).remoteSynced === true)
      if (synced.length === 0 || synced.some((p) => p.remoteFork === core.fork && p.remoteLength > core.length)) continue
      this.#awaitingSync.delete(hex)
      const r = this.#receipts.get(hex)
      if (r && r.length === core.contiguousLength && r.fork === core.fork) holder.settle(core) // said already
      else void this.#send(holder, core)
    }
    for (const [hex, { holder, core }] of this.#dirty) {
      if (now - (this.#lastSent.get(hex) ?? 0) < RECEIPT_INTERVAL_MS) continue
      this.#dirty.delete(hex)
      void this.#send(holder, core)
    }
  }

  /** The connected agency peer that owns `holder`'s catalog, if any. */
  #agencyPeer(holder: Holder): Peer | null {
    const catalogKey = toZ32(holder.key)
    const f = this.node.config.follow.find((x) => x.catalogKey === catalogKey)
    return f ? (this.network?.connectedTo(parseKey(f.nodeKey)) ?? null) : null
  }

  /**
   * Everything held, to the (re)connected agency: a fresh receipt per open core; for a closed one
   * the newest receipt sent (still true: nothing held is ever dropped), or, without one for what
   * it holds, the core is opened again (waiting for a slot) and receipted.
   */
  async #sendAll(holder: Holder): Promise<void> {
    await this.#send(holder, holder.catalog.core)
    for (const e of [...holder.cores.values()]) {
      if (e.core) {
        await this.#send(holder, e.core)
        continue
      }
      const r = this.#receipts.get(e.key.toString('hex'))
      const peer = this.#agencyPeer(holder)
      if (!peer) return
      if (r && r.length === e.contiguousLength && r.fork === e.fork) this.#sent(peer, r)
      else if (!e.busy) void holder.wake(e.key, { queue: true })
    }
  }

  /**
   * Signs and sends a receipt for what we hold of `core`, after any receipt of it already begun
   * (in-order.ts: a receipt hashed from storage must not reach the agency after a newer one).
   */
  #send(holder: Holder, core: Hypercore): Promise<void> {
    return this.#sends.run(core.key!.toString('hex'), () => this.#sendNow(holder, core))
  }

  async #sendNow(holder: Holder, core: Hypercore): Promise<void> {
    const peer = this.#agencyPeer(holder)
    if (!peer || core.closing) return
    const length = core.contiguousLength
    let treeHash: Buffer
    try {
      // At the signed length from the roots in memory: no storage read, so the receipt goes in the
      // same turn even for a core that is closing (its last progress is said as it closes).
      treeHash = await treeHashAt(core, length)
    } catch {
      return // closing, or the tree is not there yet: the next progress sends one
    }
    const r = signReceipt(this.node.keyPair, { core: core.key!, length, treeHash, fork: core.fork, time: Date.now() })
    if (this.#sent(peer, r)) {
      this.#lastSent.set(core.key!.toString('hex'), r.time)
      if (core !== holder.catalog.core) {
        this.#receipts.set(core.key!.toString('hex'), compactReceipt(r)) // kept while held: no pool slab with it
        holder.settle(core)
      }
    }
  }

  /** Sends receipt `r` to the agency peer; counts it. */
  #sent(peer: Peer, r: Receipt): boolean {
    if (!peer.channel.send('receipt', r)) return false
    const agency = keyZ32(peer)
    const prev = this.#receiptsByAgency.get(agency)
    this.#receiptsByAgency.set(agency, { at: Date.now(), count: (prev?.count ?? 0) + 1 })
    return true
  }

  /** The catalog header must name the agency we follow; otherwise we record a problem. */
  async #checkHeader(agencyKey: string, holder: Holder): Promise<void> {
    const header = await holder.catalog.header({ wait: true, timeout: 0 })
    if (toZ32(header.agencyNodeKey) !== agencyKey) {
      this.#problem(agencyKey, `catalog header names agency ${toZ32(header.agencyNodeKey)}, not the followed ${agencyKey}`)
    }
  }

  #problem(agencyKey: string, text: string): void {
    const list = this.#problems.get(agencyKey) ?? []
    list.push(text)
    this.#problems.set(agencyKey, list)
    this.emit('error', EmbassyError.badCatalog(text))
  }

  /** A followed agency never reached past `neverReachedAlarmSeconds` since `embassy follow`: one alarm. */
  #checkNeverReached(now = Date.now()): void {
    const limit = (this.node.config.neverReachedAlarmSeconds ?? NEVER_REACHED_ALARM_SECONDS) * 1000
    for (const f of this.node.config.follow) {
      if (f.catalogKey !== null || f.followedAt === undefined || now - f.followedAt < limit) continue
      if (this.guard.alarms.alarms.some((a) => a.kind === 'never-reached' && a.peer === f.nodeKey)) continue
      const detail = `agency ${f.nodeKey} not reached in ${Math.round((now - f.followedAt) / 1000)} s since \`embassy follow\`: check its node key and that it allows this embassy`
      if (this.guard.alarms.add({ time: now, kind: 'never-reached', peer: f.nodeKey, core: null, detail })) this.notice('error', 'never-reached', `never-reached: ${detail}`, { agency: f.nodeKey })
    }
  }

  /** What is held, per followed agency. */
  holdings(): AgencyHolding[] {
    return this.node.config.follow.map((f) => {
      const holder = f.catalogKey ? this.holders.get(parseKey(f.catalogKey).toString('hex')) : undefined
      const problems = [...(this.#problems.get(f.nodeKey) ?? []), ...(holder?.catalog.problems ?? []).map((p) => `catalog block ${p.seq}: ${p.error}`)]
      return {
        nodeKey: f.nodeKey,
        catalogKey: f.catalogKey,
        connected: !!this.network?.connectedTo(parseKey(f.nodeKey)),
        lastReceiptAt: this.#receiptsByAgency.get(f.nodeKey)?.at ?? null,
        receiptsSent: this.#receiptsByAgency.get(f.nodeKey)?.count ?? 0,
        complete: holder ? holder.complete : false,
        cores: holder ? holder.held().map((c) => ({ ...c, head: this.guard.heads.newest(parseKey(c.key)) })) : [],
        problems,
        quota: this.quotas.status(f.nodeKey)
      }
    })
  }
}

/** The bound of open held cores, as status shows it. */
export interface OpenCoresStatus {
  /** `maxOpenCores`. */
  max: number
  /** Held dataset cores open now. */
  open: number
  /** Held dataset cores in all (open or closed). */
  held: number
  /** Cores closed while idle since start. */
  closes: number
  /** Closed cores opened again since start (a notice, a peer, an audit). */
  reopens: number
}

/** Quota changes `embassy follow` asks for: a number sets a limit, null removes it, undefined keeps it. */
export interface FollowQuota {
  maxBytes?: number | null
  maxCores?: number | null
  warn?: number | null
}

function setQuota(embassy: Embassy, agency: string, q: FollowQuota): void {
  embassy.node.updateConfig((c) => {
    const entry = c.follow.find((x) => x.nodeKey === agency)
    if (!entry) return
    if (q.maxBytes !== undefined) q.maxBytes === null ? delete entry.maxBytes : (entry.maxBytes = q.maxBytes)
    if (q.maxCores !== undefined) q.maxCores === null ? delete entry.maxCores : (entry.maxCores = q.maxCores)
    if (q.warn !== undefined) q.warn === null ? delete entry.quotaWarn : (entry.quotaWarn = q.warn)
  })
}
