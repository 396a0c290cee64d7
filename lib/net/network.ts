/**
 * Network: Hyperswarm on a DHT built from an explicit bootstrap list (never the public DHT),
 * an allowlist firewall, scoped replication and our custody channel on every connection.
 *
 * Replication is scoped per connection (ReplicationScope, given by the role): a connection
 * carries only the cores of the catalogs its peer is entitled to, both ways; a mirror also
 * downloads (never uploads) the cores of a catalog from holders it found on that catalog's topic.
 * No connection is given the whole store unless the scope says so (an agency holds one catalog).
 */
import ReadyResource from 'ready-resource'
import Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
import Hypercore from 'hypercore'
import Protomux from 'protomux'
import type Corestore from 'corestore'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type { HostPort } from '../node/config.js'
import { CustodyChannel, type CustodyHandlers } from './custody-channel.js'
import { EmbassyError } from '../errors.js'
import { udxWithLargeBuffers } from './udp.js'
import { toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import { peerRoleName, type Handshake } from '../../protocol/index.js'
import { FAST_RETRY_MS, Reconnector, STALE_DIAL_MS, type PeerAddress } from './reconnect.js'

/**
 * Reconnect back-offs (ms) for peers we dial, after the 1st, 2nd, 3rd and later failures.
 * Hyperswarm's default waits up to 10 minutes; an operator expects a restarted peer back in seconds.
 */
export const RECONNECT_BACKOFFS = [1000, 2000, 4000, 8000]

/** Longest a shutdown waits for the DHT to take our announcements down. */
export const UNANNOUNCE_WAIT_MS = 2000

/** How often the network checks that the DHT is reachable (one timer per node). */
export const DHT_WATCH_MS = 5000

/**
 * Refused keys remembered (Hyperswarm keeps a banned entry per refused key for the life of the
 * swarm); beyond this, the oldest refused keys are forgotten (a forgotten key that comes back is
 * simply refused again by the firewall).
 */
export const MAX_REFUSED_PEERS = 1024

/**
 * Keep-alive (ms): each side sends a keep-alive after this long without writing. Hyperdht's
 * default is 5 s, so a dead peer stayed "connected" until the UDX stream gave up (13–17 s).
 */
export const KEEP_ALIVE_MS = 1000

/**
 * A connection that received nothing (not even a keep-alive) for this long is closed: a peer
 * that died shows as lost within this window. Above an older peer's 5 s keep-alive, with margin.
 */
export const CONNECTION_TIMEOUT_MS = 6000

/**
 * A node that reads from holders found on its topics looks its topics up again when a peer it has
 * not found dials it (a holder that restarted or announced after our lookup), at most this often.
 */
export const TOPIC_RELOOKUP_MS = 2000

/**
 * Fewer DHT nodes than this answering at start: first connections and reconnections can take
 * minutes (HyperDHT classifies NATs from the answers of at least three nodes); the node warns.
 */
export const MIN_DHT_NODES = 4

/** A configured peer that stays unreachable is reported at most this often (ms, per peer). */
export const LOOKING_REPORT_MS = 30_000

/** Peers whose last contact is remembered after they went away; beyond this the oldest are forgotten. */
export const MAX_CONTACTS = 4096

/** Last contact is recorded at most this often per connection (ms): data arrives per UDX packet. */
const CONTACT_RESOLUTION_MS = 250

/** Hypercore's replication protocol on a Protomux (one channel per core, id = discovery key). */
const HYPERCORE_PROTOCOL = 'hypercore/alpha'
/** Positions of the `request` and `noData` messages in Hypercore's channel (lib/replicator.js `_makePeer`). */
const HYPERCORE_REQUEST_MESSAGE = 1
const HYPERCORE_NO_DATA_MESSAGE = 4
/** Hypercore's noData reason NOT_AVAILABLE: the asker backs off and, after a few, pauses that peer. */
const NO_DATA_NOT_AVAILABLE = 1

/**
 * What a connection may replicate; the role gives it (Network.setScope). Key-based, so the
 * handshake we send a peer and the cores we replicate with it always agree.
 */
export interface ReplicationScope {
  /**
   * `true`: the peer may replicate every core in the store (an agency's allowed peers: its store
   * holds one catalog). Otherwise the catalog keys it is entitled to (named in our handshake to
   * it, replicated both ways); empty: nothing.
   */
  entitled(remoteKey: Buffer): Buffer[] | true
  /** The catalog whose topic is `topic`, if we hold it (a mirror downloads from holders found there). */
  catalogOfTopic(topic: Buffer): Buffer | null
}

export interface NetworkOptions {
  keyPair: KeyPair
  bootstrap: HostPort[]
  store: Corestore
  /** Our custody handshake, built when a connection opens (it may change over time). */
  handshake: () => Handshake
  /** True when `remoteKey` may connect to us (incoming). */
  isAllowed: (remoteKey: Buffer) => boolean
  /**
   * True when we also connect to peers found on our catalogs' topics that we do not admit
   * otherwise (mirrors read from any holder): such a connection only downloads, it never
   * uploads a block. @default false
   */
  dialAnyone?: boolean
  /** What this node does with each custody message a peer sends (the table is in protocol/). */
  handlers?: (peer: Peer) => CustodyHandlers
  /**
   * UDP port for the DHT node: that port only (PORT_IN_USE when it is busy), or 0 for any free
   * one. @default 0
   */
  port?: number
  /** Host to bind. @default '0.0.0.0' */
  host?: string
  /** Refused keys remembered as banned. @default MAX_REFUSED_PEERS */
  maxRefusedPeers?: number
  /** Keep-alive interval on each connection (ms). @default KEEP_ALIVE_MS */
  keepAlive?: number
  /** A connection silent this long is closed (ms). @default CONNECTION_TIMEOUT_MS */
  connectionTimeout?: number
  /** A configured peer still unreachable is reported at most this often (ms). @default LOOKING_REPORT_MS */
  lookingReportMs?: number
  /**
   * Reconnection help (./reconnect.ts: fast retries, direct probes and dials at last known
   * addresses, pokes on network activity). `false` leaves Hyperswarm's back-off alone (baseline
   * measurements). @default true
   */
  reconnect?: boolean
}

/** What one connection replicates (Network keeps it per peer). */
interface PeerReplication {
  /** Everything in the store (store.replicate). */
  all: boolean
  /** Catalogs (hex) replicated both ways. */
  catalogs: Set<string>
  /** Catalogs (hex) only downloaded (found on their topic, not admitted). */
  downloadOnly: Set<string>
  /** Cores (discovery key hex) this peer may download from us. */
  uploads: Set<string>
  /** Cores (discovery key hex) attached to this connection. */
  attached: Set<string>
  /** Requests refused on this connection (the peer may have paused us: widen by reconnecting). */
  refused: number
}

/** One connected peer whose custody handshake arrived. */
export interface Peer {
  key: Buffer
  id: string
  role: 'agency' | 'embassy' | 'mirror' | 'auditor' | 'unknown'
  handshake: Handshake | null
  channel: CustodyChannel
  connectedAt: number
  initiator: boolean
  conn: { destroy(err?: Error): void }
  /** The catalog keys this peer is entitled to on this node (named in our handshake to it). */
  catalogs: Buffer[]
}

export interface NetworkEvents {
  /** A connection opened and its handshake arrived. */
  peer: [peer: Peer]
  /** A connected peer went away. */
  'peer-lost': [peer: Peer, reason: string]
  /** A peer was refused by the firewall. */
  refused: [key: Buffer]
  /** Something went wrong with a peer's channel (malformed message, version mismatch). */
  'channel-error': [peer: Peer, err: Error]
  /** The DHT stopped answering us / answers again. */
  offline: []
  online: []
  /** The DHT could not be reached at all (empty routing table) and now can. */
  'dht-back': []
  /** At start, fewer than MIN_DHT_NODES DHT nodes answered (reconnections may be slow). */
  'few-dht-nodes': [nodes: number]
  /** A configured peer (one we dial) is still unreachable; at most once per LOOKING_REPORT_MS each. */
  'looking-for': [key: Buffer, attempt: number, nextInMs: number]
}

/** The DHT as status shows it. */
export interface DhtStatus {
  /** Our DHT socket (host:port), null before it is bound. */
  address: string | null
  /** Nodes in our routing table now (those that answered us). */
  nodes: number
  /** Nodes that answered at start. */
  nodesAtStart: number
  /** Fewer than MIN_DHT_NODES answered at start: reconnections can take minutes. */
  few: boolean
}

export class Network extends ReadyResource {
  readonly opts: NetworkOptions
  readonly peers = new Map<string, Peer>()
  dht!: DHT
  swarm!: Hyperswarm
  #topics = new Map<string, { destroy(): Promise<void>; refresh(): Promise<void> }>()
  #connections = new Map<NoiseSecretStream, Connection>()
  #scope: ReplicationScope | null = null
  /** Connections that arrived before the role gave its scope (they start when it does). */
  #pending = new Set<Connection>()
  /** Cores offered for replication, by discovery key (hex), and by catalog (hex). */
  #cores = new Map<string, { catalog: string; core: Hypercore }>()
  #byCatalog = new Map<string, Map<string, Hypercore>>()
  #watch: NodeJS.Timeout | null = null
  #dhtReachable = true
  #dhtOnline = true
  /** Keys the firewall refused, oldest first (a bounded memory of Hyperswarm's bans). */
  #refused = new Set<string>()
  /** When each peer was last heard from (any data or keep-alive), oldest first, bounded by MAX_CONTACTS. */
  #contacts = new Map<string, number>()
  /** Configured peers not connected: unreachable since, and when we last said so. */
  #looking = new Map<string, { since: number; reportedAt: number }>()
  #nodesAtStart = 0
  /** Fast retries, direct probes and pokes for configured peers (null: off). */
  #reconnect: Reconnector | null = null
  #reconnectTimer: NodeJS.Timeout | null = null
  /** When the network opened (a catalog never held by a connected peer has had none since). */
  #openedAt = Date.now()
  /** When the last connected holder of each catalog (hex) went away, bounded by MAX_CONTACTS. */
  #holdersLostAt = new Map<string, number>()
  /** Our dials in flight (not open yet), by peer (hex): when each started. */
  #dials = new Map<string, { stream: { destroy(err?: Error): void; destroyed?: boolean }; at: number }>()

  constructor(opts: NetworkOptions & { scope?: ReplicationScope }) {
    super()
    if (!opts.bootstrap || opts.bootstrap.length === 0) throw EmbassyError.noBootstrap()
    this.opts = opts
    this.#scope = opts.scope ?? null
  }

  override async _open(): Promise<void> {
    const { keyPair, bootstrap } = this.opts
    const port = this.opts.port ?? 0
    const host = this.opts.host ?? '0.0.0.0'
    // dht-rpc tries port..port+5 and then any port unless told otherwise: a given port is that
    // port or an error, never a neighbour the operator did not choose (nor firewall rules allow).
    const ports = port === 0 ? { port: 0 } : { port: [port, port + 1], anyPort: false }
    this.#openedAt = Date.now()
    this.dht = new DHT({ bootstrap, keyPair, ...ports, host, udx: udxWithLargeBuffers() } as unknown as ConstructorParameters<typeof DHT>[0])
    this.swarm = new Hyperswarm({
      keyPair,
      dht: this.dht,
      backoffs: RECONNECT_BACKOFFS,
      firewall: (remoteKey: Buffer, payload: unknown) => this.#firewall(remoteKey, payload)
    })
    this.swarm.on('connection', (conn, info) => this.#onconnection(conn, info))
    this.swarm.on('update', () => this.#keepTopicPeers())
    try {
      await this.swarm.listen()
    } catch (err) {
      await this.swarm.destroy({ force: true }).catch(() => {})
      // A DHT whose socket never bound cannot destroy itself (it re-awaits the failed bind) and
      // would keep its network-interface watcher, and the process, alive: release it here.
      await this.dht.destroy().catch(() => (this.dht as unknown as { io?: { networkInterfaces?: { destroy(): void } } }).io?.networkInterfaces?.destroy())
      if ((err as { code?: string }).code === 'EADDRINUSE') throw EmbassyError.portInUse(host, port, err)
      throw err
    }
    this.#nodesAtStart = this.#routingNodes()
    if (this.#nodesAtStart < MIN_DHT_NODES) this.emit('few-dht-nodes', this.#nodesAtStart)
    this.#dhtReachable = this.#routingNodes() > 0
    this.#dhtOnline = this.dht.online
    this.dht.on('network-update', () => this.#onNetworkUpdate())
    this.#watch = setInterval(() => this.#watchDht(), DHT_WATCH_MS)
    this.#watch.unref()
    if (this.opts.reconnect !== false) this.#startReconnect()
  }

  /**
   * Reconnection help (./reconnect.ts). Our dials also go straight to a peer's last known address
   * when a probe just found it answering (HyperDHT's `relayAddresses`: the peer's own DHT node
   * answers the handshake), beside the DHT lookup; and the DHT's signals (our network changed or came back, a DHT node answers an empty routing
   * table) dial every waiting configured peer at once.
   */
  #startReconnect(): void {
    const swarm = this.swarm
    const known = (hex: string) => swarm.peers.get(hex)
    const reconnect = new Reconnector({
      waiting: () => this.#waitingPeers(),
      dialing: (hex) => {
        const d = this.#dials.get(hex)
        if (d) return Date.now() - d.at
        // A connection opening (incoming, handshake under way) counts as a fresh dial.
        return (swarm as unknown as { _allConnections: { has(k: Buffer): boolean } })._allConnections.has(Buffer.from(hex, 'hex')) ? 0 : null
      },
      dial: (hex) => {
        const info = known(hex)
        if (!info || info.banned || this.closing) return
        const go = () => {
          if (this.closing || info.banned) return
          info.attempts = 0
          swarm.joinPeer(info.publicKey)
        }
        const pending = this.#dials.get(hex)
        if (!pending) return go()
        // Hyperswarm dials a key once at a time: drop the stale dial, dial again once it closed.
        this.#dials.delete(hex)
        const stream = pending.stream as unknown as { once(e: 'close', f: () => void): void; destroy(): void }
        stream.once('close', () => queueMicrotask(go))
        stream.destroy()
      },
      probe: (address) =>
        this.closing
          ? Promise.resolve(false)
          : (this.dht as unknown as { ping(a: PeerAddress, o: { retry: boolean }): Promise<unknown> }).ping(address, { retry: false }).then(
              () => true,
              () => false
            )
    })
    this.#reconnect = reconnect
    const dht = this.dht as unknown as {
      connect(key: Buffer, opts?: { relayAddresses?: PeerAddress[] | null; [k: string]: unknown }): NoiseSecretStream
      }
    const connect = dht.connect.bind(dht)
    dht.connect = (key, opts = {}) => {
      const hex = Buffer.from(key).toString('hex')
      const direct = reconnect.directAddress(hex)
      let relayAddresses = opts.relayAddresses
      // The direct address alone: HyperDHT tries it first and walks the DHT beside it (the relays
      // it would have used from its cache are found again by that lookup, in parallel).
      if (direct && !(relayAddresses && relayAddresses.length > 0)) relayAddresses = [direct]
      const stream = connect(key, { ...opts, relayAddresses })
      const entry = { stream, at: Date.now() }
      this.#dials.set(hex, entry)
      const done = () => {
        if (this.#dials.get(hex) === entry) this.#dials.delete(hex)
      }
      stream.once('open', done)
      stream.once('close', done)
      return stream
    }
    const poke = () => {
      if (!this.closing) reconnect.poke()
    }
    this.dht.on('network-change', poke)
    this.dht.on('persistent', poke)
    this.dht.on('add-node', () => {
      // A DHT node answers an empty (or nearly empty) routing table: the DHT is back.
      if (this.#routingNodes() <= MIN_DHT_NODES) poke()
      if (!this.#dhtReachable) this.#watchDht()
    })
    this.#reconnectTimer = setInterval(() => {
      if (this.closing) return
      // While the routing table is empty, ask the bootstrap nodes every tick (not every DHT_WATCH_MS).
      if (this.#routingNodes() === 0) this.dht.refresh()
      reconnect.tick()
    }, FAST_RETRY_MS)
    this.#reconnectTimer.unref()
  }

  /** Configured peers (the ones we dial) that are not connected, as hex keys. */
  #waitingPeers(): string[] {
    const out: string[] = []
    for (const info of this.swarm.explicitPeers) {
      if (info.banned) continue
      const hex = info.publicKey.toString('hex')
      if (this.peers.has(hex) || this.connectionTo(info.publicKey)) continue
      out.push(hex)
    }
    return out
  }

  /**
   * Connected peers that hold catalog `key` for us (their handshake names it, or we download it
   * from them), and when none does: since when (the last one went away, or this node started).
   * O(connected peers). A source with no peer serves only what is held here: status says so.
   */
  holdersOf(key: Uint8Array): { peers: number; noPeersSince: number | null } {
    const hex = Buffer.from(key).toString('hex')
    let peers = 0
    for (const p of this.peers.values()) if (this.#holds(p, hex)) peers++
    if (peers > 0) return { peers, noPeersSince: null }
    return { peers: 0, noPeersSince: this.#holdersLostAt.get(hex) ?? this.#openedAt }
  }

  #holds(p: Peer, catalogHex: string): boolean {
    if (p.handshake?.catalogs.some((k) => Buffer.from(k).toString('hex') === catalogHex)) return true
    const c = this.#connectionOf(p)
    return !!c && !c.conn.destroyed && c.repl.downloadOnly.has(catalogHex)
  }

  /** `peer` went away: each catalog it held that no other connected peer holds has no peer since now. */
  #holderLost(peer: Peer, now = Date.now()): void {
    for (const k of peer.handshake?.catalogs ?? []) {
      const hex = Buffer.from(k).toString('hex')
      if (this.holdersOf(k).peers > 0) continue
      this.#holdersLostAt.delete(hex)
      this.#holdersLostAt.set(hex, now)
      if (this.#holdersLostAt.size > MAX_CONTACTS) this.#holdersLostAt.delete(this.#holdersLostAt.keys().next().value!)
    }
  }

  /** Reconnection counters (status, tests): dials by reason and addresses remembered. */
  reconnectStatus(): { dials: Record<string, number>; knownAddresses: number } | null {
    const r = this.#reconnect
    return r ? { dials: { ...r.dials }, knownAddresses: r.knownAddresses } : null
  }

  override async _close(): Promise<void> {
    if (this.#watch) clearInterval(this.#watch)
    if (this.#reconnectTimer) clearInterval(this.#reconnectTimer)
    this.#reconnect?.close()
    // Destroy connections first: swarm.destroy() leaves them open and peers notice only later.
    for (const conn of this.#connections.keys()) conn.destroy()
    // Unannouncing is a courtesy (DHT records expire by themselves): never let an unreachable DHT
    // node hold a shutdown for its request timeouts.
    const unannounced = Promise.all([...this.#topics.values()].map((d) => d.destroy().catch(() => {})))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([unannounced, new Promise<void>((resolve) => (timer = setTimeout(resolve, UNANNOUNCE_WAIT_MS)))])
    clearTimeout(timer)
    await this.swarm.destroy({ force: true })
    await this.dht.destroy()
  }

  #firewall(remoteKey: Buffer, payload: unknown): boolean {
    // Hyperswarm asks on incoming connections (with the handshake payload) and before dialling
    // (null): both are admitted by the same rule, so we never dial a peer we would refuse.
    if (this.opts.isAllowed(remoteKey)) {
      if (payload !== null) this.#incoming(remoteKey, true)
      return false
    }
    if (payload !== null) this.#incoming(remoteKey, this.opts.dialAnyone === true && this.#foundOnTopic(remoteKey))
    // A node that reads from any holder connects to the peers it found on its own topics, whoever
    // dials first; such a connection only downloads (see #applyScope), it never serves a block.
    if (this.opts.dialAnyone && this.#foundOnTopic(remoteKey)) return false
    // Not found (yet): maybe a holder that announced after our lookup. Look again; when the
    // lookup finds it, #keepTopicPeers lifts the ban and dials it.
    if (payload !== null && this.opts.dialAnyone) this.#relookup()
    this.#remember(remoteKey)
    if (payload !== null) this.emit('refused', remoteKey)
    return true
  }

  /**
   * Someone dials us: the network works, so dial every waiting configured peer now (each at most
   * once per MIN_POKE_GAP_MS, however many dial us). And when the
   * dialler is a peer our own dial to has gone unanswered for STALE_DIAL_MS (it went to the address
   * the peer had before it restarted), drop ours: Hyperswarm would otherwise keep it and refuse the
   * peer's fresh dial as a duplicate when we are the expected initiator.
   */
  #incoming(remoteKey: Buffer, admitted: boolean): void {
    if (this.closing) return
    const hex = remoteKey.toString('hex')
    const dial = this.#dials.get(hex)
    // Only for a peer the firewall admits (its key is proven by the Noise handshake already).
    if (admitted && dial && Date.now() - dial.at >= STALE_DIAL_MS && !this.connectionTo(remoteKey)) {
      this.#dials.delete(hex)
      dial.stream.destroy()
    }
    // After this tick: the firewall answers first, and a poke never dials the peer dialling us.
    queueMicrotask(() => this.#reconnect?.poke(hex))
  }

  #lastRelookup = 0

  #relookup(): void {
    if (this.closing) return
    const now = Date.now()
    if (now - this.#lastRelookup < TOPIC_RELOOKUP_MS) return
    this.#lastRelookup = now
    for (const d of this.#topics.values()) d.refresh().catch(() => {})
  }

  /** Records a refused key; forgets the oldest beyond the bound (dropping Hyperswarm's banned entry). */
  #remember(key: Buffer): void {
    const hex = key.toString('hex')
    this.#refused.delete(hex)
    this.#refused.add(hex)
    const max = this.opts.maxRefusedPeers ?? MAX_REFUSED_PEERS
    for (const old of this.#refused) {
      if (this.#refused.size <= max) break
      this.#refused.delete(old)
      const info = this.swarm.peers.get(old)
      // Only a bare ban: peers we dial or found on a topic keep their entry.
      if (info && info.banned && !info.explicit && info.topics.length === 0) this.swarm.peers.delete(old)
    }
  }

  /** Refused keys remembered now (at most `maxRefusedPeers`). */
  get refusedPeers(): number {
    return this.#refused.size
  }

  /**
   * Peers found on our topics are holders of the same agency: keep dialling them like known peers.
   * Hyperswarm drops a topic peer after a few failed tries and looks the topic up again only every
   * ten minutes; a mirror admitted by an embassy a minute later would wait that long.
   */
  #keepTopicPeers(): void {
    for (const info of this.swarm.peers.values()) {
      if (info.topics.length === 0 || info.explicit) continue
      // Refused earlier (it dialled us before our lookup found it): a holder we read from is wanted.
      if (info.banned && this.opts.dialAnyone) info.ban(false)
      if (!info.banned) this.swarm.joinPeer(info.publicKey)
    }
  }

  #foundOnTopic(key: Buffer): boolean {
    const info = this.swarm?.peers.get(key.toString('hex'))
    return !!info && info.topics.length > 0
  }

  #routingNodes(): number {
    return (this.dht as unknown as { nodes?: { length: number } }).nodes?.length ?? 0
  }

  /**
   * A node that started (or restarted) while every DHT node was down has an empty routing table
   * and an announcement that never landed; HyperDHT would retry it only after ~5 minutes. Ask the
   * bootstrap nodes again every few seconds while the table is empty, and once it fills, announce
   * again and look our topics up again, so known peers find each other as soon as the DHT returns.
   */
  #watchDht(): void {
    this.#readmitAdmitted()
    this.#reportLooking()
    const reachable = this.#routingNodes() > 0
    if (!reachable) this.dht.refresh()
    if (reachable && !this.#dhtReachable) {
      this.swarm.server.refresh()
      for (const d of this.#topics.values()) d.refresh().catch(() => {})
      this.redialKnownPeers()
      this.emit('dht-back')
    }
    this.#dhtReachable = reachable
  }

  /**
   * Our own network came back (the DHT answers again after a cut): dial every known peer now
   * instead of waiting out the back-off (up to 8 s).
   */
  #onNetworkUpdate(): void {
    const online = this.dht.online
    if (online && !this.#dhtOnline) {
      this.redialKnownPeers()
      this.emit('online')
    }
    if (!online && this.#dhtOnline) this.emit('offline')
    this.#dhtOnline = online
  }

  /**
   * Says which configured peers (the ones we dial: a followed agency, an allowed embassy, a listed
   * holder) are still unreachable: the first time one is found unreachable, then at most once per
   * LOOKING_REPORT_MS while it stays so. O(configured peers) per DHT check.
   */
  #reportLooking(now = Date.now()): void {
    const seen = new Set<string>()
    for (const info of this.swarm.explicitPeers) {
      const hex = info.publicKey.toString('hex')
      if (this.peers.has(hex) || this.connectionTo(info.publicKey)) continue
      seen.add(hex)
      let entry = this.#looking.get(hex)
      if (!entry) this.#looking.set(hex, (entry = { since: now, reportedAt: 0 }))
      // Not yet one check long (it may be connecting right now), or said recently: quiet.
      if (now - entry.since < DHT_WATCH_MS / 2 || now - entry.reportedAt < (this.opts.lookingReportMs ?? LOOKING_REPORT_MS)) continue
      entry.reportedAt = now
      this.emit('looking-for', info.publicKey, info.attempts, this.#reconnect?.fastRetrying(hex) ? FAST_RETRY_MS : nextRetryMs(info, this.swarm))
    }
    for (const hex of this.#looking.keys()) if (!seen.has(hex)) this.#looking.delete(hex)
  }

  /** Our DHT socket, its routing table and what answered at start (status). */
  dhtStatus(): DhtStatus {
    const a = this.dht?.address() as { host: string; port: number } | null
    const nodes = this.dht ? this.#routingNodes() : 0
    return { address: a ? `${a.host}:${a.port}` : null, nodes, nodesAtStart: this.#nodesAtStart, few: this.#nodesAtStart < MIN_DHT_NODES }
  }

  /** When `key` was last heard from (data or keep-alive; ms since epoch), null if never since start. */
  lastContact(key: Uint8Array | string): number | null {
    const hex = typeof key === 'string' ? key : Buffer.from(key).toString('hex')
    return this.#contacts.get(hex) ?? null
  }

  #touch(hex: string, now = Date.now()): void {
    this.#contacts.delete(hex)
    this.#contacts.set(hex, now)
    if (this.#contacts.size > MAX_CONTACTS) {
      const oldest = this.#contacts.keys().next().value
      if (oldest !== undefined) this.#contacts.delete(oldest)
    }
  }

  /** Dials at once every known (explicit) peer that is not connected. */
  redialKnownPeers(): void {
    for (const info of this.swarm.explicitPeers) {
      if (info.banned || this.peers.has(info.publicKey.toString('hex'))) continue
      info.attempts = 0
      this.swarm.joinPeer(info.publicKey)
    }
  }

  /**
   * A key refused earlier that is admitted now (allowed since, a holder its agency listed since)
   * loses its ban: a refusal never becomes a permanent ban of a peer this node needs.
   * O(refused keys remembered), at most MAX_REFUSED_PEERS.
   */
  #readmitAdmitted(): void {
    for (const hex of [...this.#refused]) {
      const key = Buffer.from(hex, 'hex')
      if (this.opts.isAllowed(key)) this.readmit(key)
    }
  }

  /** Re-admits a key the firewall refused earlier (Hyperswarm bans refused peers for its life). */
  readmit(key: Buffer): void {
    this.#refused.delete(key.toString('hex'))
    const info = this.swarm?.peers.get(key.toString('hex'))
    if (info && info.banned) info.ban(false)
  }

  /** Dials `key` and keeps reconnecting while it stays joined. */
  joinPeer(key: Buffer): void {
    this.readmit(key)
    this.swarm.joinPeer(key)
  }

  leavePeer(key: Buffer): void {
    this.swarm.leavePeer(key)
  }

  /** Joins a topic: announce (server) and/or look up (client). */
  async join(topic: Buffer, opts: { server: boolean; client: boolean }): Promise<void> {
    const hex = topic.toString('hex')
    if (this.#topics.has(hex)) return
    const discovery = this.swarm.join(topic, opts)
    this.#topics.set(hex, discovery)
    await discovery.flushed()
  }

  connectedTo(key: Uint8Array): Peer | null {
    return this.peers.get(Buffer.from(key).toString('hex')) ?? null
  }

  /**
   * The live connection with `key`, also before (or without) its custody handshake — a peer
   * that does not speak our protocol is still replicated with, within its scope.
   */
  connectionTo(key: Uint8Array): Peer | null {
    const hex = Buffer.from(key).toString('hex')
    for (const c of this.#connections.values()) if (c.peer.id === hex && !c.conn.destroyed) return c.peer
    return null
  }

  /**
   * Gives the network the role's replication scope. Connections that arrived before start now;
   * later calls (the role's admission changed) re-scope every live connection.
   */
  setScope(scope: ReplicationScope): void {
    this.#scope = scope
    const pending = [...this.#pending]
    this.#pending.clear()
    for (const c of pending) this.#start(c)
    this.rescope()
  }

  /**
   * Admission or entitlements changed (allow, deny, a holder list, a catalog learnt): every live
   * connection gets its new scope. A peer that lost a catalog it was replicating is disconnected
   * (it reconnects, if still admitted, with the narrower scope and handshake); newly entitled
   * catalogs are attached. O(connections + cores of newly entitled catalogs).
   */
  rescope(): void {
    if (!this.#scope) return
    for (const c of this.#connections.values()) {
      if (!c.started || c.repl.all) continue
      this.#applyScope(c)
    }
  }

  /**
   * Offers a held core of `catalogKey` for replication: attached at once to every connection
   * entitled to that catalog (or downloading it), and to later ones as they connect. Cores are
   * never given to a connection otherwise. O(connections).
   */
  offer(catalogKey: Uint8Array, core: Hypercore): void {
    if (core.closing) return
    if (!core.opened || !core.discoveryKey) {
      core.ready().then(() => this.offer(catalogKey, core), () => {})
      return
    }
    const catalog = Buffer.from(catalogKey).toString('hex')
    const dk = core.discoveryKey.toString('hex')
    this.#cores.set(dk, { catalog, core })
    let cores = this.#byCatalog.get(catalog)
    if (!cores) this.#byCatalog.set(catalog, (cores = new Map()))
    cores.set(dk, core)
    for (const c of this.#connections.values()) {
      if (!c.started || c.repl.all) continue
      if (c.repl.catalogs.has(catalog)) this.#attach(c, core, true)
      else if (c.repl.downloadOnly.has(catalog)) this.#attach(c, core, false)
    }
  }

  /** Stops offering `core` to new connections (it closed); live ones keep what they have. */
  withdraw(core: Hypercore): void {
    const dk = core.discoveryKey?.toString('hex')
    const entry = dk ? this.#cores.get(dk) : undefined
    if (!dk || !entry || entry.core !== core) return
    this.#cores.delete(dk)
    this.#byCatalog.get(entry.catalog)?.delete(dk)
  }

  /**
   * Replicates `core` with one connected peer only, whatever its scope (an auditor's sampled
   * core, say); with `upload: false` the peer cannot download it from us.
   */
  attachCore(peer: Peer, core: Hypercore, opts: { upload?: boolean } = {}): boolean {
    const c = this.#connectionOf(peer)
    if (!c || !c.started) return false
    if (c.repl.all) return true
    if (!core.opened || !core.discoveryKey) {
      core.ready().then(() => this.attachCore(peer, core, opts), () => {})
      return true
    }
    this.#attach(c, core, opts.upload !== false)
    return true
  }

  /** What a connected peer replicates with us (status, tests). */
  scopeOf(peer: Peer): { all: boolean; catalogs: Buffer[]; downloadOnly: Buffer[]; cores: number } | null {
    const c = this.#connectionOf(peer)
    if (!c) return null
    const keys = (set: Set<string>) => [...set].map((h) => Buffer.from(h, 'hex'))
    return { all: c.repl.all, catalogs: keys(c.repl.catalogs), downloadOnly: keys(c.repl.downloadOnly), cores: c.repl.attached.size }
  }

  #connectionOf(peer: Peer): Connection | null {
    for (const c of this.#connections.values()) if (c.peer === peer) return c
    return null
  }

  #onconnection(conn: NoiseSecretStream, info: { publicKey: Buffer }): void {
    conn.on('error', () => {})
    // Notice a dead peer within seconds: send keep-alives often, close a silent connection.
    conn.setKeepAlive(this.opts.keepAlive ?? KEEP_ALIVE_MS)
    conn.setTimeout(this.opts.connectionTimeout ?? CONNECTION_TIMEOUT_MS)
    const key = Buffer.from(conn.remotePublicKey ?? info.publicKey)
    const peer: Peer = {
      key,
      id: key.toString('hex'),
      role: 'unknown',
      handshake: null,
      channel: null as unknown as CustodyChannel,
      connectedAt: Date.now(),
      initiator: !!conn.isInitiator,
      conn,
      catalogs: []
    }
    // Where it came from: its DHT node, which answers a direct dial after a restart or a cut.
    const raw = conn.rawStream as unknown as { remoteHost?: string | null; remotePort?: number } | undefined
    this.#reconnect?.connected(peer.id, raw?.remoteHost ? { host: raw.remoteHost, port: raw.remotePort ?? 0 } : null)
    const c: Connection = {
      conn,
      peer,
      started: false,
      repl: { all: false, catalogs: new Set(), downloadOnly: new Set(), uploads: new Set(), attached: new Set(), refused: 0 }
    }
    this.#connections.set(conn, c)
    // Last contact: anything received, keep-alives included (they never reach the mux).
    this.#touch(peer.id)
    let touched = Date.now()
    conn.rawStream?.on('data', () => {
      const now = Date.now()
      if (now - touched < CONTACT_RESOLUTION_MS) return
      touched = now
      this.#touch(peer.id, now)
    })
    conn.on('close', () => {
      this.#connections.delete(conn)
      this.#pending.delete(c)
      if (!this.connectionTo(key)) this.#reconnect?.lost(peer.id)
      if (this.peers.get(peer.id) === peer) {
        this.peers.delete(peer.id)
        this.#holderLost(peer)
        this.emit('peer-lost', peer, 'connection closed')
      }
    })
    if (this.#scope) this.#start(c)
    else this.#pending.add(c)
  }

  /** Starts replication (scoped) and the custody channel on a connection. */
  #start(c: Connection): void {
    const scope = this.#scope
    if (!scope || c.started || c.conn.destroyed) return
    c.started = true
    const { conn, peer } = c
    const mux = Protomux.from(conn)
    const entitled = scope.entitled(peer.key)
    if (entitled === true) {
      c.repl.all = true
      this.opts.store.replicate(conn)
    } else {
      gateUploads(mux, c.repl)
      Hypercore.createProtocolStream(conn, { ondiscoverykey: (dk: Buffer) => this.#ondiscoverykey(c, dk) })
      this.#applyScope(c, entitled)
    }
    const own = this.opts.handshake()
    const catalogs = c.repl.all ? own.catalogs : own.catalogs.filter((k) => c.repl.catalogs.has(Buffer.from(k).toString('hex')))
    peer.catalogs = catalogs.map((k) => Buffer.from(k))
    const channel = new CustodyChannel(mux, { ...own, catalogs }, this.opts.handlers?.(peer) ?? {})
    peer.channel = channel
    channel.on('open', (remote) => {
      peer.handshake = remote
      peer.role = peerRoleName(remote.role)
      const existing = this.peers.get(peer.id)
      if (existing && existing !== peer) existing.conn.destroy()
      this.peers.set(peer.id, peer)
      this.emit('peer', peer)
    })
    channel.on('invalid', (err) => this.emit('channel-error', peer, err))
    channel.on('remote-error', (e) => this.emit('channel-error', peer, new Error(`remote says: ${e.message}`)))
    channel.open()
  }

  /** (Re)computes what a scoped connection replicates and attaches what is newly in scope. */
  #applyScope(c: Connection, given?: Buffer[]): void {
    const scope = this.#scope!
    const entitled = given ?? scope.entitled(c.peer.key)
    if (entitled === true) {
      // Widened to the whole store: a new connection gets it.
      if (c.repl.catalogs.size > 0 || c.repl.attached.size > 0) c.conn.destroy()
      return
    }
    const next = new Set(entitled.map((k) => Buffer.from(k).toString('hex')))
    for (const cat of c.repl.catalogs) {
      if (next.has(cat)) continue
      // Revoked: cores cannot be detached from a live connection; the peer reconnects if it may.
      c.conn.destroy()
      return
    }
    const down = new Set<string>()
    if (this.opts.dialAnyone) {
      for (const topic of this.swarm?.peers.get(c.peer.id)?.topics ?? []) {
        const cat = scope.catalogOfTopic(Buffer.from(topic))
        if (cat) {
          const hex = Buffer.from(cat).toString('hex')
          if (!next.has(hex)) down.add(hex)
        }
      }
    }
    const added = [...next].filter((h) => !c.repl.catalogs.has(h))
    if (added.length > 0 && c.repl.refused > 0) {
      // Widened after refusing it requests: its Hypercore backed off from us; a fresh connection
      // (with a handshake naming the new catalogs) starts clean.
      c.conn.destroy()
      return
    }
    const addedDown = [...down].filter((h) => !c.repl.downloadOnly.has(h))
    c.repl.catalogs = next
    c.repl.downloadOnly = down
    c.peer.catalogs = [...next].map((h) => Buffer.from(h, 'hex'))
    for (const cat of added) for (const core of this.#byCatalog.get(cat)?.values() ?? []) this.#attach(c, core, true)
    for (const cat of addedDown) for (const core of this.#byCatalog.get(cat)?.values() ?? []) this.#attach(c, core, false)
  }

  /** The peer opened a core we did not attach: attach it when it is in the connection's scope. */
  #ondiscoverykey(c: Connection, dk: Buffer): void {
    const entry = this.#cores.get(Buffer.from(dk).toString('hex'))
    if (!entry || entry.core.closing) return
    if (c.repl.catalogs.has(entry.catalog)) this.#attach(c, entry.core, true)
    else if (c.repl.downloadOnly.has(entry.catalog)) this.#attach(c, entry.core, false)
  }

  #attach(c: Connection, core: Hypercore, upload: boolean): void {
    if (core.closing || c.conn.destroyed || !core.discoveryKey) return
    const dk = core.discoveryKey.toString('hex')
    if (upload) c.repl.uploads.add(dk)
    if (c.repl.attached.has(dk)) return
    c.repl.attached.add(dk)
    core.replicate(c.conn)
  }

  /** Peers as z32 keys with their role (status output). */
  describePeers(): Array<{ nodeKey: string; role: string; since: number; lastContact: number | null }> {
    return [...this.peers.values()].map((p) => ({ nodeKey: toZ32(p.key), role: p.role, since: p.connectedAt, lastContact: this.lastContact(p.key) }))
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

/** One connection and what it replicates. */
interface Connection {
  conn: NoiseSecretStream
  peer: Peer
  /** Replication and the custody channel started (the role's scope was known). */
  started: boolean
  repl: PeerReplication
}

interface ChannelOptions {
  protocol: string
  id?: Uint8Array | null
  messages?: Array<{ onmessage?: (message: never, channel: never) => unknown } & Record<string, unknown>>
  [option: string]: unknown
}

interface GatedChannel {
  messages?: Array<{ send(message: unknown): boolean } | undefined>
}

/**
 * The upload gate: a core's `request` messages on this connection reach Hypercore only when the
 * peer may download that core from us (`repl.uploads`); others are answered `noData` (not
 * available), so the asker backs off instead of waiting. Installed before any core is attached,
 * so no request can arrive ungated.
 */
function gateUploads(mux: Protomux, repl: PeerReplication): void {
  const m = mux as unknown as { createChannel(opts: ChannelOptions): unknown }
  const create = m.createChannel.bind(mux)
  m.createChannel = (opts: ChannelOptions) => {
    const request = opts.messages?.[HYPERCORE_REQUEST_MESSAGE]
    if (opts.protocol !== HYPERCORE_PROTOCOL || !opts.id || !request || typeof request.onmessage !== 'function') return create(opts)
    const dk = Buffer.from(opts.id).toString('hex')
    const onrequest = request.onmessage as (message: unknown, channel: unknown) => unknown
    const refuse = (message: { id?: number }, channel: GatedChannel) => {
      repl.refused++
      if (typeof message?.id === 'number' && message.id > 0) channel?.messages?.[HYPERCORE_NO_DATA_MESSAGE]?.send({ request: message.id, reason: NO_DATA_NOT_AVAILABLE })
    }
    const gated = (message: { id?: number }, channel: GatedChannel) => (repl.all || repl.uploads.has(dk) ? onrequest(message, channel) : refuse(message, channel))
    const messages = opts.messages!.map((msg, i) => (i === HYPERCORE_REQUEST_MESSAGE ? { ...msg, onmessage: gated } : msg))
    return create({ ...opts, messages })
  }
}
