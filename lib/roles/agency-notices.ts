/**
 * AppendNotices: the agency tells each connected embassy which of its cores grew (custody message
 * `appended`, minor 5, protocol/SPEC.md). An embassy may close a held core that is idle; a closed
 * core has no Hypercore channel, so without this notice it would not hear of the next append.
 *
 * On an embassy's handshake: every core of the catalog with length > 0. After appends (and
 * truncations): the cores whose (length, fork) changed since the previous flush, coalesced over
 * one turn of the event loop (setImmediate, no timer: this is on the live-lag path). Only to
 * connected embassies the agency admits that speak minor 5; nothing while restoring.
 *
 * Owns: the agency's appended notices. May import: net/ (types), roles/role (types), protocol/.
 */
import type Hypercore from 'hypercore'
import type { Network, Peer } from '../net/network.js'
import { MAX_APPENDED_CORES, appendedNotice, encode, type AppendedCore } from '../../protocol/index.js'
import type { Notice } from './role.js'

/** What the notices need from their agency (lib/roles/agency.ts). */
export interface NoticesAgency {
  /** True while a restored agency waits for its embassies' newest heads: nothing is sent. */
  readonly restoring: boolean
  readonly catalog: { readonly key: Buffer; readonly core: Hypercore }
  /** Every core of the agency (the catalog and each dataset's), by hex key. */
  cores(): Promise<Map<string, { core: Hypercore }>>
  isAllowed(key: Buffer): boolean
  notice(level: Notice['level'], event: string, message: string, fields?: Record<string, unknown>): void
}

/** A core watched for appends, with the listeners to remove on close. */
interface Watched {
  core: Hypercore
  onchange: () => void
}

/** Splits `entries` into lists of at most MAX_APPENDED_CORES. */
function chunks(entries: AppendedCore[]): AppendedCore[][] {
  const out: AppendedCore[][] = []
  for (let i = 0; i < entries.length; i += MAX_APPENDED_CORES) out.push(entries.slice(i, i + MAX_APPENDED_CORES))
  return out
}

/**
 * Watches every core the agency writes and sends `appended` notices to its embassies (see the
 * file comment). One per agency, from attach() until close(); it never holds a timer.
 */
export class AppendNotices {
  readonly #agency: NoticesAgency
  readonly #network: Network
  /** Watched cores by hex key, in the order they were found (the catalog first). */
  #watched = new Map<string, Watched>()
  /** Per core: the (length, fork) of the last flush that listed it (or of the last full send). */
  #flushed = new Map<string, { length: number; fork: number }>()
  /** Cores that signalled an append or truncation since the last flush. */
  #dirty = new Set<string>()
  #flush: ReturnType<typeof setImmediate> | null = null
  /** The list of cores is being rebuilt (the catalog grew); `#again`: rebuild once more after. */
  #refreshing: Promise<void> | null = null
  #again = false
  /** True once the first list of cores is known: peers connected before then are sent it then. */
  #ready = false
  closed = false
  /** Notices sent (one per message and peer). */
  sent = 0
  readonly #onpeer = (peer: Peer) => {
    if (!this.#ready) return // start() sends it the list once known
    // The list is being rebuilt (a dataset was just added): send it complete, once rebuilt.
    const refreshing = this.#refreshing
    if (refreshing) refreshing.then(() => this.#sendAll(peer), () => this.#sendAll(peer))
    else this.#sendAll(peer)
  }

  constructor(agency: NoticesAgency, network: Network) {
    this.#agency = agency
    this.#network = network
  }

  /**
   * Starts watching: the catalog at once (a new dataset is a catalog append), every dataset core
   * once listed, and the network's new peers. Resolves once the first list is known and sent to
   * the embassies connected by then.
   */
  async start(): Promise<void> {
    if (this.closed) return
    this.#network.on('peer', this.#onpeer)
    await this.#refresh()
    if (this.closed) return
    this.#ready = true
    for (const peer of this.#network.peers.values()) this.#sendAll(peer)
  }

  /** A restored agency became writable: every connected embassy gets every non-empty core, as on connect. */
  async restored(): Promise<void> {
    await this.#refresh()
    if (this.closed || !this.#ready) return
    this.#dirty.clear()
    for (const [hex, { core }] of this.#watched) this.#flushed.set(hex, { length: core.length, fork: core.fork })
    for (const peer of this.#network.peers.values()) this.#sendAll(peer)
  }

  /** Stops: every listener removed, a pending flush dropped. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.#network.off('peer', this.#onpeer)
    if (this.#flush) clearImmediate(this.#flush)
    this.#flush = null
    for (const { core, onchange } of this.#watched.values()) {
      core.off('append', onchange)
      core.off('truncate', onchange)
    }
    this.#watched.clear()
    this.#dirty.clear()
  }

  /** Cores watched now (the catalog and every dataset core listed so far). */
  get watching(): number {
    return this.#watched.size
  }

  #watch(hex: string, core: Hypercore): void {
    if (this.closed || this.#watched.has(hex)) return
    const isCatalog = core === this.#agency.catalog.core
    const onchange = () => {
      this.#changed(hex)
      // A catalog append may add a dataset: its cores are watched from then on.
      if (isCatalog) this.#requestRefresh()
    }
    core.on('append', onchange)
    core.on('truncate', onchange)
    this.#watched.set(hex, { core, onchange })
    // The first list goes to every embassy whole (start()): it is the baseline of later flushes.
    if (!this.#ready) {
      this.#flushed.set(hex, { length: core.length, fork: core.fork })
      return
    }
    // Appended before we watched it (a new dataset written at once): flushed like any change.
    const last = this.#flushed.get(hex)
    if (last ? last.length !== core.length || last.fork !== core.fork : core.length > 0) this.#changed(hex)
  }

  #changed(hex: string): void {
    if (this.closed) return
    this.#dirty.add(hex)
    this.#flush ??= setImmediate(() => this.#onflush())
  }

  #requestRefresh(): void {
    if (this.#refreshing) {
      this.#again = true
      return
    }
    this.#refresh().catch((err: Error) => {
      if (!this.closed) this.#agency.notice('warn', 'appended-notices', `appended notices: the agency's cores could not be listed: ${err.message}`)
    })
  }

  /** Rebuilds the list of watched cores (only cores not watched yet are added; none are dropped). */
  #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true
      return this.#refreshing
    }
    const catalog = this.#agency.catalog.core
    this.#watch(catalog.key!.toString('hex'), catalog)
    // Its first step awaits: #refreshing is set before the finally below can clear it.
    const run = async () => {
      try {
        do {
          this.#again = false
          const cores = await this.#agency.cores()
          for (const [hex, { core }] of cores) this.#watch(hex, core)
        } while (this.#again && !this.closed)
      } finally {
        // In the same turn as the last check of #again: no request falls between the two.
        this.#refreshing = null
      }
    }
    this.#refreshing = run()
    return this.#refreshing
  }

  /** O(changed cores): the dirty cores whose (length, fork) moved, to every embassy that takes them. */
  #onflush(): void {
    this.#flush = null
    if (this.closed) return
    const dirty = this.#dirty
    this.#dirty = new Set()
    // A restoring agency sends nothing (restored() sends every core once it is done).
    if (this.#agency.restoring) return
    const entries: AppendedCore[] = []
    for (const hex of dirty) {
      const w = this.#watched.get(hex)
      if (!w) continue
      const { length, fork } = w.core
      const last = this.#flushed.get(hex)
      if (last && last.length === length && last.fork === fork) continue
      if (!last && length === 0) continue
      this.#flushed.set(hex, { length, fork })
      entries.push({ core: w.core.key!, length, fork })
    }
    if (entries.length === 0) return
    const peers = [...this.#network.peers.values()].filter((p) => this.#takes(p))
    if (peers.length === 0) return
    // Encoded once per notice, whatever the number of embassies.
    for (const list of chunks(entries)) {
      const bytes = encode(appendedNotice, { catalog: this.#agency.catalog.key, cores: list })
      for (const peer of peers) if (peer.channel.sendRaw('appended', bytes)) this.sent++
    }
  }

  /** Every core with length > 0, to one peer (on its handshake). */
  #sendAll(peer: Peer): void {
    if (this.closed || !this.#takes(peer)) return
    const entries: AppendedCore[] = []
    for (const { core } of this.#watched.values()) if (core.length > 0) entries.push({ core: core.key!, length: core.length, fork: core.fork })
    for (const list of chunks(entries)) if (peer.channel.send('appended', { catalog: this.#agency.catalog.key, cores: list })) this.sent++
  }

  /** An embassy this agency admits, connected, that speaks minor 5; never while restoring. */
  #takes(peer: Peer): boolean {
    return !this.#agency.restoring && peer.role === 'embassy' && !peer.channel.closed && peer.channel.supports('appended') && this.#agency.isAllowed(peer.key)
  }
}
