/**
 * Embassy: holds blind, full, live copies of every dataset of the agencies it follows, and serves
 * them to allowed peers (mirrors, other embassies) — also when the agency is gone.
 */
import { agencyTopic } from '../node/caps.js'
import { EmbassyError } from '../errors.js'
import { Holder, type HeldCore } from './holder.js'
import { parseKey, keyZ32, toZ32 } from '../ids.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import type Hypercore from 'hypercore'
import { signReceipt } from '../custody/receipts.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { BaseRole } from './role.js'
import { CAUGHT_UP_LOG_MS, CaughtUpLog } from './milestones.js'
import { NEVER_REACHED_ALARM_SECONDS } from '../node/config.js'
import { GUARD_TICK_MS, HistoryGuard } from './guard.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import { ChallengeAnswerer, type Alarm, type AlarmKind } from '../custody/index.js'
import { AlarmCode, INSTANCE_CAPABILITY, type HolderList } from '../../protocol/index.js'

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
   * Cores picked up empty (hex key): a core just opened has length 0 until a peer's first sync,
   * so the receipt of an empty core waits for a peer to confirm it (else every core would get a
   * length-0 receipt on pick-up, a third of all receipts at scale). Checked by the one tick.
   */
  #emptyAtPickUp = new Map<string, { holder: Holder; core: Hypercore }>()
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
    this.#answerer ??= new ChallengeAnswerer(this.node.keyPair, (key) => {
      for (const h of this.holders.values()) {
        const core = h.find(key)
        if (core) return core
      }
      return null
    })
    return this.#answerer
  }

  override handlers(peer: Peer): CustodyHandlers {
    return {
      ...this.guard.handlers(peer),
      challenge: (ch) => this.answerer.handle(peer, ch),
      holders: (list) => this.#onHolders(peer, list)
    }
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
    return { agencies: this.holdings(), alarms: [...this.guard.alarms.alarms], alarmCounts: { ...this.guard.alarms.counts } as Record<AlarmKind, number> }
  }

  /** Every held core (ciphertext), labelled by its key. */
  async heldCores(): Promise<HeldCoreRef[]> {
    return [...this.holders.values()].flatMap((h) => h.refs())
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
      if (holder) void this.#sendAll(holder)
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

  async #hold(agencyKey: string, catalogKey: string): Promise<Holder> {
    const key = parseKey(catalogKey, 'catalog key')
    const hex = key.toString('hex')
    const have = this.holders.get(hex)
    if (have) return have
    const holder = new Holder(this.node.store, key, this.guard.accepted(), this.quotas.holderOptions(agencyKey, key))
    this.quotas.attach(agencyKey, holder)
    this.holders.set(hex, holder)
    this.guard.watch(holder)
    holder.on('core-added', (k) => {
      this.emit('core-added', catalogKey, toZ32(k))
      // An empty core never downloads anything: tell the agency that it is held once a peer
      // confirmed it is empty (#tick). Others get their receipt when their blocks arrive.
      const held = holder.cores.get(k.toString('hex'))
      if (held && held.core.length === 0) this.#emptyAtPickUp.set(k.toString('hex'), { holder, core: held.core })
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
    for (const [hex, { holder, core }] of this.#emptyAtPickUp) {
      if (core.closing || core.length > 0) {
        this.#emptyAtPickUp.delete(hex) // non-empty: its receipt goes when its blocks arrive
        continue
      }
      // A peer's first sync says how long the core is: empty there too (a longer one is fetched first).
      if (!core.peers.some((p) => (p as { remoteSynced?: boolean }).remoteSynced === true && p.remoteLength === 0)) continue
      this.#emptyAtPickUp.delete(hex)
      void this.#send(holder, core)
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

  async #sendAll(holder: Holder): Promise<void> {
    await this.#send(holder, holder.catalog.core)
    for (const { core } of holder.cores.values()) await this.#send(holder, core)
  }

  /** Signs and sends a receipt for what we hold of `core`. */
  async #send(holder: Holder, core: Hypercore): Promise<void> {
    const peer = this.#agencyPeer(holder)
    if (!peer || core.closing) return
    const length = core.contiguousLength
    let treeHash: Buffer
    try {
      treeHash = await core.treeHash(length)
    } catch {
      return // closing, or the tree is not there yet: the next progress sends one
    }
    const r = signReceipt(this.node.keyPair, { core: core.key!, length, treeHash, fork: core.fork, time: Date.now() })
    if (peer.channel.send('receipt', r)) {
      this.#lastSent.set(core.key!.toString('hex'), r.time)
      const agency = keyZ32(peer)
      const prev = this.#receiptsByAgency.get(agency)
      this.#receiptsByAgency.set(agency, { at: r.time, count: (prev?.count ?? 0) + 1 })
    }
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
