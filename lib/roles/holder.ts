/**
 * Holder: keeps a full, live copy of everything one agency's catalog lists — the catalog itself
 * and every dataset core, present and future. It never needs the read key (embassies are blind).
 * One session and one live download range per held core; no per-core timers.
 */
import { EventEmitter } from 'node:events'
import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Catalog } from '../data/catalog.js'
import { toZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'

export interface HeldCore {
  key: string
  /** Owning dataset id (hex). */
  dataset: string
  length: number
  contiguousLength: number
  byteLength: number
  peers: number
}

export interface HolderEvents {
  /** A core listed by the catalog is now held (opened with a live download range). */
  'core-added': [key: Buffer, dataset: string]
  /** Blocks arrived for a core. */
  progress: [core: Hypercore]
  /** A core's contiguous length reached its known length. */
  'caught-up': [core: Hypercore]
  error: [err: Error]
}

export class Holder extends EventEmitter<HolderEvents> {
  readonly store: Corestore
  readonly catalog: Catalog
  readonly cores = new Map<string, { core: Hypercore; dataset: string }>()
  #refreshing: Promise<void> | null = null
  #again = false
  #closed = false

  constructor(store: Corestore, catalogKey: Uint8Array) {
    super()
    this.store = store
    this.catalog = new Catalog(store.get({ key: Buffer.from(catalogKey) }))
  }

  get key(): Buffer {
    return this.catalog.key
  }

  async open(): Promise<void> {
    const core = this.catalog.core
    await core.ready()
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
    for (const d of datasets) {
      for (const key of d.cores) {
        if (this.#closed) return
        const hex = key.toString('hex')
        if (this.cores.has(hex)) continue
        const core = this.store.get({ key })
        this.cores.set(hex, { core, dataset: d.id })
        await core.ready()
        core.download({ start: 0, end: -1 })
        let caughtUpAt = -1
        core.on('download', () => {
          this.emit('progress', core)
          if (core.contiguousLength === core.length && core.length !== caughtUpAt) {
            caughtUpAt = core.length
            this.emit('caught-up', core)
          }
        })
        this.emit('core-added', key, d.id)
      }
    }
  }

  /** Every held core as a reference (for verification), labelled by its key. */
  refs(): HeldCoreRef[] {
    const catalog = this.key
    return [
      { catalog, dataset: null, name: 'catalog', core: this.catalog.core },
      ...[...this.cores.values()].map(({ core, dataset }) => ({ catalog, dataset, name: toZ32(core.key!), core }))
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
  return {
    key: toZ32(core.key!),
    dataset,
    length: core.length,
    contiguousLength: core.contiguousLength,
    byteLength: core.byteLength,
    peers: core.peers.length
  }
}
