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
 *   addresses). The address is, best first: the one the peer states in its custody handshake
 *   (its DHT server port, at the host its connection comes from: stated), one remembered from
 *   before a restart (the node's memory file, ./net-memory.ts: remember), the one a handshake
 *   of ours reached (serverAddress), else where its connection came from. A dial through the
 *   DHT also probes the peer's address at once (probeNow): when it answers, that dial is
 *   replaced by a direct one — on a small DHT a hole-punch takes seconds, or never completes.
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
 * Our connection that opened this long ago (ms) and received nothing (not even the peer's
 * stream header, sent at once on a working connection) is one-sided: its peer never got it.
 * Seen on a one-node DHT: a hole-punch that opens on the dialler's side only, and holds the
 * peer's own dials off as duplicates until it times out.
 */
export const ONE_SIDED_MS = 250

/**
 * A last known address that answered a probe within this long is dialled directly (first, beside
 * the DHT lookup). Only then: an address that does not answer would hold the dial for HyperDHT's
 * request timeouts (~4 s) before the DHT relays are tried.
 */
export const DIRECT_FRESH_MS = 3000

/** Peers whose last known address is kept; beyond this the least recently seen are forgotten. */
export const MAX_KNOWN_ADDRESSES = 1024

/** Probes of one peer in flight at most (a probe of a port not bound yet waits out a ~1 s timeout). */
export const MAX_PROBES_IN_FLIGHT = 3

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
  /**
   * Our dial or connection with `hex` is one an answering probe replaces at once: our dial in
   * flight through the DHT only (no direct address was given), or a direct one unanswered for
   * ONE_SIDED_MS (its handshake went to a node that was not listening yet, or shutting down),
   * or a connection that opened on our side ONE_SIDED_MS ago or longer with nothing received (a
   * hole-punch that completed on one side only). Otherwise it is replaced only once
   * STALE_DIAL_MS old. Absent: never at once.
   */
  replaceableNow?(hex: string): boolean
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
  /** Probes in flight (a probe sent while the peer was away never holds off a fresh one: MAX_PROBES_IN_FLIGHT). */
  probing: number
  /** When a probe of its last known address was last answered. */
  answeredAt: number
  /** The address that answered then (a direct dial goes there, whatever was learnt since). */
  answered: PeerAddress | null
}

export class Reconnector {
  readonly host: ReconnectHost
  readonly opts: Required<Omit<ReconnectOptions, 'now'>>
  readonly now: () => number
  /** Last known address per peer (hex), least recently seen first. */
  #addresses = new Map<string, PeerAddress>()
  /** Peers whose address is their DHT node's, learnt from a handshake of ours in this run. */
  #fromDht = new Set<string>()
  /** Peers whose address they stated themselves in this run (custody handshake): nothing learnt replaces it. */
  #stated = new Set<string>()
  /** Peers whose address comes from the memory file and was not replaced in this run: no DHT guess replaces it. */
  #remembered = new Set<string>()
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
   * address learnt for it in this run (serverAddress), or one it stated, is kept instead.
   */
  connected(hex: string, address: PeerAddress | null): void {
    if (address && !this.#fromDht.has(hex) && !this.#stated.has(hex) && isUsable(address)) {
      this.#set(hex, address)
      this.#remembered.delete(hex)
    }
    const s = this.#state.get(hex)
    if (s) {
      s.lostAt = null
      // A probe answer from before this connection is spent: once the peer goes away again, only
      // a new answer dials it directly (an old one may be its previous process, shutting down).
      s.answeredAt = -Infinity
      s.answered = null
    }
  }

  /**
   * Our dial's handshake reached `hex`'s DHT node at `address` (directly, or as the relay saw it):
   * the address that answers probes and direct dials, whatever socket the connection then uses.
   */
  serverAddress(hex: string, address: PeerAddress): void {
    // Stated by the peer or remembered: on a DHT that cannot classify NATs (one node, loopback)
    // this address is a throwaway hole-punch socket, worse than either.
    if (!isUsable(address) || this.#stated.has(hex) || this.#remembered.has(hex)) return
    this.#set(hex, address)
    this.#fromDht.add(hex)
  }

  /**
   * `hex` states where its DHT server listens (custody handshake, minor 4: its port, at the host
   * its connection comes from). Preferred over anything learnt: it is the one socket that
   * answers probes and direct dials, also after the peer restarts on its remembered port. A lie
   * only sets where we probe and dial (the Noise handshake still checks the key): a wrong
   * address never answers, and the DHT path stays.
   */
  stated(hex: string, address: PeerAddress): boolean {
    if (!isUsable(address)) return false
    this.#set(hex, address)
    this.#fromDht.add(hex)
    this.#stated.add(hex)
    this.#remembered.delete(hex)
    return true
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
      this.#stated.delete(oldest)
      this.#remembered.delete(oldest)
    }
  }

  /**
   * An address remembered from an earlier run (./net-memory.ts): probed while `hex` waits, like
   * one learnt from a connection. Never replaces an address learnt in this run.
   */
  remember(hex: string, address: PeerAddress): void {
    if (this.#addresses.has(hex) || !isUsable(address) || this.#addresses.size >= this.opts.maxAddresses) return
    this.#addresses.set(hex, { host: address.host, port: address.port })
    this.#remembered.add(hex)
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

  /** The address of `hex` that answered a probe within DIRECT_FRESH_MS: dial it directly. */
  directAddress(hex: string): PeerAddress | null {
    const s = this.#state.get(hex)
    if (!s || this.now() - s.answeredAt > DIRECT_FRESH_MS) return null
    return s.answered
  }

  /**
   * A dial to `hex` through the DHT starts: probe its known address now (not at the next tick),
   * so a peer whose DHT node answers there is dialled directly within a round trip. At most once
   * per minPokeGapMs per peer — except on a `signal` (the peer dials us: it is up now, and a probe
   * sent before may have gone to a port not bound yet, answered only by a timeout) — and at most
   * MAX_PROBES_IN_FLIGHT probes of it in flight.
   */
  probeNow(hex: string, opts: { signal?: boolean } = {}): boolean {
    if (this.#closed) return false
    const address = this.#addresses.get(hex)
    if (!address) return false
    const s = this.#stateOf(hex)
    const now = this.now()
    if (s.probing >= MAX_PROBES_IN_FLIGHT || (!opts.signal && now - s.probedAt < this.opts.minPokeGapMs)) return false
    this.#probe(hex, s, address, now)
    return true
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
      if (s.probing > 0 || now - s.probedAt < this.opts.probeMs - this.opts.probeMs / 10) continue
      probes++
      this.#probe(hex, s, address, now)
    }
    return dialled
  }

  #probe(hex: string, s: PeerState, address: PeerAddress, now: number): void {
    s.probing++
    s.probedAt = now
    const probed = { host: address.host, port: address.port }
    this.host.probe(probed).then(
      (answered) => this.#probed(hex, answered, probed),
      () => this.#probed(hex, false, probed)
    )
  }

  close(): void {
    this.#closed = true
  }

  #probed(hex: string, answered: boolean, address: PeerAddress): void {
    const s = this.#state.get(hex)
    if (s) s.probing = Math.max(0, s.probing - 1)
    if (!answered || this.#closed) return
    if (s) {
      s.answeredAt = this.now()
      s.answered = address
    }
    // Its DHT node answers at the address it had: it is back (or never left). Dial it now. What
    // the host calls replaceable (a dial through the DHT alone, a direct one unanswered, a
    // one-sided connection) is replaced at once: a direct dial connects in a round trip, a
    // hole-punch on a small DHT takes seconds or never completes. Any other dial in flight once
    // it is STALE_DIAL_MS old (it went elsewhere: a stale announcement).
    if (!this.host.waiting().includes(hex)) return
    const atOnce = this.host.replaceableNow?.(hex) === true
    this.#dialAll([hex], 'probe', atOnce ? 0 : this.opts.minPokeGapMs, () => (atOnce ? 0 : STALE_DIAL_MS))
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
    if (!s) this.#state.set(hex, (s = { lostAt: null, dialledAt: -Infinity, probedAt: -Infinity, probing: 0, answeredAt: -Infinity, answered: null }))
    return s
  }
}

/** An address worth dialling directly: a real host and port (not 0.0.0.0, not port 0). */
function isUsable(a: PeerAddress): boolean {
  return typeof a.host === 'string' && a.host.length > 0 && a.host !== '0.0.0.0' && a.host !== '::' && Number.isInteger(a.port) && a.port > 0 && a.port < 65536
}
