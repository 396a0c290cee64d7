/**
 * Dialer: how a Network (./network.ts) keeps its configured peers (the ones it dials: a followed
 * agency, an allowed embassy, a listed holder) connected — the Reconnector's fast retries, probes
 * and pokes (./reconnect.ts) wired to Hyperswarm and HyperDHT, our dials in flight, the DHT watch
 * (an empty routing table asked again, announcements and lookups redone when the DHT is back),
 * our network going offline and online, and the "looking for PEER" reports.
 *
 * Owns: net/ (imports nothing above net/).
 */
import type Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { FAST_RETRY_MS, ONE_SIDED_MS, Reconnector, STALE_DIAL_MS, type PeerAddress } from './reconnect.js'

/** Reconnect back-offs (ms) for peers we dial, after the 1st, 2nd, 3rd and later failures (Network gives them to Hyperswarm). */
export const RECONNECT_BACKOFFS = [1000, 2000, 4000, 8000]

/** How often the network checks that the DHT is reachable (one timer per node). */
export const DHT_WATCH_MS = 5000

/**
 * Fewer DHT nodes than this answering at start: first connections and reconnections can take
 * minutes (HyperDHT classifies NATs from the answers of at least three nodes); the node warns.
 */
export const MIN_DHT_NODES = 4

/** A configured peer that stays unreachable is reported at most this often (ms, per peer). */
export const LOOKING_REPORT_MS = 30_000

/** What the Dialer needs from its Network. */
export interface DialerHost {
  readonly swarm: Hyperswarm
  readonly dht: DHT
  readonly closing: boolean
  /** A connection with `key` is open (custody handshake done or not). */
  isConnected(hex: string, key: Buffer): boolean
  /** Nodes in our DHT routing table. */
  routingNodes(): number
  /** Our topics looked up (and announced) again. */
  refreshTopics(): void
  /** Refused keys that are admitted now lose their ban (runs with each DHT check). */
  readmitAdmitted(): void
  online(): void
  offline(): void
  dhtBack(): void
  lookingFor(key: Buffer, attempt: number, nextInMs: number): void
}

export interface DialerOptions {
  /** Fast retries, probes and pokes (false: Hyperswarm's back-off alone, for baselines). */
  reconnect: boolean
  /** A configured peer still unreachable is reported at most this often (ms). */
  lookingReportMs: number
  /** Peers' addresses remembered from before a restart (probed at once). */
  remembered: Iterable<[string, PeerAddress]>
}

export class Dialer {
  readonly host: DialerHost
  readonly opts: DialerOptions
  /** Our dials in flight (not open yet), by peer (hex): when each started. */
  readonly dials = new Map<string, { stream: { destroy(err?: Error): void; destroyed?: boolean }; at: number; direct: boolean }>()
  /** Fast retries, direct probes and pokes for configured peers (null: off). */
  reconnect: Reconnector | null = null
  #reconnectTimer: NodeJS.Timeout | null = null
  #watch: NodeJS.Timeout | null = null
  #dhtReachable = true
  #dhtOnline = true
  /** Configured peers not connected: unreachable since, and when we last said so. */
  #looking = new Map<string, { since: number; reportedAt: number }>()

  constructor(host: DialerHost, opts: DialerOptions) {
    this.host = host
    this.opts = opts
  }

  /** Starts watching the DHT and (unless off) the reconnection help. Call once the swarm listens. */
  start(): void {
    const { dht } = this.host
    this.#dhtReachable = this.host.routingNodes() > 0
    this.#dhtOnline = dht.online
    dht.on('network-update', () => this.#onNetworkUpdate())
    this.#watch = setInterval(() => this.watchDht(), DHT_WATCH_MS)
    this.#watch.unref()
    if (this.opts.reconnect) this.#startReconnect()
  }

  close(): void {
    if (this.#watch) clearInterval(this.#watch)
    if (this.#reconnectTimer) clearInterval(this.#reconnectTimer)
    this.reconnect?.close()
  }

  /**
   * Reconnection help (./reconnect.ts). Our dials also go straight to a peer's last known address
   * when a probe just found it answering (HyperDHT's `relayAddresses`: the peer's own DHT node
   * answers the handshake), beside the DHT lookup; and the DHT's signals (our network changed or
   * came back, a DHT node answers an empty routing table) dial every waiting configured peer at once.
   * A dial through the DHT alone, a peer dialling us, and a connection that stays one-sided probe
   * the peer's address at once: on a DHT that cannot classify NATs (one node) a hole-punch takes
   * seconds or completes on one side only, and Hyperswarm then refuses the peer's own dials as
   * duplicates; a direct dial replaces it as soon as the peer's DHT node answers.
   */
  #startReconnect(): void {
    const { swarm } = this.host
    const known = (hex: string) => swarm.peers.get(hex)
    const reconnect = new Reconnector({
      waiting: () => this.waitingPeers(),
      dialing: (hex) => {
        const d = this.dials.get(hex)
        if (d) return Date.now() - d.at
        // A connection opening (incoming, not a byte received yet) counts as a dial, aged from
        // when we first saw it: one that never opens (a hole-punch that went nowhere) would
        // otherwise keep Hyperswarm from dialling that peer until it times out.
        const pending = this.#pendingConnection(hex)
        return pending ? Date.now() - pending.at : null
      },
      replaceableNow: (hex) => {
        const d = this.dials.get(hex)
        if (d) return !d.direct || Date.now() - d.at >= ONE_SIDED_MS
        // A connection (ours or the peer's) that opened on our side only (nothing received for
        // ONE_SIDED_MS): as good as none, and Hyperswarm would refuse the peer's fresh dials as
        // duplicates of it.
        const pending = this.#pendingConnection(hex)
        const openedAt = pending ? this.#openedAt.get(pending.conn as object) : undefined
        return openedAt !== undefined && Date.now() - openedAt >= ONE_SIDED_MS
      },
      dial: (hex) => {
        const info = known(hex)
        if (!info || info.banned || this.host.closing) return
        const go = () => {
          if (this.host.closing || info.banned) return
          info.attempts = 0
          swarm.joinPeer(info.publicKey)
        }
        const pending = this.dials.get(hex)?.stream ?? this.#pendingConnection(hex)?.conn
        if (!pending) return go()
        // Hyperswarm dials a key once at a time: drop the stale dial (or the incoming connection
        // that never opened), dial again once it closed.
        this.dials.delete(hex)
        const stream = pending as unknown as { once(e: 'close', f: () => void): void; destroy(): void }
        stream.once('close', () => queueMicrotask(go))
        stream.destroy()
      },
      probe: (address) =>
        this.host.closing
          ? Promise.resolve(false)
          : (this.host.dht as unknown as { ping(a: PeerAddress, o: { retry: boolean }): Promise<unknown> }).ping(address, { retry: false }).then(
              () => true,
              () => false
            )
    })
    this.reconnect = reconnect
    // Peers' addresses from before a restart: probed at once, dialled directly when they answer.
    for (const [hex, address] of this.opts.remembered) reconnect.remember(hex, address)
    const dht = this.host.dht as unknown as {
      connect(key: Buffer, opts?: { relayAddresses?: PeerAddress[] | null; [k: string]: unknown }): NoiseSecretStream
      on(event: string, f: () => void): void
      refresh(): void
    }
    const connect = dht.connect.bind(dht)
    // Our dials' targets (the hash of the key HyperDHT looks up), while each dial is in flight.
    const targets = new Map<string, string>()
    this.#learnServerAddresses(targets, reconnect)
    dht.connect = (key, opts = {}) => {
      const hex = Buffer.from(key).toString('hex')
      const target = Buffer.from(DHT.hash(Buffer.from(key))).toString('hex')
      targets.set(target, hex)
      const direct = reconnect.directAddress(hex)
      let relayAddresses = opts.relayAddresses
      // The direct address first (it answered a probe just now): HyperDHT tries the given
      // addresses in order — a direct handshake connects without hole-punching — and walks the
      // DHT beside them. Relays Hyperswarm found on a topic come after it, never instead of it.
      if (direct) relayAddresses = [direct, ...(relayAddresses ?? []).filter((a) => a.host !== direct.host || a.port !== direct.port)]
      const stream = connect(key, { ...opts, relayAddresses })
      const entry = { stream, at: Date.now(), direct: !!direct }
      this.dials.set(hex, entry)
      // Through the DHT only: probe the peer's known address now; when its DHT node answers
      // there, this dial is replaced by a direct one (Reconnector: #probed).
      if (!direct) reconnect.probeNow(hex)
      const done = () => {
        if (this.dials.get(hex) === entry) this.dials.delete(hex)
        if (!this.dials.has(hex)) targets.delete(target)
      }
      stream.once('open', done)
      stream.once('close', done)
      return stream
    }
    const poke = () => {
      if (!this.host.closing) reconnect.poke()
    }
    dht.on('network-change', poke)
    dht.on('persistent', poke)
    dht.on('add-node', () => {
      // A DHT node answers an empty (or nearly empty) routing table: the DHT is back.
      if (this.host.routingNodes() <= MIN_DHT_NODES) poke()
      if (!this.#dhtReachable) this.watchDht()
    })
    this.#reconnectTimer = setInterval(() => {
      if (this.host.closing) return
      // While the routing table is empty, ask the bootstrap nodes every tick (not every DHT_WATCH_MS).
      if (this.host.routingNodes() === 0) dht.refresh()
      reconnect.tick()
    }, FAST_RETRY_MS)
    this.#reconnectTimer.unref()
  }

  /**
   * Where each peer we dial has its DHT node: the address its handshake answered from (HyperDHT's
   * `peerHandshake` result: `serverAddress`, as the relay saw it, or the address we dialled
   * directly). A hole-punched connection runs on a throwaway socket whose address is useless
   * after a restart; the DHT node's address (its ports kept across restarts: ./net-memory.ts) is
   * what answers probes and direct dials. Wraps a private HyperDHT method: without it (another
   * version), the connection's own address is remembered as before. Likewise for peers that dial
   * us, from the server's firewall question.
   */
  #learnServerAddresses(targets: Map<string, string>, reconnect: Reconnector): void {
    type Handshake = (target: Buffer, opts: unknown, to: PeerAddress) => Promise<{ serverAddress?: PeerAddress } | null>
    // Peers that dial us: HyperDHT's server asks the firewall with the address their handshake
    // came from (their DHT socket, as the relay saw it); Hyperswarm drops that argument: take it
    // here, for peers the firewall admits (their key is proven by the Noise handshake already).
    type Firewall = (key: Buffer, payload: unknown, from?: PeerAddress | null) => unknown
    const server = this.host.swarm.server as unknown as { firewall?: Firewall }
    if (server && typeof server.firewall === 'function') {
      const firewall = server.firewall.bind(server)
      server.firewall = (key, payload, from) => {
        const refused = firewall(key, payload, from)
        if (!refused && from && typeof from.host === 'string' && typeof from.port === 'number') reconnect.serverAddress(Buffer.from(key).toString('hex'), { host: from.host, port: from.port })
        return refused
      }
    }
    const router = (this.host.dht as unknown as { _router?: { peerHandshake?: Handshake } })._router
    if (!router || typeof router.peerHandshake !== 'function') return
    const peerHandshake = router.peerHandshake.bind(router)
    router.peerHandshake = async (target, opts, to) => {
      const res = await peerHandshake(target, opts, to)
      const hex = targets.get(Buffer.from(target).toString('hex'))
      const a = res?.serverAddress
      if (hex && a && typeof a.host === 'string' && typeof a.port === 'number') reconnect.serverAddress(hex, { host: a.host, port: a.port })
      return res
    }
  }

  /** When each connection opened (on our side: Hyperswarm handed it over). */
  #openedAt = new WeakMap<object, number>()

  /**
   * Hyperswarm handed over a connection with `hex` (ours or the peer's). One that receives nothing
   * within ONE_SIDED_MS is one-sided: the peer's address is probed, and when it answers a direct
   * dial replaces it (Reconnector: replaceableNow).
   */
  opened(hex: string, conn: { rawBytesRead?: number; destroyed?: boolean }): void {
    this.#openedAt.set(conn, Date.now())
    if (!this.reconnect) return
    const check = setTimeout(() => {
      if (!this.host.closing && !conn.destroyed && (conn.rawBytesRead ?? 0) === 0) this.reconnect?.probeNow(hex, { signal: true })
    }, ONE_SIDED_MS)
    check.unref()
  }

  /** Connections Hyperswarm holds for a peer that received nothing yet, and since when we know of each. */
  #pending = new Map<string, { conn: unknown; at: number }>()

  /** Hyperswarm's connection with `hex` that has received no byte yet (opening), with when we first saw it. */
  #pendingConnection(hex: string): { conn: unknown; at: number } | null {
    const set = (this.host.swarm as unknown as { _allConnections?: { get?(k: Buffer): { rawBytesRead?: number; destroyed?: boolean } | undefined } })._allConnections
    const conn = set?.get?.(Buffer.from(hex, 'hex'))
    if (!conn || conn.destroyed || (conn.rawBytesRead ?? 0) > 0) {
      this.#pending.delete(hex)
      return null
    }
    let entry = this.#pending.get(hex)
    if (!entry || entry.conn !== conn) this.#pending.set(hex, (entry = { conn, at: Date.now() }))
    if (this.#pending.size > 4096) this.#pending.delete(this.#pending.keys().next().value!)
    return entry
  }

  /** Configured peers (the ones we dial) that are not connected, as hex keys. */
  waitingPeers(): string[] {
    const out: string[] = []
    for (const info of this.host.swarm.explicitPeers) {
      if (info.banned) continue
      const hex = info.publicKey.toString('hex')
      if (this.host.isConnected(hex, info.publicKey)) continue
      out.push(hex)
    }
    return out
  }

  /**
   * Someone dials us: the network works, so dial every waiting configured peer now (each at most
   * once per MIN_POKE_GAP_MS, however many dial us). And when the dialler is a peer our own dial
   * to has gone unanswered for STALE_DIAL_MS (it went to the address the peer had before it
   * restarted), drop ours: Hyperswarm would otherwise keep it and refuse the peer's fresh dial as
   * a duplicate when we are the expected initiator. `admitted`: the firewall admits the dialler.
   */
  incoming(remoteKey: Buffer, admitted: boolean): void {
    if (this.host.closing) return
    const hex = remoteKey.toString('hex')
    const dial = this.dials.get(hex)
    // Only for a peer the firewall admits (its key is proven by the Noise handshake already).
    if (admitted && dial && Date.now() - dial.at >= STALE_DIAL_MS && !this.host.isConnected(hex, remoteKey)) {
      this.dials.delete(hex)
      dial.stream.destroy()
    }
    // After this tick: the firewall answers first, and a poke never dials the peer dialling us.
    queueMicrotask(() => this.reconnect?.poke(hex))
    // It is back: probe its address now (an admitted peer only); when its DHT node answers and
    // our own dial to it is a hole-punch in progress, a direct dial replaces ours.
    if (admitted) this.reconnect?.probeNow(hex, { signal: true })
  }

  /** Dials at once every known (explicit) peer that is not connected. */
  redialKnownPeers(): void {
    const { swarm } = this.host
    for (const info of swarm.explicitPeers) {
      if (info.banned || this.host.isConnected(info.publicKey.toString('hex'), info.publicKey)) continue
      info.attempts = 0
      swarm.joinPeer(info.publicKey)
    }
  }

  /**
   * A node that started (or restarted) while every DHT node was down has an empty routing table
   * and an announcement that never landed; HyperDHT would retry it only after ~5 minutes. Ask the
   * bootstrap nodes again every few seconds while the table is empty, and once it fills, announce
   * again and look our topics up again, so known peers find each other as soon as the DHT returns.
   */
  watchDht(): void {
    this.host.readmitAdmitted()
    this.#reportLooking()
    const reachable = this.host.routingNodes() > 0
    if (!reachable) this.host.dht.refresh()
    if (reachable && !this.#dhtReachable) {
      this.host.swarm.server.refresh()
      this.host.refreshTopics()
      this.redialKnownPeers()
      this.host.dhtBack()
    }
    this.#dhtReachable = reachable
  }

  /**
   * Our own network came back (the DHT answers again after a cut): dial every known peer now
   * instead of waiting out the back-off (up to 8 s).
   */
  #onNetworkUpdate(): void {
    const online = this.host.dht.online
    if (online && !this.#dhtOnline) {
      this.redialKnownPeers()
      this.host.online()
    }
    if (!online && this.#dhtOnline) this.host.offline()
    this.#dhtOnline = online
  }

  /**
   * Says which configured peers (the ones we dial: a followed agency, an allowed embassy, a listed
   * holder) are still unreachable: the first time one is found unreachable, then at most once per
   * lookingReportMs while it stays so. O(configured peers) per DHT check.
   */
  #reportLooking(now = Date.now()): void {
    const seen = new Set<string>()
    const { swarm } = this.host
    for (const info of swarm.explicitPeers) {
      const hex = info.publicKey.toString('hex')
      if (this.host.isConnected(hex, info.publicKey)) continue
      seen.add(hex)
      let entry = this.#looking.get(hex)
      if (!entry) this.#looking.set(hex, (entry = { since: now, reportedAt: 0 }))
      // Not yet one check long (it may be connecting right now), or said recently: quiet.
      if (now - entry.since < DHT_WATCH_MS / 2 || now - entry.reportedAt < this.opts.lookingReportMs) continue
      entry.reportedAt = now
      this.host.lookingFor(info.publicKey, info.attempts, this.reconnect?.fastRetrying(hex) ? FAST_RETRY_MS : nextRetryMs(info, swarm))
    }
    for (const hex of this.#looking.keys()) if (!seen.has(hex)) this.#looking.delete(hex)
  }
}

/**
 * About when Hyperswarm dials a configured peer again (ms): its retry timers by attempt (proven
 * peers, ones that connected before, start shorter), capped by its rule of one attempt per second
 * per failure. An estimate for the operator, not a schedule.
 */
function nextRetryMs(info: { attempts: number; proven: boolean }, swarm: Hyperswarm): number {
  const backoffs = (swarm as unknown as { _timer?: { backoffs?: number[] } })._timer?.backoffs ?? RECONNECT_BACKOFFS
  const at = (i: number) => backoffs[Math.min(i, backoffs.length - 1)] ?? 0
  const a = info.attempts
  if (a === 0) return at(0)
  if (a > 3) return at(3)
  return info.proven ? at(a - 1) : at(Math.min(a, 2))
}
