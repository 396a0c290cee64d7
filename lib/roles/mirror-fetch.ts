/**
 * MirrorFetch: what a mirror fetches in the background, and what it keeps. Readers never wait for
 * it: every read path (gateway, `read`, `export`) fetches the blocks it needs on request from any
 * holder, with a bounded wait. This adds, per held dataset core:
 * - prefetch `newest` (the default): a log is fetched from its end back, PREFETCH_WINDOW blocks at
 *   a time (the newest records are the ones asked for in a crisis), then kept live; a files
 *   dataset's index and content cores whole, live;
 * - `oldest`: every block, live, in no particular order (what an embassy does);
 * - `off`: nothing in the background (pause a backfill; resume with another mode).
 * - sparse: no prefetch; the blocks fetched for readers are kept up to `cacheBytes`, the least
 *   recently fetched dropped first (`core.clear`). The cache's bookkeeping is not kept across
 *   restarts: a sparse mirror clears its dataset blocks when it goes online (`embassy run`), so the
 *   limit holds; offline commands read what the last run left.
 * One entry per core, no timers; a mode change stops the running downloads and starts the new ones.
 * Imports: node/ (config types), data/ (catalog types).
 */
import type Hypercore from 'hypercore'
import type { DatasetInfo } from '../data/catalog.js'
import type { MirrorSettings } from '../node/config.js'

/** Blocks per backward prefetch window of a log (newest first). */
export const PREFETCH_WINDOW = 1024
/** Default byte limit of a sparse mirror's cache. */
export const DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024

export type Prefetch = 'newest' | 'oldest' | 'off'

interface Download {
  done(): Promise<unknown>
  destroy(): void
}

interface Entry {
  core: Hypercore
  part: 'log' | 'index' | 'content'
  downloads: Set<Download>
  /** Wakes a task waiting for the core's first length. */
  wake: (() => void) | null
}

export interface FetchStatus {
  prefetch: Prefetch
  sparse: boolean
  /** Sparse: the cache limit and what it holds now (dataset block bytes fetched for readers). */
  cacheBytes: number | null
  cachedBytes: number
  cachedBlocks: number
  /** Sparse: blocks dropped to stay under the limit since start. */
  evicted: number
}

export class MirrorFetch {
  #entries = new Map<Hypercore, Entry>()
  #prefetch: Prefetch = 'newest'
  #sparse = false
  #cacheBytes = DEFAULT_CACHE_BYTES
  /** Sparse cache, least recently fetched first: `coreIndex:block` → what to clear. */
  #cache = new Map<string, { core: Hypercore; index: number; bytes: number }>()
  #cachedBytes = 0
  #evicted = 0
  #ids = new Map<Hypercore, number>()
  /** Bumped on every mode change and on close: running tasks of an older generation stop. */
  #generation = 0
  #closed = false
  #online = false
  /** Errors of background work (a core closed under a task is not one). */
  onError: (err: Error) => void = () => {}

  constructor(settings: MirrorSettings = {}) {
    this.#apply(settings)
  }

  #apply(settings: MirrorSettings): void {
    this.#sparse = settings.sparse ?? false
    this.#prefetch = this.#sparse ? 'off' : (settings.prefetch ?? 'newest')
    this.#cacheBytes = settings.cacheBytes ?? DEFAULT_CACHE_BYTES
  }

  get sparse(): boolean {
    return this.#sparse
  }

  get prefetch(): Prefetch {
    return this.#prefetch
  }

  /** Starts fetching a held dataset core by the current mode (the Holder's `download` hook). */
  add(core: Hypercore, info: DatasetInfo): void {
    if (this.#closed || this.#entries.has(core)) return
    const part = info.kind === 'log' ? 'log' : core.key && info.cores[0] && Buffer.from(core.key).equals(info.cores[0]) ? 'index' : 'content'
    const entry: Entry = { core, part, downloads: new Set(), wake: null }
    this.#entries.set(core, entry)
    this.#ids.set(core, this.#ids.size)
    core.on('download', (index: number, bytes: number) => this.#fetched(core, index, bytes))
    core.on('close', () => this.#forget(core))
    this.#start(entry, this.#generation)
  }

  /** The node went online (`embassy run`): a sparse cache starts empty (its account is not kept across runs). */
  online(): void {
    if (this.#online || this.#closed) return
    this.#online = true
    if (this.#sparse) for (const core of this.#entries.keys()) this.#clearHeld(core)
  }

  /** Changes the mode live: stops what runs, starts the new mode on every core. Turning sparse on empties the cache. */
  configure(settings: MirrorSettings): void {
    const wasSparse = this.#sparse
    this.#stopAll()
    this.#apply(settings)
    if (this.#sparse && !wasSparse && this.#online) for (const core of this.#entries.keys()) this.#clearHeld(core)
    if (!this.#sparse) {
      this.#cache.clear()
      this.#cachedBytes = 0
    }
    this.#trim()
    for (const e of this.#entries.values()) this.#start(e, this.#generation)
  }

  status(): FetchStatus {
    return {
      prefetch: this.#prefetch,
      sparse: this.#sparse,
      cacheBytes: this.#sparse ? this.#cacheBytes : null,
      cachedBytes: this.#cachedBytes,
      cachedBlocks: this.#cache.size,
      evicted: this.#evicted
    }
  }

  /** True while the background prefetch still has blocks to get (for status). */
  prefetching(core: Hypercore): boolean {
    const e = this.#entries.get(core)
    return !!e && e.downloads.size > 0
  }

  close(): void {
    this.#closed = true
    this.#stopAll()
    this.#entries.clear()
    this.#cache.clear()
  }

  #stopAll(): void {
    this.#generation++
    for (const e of this.#entries.values()) {
      for (const d of e.downloads) d.destroy()
      e.downloads.clear()
      e.wake?.()
    }
  }

  #forget(core: Hypercore): void {
    const e = this.#entries.get(core)
    if (!e) return
    for (const d of e.downloads) d.destroy()
    e.wake?.()
    this.#entries.delete(core)
    for (const [k, c] of this.#cache) {
      if (c.core !== core) continue
      this.#cache.delete(k)
      this.#cachedBytes -= c.bytes
    }
  }

  #start(e: Entry, generation: number): void {
    if (this.#closed || this.#prefetch === 'off') return
    if (this.#prefetch === 'newest' && e.part === 'log') {
      this.#newestFirst(e, generation).catch((err) => this.#failed(e, err))
      return
    }
    this.#track(e, e.core.download({ start: 0, end: -1 }) as Download)
  }

  #track(e: Entry, d: Download): Download {
    e.downloads.add(d)
    return d
  }

  /** A log from its end back, window by window, then every block live (new records included). */
  async #newestFirst(e: Entry, generation: number): Promise<void> {
    const core = e.core
    const current = (): boolean => !this.#closed && generation === this.#generation && !core.closing
    while (core.length === 0 && current()) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          core.off('append', done)
          e.wake = null
          resolve()
        }
        e.wake = done
        core.on('append', done)
      })
    }
    let end = core.length
    while (end > 0 && current()) {
      const start = Math.max(0, end - PREFETCH_WINDOW)
      if (!(await core.has(start, end))) {
        const d = this.#track(e, core.download({ start, end }) as Download)
        try {
          await d.done()
        } finally {
          e.downloads.delete(d)
        }
      }
      end = start
    }
    if (current()) this.#track(e, core.download({ start: 0, end: -1 }) as Download)
  }

  #failed(e: Entry, err: unknown): void {
    if (this.#closed || e.core.closing || (err as { code?: string }).code === 'SESSION_CLOSED') return
    this.onError(err as Error)
  }

  /** A block arrived: in sparse mode it joins the cache (as the most recent) and the oldest go past the limit. */
  #fetched(core: Hypercore, index: number, bytes: number): void {
    if (!this.#sparse || this.#closed) return
    const key = `${this.#ids.get(core)}:${index}`
    const had = this.#cache.get(key)
    if (had) {
      this.#cache.delete(key)
      this.#cachedBytes -= had.bytes
    }
    this.#cache.set(key, { core, index, bytes })
    this.#cachedBytes += bytes
    this.#trim()
  }

  /** Drops the least recently fetched blocks until the cache is under its limit (the newest block stays). */
  #trim(): void {
    if (!this.#sparse) return
    while (this.#cachedBytes > this.#cacheBytes && this.#cache.size > 1) {
      const [key, c] = this.#cache.entries().next().value as [string, { core: Hypercore; index: number; bytes: number }]
      this.#cache.delete(key)
      this.#cachedBytes -= c.bytes
      this.#evicted++
      c.core.clear(c.index, c.index + 1).catch((err: unknown) => {
        if (!c.core.closing) this.onError(err as Error)
      })
    }
  }

  /** Sparse: blocks held from before (another run, another mode) are outside the cache's account: drop them. */
  #clearHeld(core: Hypercore): void {
    if (core.length === 0) return
    core.clear(0, core.length).catch((err: unknown) => {
      if (!core.closing) this.onError(err as Error)
    })
  }
}
