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
 */
import { EventEmitter } from 'node:events'
import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Catalog, type DatasetInfo } from '../data/catalog.js'
import { keyZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { guardServedBlocks, type DamagedBlock } from '../data/checked-blocks.js'
import type { HeadSummary } from '../custody/heads.js'
import { repairBlock } from '../verify/repair.js'

/**
 * New cores opened at once when a catalog lists many (one storage round trip per batch): bounded,
 * so a catalog of thousands of datasets never opens them all in one go.
 */
export const OPEN_BATCH = 64

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

interface ReplicatorInternals {
  allowFork: boolean
  _updateFork?(peer: unknown): boolean
}

export interface HolderEvents {
  /** A core listed by the catalog is now held (opened with a live download range). */
  'core-added': [key: Buffer, dataset: string]
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
}

export class Holder extends EventEmitter<HolderEvents> {
  readonly store: Corestore
  readonly catalog: Catalog
  readonly cores = new Map<string, { core: Hypercore; dataset: string }>()
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
    await this.refresh()
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
        const core = this.store.get({ key, allowFork: false })
        this.cores.set(hex, { core, dataset: d.id })
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
      if (opened[i]!.status === 'rejected') continue
      this.#appendOnly(core)
      if (this.#download) this.#download(core, dataset)
      else core.download({ start: 0, end: -1 })
      core.on('download', this.#ondownload(core))
      this.emit('core-added', key, dataset.id)
    }
    if (failed) throw failed.reason
  }

  /** A held core's `download` listener: progress, and `caught-up` once per length. */
  #ondownload(core: Hypercore): () => void {
    let caughtUpAt = -1
    return () => {
      this.emit('progress', core)
      if (core.contiguousLength === core.length && core.length !== caughtUpAt) {
        caughtUpAt = core.length
        this.emit('caught-up', core)
      }
    }
  }

  /** Every held core, the catalog first. */
  allCores(): Hypercore[] {
    return [this.catalog.core, ...[...this.cores.values()].map((c) => c.core)]
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

  /** Every held core as a reference (for verification), labelled by its key. */
  refs(): HeldCoreRef[] {
    const catalog = this.key
    return [
      { catalog, dataset: null, name: 'catalog', core: this.catalog.core },
      ...[...this.cores.values()].map(({ core, dataset }) => ({ catalog, dataset, name: keyZ32(core), core }))
    ]
  }

  /** Every held core, the catalog first. */
  held(): HeldCore[] {
    const out: HeldCore[] = [describe(this.catalog.core, 'catalog')]
    for (const { core, dataset } of this.cores.values()) out.push(describe(core, dataset))
    return out
  }

  /** True when every held core has all the blocks it knows of. */
  get complete(): boolean {
    return this.held().every((c) => c.contiguousLength === c.length)
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#refreshing
    for (const { core } of this.cores.values()) await core.close()
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
    fork: core.fork
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
