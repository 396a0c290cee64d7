/**
 * HistoryGuard: what makes a holder (embassy, mirror) a witness that outlives the writer's key.
 * For every Holder of its role it
 *   - reports each refused rewrite of held history (`history-rewrite`): in its own alarms
 *     (alarms.json, `status --json`), as a notice (the log), and to the agency and the other
 *     holders of that agency (protocol `alarm`);
 *   - cosigns the newest writer-signed head it verified for every held core and gossips it
 *     (protocol `head`) to the agency and the other holders;
 *   - checks every head it receives against what it holds and every head it knows (HeadBook):
 *     two writer-signed heads that cannot both be true raise `equivocation`, with both as evidence,
 *     here and — through an `alarm` report carrying both heads — on every holder and the agency;
 *   - lets the operator accept a rewrite of one core (`embassy accept-rewrite`), persisted.
 * One timer per role (the role's tick), no per-core timers.
 */
import type Hypercore from 'hypercore'
import b4a from 'b4a'
import { EmbassyError } from '../errors.js'
import { parseKey, keyZ32, toZ32 } from '../ids.js'
import { signedHead, treeHashAt, verifySignedHead } from '../data/tree.js'
import type { DamagedBlock } from '../data/checked-blocks.js'
import { AlarmLog, HeadBook, compactHead, headEvidence, signWitnessedHead, verifyWitnessSignature, type Alarm } from '../custody/index.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import { AlarmCode, type AlarmReport, type WitnessedHead } from '../../protocol/index.js'
import type { HeldEntry, Holder, RewriteOffer } from './holder.js'
import type { Notice } from './role.js'

/** How often held cores are checked for offered rewrites and new heads to witness. */
export const GUARD_TICK_MS = 1000

const ZERO_KEY = Buffer.alloc(32)

/** A head witnessed this long before a peer's connection ended may not have reached it: sent again. */
export const GREET_MARGIN_MS = 60_000

/** Peers whose last connection's end is remembered (admitted nodes: far fewer). */
const MAX_GONE = 4096

/** What the guard needs from its role. */
export interface GuardHost {
  readonly node: EmbassyNode
  network(): Network | null
  holders(): Iterable<Holder>
  notice(level: Notice['level'], event: string, message: string, fields?: Record<string, unknown>): void
}

export class HistoryGuard {
  readonly alarms: AlarmLog
  readonly heads = new HeadBook()
  readonly #host: GuardHost
  /** Core (hex) → the head we last witnessed (and gossiped). */
  #mine = new Map<string, WitnessedHead>()
  /** Peer (hex node key) → when its last connection ended (bounded: the oldest forgotten). */
  #gone = new Map<string, number>()
  /** Core (hex) → highest fork a peer offered (for accept-rewrite). */
  #offered = new Map<string, number>()
  #ticking = false

  constructor(host: GuardHost) {
    this.#host = host
    this.alarms = new AlarmLog(host.node.dir)
  }

  /** Rewrites the operator accepted, by core key (hex) → fork. */
  accepted(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [k, fork] of Object.entries(this.#host.node.config.acceptRewrites ?? {})) out.set(parseKey(k).toString('hex'), fork)
    return out
  }

  watch(holder: Holder): void {
    holder.on('history-rewrite', (offer) => this.#onRewrite(holder, offer))
    holder.on('conflict', (core, length, fork) => {
      this.#raise({
        time: Date.now(),
        kind: 'equivocation',
        peer: '',
        core: keyZ32(core),
        detail: `Hypercore found two writer-signed heads at length ${length} (fork ${fork}) of this core and closed it`
      })
    })
    holder.on('damaged-block', (d) => {
      this.#raise({
        time: Date.now(),
        kind: 'damaged-block',
        peer: '',
        core: d.core,
        block: d.index,
        detail: `block ${d.index} failed its check when a peer asked for it (${d.reason}); not served, cleared and fetched again from another holder`
      })
      this.#reportDamage(holder, d, false)
    })
    holder.on('block-repaired', (d) => {
      this.alarms.resolveDamage(d.core, d.index)
      this.#host.notice('info', 'block-repaired', `block ${d.index} of core ${d.core} fetched again from another holder and verified: repaired`, { core: d.core, block: d.index })
      this.#reportDamage(holder, d, true)
    })
    holder.on('rewrite-accepted', (core, fork) => {
      this.heads.forget(core.key!)
      this.#mine.delete(core.key!.toString('hex'))
      this.#host.notice('warn', 'rewrite-accepted', `accepted rewrite of core ${keyZ32(core)}: now at length ${core.length}, fork ${fork}`, { core: keyZ32(core), length: core.length, fork })
    })
  }

  /** Checks forks and witnesses new heads; the role calls it from its one timer. */
  async tick(): Promise<void> {
    if (this.#ticking) return
    this.#ticking = true
    try {
      for (const holder of this.#host.holders()) {
        await holder.checkForks()
        for (const core of holder.allCores()) await this.witness(holder, core)
      }
    } finally {
      this.#ticking = false
    }
  }

  /**
   * Cosigns the newest head of `core` when it changed since we last did, and gossips it (`gossip`,
   * the default). The tick does it for open cores; the holder, for a core about to close while
   * idle, without gossip: its head is then what the heads peers send for it are checked against
   * while it is closed, and peers get it in their next greeting (gossiped at every close, the
   * heads of a 10,000-core pick-up cost the agencies 4–5 CPU-s more to check while it ran).
   */
  async witness(holder: Holder, core: Hypercore, opts: { gossip?: boolean } = {}): Promise<void> {
    if (core.closing || !core.opened || core.length === 0) return
    const hex = core.key!.toString('hex')
    const last = this.#mine.get(hex)
    if (last && last.length === core.length && last.fork === core.fork) return
    const head = await signedHead(core).catch(() => null)
    if (!head) return
    const node = this.#host.node
    // Kept while the core is held: compact, so it keeps no pool slab alive.
    const h = compactHead(signWitnessedHead(node.keyPair, { core: core.key!, length: head.length, fork: head.fork, treeHash: head.treeHash, agencySignature: head.signature, time: Date.now() }))
    this.#mine.set(hex, h)
    this.heads.add(h)
    if (opts.gossip === false) return
    for (const peer of this.#peersOf(holder)) peer.channel.send('head', h)
  }

  /**
   * A peer connected: it gets the heads we witnessed for the agencies we share with it — of every
   * open core, and of every closed one witnessed since its last connection ended (all of them if
   * it has not been connected since this node started): heads witnessed while it was away, a
   * partition say, were sent to no one it could compare them with.
   */
  greet(peer: Peer): void {
    const catalogs = peer.handshake?.catalogs ?? []
    const gone = this.#gone.get(peer.key.toString('hex'))
    const since = gone === undefined ? -Infinity : gone - GREET_MARGIN_MS
    for (const holder of this.#host.holders()) {
      if (!catalogs.some((c) => holder.key.equals(Buffer.from(c)))) continue
      const catalog = this.#mine.get(holder.key.toString('hex'))
      if (catalog) peer.channel.send('head', catalog)
      for (const [hex, e] of holder.cores) {
        const h = this.#mine.get(hex)
        if (!h) continue
        if (e.core ? e.core.opened && !e.core.closing : h.length === e.length && h.fork === e.fork && h.time >= since) peer.channel.send('head', h)
      }
    }
  }

  /** A peer's connection ended: its next greeting sends the closed cores' heads witnessed after this. */
  farewell(peer: Peer): void {
    const hex = peer.key.toString('hex')
    this.#gone.delete(hex)
    this.#gone.set(hex, Date.now())
    if (this.#gone.size > MAX_GONE) this.#gone.delete(this.#gone.keys().next().value!)
  }

  /** Connected peers that take part in `holder`'s agency: the agency itself and its other holders. */
  #peersOf(holder: Holder): Peer[] {
    const network = this.#host.network()
    if (!network) return []
    const out: Peer[] = []
    for (const p of network.peers.values()) {
      if (p.handshake?.catalogs.some((c) => holder.key.equals(Buffer.from(c)))) out.push(p)
    }
    return out
  }

  /**
   * A peer's head of a held core closed while idle (the bound of open cores). At or below the
   * length it held, on its fork, a head that matches the head known at that length (ours,
   * witnessed as it closed, or a peer's) is consistent: its witness is counted, nothing opens. Any
   * other head — longer, of another fork, or one we cannot match without our own tree — opens the
   * core again (waiting for a slot): then it syncs, a rewrite is refused as ever, and the head is
   * compared with the tree we verified.
   */
  async #reopenFor(h: WitnessedHead): Promise<{ holder: Holder; core: Hypercore } | null> {
    const held = this.#entryOf(h.core)
    if (!held || held.entry.core) return null
    const e = held.entry
    if (h.length <= e.length && h.fork === e.fork && this.#matchesKnown(h)) return null
    return this.#wake(held.holder, h.core)
  }

  /**
   * True when `h` is a head already known (same length, fork, tree and writer's signature as one
   * whose signatures were checked): its witness, when its own signature holds, is counted.
   */
  #matchesKnown(h: WitnessedHead): boolean {
    const known = this.heads.at(h.core, h.length, h.fork)
    if (!known || !b4a.equals(known.treeHash, h.treeHash) || !b4a.equals(known.agencySignature, h.agencySignature)) return false
    if (verifyWitnessSignature(h)) this.heads.add(h)
    return true
  }

  /** The holder of a held core (open, or opened again for this: waiting for a slot), if held here. */
  async #heldOrReopened(coreKey: Uint8Array): Promise<{ holder: Holder; core: Hypercore } | null> {
    const open = this.#holderOf(coreKey)
    if (open) return open
    const held = this.#entryOf(coreKey)
    return held ? this.#wake(held.holder, coreKey) : null
  }

  /** The holder's entry of held core `coreKey` (open or closed), if held here. */
  #entryOf(coreKey: Uint8Array): { holder: Holder; entry: HeldEntry } | null {
    const hex = b4a.toString(coreKey, 'hex')
    for (const holder of this.#host.holders()) {
      const entry = holder.cores.get(hex)
      if (entry) return { holder, entry }
    }
    return null
  }

  /** Held core `coreKey` opened again, waiting for a slot of the bound. */
  async #wake(holder: Holder, coreKey: Uint8Array): Promise<{ holder: Holder; core: Hypercore } | null> {
    const core = await holder.wake(coreKey, { queue: true })
    return core ? { holder, core } : null
  }

  #holderOf(coreKey: Uint8Array): { holder: Holder; core: Hypercore } | null {
    for (const holder of this.#host.holders()) {
      const core = holder.find(coreKey)
      if (core) return { holder, core }
    }
    return null
  }

  #onRewrite(holder: Holder, o: RewriteOffer): void {
    const core = toZ32(o.core.key!)
    const hex = o.core.key!.toString('hex')
    this.#offered.set(hex, Math.max(this.#offered.get(hex) ?? -1, o.offeredFork))
    this.#raise({
      time: Date.now(),
      kind: 'history-rewrite',
      peer: toZ32(o.offeredBy),
      core,
      detail: `refused a rewrite of core ${core} to length ${o.offeredLength}, fork ${o.offeredFork}; keeping the verified length ${o.length}, fork ${o.fork} (embassy accept-rewrite ${core} takes it)`,
      held: { length: o.length, fork: o.fork, treeHash: o.treeHash ? o.treeHash.toString('hex') : null },
      offered: { length: o.offeredLength, fork: o.offeredFork }
    })
    const report: AlarmReport = {
      code: AlarmCode.HISTORY_REWRITE,
      core: o.core.key!,
      length: o.length,
      fork: o.fork,
      offeredLength: o.offeredLength,
      offeredFork: o.offeredFork,
      offeredBy: o.offeredBy,
      time: Date.now(),
      heads: []
    }
    for (const peer of this.#peersOf(holder)) peer.channel.send('alarm', report)
  }

  /** Tells the agency (and the other holders) that block `d.index` of a core is damaged here, or repaired. */
  #reportDamage(holder: Holder, d: DamagedBlock, repaired: boolean): void {
    let core: Buffer
    try {
      core = parseKey(d.core)
    } catch {
      return
    }
    const report: AlarmReport = {
      code: AlarmCode.DAMAGED_BLOCK,
      core,
      length: d.index,
      fork: holder.find(core)?.fork ?? 0,
      offeredLength: repaired ? 1 : 0,
      offeredFork: 0,
      offeredBy: ZERO_KEY,
      time: Date.now(),
      heads: []
    }
    for (const peer of this.#peersOf(holder)) peer.channel.send('alarm', report)
  }

  /** The custody messages a holder handles. */
  handlers(peer: Peer): CustodyHandlers {
    return {
      head: (h) => {
        this.#onHead(peer, h).catch((err) => this.#host.notice('error', 'error', `head from ${keyZ32(peer)}: ${(err as Error).message}`))
      },
      alarm: (r) => {
        this.#onReport(peer, r).catch((err) => this.#host.notice('error', 'error', `alarm from ${keyZ32(peer)}: ${(err as Error).message}`))
      }
    }
  }

  async #onHead(peer: Peer, h: WitnessedHead): Promise<void> {
    // A peer sends the heads it witnessed itself: one cosigned by any other key would let it count
    // holders that never saw the head (any key can sign; only the connection's key is known here).
    if (!peer.key.equals(Buffer.from(h.witness))) {
      this.#raise({ time: Date.now(), kind: 'bad-signature', peer: keyZ32(peer), core: toZ32(h.core), detail: `a witnessed head cosigned by ${toZ32(h.witness)}, not by the peer that sent it: not counted` })
      return
    }
    const held = this.#holderOf(h.core) ?? (await this.#reopenFor(h))
    if (!held) return // not a core we hold (or one closed while idle, at what it holds): nothing to cross-check
    const sender = keyZ32(peer)
    if (!verifyWitnessSignature(h) || !verifySignedHead(held.core, { ...h, signature: h.agencySignature })) {
      this.#raise({ time: Date.now(), kind: 'bad-signature', peer: sender, core: toZ32(h.core), detail: 'a witnessed head whose signatures do not verify' })
      return
    }
    let conflict: WitnessedHead | null = null
    const verdict = this.heads.add(h)
    if (verdict.kind !== 'ok') conflict = verdict.known
    else if (h.fork === held.core.fork && h.length <= held.core.length && h.length > 0) {
      // Compare with our own verified tree at that length.
      const own = await treeHashAt(held.core, h.length)
      if (!own.equals(Buffer.from(h.treeHash))) {
        const ours = await signedHead(held.core)
        if (ours) conflict = signWitnessedHead(this.#host.node.keyPair, { core: h.core, length: ours.length, fork: ours.fork, treeHash: ours.treeHash, agencySignature: ours.signature, time: Date.now() })
      }
    }
    if (!conflict) return
    const kind = verdict.kind === 'history-rewrite' ? 'history-rewrite' : 'equivocation'
    this.#equivocation(held.holder, sender, h, conflict, kind)
  }

  #equivocation(holder: Holder, from: string, a: WitnessedHead, b: WitnessedHead, kind: 'equivocation' | 'history-rewrite', reportedBy?: string): void {
    const core = toZ32(a.core)
    const alarm: Alarm = {
      time: Date.now(),
      kind,
      peer: from,
      core,
      detail:
        kind === 'equivocation'
          ? `two writer-signed heads of core ${core} cannot both be true: length ${a.length} fork ${a.fork} and length ${b.length} fork ${b.fork} with different trees`
          : `a writer-signed head on fork ${a.fork} rewrites witnessed history (length ${b.length}, fork ${b.fork})`,
      evidence: [headEvidence(a), headEvidence(b)]
    }
    if (reportedBy) alarm.reportedBy = reportedBy
    if (!this.#raise(alarm) || reportedBy) return
    const report: AlarmReport = {
      code: kind === 'equivocation' ? AlarmCode.EQUIVOCATION : AlarmCode.HISTORY_REWRITE,
      core: a.core,
      length: b.length,
      fork: b.fork,
      offeredLength: a.length,
      offeredFork: a.fork,
      offeredBy: ZERO_KEY,
      time: Date.now(),
      heads: [a, b]
    }
    for (const peer of this.#peersOf(holder)) peer.channel.send('alarm', report)
  }

  /** An alarm another node reports: equivocations are checked (their heads are evidence). */
  async #onReport(peer: Peer, r: AlarmReport): Promise<void> {
    const sender = keyZ32(peer)
    if (r.code === AlarmCode.EQUIVOCATION && r.heads.length >= 2) {
      // Checked against the writer's key in the core's manifest: a closed core is opened for it.
      const held = await this.#heldOrReopened(r.core)
      if (!held) return
      const [a, b] = r.heads as [WitnessedHead, WitnessedHead]
      const valid = [a, b].every((h) => verifySignedHead(held.core, { ...h, signature: h.agencySignature }))
      if (valid && a.length === b.length && a.fork === b.fork && !Buffer.from(a.treeHash).equals(Buffer.from(b.treeHash))) {
        this.heads.add(a)
        this.heads.add(b)
        this.#equivocation(held.holder, sender, a, b, 'equivocation', sender)
      }
      return
    }
    if (r.code === AlarmCode.HISTORY_REWRITE) {
      const core = toZ32(r.core)
      this.#raise({
        time: Date.now(),
        kind: 'history-rewrite',
        peer: r.offeredBy.every((x) => x === 0) ? sender : toZ32(r.offeredBy),
        core,
        detail: `holder ${sender} refused a rewrite of core ${core} to length ${r.offeredLength}, fork ${r.offeredFork}; it keeps length ${r.length}, fork ${r.fork}`,
        held: { length: r.length, fork: r.fork, treeHash: null },
        offered: { length: r.offeredLength, fork: r.offeredFork },
        reportedBy: sender
      })
    }
  }

  /** Records an alarm; a listed one is also a notice (the log). */
  #raise(a: Alarm): boolean {
    const listed = this.alarms.add(a)
    if (listed) this.#host.notice('error', a.kind, `${a.kind}: ${a.detail}`, { ...a })
    return listed
  }

  /** The operator takes the rewrite of `coreKey` offered so far (or up to `fork`). */
  acceptRewrite(coreKey: Buffer, fork?: number): { core: Buffer; fork: number } {
    const hex = coreKey.toString('hex')
    const target = fork ?? this.#offered.get(hex) ?? this.#offeredFromAlarms(toZ32(coreKey))
    if (target === undefined) throw EmbassyError.notFound(`no rewrite of core ${toZ32(coreKey)} was offered to this node; pass --fork N to accept one in advance`, { core: toZ32(coreKey) })
    const held = this.#holderOf(coreKey)
    if (!held) throw EmbassyError.notFound(`this node holds no core ${toZ32(coreKey)}`, { core: toZ32(coreKey) })
    this.#host.node.updateConfig((c) => {
      c.acceptRewrites = { ...(c.acceptRewrites ?? {}), [toZ32(coreKey)]: target }
    })
    held.holder.acceptRewrite(coreKey, target)
    return { core: coreKey, fork: target }
  }

  #offeredFromAlarms(core: string): number | undefined {
    let fork: number | undefined
    for (const a of this.alarms.alarms) if (a.core === core && a.offered && (fork === undefined || a.offered.fork > fork)) fork = a.offered.fork
    return fork
  }

  close(): void {
    this.alarms.close()
  }
}
