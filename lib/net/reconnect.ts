/**
 * Reconnection: what brings a configured peer (one this node dials: a followed agency, an allowed
 * embassy, a listed holder, a holder found on a topic) back within a second or two, instead of
 * waiting out Hyperswarm's back-off (1, 2, 4, then 8 s, each fired by a bulk timer that can add
 * half as much again) while its announcements on a small DHT are stale.
 *
 * Three mechanisms, driven by the Network (./network.ts) and testable here without a network:
 * - Fast retries: a peer lost within the last FAST_RETRY_WINDOW_MS is dialled again every
 *   FAST_RETRY_MS (a restart takes seconds: Hyperswarm would already be at its 4–8 s back-off).
 * - Direct probes: a peer's last known address (its DHT node, which answers handshakes for it
 *   directly) is pinged every PROBE_MS while the peer is away; the first answer dials it at once,
 *   that address first and the DHT beside it (the Dialer puts it first among the relay
 *   addresses). The address is the one a handshake with the peer came from or reached
 *   (serverAddress), else where its connection came from; addresses from before a restart come
 *   from the node's memory file (remember, ./net-memory.ts).
 * - Pokes: any sign that the network works again (an incoming connection from anyone, our DHT
 *   back online, a DHT node added to an empty routing table) dials every waiting peer now,
 *   back-off reset. At most once per MIN_POKE_GAP_MS per peer.
 *
 * Owns: net/ (imports nothing above net/).
 */

/** Fast retries: how often a recently lost peer is dialled again (ms). */
export const FAST_RETRY_MS = 1000

/** Fast retries last this long after a peer was lost (ms); then Hyperswarm's back-off, probes and pokes. */
export const FAST_RETRY_WINDOW_MS = 60_000

/** How often a waiting peer's last known address is pinged (ms). */
export const PROBE_MS = 1000

/** A peer is dialled by a poke at most this often (ms): signals come in bursts. */
export const MIN_POKE_GAP_MS = 500

/**
 * A dial of ours still unanswered after this long when the same peer dials us is stale (it went to
 * an address the peer no longer has): it is dropped so the peer's own dial wins (Hyperswarm would
 * keep ours and refuse theirs as a duplicate when we are the expected initiator).
 */
export const STALE_DIAL_MS = 1000

/**
 * A last known address that answered a probe within this long is dialled directly (first, beside
 * the DHT lookup). Only then: an address that does not answer would hold the dial for HyperDHT's
 * request timeouts (~4 s) before the DHT relays are tried.
 */
export const DIRECT_FRESH_MS = 3000

/** Peers whose last known address is kept; beyond this the least recently seen are forgotten. */
export const MAX_KNOWN_ADDRESSES = 1024

/** Probes sent per tick at most (a node with many waiting peers spreads them over ticks). */
export const MAX_PROBES_PER_TICK = 32

export interface PeerAddress {
  host: string
  port: number
}

/** What the Reconnector needs from the network (Network implements it; tests fake it). */
export interface ReconnectHost {
  /** Configured peers (hex keys) not connected now. */
  waiting(): string[]
  /** How long our dial to `hex` has been in flight (ms), or null when none is. */
  dialing(hex: string): number | null
  /** Dials `hex` now, its back-off reset; a dial of ours still in flight is dropped first. */
  dial(hex: string): void
  /** Pings `address`; resolves true when it answered (never rejects). */
  probe(address: PeerAddress): Promise<boolean>
}

export interface ReconnectOptions {
  fastRetryMs?: number
  fastRetryWindowMs?: number
  probeMs?: number
  minPokeGapMs?: number
  maxAddresses?: number
  maxProbesPerTick?: number
  now?: () => number
}

/** Why peers were dialled (for tests and the debug log). */
export type DialReason = 'poke' | 'fast-retry' | 'probe'

interface PeerState {
  /** When the connection was lost (null: never connected since start, or back now). */
  lostAt: number | null
  /** When we last dialled it ourselves (any reason). */
  dialledAt: number
  /** When its address was last probed. */
  probedAt: number
  /** A probe is in flight. */
  probing: boolean
  /** When a probe of its last known address was last answered. */
  answeredAt: number
}

export class Reconnector {
  readonly host: ReconnectHost
  readonly opts: Required<Omit<ReconnectOptions, 'now'>>
  readonly now: () => number
  /** Last known address per peer (hex), least recently seen first. */
  #addresses = new Map<string, PeerAddress>()
  /** Peers whose address is their DHT node's, learnt from a handshake of ours in this run. */
  #fromDht = new Set<string>()
  #state = new Map<string, PeerState>()
  #closed = false
  /** Dials made, by reason (status, tests). */
  readonly dials: Record<DialReason, number> = { poke: 0, 'fast-retry': 0, probe: 0 }

  constructor(host: ReconnectHost, opts: ReconnectOptions = {}) {
    this.host = host
    this.now = opts.now ?? Date.now
    this.opts = {
      fastRetryMs: opts.fastRetryMs ?? FAST_RETRY_MS,
      fastRetryWindowMs: opts.fastRetryWindowMs ?? FAST_RETRY_WINDOW_MS,
      probeMs: opts.probeMs ?? PROBE_MS,
      minPokeGapMs: opts.minPokeGapMs ?? MIN_POKE_GAP_MS,
      maxAddresses: opts.maxAddresses ?? MAX_KNOWN_ADDRESSES,
      maxProbesPerTick: opts.maxProbesPerTick ?? MAX_PROBES_PER_TICK
    }
  }

  /**
   * A connection with `hex` opened; `address` is where it came from, if known. That is its DHT
   * node when the connection is direct, but a throwaway socket when it was hole-punched: a DHT
   * address learnt for it in this run (serverAddress) is kept instead.
   */
  connected(hex: string, address: PeerAddress | null): void {
    if (address && !this.#fromDht.has(hex)) this.#set(hex, address)
    const s = this.#state.get(hex)
    if (s) s.lostAt = null
  }

  /**
   * Our dial's handshake reached `hex`'s DHT node at `address` (directly, or as the relay saw it):
   * the address that answers probes and direct dials, whatever socket the connection then uses.
   */
  serverAddress(hex: string, address: PeerAddress): void {
    if (!isUsable(address)) return
    this.#set(hex, address)
    this.#fromDht.add(hex)
  }

  #set(hex: string, address: PeerAddress): void {
    if (!isUsable(address)) return
    this.#addresses.delete(hex)
    this.#addresses.set(hex, { host: address.host, port: address.port })
    while (this.#addresses.size > this.opts.maxAddresses) {
      const oldest = this.#addresses.keys().next().value
      if (oldest === undefined) break
      this.#addresses.delete(oldest)
      this.#fromDht.delete(oldest)
    }
  }

  /**
   * An address remembered from an earlier run (./net-memory.ts): probed while `hex` waits, like
   * one learnt from a connection. Never replaces an address learnt in this run.
   */
  remember(hex: string, address: PeerAddress): void {
    if (this.#addresses.has(hex) || !isUsable(address) || this.#addresses.size >= this.opts.maxAddresses) return
    this.#addresses.set(hex, { host: address.host, port: address.port })
  }

  /** The connection with `hex` closed (the peer may come back: fast retries start). */
  lost(hex: string): void {
    const s = this.#stateOf(hex)
    s.lostAt = this.now()
  }

  /** The last known address of `hex`, if any. */
  addressOf(hex: string): PeerAddress | null {
    return this.#addresses.get(hex) ?? null
  }

  /** The last known address of `hex` when a probe found it answering within DIRECT_FRESH_MS: dial it directly. */
  directAddress(hex: string): PeerAddress | null {
    const s = this.#state.get(hex)
    if (!s || this.now() - s.answeredAt > DIRECT_FRESH_MS) return null
    return this.#addresses.get(hex) ?? null
  }

  /** True while `hex` gets fast retries (lost within fastRetryWindowMs): it is dialled every fastRetryMs. */
  fastRetrying(hex: string): boolean {
    const s = this.#state.get(hex)
    return !!s && s.lostAt !== null && this.now() - s.lostAt <= this.opts.fastRetryWindowMs
  }

  /** Peers with a remembered address (bounded by maxAddresses). */
  get knownAddresses(): number {
    return this.#addresses.size
  }

  /**
   * Something shows the network works (incoming connection, DHT back): dial every waiting peer
   * now, back-off reset — except those dialling already or dialled less than minPokeGapMs ago,
   * and `except` (the peer dialling us: its own dial is the one to keep).
   */
  poke(except: string | null = null): string[] {
    if (this.#closed) return []
    return this.#dialAll(this.host.waiting().filter((hex) => hex !== except), 'poke', this.opts.minPokeGapMs, () => Infinity)
  }

  /**
   * One tick (the Network calls it every fastRetryMs): fast retries for peers lost recently, and
   * probes of the last known address of every other waiting peer. Returns the peers dialled now.
   */
  tick(): string[] {
    if (this.#closed) return []
    const now = this.now()
    const waiting = this.host.waiting()
    const waitingSet = new Set(waiting)
    // Forget state of peers that are connected again or no longer configured.
    for (const hex of this.#state.keys()) if (!waitingSet.has(hex)) this.#state.delete(hex)
    const fast = waiting.filter((hex) => {
      const s = this.#state.get(hex)
      return !!s && s.lostAt !== null && now - s.lostAt <= this.opts.fastRetryWindowMs
    })
    // A dial in flight is never replaced here: after a restart a dial can legitimately take
    // seconds (stale announcements time out); the fast retry only closes the gap between dials.
    const dialled = this.#dialAll(fast, 'fast-retry', this.opts.fastRetryMs - this.opts.fastRetryMs / 10, () => Infinity)
    let probes = 0
    for (const hex of waiting) {
      if (probes >= this.opts.maxProbesPerTick) break
      const address = this.#addresses.get(hex)
      if (!address) continue
      const s = this.#stateOf(hex)
      if (s.probing || now - s.probedAt < this.opts.probeMs - this.opts.probeMs / 10) continue
      s.probing = true
      s.probedAt = now
      probes++
      this.host.probe(address).then(
        (answered) => this.#probed(hex, answered),
        () => this.#probed(hex, false)
      )
    }
    return dialled
  }

  close(): void {
    this.#closed = true
  }

  #probed(hex: string, answered: boolean): void {
    const s = this.#state.get(hex)
    if (s) s.probing = false
    if (!answered || this.#closed) return
    if (s) s.answeredAt = this.now()
    // Its DHT node answers at the address it had: it is back (or never left). Dial it now; a dial
    // of ours pending for STALE_DIAL_MS went elsewhere (a stale announcement): replace it.
    if (this.host.waiting().includes(hex)) this.#dialAll([hex], 'probe', this.opts.minPokeGapMs, () => STALE_DIAL_MS)
  }

  /** Dials each of `peers` not dialled within `gap` ms; one with a dial in flight only once that dial is `staleAfter` old. */
  #dialAll(peers: string[], reason: DialReason, gap: number, staleAfter: (hex: string) => number): string[] {
    const now = this.now()
    const out: string[] = []
    for (const hex of peers) {
      const age = this.host.dialing(hex)
      if (age !== null && age < staleAfter(hex)) continue
      const s = this.#stateOf(hex)
      if (now - s.dialledAt < gap) continue
      s.dialledAt = now
      this.dials[reason]++
      out.push(hex)
      this.host.dial(hex)
    }
    return out
  }

  #stateOf(hex: string): PeerState {
    let s = this.#state.get(hex)
    if (!s) this.#state.set(hex, (s = { lostAt: null, dialledAt: -Infinity, probedAt: -Infinity, probing: false, answeredAt: -Infinity }))
    return s
  }
}

/** An address worth dialling directly: a real host and port (not 0.0.0.0, not port 0). */
function isUsable(a: PeerAddress): boolean {
  return typeof a.host === 'string' && a.host.length > 0 && a.host !== '0.0.0.0' && a.host !== '::' && Number.isInteger(a.port) && a.port > 0 && a.port < 65536
}
