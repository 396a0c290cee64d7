/**
 * Lanes in a running node (issue 16 item 5): a node with `lane.listen` runs a LaneServer (same key
 * pair, same admission as the swarm) and offers its address over the custody channel (message
 * `lane`, minor 3) to every admitted peer; a peer that learns an address dials it, and the lane
 * becomes an extra replication connection of that peer (Network attaches it with the peer's
 * scope: no custody channel, no entry in `peers`; its closing never loses the peer). Hypercore
 * spreads requests over the swarm connection and the lane; when the lane dies, the swarm
 * connection carries on.
 *
 * Rules:
 * - One lane per peer pair: when both sides offer, only the side with the lower key dials; a side
 *   that offers nothing dials the offer it got.
 * - Never dial, nor admit on the listener, a key that is not connected (custody handshake done)
 *   and admitted (`isAllowed`) on the swarm. A lane of a peer that goes away on the swarm closes.
 * - Failures back off per peer (LANE_BACKOFFS); at most MAX_LANE_DIALS dials in flight at once; an
 *   offer that repeats the known address changes nothing (a peer flooding offers gets no extra dials).
 */
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { LaneServer, dialLane, LANE_HANDSHAKE_TIMEOUT_MS } from './lane.js'
import type { CustodyHandlers } from './custody-channel.js'
import type { KeyPair } from '../node/node.js'
import type { HostPort } from '../node/config.js'
import type { LaneOffer } from '../../protocol/index.js'
import { EmbassyError } from '../errors.js'

/** Waits (ms) before dialling a peer's lane again after the 1st, 2nd, … failure (or a lane that closed). */
export const LANE_BACKOFFS = [1000, 2000, 5000, 15_000, 60_000]

/** Lane dials in flight at once (over all peers). */
export const MAX_LANE_DIALS = 4

/** A lane that stayed open this long resets its peer's back-off when it closes (ms). */
const LANE_STABLE_MS = 10_000

/** What the lane manager needs from the network. */
export interface LaneHost {
  keyPair: KeyPair
  /** Admission, as the swarm's firewall: may `key` connect? */
  isAllowed(key: Buffer): boolean
  /** The swarm peer with `key` whose custody handshake arrived, if connected. */
  peer(key: Buffer): LanePeer | null
  /** Every such peer now. */
  connected(): LanePeer[]
  /** Attaches `stream` as an extra replication connection of `peer` (its scope). False: not attached (it was destroyed). */
  attach(peer: LanePeer, stream: NoiseSecretStream): boolean
  /** Events for the operator: a lane opened / closed, a dial failed, an offer was refused. */
  emit(event: 'lane-open', peer: LanePeer, info: { initiator: boolean; host: string; port: number }): void
  emit(event: 'lane-close', peer: LanePeer, info: { bytesIn: number; bytesOut: number; ms: number }): void
  emit(event: 'lane-failed', peer: LanePeer, err: Error): void
}

/** The part of a Peer the lanes use. */
export interface LanePeer {
  key: Buffer
  id: string
  conn: { destroy(err?: Error): void; rawStream?: unknown }
  channel: { supports(name: 'lane'): boolean; send(name: 'lane', value: LaneOffer): boolean } | null
}

export interface LaneLinkOptions {
  /** Listen here (host:port, port 0 = any free one); null: no listener (dial only). */
  listen: HostPort | null
  /** The address offered; null: the listen address, or (listening on 0.0.0.0 / ::) host "" = "where you see my swarm connection". */
  advertise?: HostPort | null
  /** Dial the lanes peers offer. @default true */
  dial?: boolean
  /** TCP connect + Noise handshake limit (ms). @default LANE_HANDSHAKE_TIMEOUT_MS */
  handshakeTimeout?: number
  /** @default LANE_BACKOFFS */
  backoffs?: number[]
  /** @default MAX_LANE_DIALS */
  maxDials?: number
}

/** One lane (as status shows it). */
export interface LaneInfo {
  up: boolean
  initiator: boolean
  address: string | null
  since: number | null
  bytesIn: number
  bytesOut: number
  failures: number
}

interface LaneState {
  peer: LanePeer
  /** The address the peer offered (host "" already resolved), null before any offer. */
  address: HostPort | null
  stream: NoiseSecretStream | null
  initiator: boolean
  since: number
  dialing: boolean
  failures: number
  timer: NodeJS.Timeout | null
  offers: number
}

export class LaneLink {
  readonly opts: LaneLinkOptions
  readonly host: LaneHost
  server: LaneServer | null = null
  /** Counters (status, tests). */
  readonly stats = { offersReceived: 0, offersIgnored: 0, dials: 0, dialFailures: 0, opened: 0, closed: 0, duplicates: 0 }
  #lanes = new Map<string, LaneState>()
  #inflight = 0
  #closing = false

  constructor(host: LaneHost, opts: LaneLinkOptions) {
    this.host = host
    this.opts = opts
  }

  async open(): Promise<void> {
    const listen = this.opts.listen
    if (!listen) return
    const server = new LaneServer({
      keyPair: this.host.keyPair,
      host: listen.host,
      port: listen.port,
      // The swarm's admission, and more: only a key connected on the swarm gets a lane.
      firewall: (key) => !(this.host.isAllowed(key) && this.host.peer(key) !== null),
      ...(this.opts.handshakeTimeout ? { handshakeTimeout: this.opts.handshakeTimeout } : {})
    })
    server.on('connection', (stream) => {
      const peer = this.host.peer(stream.remotePublicKey!)
      if (!peer || this.#closing) return void stream.destroy()
      this.#opened(peer, stream, false, { host: '', port: 0 })
    })
    await server.ready()
    this.server = server
    if (this.#closing) return void (await server.close())
    // Peers that connected while the listener opened learn the address now.
    for (const peer of this.host.connected()) this.onpeer(peer)
  }

  async close(): Promise<void> {
    this.#closing = true
    for (const s of this.#lanes.values()) {
      if (s.timer) clearTimeout(s.timer)
      s.stream?.destroy()
    }
    this.#lanes.clear()
    await this.server?.close()
  }

  /** The address we offer, null when we offer none. */
  get offer(): LaneOffer | null {
    const server = this.server
    if (!server || !this.opts.listen) return null
    const adv = this.opts.advertise
    if (adv) return { host: adv.host, port: adv.port }
    const h = this.opts.listen.host
    const any = h === '0.0.0.0' || h === '::' || h === ''
    return { host: any ? '' : h, port: server.port }
  }

  /** The custody handler for the `lane` message of `peer`. */
  handlers(peer: LanePeer): CustodyHandlers {
    return { lane: (offer) => this.#onoffer(peer, offer) }
  }

  /** A swarm peer's custody handshake arrived: offer it our lane when it is admitted and speaks minor 3. */
  onpeer(peer: LanePeer): void {
    const offer = this.offer
    if (!offer || this.#closing || !this.host.isAllowed(peer.key)) return
    if (!peer.channel?.supports('lane')) return
    peer.channel.send('lane', offer)
  }

  /** A swarm peer went away: its lane closes, its offer is forgotten. */
  onpeerLost(peer: LanePeer): void {
    const s = this.#lanes.get(peer.id)
    if (!s || s.peer !== peer) return
    // A newer connection of the same key took over: the lane (attached to the old peer) goes too.
    this.#lanes.delete(peer.id)
    if (s.timer) clearTimeout(s.timer)
    s.stream?.destroy()
  }

  /** The lane with `key` (status). */
  describe(key: Buffer): LaneInfo | null {
    const s = this.#lanes.get(key.toString('hex'))
    if (!s) return null
    const raw = s.stream?.rawStream as unknown as { bytesRead?: number; bytesWritten?: number } | undefined
    return {
      up: !!s.stream && !s.stream.destroyed,
      initiator: s.initiator,
      address: s.address ? `${s.address.host}:${s.address.port}` : null,
      since: s.stream ? s.since : null,
      bytesIn: raw?.bytesRead ?? 0,
      bytesOut: raw?.bytesWritten ?? 0,
      failures: s.failures
    }
  }

  /** The open lane with `key`, if any (tests; closing it only closes the lane). */
  streamOf(key: Buffer): NoiseSecretStream | null {
    const st = this.#lanes.get(key.toString('hex'))?.stream
    return st && !st.destroyed ? st : null
  }

  /** Lanes open now. */
  get openLanes(): number {
    let n = 0
    for (const s of this.#lanes.values()) if (s.stream && !s.stream.destroyed) n++
    return n
  }

  #state(peer: LanePeer): LaneState {
    let s = this.#lanes.get(peer.id)
    if (!s || s.peer !== peer) {
      if (s) {
        if (s.timer) clearTimeout(s.timer)
        s.stream?.destroy()
      }
      s = { peer, address: null, stream: null, initiator: false, since: 0, dialing: false, failures: 0, timer: null, offers: 0 }
      this.#lanes.set(peer.id, s)
    }
    return s
  }

  #onoffer(peer: LanePeer, offer: LaneOffer): void {
    this.stats.offersReceived++
    // Offers from a peer we would not admit, or that is no longer the connected one, are ignored.
    if (this.#closing || this.opts.dial === false || !this.host.isAllowed(peer.key) || this.host.peer(peer.key) !== peer) {
      this.stats.offersIgnored++
      return
    }
    // Both offer: the lower key dials (one lane per pair). The higher one waits for that dial.
    if (this.offer && Buffer.compare(this.host.keyPair.publicKey, peer.key) > 0) {
      this.stats.offersIgnored++
      return
    }
    const host = offer.host === '' ? remoteHost(peer) : offer.host
    if (!host) {
      this.stats.offersIgnored++
      return
    }
    const s = this.#state(peer)
    s.offers++
    const same = s.address && s.address.host === host && s.address.port === offer.port
    s.address = { host, port: offer.port }
    // A repeated offer changes nothing; a new address is used by the next dial (a live lane stays).
    if (same || s.stream || s.dialing || s.timer) {
      this.stats.offersIgnored++
      return
    }
    this.#dial(s)
  }

  #dial(s: LaneState): void {
    s.timer = null
    if (this.#closing || s.stream || s.dialing || !s.address) return
    if (this.#lanes.get(s.peer.id) !== s || this.host.peer(s.peer.key) !== s.peer || !this.host.isAllowed(s.peer.key)) return
    if (this.#inflight >= (this.opts.maxDials ?? MAX_LANE_DIALS)) return this.#retry(s, false)
    const { host, port } = s.address
    s.dialing = true
    this.#inflight++
    this.stats.dials++
    dialLane(host, port, { keyPair: this.host.keyPair, remotePublicKey: s.peer.key, handshakeTimeout: this.opts.handshakeTimeout ?? LANE_HANDSHAKE_TIMEOUT_MS }).then(
      (stream) => {
        this.#inflight--
        s.dialing = false
        // Gone while dialling (the peer left, the node closes, another lane came in): drop it.
        if (this.#closing || this.#lanes.get(s.peer.id) !== s || this.host.peer(s.peer.key) !== s.peer || s.stream) return void stream.destroy()
        this.#opened(s.peer, stream, true, { host, port })
      },
      (err: Error) => {
        this.#inflight--
        s.dialing = false
        this.stats.dialFailures++
        if (this.#closing || this.#lanes.get(s.peer.id) !== s) return
        s.failures++
        this.host.emit('lane-failed', s.peer, EmbassyError.from(err))
        this.#retry(s, true)
      }
    )
  }

  #retry(s: LaneState, failed: boolean): void {
    if (this.#closing || s.timer) return
    const backoffs = this.opts.backoffs ?? LANE_BACKOFFS
    const wait = failed ? backoffs[Math.min(s.failures - 1, backoffs.length - 1)]! : backoffs[0]!
    s.timer = setTimeout(() => this.#dial(s), wait)
    s.timer.unref()
  }

  #opened(peer: LanePeer, stream: NoiseSecretStream, initiator: boolean, address: HostPort): void {
    const s = this.#state(peer)
    // One lane per peer: a second one is dropped while the first is up. (Replacing it would let a
    // third party, told to dial our address by someone else's offer, close our lane at will; a
    // dead lane is closed by its keep-alive timeout and the dialler then dials again.)
    if (s.stream && s.stream !== stream && !s.stream.destroyed) {
      this.stats.duplicates++
      stream.destroy()
      return
    }
    stream.on('error', () => {})
    if (!this.host.attach(peer, stream)) return void stream.destroy()
    s.stream = stream
    s.initiator = initiator
    s.since = Date.now()
    if (initiator) s.address = address
    this.stats.opened++
    const raw = stream.rawStream as unknown as { remoteAddress?: string; remotePort?: number } | undefined
    this.host.emit('lane-open', peer, { initiator, host: initiator ? address.host : (raw?.remoteAddress ?? ''), port: initiator ? address.port : (raw?.remotePort ?? 0) })
    stream.once('close', () => {
      const rawStats = stream.rawStream as unknown as { bytesRead?: number; bytesWritten?: number } | undefined
      this.stats.closed++
      const ms = Date.now() - s.since
      if (s.stream === stream) s.stream = null
      this.host.emit('lane-close', peer, { bytesIn: rawStats?.bytesRead ?? 0, bytesOut: rawStats?.bytesWritten ?? 0, ms })
      if (this.#closing || this.#lanes.get(peer.id) !== s || !s.initiator) return
      // Ours to dial: again after a back-off while the peer stays connected on the swarm.
      if (ms >= LANE_STABLE_MS) s.failures = 0
      s.failures++
      this.#retry(s, true)
    })
  }
}

/** The host a peer's swarm connection comes from (for an offer with host ""). */
function remoteHost(peer: LanePeer): string | null {
  const raw = peer.conn.rawStream as { remoteHost?: string | null } | undefined
  return raw?.remoteHost || null
}
