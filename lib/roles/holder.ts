/**
 * Holder: keeps a full, live copy of everything one agency's catalog lists — the catalog itself
 * and every dataset core, present and future. It never needs the read key (embassies are blind).
 * One session and one live download range per held core; no per-core timers.
 *
 * Append-only: every held core is opened with Hypercore's `allowFork: false`, so a signed
 * truncation or fork offered by any peer (the writer's stolen key included) is never applied: the
 * verified history stays, and is still served. checkForks() (called by the role's single timer)
 * finds peers that offer a higher fork and reports each rewrite once; only acceptRewrite(), an
 * explicit operator act, lets one core take it.
 *
 * Bounded (`maxOpen`, an embassy's `maxOpenCores`): at most that many held cores are open at once.
 * Beyond it the least recently used core that is caught up and settled (`parkable`: an embassy's
 * receipt for it went) is closed — its channels with every peer closed, its Hypercore closed — and
 * kept as a record of its figures (what status and quota read). It is opened again, append-only
 * as ever, when the agency says it grew (the `appended` notice), a peer opens its channel, an
 * audit asks for it, or wake() is called. Pick-up of new cores waits for a free slot. A reader of
 * every block (verify, repair) takes a window of cores at a time with use(): those stay open
 * until it releases them, and those it opened are closed again then (entries() describes every
 * held core without opening it, for the reader to choose from).
 */
import { EventEmitter } from 'node:events'
import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Catalog, type DatasetInfo } from '../data/catalog.js'
import { keyZ32, toZ32 } from '../ids.js'
import { EmbassyError } from '../errors.js'
import type { HeldCoreEntry, HeldCoreRef, WindowRef } from '../data/held-core.js'
import type { Closable, OpenCores } from './open-cores.js'
import { guardServedBlocks, type DamagedBlock } from '../data/checked-blocks.js'
import type { HeadSummary } from '../custody/heads.js'
import { repairBlock } from '../verify/repair.js'

/**
 * New cores opened at once when a catalog lists many (one storage round trip per batch): bounded,
 * so a catalog of thousands of datasets never opens them all in one go.
 */
export const OPEN_BATCH = 64

/**
 * A held core unused this long (no blocks arriving, nobody asking for it) may close over the
 * bound even when not settled — so a peer that keeps a core from settling (claiming a length it
 * never sends) cannot pin it open.
 */
export const IDLE_CLOSE_MS = 60_000

/** Announced lengths kept for cores not picked up yet (a catalog lists at most 8,192). */
const MAX_ANNOUNCED = 16_384

export interface HeldCore {
  key: string
  /** Owning dataset id (hex). */
  dataset: string
  length: number
  contiguousLength: number
  byteLength: number
  peers: number
  /** The fork of the history held (verified and kept). */
  fork: number
  /** A higher fork a peer offers and this holder refused (history it keeps instead), if any. */
  offered?: { length: number; fork: number }
  /** The newest writer-signed head known for the core and how many holders cosigned it. */
  head?: HeadSummary | null
  /** Open now; false: closed while idle (the bound of open cores), its figures as it closed. */
  open: boolean
}

/** A rewrite of a held core's history that this holder refused. */
export interface RewriteOffer {
  core: Hypercore
  /** What this holder verified and keeps. */
  length: number
  fork: number
  treeHash: Buffer | null
  /** What it was offered, and by whom (the peer's node key). */
  offeredLength: number
  offeredFork: number
  offeredBy: Buffer
}

/** Hypercore's core behind its sessions (internal): closed by the holder once its session is. */
interface CoreInternals {
  closing: Promise<void> | null
  discoveryKey: Buffer
  hasSession(): boolean
  close(): Promise<void>
}

interface ReplicatorInternals {
  allowFork: boolean
  _updateFork?(peer: unknown): boolean
}

export interface HolderEvents {
  /** A core listed by the catalog is now held (opened with a live download range). */
  'core-added': [key: Buffer, dataset: string]
  /** A held core is open (picked up, or opened again after it was closed): offer it to peers. */
  'core-opened': [key: Buffer, core: Hypercore]
  /** A held core is being closed (the bound of open cores): forget this session of it. */
  'core-closing': [key: Buffer, core: Hypercore]
  /** Blocks arrived for a core. */
  progress: [core: Hypercore]
  /** A core's contiguous length reached its known length. */
  'caught-up': [core: Hypercore]
  /** A peer offered a truncation or fork of a held core; it was refused (once per core and fork). */
  'history-rewrite': [offer: RewriteOffer]
  /** Hypercore found two writer-signed heads at one length (it closes that core). */
  conflict: [core: Hypercore, length: number, fork: number]
  /** An accepted rewrite was applied: the core is now on `fork`. */
  'rewrite-accepted': [core: Hypercore, fork: number]
  /**
   * A stored block failed its check when a peer asked for it (unreadable, or not its signed leaf):
   * that request was answered "not available" and the block cleared, so it is fetched again from
   * another holder and verified. For the role's HistoryGuard to log and alarm (`damaged-block`).
   */
  'damaged-block': [damage: DamagedBlock]
  /** A damaged block was fetched again from another holder and verified: the damage is repaired. */
  'block-repaired': [damage: DamagedBlock]
  error: [err: Error]
}

export interface HolderOptions {
  /** Starts fetching a newly held dataset core (instead of every block, live); a mirror's backfill. */
  download?: (core: Hypercore, dataset: DatasetInfo) => void
  /** Whether a listed core may be held now (an embassy's core quota); false skips it until a later refresh(). */
  admit?: (key: Buffer, dataset: DatasetInfo) => boolean
  /** Called after every pass over the catalog (an embassy's quota re-evaluates). */
  refreshed?: () => void
  /**
   * The bound of held cores open at once, shared with the node's other holders (open-cores.ts);
   * beyond it idle, caught-up, settled ones are closed and opened again on demand.
   * @default none: every held core stays open
   */
  bound?: OpenCores
  /** Whether an open, caught-up core is settled and may be closed now (an embassy: its receipt went). */
  parkable?: (core: Hypercore) => boolean
  /**
   * Runs on an open core about to be closed while idle, before it closes (the history guard
   * witnesses its head: a closed core's head is what heads from peers are checked against).
   * Must not wait for the network; its failure does not keep the core open.
   */
  beforePark?: (core: Hypercore) => Promise<void>
}

/** A peer that asked for a closed core (its channel opens once the core is open again). */
export interface WakeFor {
  /** Its node key (the remote public key of its channels). */
  key: Uint8Array
  /** True once its connection is gone (it no longer waits). */
  gone: () => boolean
}

/** A held core a reader took with use(): its reference, kept open until release() resolves. */
export interface HeldCoreUse {
  ref: WindowRef
  /** Lets it close again (one the reader opened is closed by then, unless used meanwhile); once. */
  release(): Promise<void>
}

/** One held dataset core: its session while open, and its figures (kept while it is closed). */
export interface HeldEntry {
  key: Buffer
  dataset: string
  /** The holder's session while the core is open; null while it is closed. */
  core: Hypercore | null
  /** Figures when last seen open (status and quota read them while it is closed). */
  length: number
  contiguousLength: number
  byteLength: number
  fork: number
  /** Use counter at the last use (opened, blocks arrived, asked for): least recent is closed first. */
  used: number
  /** When it was last used (ms since epoch). */
  usedAt: number
  /** A close or an open under way. */
  busy: Promise<void> | null
  /** Peers that asked for it while closed: it stays open until each has its channel (or is gone). */
  waiting: WakeFor[] | null
  /** Readers' windows (use()) reading it now: it does not close while any does. */
  using: number
  /** The longest length the agency said it has (its `appended` notices): held below it, it is not settled. */
  announced: number
  /** The fork of that length (a notice of another fork replaces it). */
  announcedFork: number
  /**
   * The length it was last said to be complete at (`caught-up`); what storage held complete when
   * it was first opened counts as said (a restart logs nothing new).
   */
  saidCaughtUp: number
  /** What the catalog says of its dataset (the download policy takes it when the core reopens). */
  info: DatasetInfo
}

export class Holder extends EventEmitter<HolderEvents> {
  readonly store: Corestore
  readonly catalog: Catalog
  /** Every held dataset core (hex key → entry), open or closed. */
  readonly cores = new Map<string, HeldEntry>()
  /** Discovery key (hex) → core key (hex), for peers that ask for a closed core by its channel. */
  #byDiscoveryKey = new Map<string, string>()
  /** Dataset cores open now. */
  #openCount = 0
  /** Entries whose core is open (what the bound looks over). */
  #openEntries = new Set<HeldEntry>()
  /** Lengths the agency announced for cores not picked up yet (hex key → length); bounded. */
  #announced = new Map<string, { length: number; fork: number }>()
  #bound: OpenCores | null
  /** open() waits for the first pick-up unless it waits for a slot: this tells it so. */
  #onBlocked: (() => void) | null = null
  readonly stats = { closed: 0, reopened: 0 }
  #refreshing: Promise<void> | null = null
  #again = false
  #closed = false
  /** Core (hex) → highest fork the operator accepted for it. */
  #accepted: Map<string, number>
  /** Core (hex) → highest fork already reported as refused. */
  #reported = new Map<string, number>()
  #download: HolderOptions['download'] | null
  #opts: HolderOptions

  /**
   * @param accepted rewrites the operator accepted: core key (hex) → fork
   * @param opts.download how a dataset core is fetched once held (a mirror's backfill policy); @default every block, live
   */
  constructor(store: Corestore, catalogKey: Uint8Array, accepted: Map<string, number> = new Map(), opts: HolderOptions = {}) {
    super()
    this.store = store
    this.#accepted = accepted
    this.#download = opts.download ?? null
    this.#opts = opts
    this.#bound = opts.bound ?? null
    this.#bound?.add(this)
    this.catalog = new Catalog(store.get({ key: Buffer.from(catalogKey), allowFork: false }))
  }

  get key(): Buffer {
    return this.catalog.key
  }

  async open(): Promise<void> {
    const core = this.catalog.core
    await core.ready()
    this.#appendOnly(core)
    core.download({ start: 0, end: -1 })
    core.on('append', () => this.refresh())
    core.on('download', () => {
      this.emit('progress', core)
      if (core.contiguousLength === core.length) this.emit('caught-up', core)
      void this.refresh()
    })
    // Under a bound of open cores, pick-up waits for slots that free up only once cores settle
    // (receipts, over the network attached after this): it goes on in the background then.
    // Otherwise (and below the bound) open() resolves once every listed core is picked up.
    const blocked = new Promise<void>((resolve) => (this.#onBlocked = resolve))
    await Promise.race([this.refresh(), blocked])
    this.#onBlocked = null
  }

  /** Picks up new catalog entries; coalesces concurrent calls. */
  refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true
      return this.#refreshing
    }
    this.#refreshing = this.#refresh()
      .catch((err) => {
        if (!this.#closed) this.emit('error', err)
      })
      .finally(() => {
        this.#refreshing = null
        if (this.#again && !this.#closed) {
          this.#again = false
          void this.refresh()
        }
      })
    return this.#refreshing
  }

  async #refresh(): Promise<void> {
    const datasets = await this.catalog.datasets(null, { includeRetired: true })
    // New cores are opened in bounded parallel batches: one storage round trip per batch, not per
    // core (sequential opens dominated catching up thousands of datasets), and never all at once.
    let batch: Array<{ key: Buffer; core: Hypercore; dataset: DatasetInfo }> = []
    for (const d of datasets) {
      for (const key of d.cores) {
        if (this.#closed) return
        const hex = key.toString('hex')
        if (this.cores.has(hex)) continue
        if (this.#opts.admit && !this.#opts.admit(key, d)) continue
        while (this.#bound?.full() && !this.#closed) {
          // Bounded: open what is batched, then wait until a held core may close.
          if (batch.length > 0) await this.#hold(batch)
          batch = []
          this.#onBlocked?.()
          await this.#bound.slot()
        }
        if (this.#closed) return
        if (this.cores.has(hex)) continue
        const core = this.store.get({ key, allowFork: false })
        this.cores.set(hex, { key, dataset: d.id, core, length: 0, contiguousLength: 0, byteLength: 0, fork: 0, used: this.#use(), usedAt: Date.now(), busy: null, waiting: null, using: 0, announced: this.#announced.get(hex)?.length ?? 0, announcedFork: this.#announced.get(hex)?.fork ?? 0, saidCaughtUp: 0, info: d })
        this.#announced.delete(hex)
        this.#opened(this.cores.get(hex)!)
        batch.push({ key, core, dataset: d })
        if (batch.length >= OPEN_BATCH) {
          await this.#hold(batch)
          batch = []
        }
      }
    }
    if (batch.length > 0) await this.#hold(batch)
    this.#opts.refreshed?.()
  }

  /** Waits for a batch of newly listed cores to open, then holds each (in catalog order). */
  async #hold(batch: Array<{ key: Buffer; core: Hypercore; dataset: DatasetInfo }>): Promise<void> {
    const opened = await Promise.allSettled(batch.map((b) => b.core.ready()))
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    for (let i = 0; i < batch.length; i++) {
      if (this.#closed) return
      const { key, core, dataset } = batch[i]!
      if (opened[i]!.status === 'rejected') {
        // Kept as a closed core: asked for again (a peer, a notice, verify), it is opened again.
        const e = this.cores.get(key.toString('hex'))
        if (e && e.core === core) {
          e.core = null
          this.#closedEntry(e, false)
        }
        void core.close().catch(() => {})
        continue
      }
      if (core.discoveryKey) this.#byDiscoveryKey.set(core.discoveryKey.toString('hex'), key.toString('hex'))
      const e = this.cores.get(key.toString('hex'))
      if (e && core.length > 0 && core.contiguousLength === core.length) e.saidCaughtUp = core.length
      this.#activate(core, dataset)
      this.emit('core-added', key, dataset.id)
      this.emit('core-opened', key, core)
    }
    if (failed) throw failed.reason
  }

  /** Holds an open session of a dataset core: append-only, its download policy, its listeners. */
  #activate(core: Hypercore, dataset: DatasetInfo): void {
    this.#appendOnly(core)
    if (this.#download) this.#download(core, dataset)
    else core.download({ start: 0, end: -1 })
    const ondownload = this.#ondownload(core)
    core.on('download', ondownload)
    // Serving counts as use: the bound closes the least recently used first.
    const hex = core.key!.toString('hex')
    core.on('upload', () => {
      const e = this.cores.get(hex)
      if (e) {
        e.used = this.#use()
        e.usedAt = Date.now()
      }
    })
  }

  #use(): number {
    return this.#bound ? this.#bound.use() : 0
  }

  #opened(e: HeldEntry): void {
    this.#openCount++
    this.#openEntries.add(e)
    this.#bound?.opened()
  }

  #closedEntry(e: HeldEntry, wasClosing: boolean): void {
    this.#openCount--
    this.#openEntries.delete(e)
    this.#bound?.closed(wasClosing)
  }

  /**
   * `core` may have become settled (an embassy: its receipt went): under the bound's pressure it
   * is queued to close. Nothing without a bound, or below it.
   */
  settle(core: Hypercore): void {
    if (!this.#bound || this.#closed) return
    const e = this.cores.get(core.key!.toString('hex'))
    if (e && e.core === core && this.#closable(e)) this.#bound.settled(this.#candidate(e))
  }

  /** The open cores that may close now (the bound picks the least recently used). */
  closable(): Closable[] {
    const out: Closable[] = []
    if (this.#closed) return out
    for (const e of this.#openEntries) if (this.#closable(e)) out.push(this.#candidate(e))
    return out
  }

  #candidate(e: HeldEntry): Closable {
    return {
      get used() {
        return e.used
      },
      closable: () => !this.#closed && this.#closable(e),
      close: () => void this.#park(e)
    }
  }

  /** An open core nothing else uses, caught up, and settled (its receipt went). */
  #closable(e: HeldEntry): boolean {
    if (!this.#unused(e)) return false
    const core = e.core!
    // A peer that lacks blocks held here still fetches them (a mirror reading, a holder catching
    // up): closing would close its channel, and it would not open it again by itself.
    for (const p of core.peers) if ((p as unknown as { remoteContiguousLength: number }).remoteContiguousLength < core.length) return false
    if (this.#holdsAnnounced(e, core) && (!this.#opts.parkable || this.#opts.parkable(core))) return true
    return Date.now() - e.usedAt >= IDLE_CLOSE_MS
  }

  /**
   * Open and caught up, and nothing else uses it: no opening or closing under way, no reader's
   * window, no other session (an audit, a read), no peer waiting for its channel.
   */
  #unused(e: HeldEntry): boolean {
    const core = e.core
    if (!core || e.busy || e.using > 0 || core.closing || !core.opened) return false
    if (core.contiguousLength !== core.length) return false
    const inner = (core as unknown as { core?: { allSessions?(): unknown[] } }).core
    if (!inner?.allSessions || inner.allSessions().length !== 1) return false // an audit, a read
    // A peer that asked for it keeps it open until its channel is up (else its open is refused).
    if (e.waiting) {
      e.waiting = e.waiting.filter((w) => !w.gone() && !core.peers.some((p) => Buffer.from(p.remotePublicKey).equals(Buffer.from(w.key))))
      if (e.waiting.length > 0) return false
      e.waiting = null
    }
    return true
  }

  /** It holds the length the agency announced (or that was of another fork): nothing to fetch. */
  #holdsAnnounced(e: HeldEntry, core: Hypercore): boolean {
    return core.fork !== e.announcedFork || core.length >= e.announced
  }

  /** Closes a held core, keeping its figures: its channels with every peer and its Hypercore. */
  async #park(e: HeldEntry): Promise<void> {
    const core = e.core!
    // Hypercore updates a core's length before it tells its sessions of the block (the download
    // event, after a storage write): closed in between, the holder would never hear of it.
    this.#sayCaughtUp(e, core)
    this.#record(e, core)
    e.core = null
    this.stats.closed++
    this.#bound?.closing()
    const inner = (core as unknown as { core?: CoreInternals }).core
    const closing = (async () => {
      if (this.#opts.beforePark) await this.#opts.beforePark(core).catch(() => {})
      this.emit('core-closing', e.key, core)
      await core.close().catch(() => {})
      // Hypercore keeps a core with peers open after its last session; Corestore closes an idle
      // one only on its timer. Close it now (every channel with it), and let Corestore forget it.
      if (inner && !inner.closing && !inner.hasSession()) {
        await inner.close().catch(() => {})
        forget(this.store, inner)
      }
    })()
    e.busy = closing
    await closing
    if (e.busy === closing) e.busy = null
    this.#closedEntry(e, true)
    // Closed below what the agency said it has (it was idle that long): open it again to fetch.
    if (e.fork === e.announcedFork && e.announced > e.length && !this.#closed) void this.wake(e.key, { queue: true })
  }

  /**
   * The agency says core `key` has `length` blocks on `fork` (its `appended` notice): a closed
   * core that holds less (or another fork) is opened again, waiting for a slot; an open one is
   * not settled below that length. Remembered for a core not picked up yet (bounded). A notice is
   * a hint: nothing beyond the writer's signed length is ever fetched.
   */
  announce(key: Uint8Array, length: number, fork: number): void {
    if (this.#closed) return
    const hex = Buffer.from(key).toString('hex')
    const e = this.cores.get(hex)
    if (!e) {
      if (this.catalog.key.toString('hex') === hex) return
      const had = this.#announced.get(hex)
      if (this.#announced.size < MAX_ANNOUNCED || had) this.#announced.set(hex, had && had.fork === fork ? { length: Math.max(length, had.length), fork } : { length, fork })
      return
    }
    if (fork !== e.announcedFork) {
      e.announced = length
      e.announcedFork = fork
    } else if (length > e.announced) e.announced = length
    if (e.core && !e.busy) return // open: it hears of the append itself
    if (length > e.length || fork !== e.fork) void this.wake(key, { queue: true })
  }

  /** Keeps `core`'s figures in its entry. */
  #record(e: HeldEntry, core: Hypercore): void {
    e.length = core.length
    e.contiguousLength = core.contiguousLength
    e.byteLength = core.byteLength
    e.fork = core.fork
  }

  /**
   * The open session of held core `key`, opening it again if it was closed (append-only, with its
   * download policy, offered to peers); null when not a core this holder holds. Marks it used.
   */
  async wake(key: Uint8Array, opts: { queue?: boolean; for?: WakeFor } = {}): Promise<Hypercore | null> {
    const hex = Buffer.from(key).toString('hex')
    if (this.catalog.key.toString('hex') === hex) return this.catalog.core
    const e = this.cores.get(hex)
    if (!e || this.#closed) return null
    e.used = this.#use()
    e.usedAt = Date.now()
    if (opts.for) (e.waiting ??= []).push(opts.for)
    const core = await this.#open(e, opts.queue === true)
    return core instanceof Error ? null : core
  }

  /**
   * The open session of entry `e`, opening it again if it was closed; why not when it cannot be
   * opened, null once the holder closed. Not a use: its use stamp stays.
   */
  async #open(e: HeldEntry, queue: boolean): Promise<Hypercore | Error | null> {
    while (e.busy) await e.busy
    if (e.core) return e.core
    // `queue` (a notice that a core grew): waits for a free slot like pick-up does; a peer, an
    // audit or a reader asking for the core opens it at once (the bound closes another one after).
    while (queue && this.#bound?.full() && !this.#closed && !e.core && !e.busy) await this.#bound.slot()
    while (e.busy) await e.busy
    if (e.core) return e.core
    if (this.#closed) return null
    const core = this.store.get({ key: e.key, allowFork: false })
    const opening = core.ready().then(
      () => {
        if (this.#closed) {
          void core.close().catch(() => {})
          return null
        }
        e.core = core
        this.#opened(e)
        this.stats.reopened++
        this.#activate(core, e.info)
        this.emit('core-opened', e.key, core)
        // Blocks can land while its session is closed (Hypercore keeps the core with its peers
        // until the holder closes it after the session): caught up beyond what it held when it
        // closed, it says so now — no download event will.
        this.#sayCaughtUp(e, core)
        return null
      },
      (err: Error) => {
        void core.close().catch(() => {})
        this.emit('error', err)
        return err
      }
    )
    const busy = opening.then(() => {})
    e.busy = busy
    const failed = await opening
    if (e.busy === busy) e.busy = null
    return e.core ?? failed
  }

  /**
   * Held core `entry` for a reader of its blocks (a verify or repair window), kept open until
   * its release() resolves: the bound closes none while in use. A closed one is opened again at
   * once, without waiting for a slot (the window's own cores may fill the bound: it goes over it
   * by at most one window), and closed again on release unless something else used it meanwhile
   * (blocks arrived, a peer or an audit asked for it, another window holds it) — so a reading
   * leaves the cores open as it found them. Never rejects: a core that cannot be opened comes
   * back described, with why.
   */
  async use(entry: HeldCoreEntry): Promise<HeldCoreUse> {
    const label = { catalog: this.key, dataset: entry.dataset, name: entry.name }
    if (entry.key.equals(this.key)) return { ref: { ...label, core: this.catalog.core }, release: async () => {} }
    const e = this.cores.get(entry.key.toString('hex'))
    if (!e || this.#closed) {
      const error = this.#closed ? EmbassyError.closed() : EmbassyError.notFound(`core ${toZ32(entry.key)} is not held here`)
      return { ref: { ...entry, error }, release: async () => {} }
    }
    e.using++
    // Closed, nothing opening or closing it: opened for this reader only (its use stamp as it was).
    const lent = !e.core && !e.busy ? e.used : null
    let released = false
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      e.using--
      if (lent === null || e.using > 0 || e.used !== lent || this.#closed) return
      if (this.#unused(e) && this.#holdsAnnounced(e, e.core!)) await this.#park(e)
    }
    let core: Hypercore | Error | null
    try {
      core = await this.#open(e, false)
    } catch (err) {
      core = err instanceof Error ? err : new Error(String(err))
    }
    if (!core || core instanceof Error) return { ref: { ...entry, error: core ?? EmbassyError.closed() }, release }
    return { ref: { ...label, core, ...(lent !== null ? { reopened: true } : {}) }, release }
  }

  /** The held core (hex key) whose channel has discovery key `dk`, if any (open or closed). */
  byDiscoveryKey(dk: Uint8Array): Buffer | null {
    const hex = this.#byDiscoveryKey.get(Buffer.from(dk).toString('hex'))
    return hex ? Buffer.from(hex, 'hex') : null
  }

  /** True when `key` is a core this holder holds (open or closed), the catalog included. */
  holds(key: Uint8Array): boolean {
    const hex = Buffer.from(key).toString('hex')
    return this.catalog.key.toString('hex') === hex || this.cores.has(hex)
  }

  /** Held dataset cores open now (at most `maxOpen` once settled). */
  get openCount(): number {
    return this.#openCount
  }

  /** A held core's `download` listener: progress, and `caught-up` once per length. */
  #ondownload(core: Hypercore): () => void {
    const hex = core.key!.toString('hex')
    return () => {
      const e = this.cores.get(hex)
      if (!e) return
      e.used = this.#use()
      e.usedAt = Date.now()
      if (!this.#sayCaughtUp(e, core)) this.emit('progress', core)
    }
  }

  /**
   * Says that `core` grew (`progress`) and caught up (`caught-up`) when it is complete beyond the
   * length last said: once per length, whichever way it was noticed (a block's download event, an
   * open, a close). True when it said so.
   */
  #sayCaughtUp(e: HeldEntry, core: Hypercore): boolean {
    if (core.length <= e.saidCaughtUp || core.contiguousLength !== core.length) return false
    e.saidCaughtUp = core.length
    this.emit('progress', core)
    this.emit('caught-up', core)
    return true
  }

  /** Every held core open now, the catalog first (a closed one has no session, no peers). */
  allCores(): Hypercore[] {
    const out = [this.catalog.core]
    for (const e of this.cores.values()) if (e.core) out.push(e.core)
    return out
  }

  /**
   * Holds `core` append-only (also when another session opened it first), and listens for what
   * Hypercore itself detects: two writer-signed heads at one length.
   */
  #appendOnly(core: Hypercore): void {
    const r = replicator(core)
    if (r) r.allowFork = false
    core.on('conflict', (length, fork) => this.emit('conflict', core, length, fork))
    guardServedBlocks(core, (damage) => {
      this.emit('damaged-block', damage)
      if (this.#closed || core.closing) return
      // Cleared, then asked for again (waiting for a holder that has it): another holder's copy
      // arrives verified against the signed tree (lib/verify/repair.ts).
      void repairBlock(core, damage.index, 0).then((r) => {
        if (r.ok && !this.#closed) this.emit('block-repaired', damage)
      })
    })
    core.on('truncate', () => {
      // Only an accepted rewrite gets here: hold the core append-only again on its new fork.
      const rr = replicator(core)
      if (rr) rr.allowFork = false
      this.#reported.delete(core.key!.toString('hex'))
      this.emit('rewrite-accepted', core, core.fork)
    })
  }

  /**
   * Finds peers that offer a higher fork of a held core than the one held, and reports each
   * refused rewrite once per core and fork (an accepted one is let through). O(held cores).
   */
  async checkForks(): Promise<void> {
    for (const core of this.allCores()) {
      if (this.#closed || core.closing || !core.opened) continue
      let offer: { length: number; fork: number; by: Buffer } | null = null
      for (const peer of core.peers) {
        if (peer.remoteFork > core.fork && (!offer || peer.remoteFork > offer.fork)) offer = { length: peer.remoteLength, fork: peer.remoteFork, by: Buffer.from(peer.remotePublicKey) }
      }
      if (!offer) continue
      const hex = core.key!.toString('hex')
      const accepted = this.#accepted.get(hex) ?? -1
      if (accepted >= offer.fork) {
        this.#allowRewrite(core)
        continue
      }
      if ((this.#reported.get(hex) ?? -1) >= offer.fork) continue
      this.#reported.set(hex, offer.fork)
      let treeHash: Buffer | null = null
      try {
        treeHash = core.length > 0 ? Buffer.from(await core.treeHash(core.length)) : null
      } catch {
        treeHash = null
      }
      this.emit('history-rewrite', { core, length: core.length, fork: core.fork, treeHash, offeredLength: offer.length, offeredFork: offer.fork, offeredBy: offer.by })
    }
  }

  /** The operator accepts rewrites of `coreKey` up to `fork`: the next check lets it through. */
  acceptRewrite(coreKey: Buffer, fork: number): void {
    this.#accepted.set(coreKey.toString('hex'), fork)
  }

  #allowRewrite(core: Hypercore): void {
    const r = replicator(core)
    if (!r || r.allowFork) return
    r.allowFork = true
    for (const peer of core.peers) r._updateFork?.(peer)
  }

  /** The held core with key `key`, if any (the catalog included). */
  find(key: Uint8Array): Hypercore | null {
    const hex = Buffer.from(key).toString('hex')
    if (this.catalog.key.toString('hex') === hex) return this.catalog.core
    return this.cores.get(hex)?.core ?? null
  }

  /**
   * Every held core as a reference (for verification), labelled by its key. Closed cores are
   * opened again first (a verification reads every block; the bound closes them again).
   */
  async refs(): Promise<HeldCoreRef[]> {
    const catalog = this.key
    const out: HeldCoreRef[] = [{ catalog, dataset: null, name: 'catalog', core: this.catalog.core }]
    for (const e of [...this.cores.values()]) {
      const core = e.core ?? (await this.wake(e.key))
      if (core) out.push({ catalog, dataset: e.dataset, name: keyZ32(core), core })
    }
    return out
  }

  /** Every held core described without opening it, the catalog first (what a reader selects from). */
  entries(): HeldCoreEntry[] {
    const catalog = this.key
    const out: HeldCoreEntry[] = [{ catalog, dataset: null, name: 'catalog', key: catalog, length: this.catalog.core.length }]
    for (const e of this.cores.values()) out.push({ catalog, dataset: e.dataset, name: toZ32(e.key), key: e.key, length: e.core ? e.core.length : e.length })
    return out
  }

  /** Every held core, the catalog first; a closed one with the figures it had when it closed. */
  held(): HeldCore[] {
    const out: HeldCore[] = [describe(this.catalog.core, 'catalog')]
    for (const e of this.cores.values()) {
      if (e.core) out.push(describe(e.core, e.dataset))
      else out.push({ key: toZ32(e.key), dataset: e.dataset, length: e.length, contiguousLength: e.contiguousLength, byteLength: e.byteLength, peers: 0, fork: e.fork, open: false })
    }
    return out
  }

  /** True when every held core has all the blocks it knows of. */
  get complete(): boolean {
    return this.held().every((c) => c.contiguousLength === c.length)
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#bound?.remove(this)
    await this.#refreshing
    for (const e of this.cores.values()) {
      while (e.busy) await e.busy
      if (!e.core) continue
      await e.core.close()
      e.core = null
      this.#closedEntry(e, false)
    }
    this.cores.clear()
    await this.catalog.core.close()
  }
}

function describe(core: Hypercore, dataset: string): HeldCore {
  const out: HeldCore = {
    key: keyZ32(core),
    dataset,
    length: core.length,
    contiguousLength: core.contiguousLength,
    byteLength: core.byteLength,
    peers: core.peers.length,
    fork: core.fork,
    open: true
  }
  let offered: { length: number; fork: number } | null = null
  for (const p of core.peers) if (p.remoteFork > core.fork && (!offered || p.remoteFork > offered.fork)) offered = { length: p.remoteLength, fork: p.remoteFork }
  if (offered) out.offered = offered
  return out
}

/** Hypercore's replicator of a core (internal: `allowFork` is its public option, settable live). */
function replicator(core: Hypercore): ReplicatorInternals | null {
  const r = (core as unknown as { core?: { replicator?: ReplicatorInternals } }).core?.replicator
  return r && typeof r.allowFork === 'boolean' ? r : null
}

/**
 * Corestore forgets a closed core on its idle timer (every 2 s, four strikes); a held core the
 * holder closed is forgotten now, so its memory goes with it (internal: `cores.map`, keyed by the
 * discovery key in hex). A core opened again since is a new object and stays.
 */
function forget(store: Corestore, inner: CoreInternals): void {
  const cores = (store as unknown as { cores?: { map?: Map<string, unknown>; _gcing?: Set<unknown> } }).cores
  const id = inner.discoveryKey?.toString('hex')
  if (cores?.map && id && cores.map.get(id) === inner) cores.map.delete(id)
  cores?._gcing?.delete(inner) // its last peer leaving marked it idle: nothing left to collect
}
