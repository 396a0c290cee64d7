/**
 * RestoreGate: when an agency may write, and the background backfill of a restored agency.
 *
 * An agency may append only on top of the newest head of each of its cores, because a block's
 * encryption nonce is its index plus the fork: two different blocks at one index on one fork leak
 * their XOR. The gate decides from what the agency's embassies report for every core (the
 * Hypercore replication sync: `remoteLength` / `remoteFork` of each embassy's replication peer,
 * and the heads they witness and gossip):
 *
 *   - restored from a kit (`config.restoring`): writes are refused (NOT_SYNCED, saying what it waits
 *     for) until a quorum of the kit's embassies (default: more than half) reported every core and
 *     the agency holds the signed head of the highest one (`update({ wait, force })`) — blocks are
 *     not needed: they are backfilled in the background (throttle-able, resumable), and read on
 *     demand meanwhile. `force` (the operator's escape hatch when too few embassies survive) takes
 *     the highest head of the embassies that did report and starts a new fork on every core
 *     (`truncate(length, fork + 1)`) before any append, so no keystream is ever reused;
 *   - a restart (a stale file-level copy or VM snapshot included): an embassy reporting a newer head
 *     than the local one makes the gate refuse writes until the agency synced to it;
 *   - a restart whose store came back shorter than what an admitted embassy proved it holds (a signed
 *     receipt in the custody ledger: the store lost writes it had signed, e.g. on a full or failing
 *     disk): writes are refused from the start, before any embassy is connected, until the agency
 *     synced to that head — appending there again would fork what the embassy witnessed and reuse
 *     the keystream of the blocks it holds;
 *   - once every connected embassy confirmed a core, an embassy reporting a head ahead of ours means
 *     another live node signs with this agency's key (a kit imported while the original runs): writes
 *     are refused for the life of the process and an alarm is raised.
 *
 * One timer per agency (TICK_MS); no per-core timers.
 * Owns: restore planning. May import: data/, net/ (types), node/, custody/, errors, ids.
 */
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { keyHex, keyZ32, toZ32 } from '../ids.js'
import { verifySignedHead } from '../data/tree.js'
import { verifyWitnessSignature, type Alarm } from '../custody/index.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import type { Catalog } from '../data/catalog.js'
import type { WitnessedHead } from '../../protocol/index.js'
import type { Notice } from './role.js'

/** How often the gate re-evaluates what the embassies reported. */
export const RESTORE_TICK_MS = 200
/** Blocks fetched per backfill request (per core). */
export const BACKFILL_WINDOW = 256

export type RestoreState = 'waiting' | 'backfilling' | 'complete'

/** `status --json` → `restore`. */
export interface RestoreStatus {
  state: RestoreState
  /** Blocks held locally (contiguous, summed over every core). */
  heldBlocks: number
  /** Blocks of every core at the newest head. */
  totalBlocks: number
  /** Writes accepted now. */
  writable: boolean
  /** What the agency waits for before it takes writes (null when writable). */
  waitingFor: string | null
  /** Embassies needed to report before writes (the quorum), and those that did. */
  quorum: number
  reported: string[]
  /** Backfill throttle in blocks per second (null: unlimited; 0: paused). */
  backfillRate: number | null
  /** Another live node signs with this agency's key: writes refused until the operator decides. */
  secondLiveNode: boolean
  /** Cores of this agency (the catalog and every dataset core). */
  cores: number
  /**
   * Of those, cores whose head the connected embassies reported at or below this node's since it
   * started (or synced to): the heads the embassies hold are known here, so a write cannot fork them.
   */
  confirmedCores: number
}

export interface RestoreResult {
  cores: number
  blocks: number
  bytes: number
  /** Embassies whose heads the restore took. */
  embassies: string[]
  /** From attach to restore-complete (every block held). */
  ms: number
  /** From attach to the first moment writes were accepted. */
  writableMs: number
  /** Cores moved to a new fork because the restore was forced with fewer embassies than the quorum. */
  forked: number
}

/** What the gate needs from its agency. */
export interface GateAgency {
  readonly node: EmbassyNode
  readonly catalog: Catalog
  readonly readKey: Buffer
  readonly network: Network | null
  cores(): Promise<Map<string, { core: Hypercore; dataset: string | null }>>
  /** Opens every dataset the catalog lists (so its cores replicate). */
  openDatasets(): Promise<void>
  /** The role the custody ledger knows for a node key (z32), if any. */
  knownRole(key: string): string | undefined
  /** The newest head of `core` beyond its own that an admitted embassy proved it holds (a signed receipt in the ledger), if any. */
  provenBeyond(core: Hypercore): { embassy: string; length: number; fork: number } | null
  alarm(a: Alarm): void
  notice(level: Notice['level'], event: string, message: string, fields?: Record<string, unknown>): void
  emit(event: string, ...args: unknown[]): boolean
  /** Receipts deferred while restoring are judged now. */
  restored(): Promise<void>
}

export interface GateOptions {
  /** Embassies that must report before writes (default: more than half of the known embassies). */
  quorum?: number | undefined
  /** Take writes with fewer embassies than the quorum, on a new fork of every core. */
  force?: boolean | undefined
  /** Backfill throttle, blocks per second; 0 pauses; undefined/null: unlimited. */
  backfillRate?: number | null | undefined
}

interface Report {
  length: number
  fork: number
}

export class RestoreGate {
  readonly #agency: GateAgency
  readonly #opts: GateOptions
  #restoring: boolean
  #started = Date.now()
  #writableAt: number | null = null
  #writable: boolean
  #waitingFor: string | null = null
  #quorum = 0
  #reported: string[] = []
  #secondLive: string | null = null
  /** Embassies (z32) that reported two live instances of this agency's key. */
  #twinReports = new Set<string>()
  /** Cores (hex) every connected embassy confirmed at or below our head: an advance now is another writer. */
  #confirmed = new Set<string>()
  /** Heads embassies witnessed (hex core → witness hex → report), kept while they are ahead of us. */
  #heads = new Map<string, Map<string, Report>>()
  #inflight = new Set<string>()
  #readKeyChecked = false
  #timer: NodeJS.Timeout | null = null
  #ticking = false
  #closed = false
  #rate: number | null
  #rateChanged: (() => void) | null = null
  #backfill: Promise<void> | null = null
  #forked = 0
  /** Our own writes in progress: growth of a core meanwhile is ours. */
  #writing = 0
  /** Per core (hex): the head after our last write or check; growth beyond it without a write of ours is someone else's. */
  #snap = new Map<string, Report>()
  #staleNoticed = false
  #tookFrom: string[] = []
  /** Per core (hex): a head an embassy proved it holds that our copy lacks (found at start), until synced. */
  #floors = new Map<string, Report & { embassy: string }>()
  /** Writes were refused from the start because the copy was behind a proven head. */
  #behindAtStart = false

  constructor(agency: GateAgency, opts: GateOptions = {}) {
    this.#agency = agency
    this.#opts = opts
    this.#restoring = agency.node.config.restoring === true
    this.#writable = !this.#restoring
    this.#rate = opts.backfillRate ?? null
  }

  /** True while a restored agency has not reached its embassies' newest heads. */
  get restoring(): boolean {
    return this.#restoring
  }

  /** Throws NOT_SYNCED (saying what it waits for) unless writes are safe now. */
  assertWritable(): void {
    if (this.#secondLive) {
      throw EmbassyError.notSynced(
        `another live node signs with this agency's key (seen through ${this.#secondLive}); writes are refused here. Stop one of the two (see README "Recovery kit and rebuilding an agency"), then restart the one that stays`,
        { reason: 'second-live-node' }
      )
    }
    if (this.#writable) return
    const what = this.#waitingFor ?? (this.#restoring ? 'its embassies: not online yet (embassy run)' : 'its embassies')
    throw EmbassyError.notSynced(
      this.#restoring
        ? `this agency was restored from a recovery kit and waits for ${what}; writes are refused until it holds the newest head its embassies witnessed (writing earlier could fork its feeds and reuse their keystream)`
        : `this agency's embassies hold a newer head than its own copy; writes are refused until it synced (waiting for ${what})`,
      { reason: this.#restoring ? 'restoring' : 'stale', waitingFor: what }
    )
  }

  /** Runs one write of the agency's: refused unless safe; growth meanwhile is known to be ours. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    this.assertWritable()
    // What the embassies reported since the last tick (a newer head, growth we did not write) is
    // judged before writing on top of our head.
    if (this.#writing === 0 && !this.#restoring) await this.#watchStep()
    this.assertWritable()
    this.#writing++
    try {
      return await fn()
    } finally {
      this.#writing--
      if (this.#writing === 0) await this.#snapshot().catch(() => {})
    }
  }

  async #snapshot(): Promise<void> {
    for (const { core } of (await this.#agency.cores()).values()) this.#snap.set(keyHex(core), { length: core.length, fork: core.fork })
  }

  /**
   * Before going online: the heads at start (a core that grows before any write of ours was behind: a
   * stale copy), and any core shorter than what an admitted embassy proved it holds: then writes are
   * refused from the start, before any embassy is connected.
   */
  async prepare(): Promise<void> {
    await this.#snapshot()
    if (this.#restoring) return
    for (const { core } of (await this.#agency.cores()).values()) {
      const proven = this.#agency.provenBeyond(core)
      if (proven) this.#floors.set(keyHex(core), proven)
    }
    const first = this.#floorBehind()
    if (first) {
      this.#behindAtStart = true
      this.#wait(first)
    }
  }

  /** The first core still behind a proven head, described (null when none). Drops floors reached. */
  #floorBehind(cores?: Map<string, { core: Hypercore }>): string | null {
    let out: string | null = null
    for (const [hex, floor] of this.#floors) {
      const core = cores?.get(hex)?.core
      if (cores && !core) continue
      const held = core ? { length: core.length, fork: core.fork } : this.#snap.get(hex)
      if (!held || !ahead(floor, held)) {
        this.#floors.delete(hex)
        continue
      }
      out ??= `core ${toZ32(Buffer.from(hex, 'hex'))} at length ${floor.length}, fork ${floor.fork}, which embassy ${floor.embassy} proved it holds (held here: length ${held.length}, fork ${held.fork}; this copy lost blocks it had signed: syncing from its embassies, so start the node with \`embassy run\` if it is not running)`
    }
    return out
  }

  /** Goes online: evaluates what the embassies report until closed. */
  start(): void {
    this.#started = Date.now()
    if (this.#restoring) this.#agency.notice('info', 'restoring', 'restored agency: waiting for the newest heads its embassies witnessed before accepting writes; blocks are backfilled in the background')
    else this.#startBackfill()
    if (this.#floors.size > 0 && !this.#staleNoticed) {
      this.#staleNoticed = true
      const [hex, f] = [...this.#floors][0]!
      const held = this.#snap.get(hex)
      this.#agency.notice(
        'warn',
        'stale-head',
        `this node's copy is shorter than what its embassies proved they hold (${this.#floors.size} core(s); e.g. core ${toZ32(Buffer.from(hex, 'hex'))}: held length ${held?.length ?? 0}, embassy ${f.embassy} holds length ${f.length}, fork ${f.fork}): blocks this node had signed were lost (a failed disk, an old copy); writes refused until it synced from its embassies`,
        { cores: this.#floors.size, embassy: f.embassy, length: f.length, fork: f.fork }
      )
    }
    const tick = () => {
      if (this.#closed) return
      this.#timer = setTimeout(() => {
        this.#tick().catch((err) => this.#agency.notice('error', 'restore-error', `restore: ${(err as Error).message}`)).finally(tick)
      }, RESTORE_TICK_MS)
    }
    tick()
  }

  close(): void {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#rateChanged?.()
  }

  /** Changes the backfill throttle (blocks per second; 0 pauses, null unlimited). */
  setBackfillRate(rate: number | null): void {
    if (rate !== null && !(Number.isFinite(rate) && rate >= 0)) throw EmbassyError.badArgument('the backfill rate is a number of blocks per second ≥ 0')
    this.#rate = rate
    this.#rateChanged?.()
  }

  /** A head an embassy witnessed (custody `head` message): a newer one than ours is a report too. */
  async onHead(peer: Peer, h: WitnessedHead): Promise<void> {
    if (peer.role !== 'embassy') return
    const own = (await this.#agency.cores()).get(Buffer.from(h.core).toString('hex'))?.core
    if (!own || !verifyWitnessSignature(h) || !verifySignedHead(own, { ...h, signature: h.agencySignature })) return
    const hex = keyHex(own)
    const byWitness = this.#heads.get(hex) ?? new Map<string, Report>()
    byWitness.set(keyHex(peer), { length: h.length, fork: h.fork })
    this.#heads.set(hex, byWitness)
  }

  async status(): Promise<RestoreStatus> {
    let held = 0
    let total = 0
    let cores = 0
    let confirmed = 0
    for (const { core } of (await this.#agency.cores()).values()) {
      held += Math.min(core.contiguousLength, core.length)
      total += core.length
      cores++
      if (this.#confirmed.has(keyHex(core))) confirmed++
    }
    const state: RestoreState = !this.#writable || this.#secondLive ? 'waiting' : held < total ? 'backfilling' : 'complete'
    return {
      state,
      heldBlocks: held,
      totalBlocks: total,
      writable: this.#writable && !this.#secondLive,
      waitingFor: this.#secondLive ? `one of the two live nodes to stand down (${this.#secondLive})` : this.#writable ? null : this.#waitingFor,
      quorum: this.#quorum,
      reported: [...this.#reported],
      backfillRate: this.#rate,
      secondLiveNode: !!this.#secondLive,
      cores,
      confirmedCores: confirmed
    }
  }

  // ---- what the embassies report ----

  /** Connected embassies this agency admitted. */
  #embassies(): Peer[] {
    const network = this.#agency.network
    if (!network) return []
    const allow = new Set(this.#agency.node.config.allow)
    return [...network.peers.values()].filter((p) => p.role === 'embassy' && allow.has(toZ32(p.key)))
  }

  /** The embassies the quorum counts: every allowed node key not known to be something else. */
  #expected(): string[] {
    const connected = new Map([...(this.#agency.network?.peers.values() ?? [])].map((p) => [toZ32(p.key), p.role]))
    return this.#agency.node.config.allow.filter((k) => {
      const role = connected.get(k) ?? this.#agency.knownRole(k)
      return role === undefined || role === 'embassy' || role === 'unknown'
    })
  }

  /** What `peer` reported for `core` (replication sync, or a newer head it witnessed), or null. */
  #report(core: Hypercore, peer: Peer): Report | null {
    let out: Report | null = null
    for (const p of core.peers) {
      if (!p.remoteSynced || !p.remotePublicKey || !peer.key.equals(p.remotePublicKey)) continue
      out = { length: p.remoteLength, fork: p.remoteFork }
    }
    const head = this.#heads.get(keyHex(core))?.get(keyHex(peer))
    // A witnessed head newer than the sync counts too (once the peer synced the core at all).
    if (out && head && ahead(head, out)) out = head
    return out
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#closed) return
    this.#ticking = true
    try {
      if (this.#restoring) await this.#restoreStep()
      else await this.#watchStep()
    } finally {
      this.#ticking = false
    }
  }

  /** Restoring: quorum of embassies, every core at the highest head they reported. */
  async #restoreStep(): Promise<void> {
    const expected = this.#expected()
    const quorum = Math.max(1, Math.min(this.#opts.quorum ?? Math.floor(expected.length / 2) + 1, Math.max(expected.length, 1)))
    this.#quorum = quorum
    const embassies = this.#embassies()
    const need = this.#opts.force ? 1 : quorum
    if (embassies.length < need) {
      const missing = expected.filter((k) => !embassies.some((p) => toZ32(p.key) === k))
      this.#wait(`${need - embassies.length} more of its embassies to connect (quorum ${quorum} of ${expected.length}; connected: ${embassies.length}; not connected: ${missing.join(', ') || 'none'})`)
      return
    }
    // The catalog first: it names every other core.
    const catalog = this.#agency.catalog.core
    const cat = this.#target(catalog, embassies)
    if (cat.reporters.length < need) {
      this.#wait(`the catalog's head from ${need - cat.reporters.length} more embassies (reported: ${cat.reporters.length} of ${need})`)
      return
    }
    if (!this.#reached(catalog, cat.target)) {
      this.#sync(catalog, cat.target.length)
      this.#wait(`the catalog's head: length ${cat.target.length}, fork ${cat.target.fork} (held: length ${catalog.length}, fork ${catalog.fork})`)
      return
    }
    if (catalog.contiguousLength < catalog.length) {
      this.#fetch(catalog)
      this.#wait(`the catalog's blocks (${catalog.contiguousLength} of ${catalog.length})`)
      return
    }
    if (!this.#readKeyChecked) {
      await this.#agency.catalog.checkReadKey(this.#agency.readKey, { wait: true })
      this.#readKeyChecked = true
    }
    await this.#agency.openDatasets()
    const cores = [...(await this.#agency.cores()).values()].map((c) => c.core)
    let reporters: string[] | null = null
    for (const core of cores) {
      const r = this.#target(core, embassies)
      reporters = reporters === null ? r.reporters : reporters.filter((k) => r.reporters.includes(k))
      if (r.reporters.length < need) {
        this.#wait(`the head of core ${keyZ32(core)} from ${need - r.reporters.length} more embassies`)
        return
      }
      if (!this.#reached(core, r.target)) {
        this.#sync(core, r.target.length)
        this.#wait(`core ${keyZ32(core)} at length ${r.target.length}, fork ${r.target.fork} (held: length ${core.length}, fork ${core.fork})`)
        return
      }
    }
    const took = reporters ?? []
    this.#reported = took
    if (took.length < need) {
      this.#wait(`${need - took.length} more embassies to report every core`)
      return
    }
    // Forced with fewer than the quorum: the newest head may be on an embassy we cannot reach.
    // A new fork on every core before any append means no block index is ever written twice on one fork.
    if (took.length < quorum) {
      // Holders that stay on the old fork do not serve it blocks: take every block before forking.
      const missing = cores.filter((c) => c.contiguousLength < c.length)
      if (missing.length > 0) {
        for (const core of missing) this.#fetch(core)
        const held = cores.reduce((n, c) => n + c.contiguousLength, 0)
        const total = cores.reduce((n, c) => n + c.length, 0)
        this.#wait(`every block before the forced new fork (held ${held} of ${total})`)
        return
      }
      for (const core of cores) {
        await core.truncate(core.length, core.fork + 1)
        this.#forked++
      }
      this.#agency.notice('warn', 'restore-forced', `forced restore with ${took.length} of ${quorum} embassies: every core moved to a new fork (holders see a rewrite; see README "After a fork")`, { cores: cores.length, reported: took })
    }
    this.#tookFrom = took
    this.#agency.node.updateConfig((c) => {
      delete c.restoring
      if (c.restore) {
        delete c.restore.force
        if (Object.keys(c.restore).length === 0) delete c.restore
      }
    })
    this.#restoring = false
    for (const core of cores) this.#confirmed.add(keyHex(core))
    await this.#snapshot()
    // Receipts deferred while restoring are older than any that follow a write: judge them first.
    await this.#agency.restored()
    this.#becomeWritable()
    this.#startBackfill()
  }

  /**
   * Cores grown without a write of ours (replication took a newer head signed with our key): on a
   * core every embassy had confirmed, another live node writes; otherwise this copy was behind.
   */
  async #checkGrowth(embassies: Peer[]): Promise<void> {
    if (this.#writing > 0) return
    for (const { core } of (await this.#agency.cores()).values()) {
      if (core.closing || !core.opened) continue
      const hex = keyHex(core)
      const now = { length: core.length, fork: core.fork }
      const snap = this.#snap.get(hex)
      // Longer on the same fork. (A new fork at our end is the operator's truncation with our key.)
      if (snap && now.fork === snap.fork && now.length > snap.length) {
        if (this.#confirmed.has(hex)) {
          this.#second(core, embassies[0] ?? null, now)
          return
        }
        this.#startBackfill() // the blocks it was behind by
        if (!this.#staleNoticed) {
          this.#staleNoticed = true
          this.#agency.notice('warn', 'stale-head', `this node's copy was behind its embassies (a stale copy or snapshot?): core ${keyZ32(core)} synced from length ${snap.length}, fork ${snap.fork} to length ${now.length}, fork ${now.fork} before any write`)
        }
      }
      this.#snap.set(hex, now)
    }
  }

  /** Running (after a restore, or a restart): stale heads and other writers. */
  async #watchStep(): Promise<void> {
    const embassies = this.#embassies()
    let behind: string | null = null
    await this.#checkGrowth(embassies)
    if (this.#secondLive) return
    const all = await this.#agency.cores()
    if (this.#floors.size > 0) {
      behind = this.#floorBehind(all)
      for (const hex of this.#floors.keys()) {
        const core = all.get(hex)?.core
        if (core && core.opened && !core.closing) this.#sync(core, this.#floors.get(hex)!.length)
      }
    }
    for (const { core } of all.values()) {
      if (core.closing || !core.opened) continue
      const hex = keyHex(core)
      // A core behind a proven head is not confirmed: its growth from an embassy is the sync, not another writer.
      let allReported = embassies.length > 0 && !this.#floors.has(hex)
      for (const peer of embassies) {
        const r = this.#report(core, peer)
        if (!r) {
          allReported = false
          continue
        }
        if (!ahead(r, { length: core.length, fork: core.fork })) continue
        if (this.#confirmed.has(hex) && this.#writing === 0) {
          this.#second(core, peer, r)
          return
        }
        behind = `core ${keyZ32(core)} at length ${r.length}, fork ${r.fork} from embassy ${keyZ32(peer)} (held: length ${core.length}, fork ${core.fork})`
        this.#sync(core, r.length)
        allReported = false
      }
      if (allReported) this.#confirmed.add(hex)
    }
    if (behind) {
      if (this.#writable) {
        this.#agency.notice('warn', 'stale-head', `this agency's embassies hold a newer head than its own copy (a restarted stale copy?): writes refused until synced; ${behind}`)
      }
      this.#wait(behind)
      return
    }
    if (!this.#writable) this.#becomeWritable()
  }

  /** The highest head the embassies reported for `core`, and which embassies (hex) did. */
  #target(core: Hypercore, embassies: Peer[]): { target: Report; reporters: string[] } {
    let target: Report = { length: 0, fork: 0 }
    const reporters: string[] = []
    for (const peer of embassies) {
      const r = this.#report(core, peer)
      if (!r) continue
      reporters.push(keyZ32(peer))
      if (ahead(r, target)) target = r
    }
    return { target, reporters }
  }

  #reached(core: Hypercore, target: Report): boolean {
    return !ahead(target, { length: core.length, fork: core.fork })
  }

  /** Fetches the newest signed head (not the blocks). */
  #sync(core: Hypercore, length: number): void {
    const id = `sync:${keyHex(core)}:${length}`
    if (this.#inflight.has(id)) return
    this.#inflight.add(id)
    core.update({ wait: true, force: true }).catch(() => {}).finally(() => this.#inflight.delete(id))
  }

  /** Fetches every block of a (small) core: the catalog. */
  #fetch(core: Hypercore): void {
    const id = `fetch:${keyHex(core)}:${core.length}`
    if (this.#inflight.has(id)) return
    this.#inflight.add(id)
    core.download({ start: 0, end: core.length }).done().catch(() => {}).finally(() => this.#inflight.delete(id))
  }

  #wait(what: string): void {
    this.#waitingFor = what
    this.#writable = false
  }

  #becomeWritable(): void {
    this.#writable = true
    this.#waitingFor = null
    const first = this.#writableAt === null
    if (first) this.#writableAt = Date.now()
    const ms = (this.#writableAt ?? Date.now()) - this.#started
    if (first && this.#tookFrom.length > 0) {
      this.#agency.emit('writable', { ms, embassies: this.#tookFrom, forked: this.#forked })
      this.#agency.notice('info', 'restore-writable', `restore: every core at the newest head ${this.#tookFrom.length} embassies witnessed after ${(ms / 1000).toFixed(1)} s; writes allowed, backfilling the blocks`, { ms, embassies: this.#tookFrom, forked: this.#forked })
    } else if (!first || this.#behindAtStart) {
      this.#agency.notice('info', 'synced', 'synced to the newest head its embassies hold; writes allowed again')
      this.#startBackfill() // the blocks it was behind by
    }
  }

  /**
   * Embassy `reporter` saw two live instances of this agency's key (AlarmCode.SECOND_LIVE_NODE).
   * One embassy's word is an alarm only (a hostile embassy must not be able to stop the writer);
   * writes stop once more than half of the agency's embassies report it. True when they stopped.
   */
  twinReported(reporter: string): boolean {
    this.#twinReports.add(reporter)
    if (this.#secondLive) return true
    const expected = new Set(this.#expected())
    const reports = [...this.#twinReports].filter((k) => expected.has(k)).length
    if (reports < Math.floor(expected.size / 2) + 1) return false
    this.#secondLive = `${reports} of ${expected.size} embassies (${[...this.#twinReports].join(', ')})`
    this.#agency.notice('error', 'second-live-node', `${this.#secondLive} see two live nodes with this agency's key (a kit imported while the original runs?); this node refuses writes: decide which one stands down`, { embassies: [...this.#twinReports] })
    return true
  }

  #second(core: Hypercore, peer: Peer | null, r: Report): void {
    if (this.#secondLive) return
    const from = peer ? `embassy ${keyZ32(peer)}` : 'a peer'
    this.#secondLive = from
    const detail = `${from} brought core ${keyZ32(core)} to length ${r.length}, fork ${r.fork}, which this node did not write: another live node signs with this agency's key (a kit imported while the original runs?). This node refuses writes; decide which one stands down`
    this.#agency.alarm({ time: Date.now(), kind: 'second-live-node', peer: peer ? keyZ32(peer) : '', core: keyZ32(core), detail })
    this.#agency.notice('error', 'second-live-node', detail, { core: keyZ32(core), embassy: peer ? keyZ32(peer) : null, length: r.length, fork: r.fork })
  }

  // ---- backfill ----

  #startBackfill(): void {
    if (this.#backfill) return
    this.#backfill = this.#runBackfill()
      .catch((err) => {
        if (!this.#closed) this.#agency.notice('error', 'restore-error', `backfill: ${(err as Error).message}`)
      })
      .finally(() => (this.#backfill = null))
  }

  /** Downloads every block not held yet, window by window, within the throttle; resumes after a restart. */
  async #runBackfill(): Promise<void> {
    let missingAtStart = 0
    for (const { core } of (await this.#agency.cores()).values()) missingAtStart += core.length - core.contiguousLength
    if (missingAtStart === 0 && this.#tookFrom.length === 0) return // nothing to restore: a normal start
    let tenth = -1
    for (;;) {
      if (this.#closed) return
      const cores = [...(await this.#agency.cores()).values()].map((c) => c.core).filter((c) => c.opened && !c.closing)
      const core = cores.find((c) => c.contiguousLength < c.length)
      if (!core) break
      const rate = this.#rate
      if (rate === 0) {
        await new Promise<void>((resolve) => (this.#rateChanged = resolve))
        continue
      }
      // Progress in the log, every tenth of the blocks.
      const s = await this.status()
      const now = s.totalBlocks > 0 ? Math.floor((s.heldBlocks / s.totalBlocks) * 10) : 10
      if (now > tenth) {
        if (tenth !== -1 || s.heldBlocks > 0) this.#agency.notice('info', 'restore-progress', `backfill: ${s.heldBlocks} of ${s.totalBlocks} blocks held (${now * 10} %)`, { heldBlocks: s.heldBlocks, totalBlocks: s.totalBlocks })
        tenth = now
      }
      const start = core.contiguousLength
      const end = Math.min(core.length, start + (rate === null ? BACKFILL_WINDOW : Math.max(1, Math.min(BACKFILL_WINDOW, Math.ceil(rate)))))
      const began = Date.now()
      await core.download({ start, end }).done()
      if (rate !== null) {
        const ms = ((end - start) / rate) * 1000 - (Date.now() - began)
        if (ms > 0) await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms)
          this.#rateChanged = () => (clearTimeout(timer), resolve())
        })
      }
    }
    if (this.#closed) return
    let blocks = 0
    let bytes = 0
    const cores = await this.#agency.cores()
    for (const { core } of cores.values()) {
      blocks += core.length
      bytes += core.byteLength
    }
    const result: RestoreResult = {
      cores: cores.size,
      blocks,
      bytes,
      embassies: this.#tookFrom,
      ms: Date.now() - this.#started,
      writableMs: (this.#writableAt ?? Date.now()) - this.#started,
      forked: this.#forked
    }
    this.#agency.emit('restored', result)
    this.#agency.notice('info', 'restore-complete', `restore complete: ${result.cores} cores, ${result.blocks} blocks, ${result.bytes} bytes held again after ${(result.ms / 1000).toFixed(1)} s (writes allowed after ${(result.writableMs / 1000).toFixed(1)} s)`, { ...result })
  }
}

/** True when head `a` is ahead of `b`: a higher fork, or the same fork and longer. */
function ahead(a: Report, b: Report): boolean {
  return a.fork > b.fork || (a.fork === b.fork && a.length > b.length)
}
