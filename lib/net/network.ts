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
import { LaneLink, type LaneLinkOptions, type LaneInfo } from './lane-link.js'
import { Dialer, DHT_WATCH_MS, LOOKING_REPORT_MS, MIN_DHT_NODES, RECONNECT_BACKOFFS } from './dialer.js'
import { NetMemory } from './net-memory.js'

// Dialling, the DHT watch and reconnection live in ./dialer.ts (its constants are re-exported here).
export { RECONNECT_BACKOFFS, DHT_WATCH_MS, MIN_DHT_NODES, LOOKING_REPORT_MS }

/** Longest a shutdown waits for the DHT to take our announcements down. */
export const UNANNOUNCE_WAIT_MS = 2000

/**
 * Longest a shutdown waits for Hyperswarm to close its server (ms). HyperDHT's server close first
 * waits for an announce in progress and then unannounces from every relay: with relays that do
 * not answer (a cut link, a DHT node gone) that is several request time-outs. After this the DHT's
 * sockets are closed, which fails what is still pending.
 */
export const SWARM_CLOSE_WAIT_MS = 3000


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


/** Peers whose last contact is remembered after they went away; beyond this the oldest are forgotten. */
export const MAX_CONTACTS = 4096

/**
 * How often last contact is checked (ms): one timer per node reads each connection's UDX packet
 * counter (keep-alives included) instead of a listener on every packet.
 */
export const CONTACT_CHECK_MS = 1000

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
  /**
   * The node's network memory file (./net-memory.ts): with `port` 0 the DHT binds the UDP ports it
   * had before (another free one when busy: 'port-changed'), and configured peers are dialled at
   * their remembered addresses at start, beside the DHT. None: nothing remembered across restarts.
   */
  memoryFile?: string
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
  /** Bulk lane (lane-link.ts): a lane with a connected peer opened / closed; a dial to one failed (logged, replication unaffected). */
  'lane-open': [peer: Peer, info: { initiator: boolean; host: string; port: number }]
  'lane-close': [peer: Peer, info: { bytesIn: number; bytesOut: number; ms: number }]
  'lane-failed': [peer: Peer, err: Error]
  /** The DHT stopped answering us / answers again. */
  offline: []
  online: []
  /** The DHT could not be reached at all (empty routing table) and now can. */
  'dht-back': []
  /** At start, fewer than MIN_DHT_NODES DHT nodes answered (reconnections may be slow). */
  'few-dht-nodes': [nodes: number]
  /** A configured peer (one we dial) is still unreachable; at most once per LOOKING_REPORT_MS each. */
  'looking-for': [key: Buffer, attempt: number, nextInMs: number]
  /** The remembered UDP port was busy: another was bound (peers remember the old one until they reconnect). */
  'port-changed': [remembered: number, bound: number]
  /** The network memory file was damaged or unreadable: ignored (started with an empty memory), or could not be written. */
  'memory-error': [file: string, reason: string]
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
  /** LANE HOOK: the bulk lane (null: off). Its logic lives in lane-link.ts. */
  lane: LaneLink | null = null
  /** LANE HOOK: lane streams, each an extra replication connection of a peer (no custody channel, not in `peers`). */
  #lanes = new Map<NoiseSecretStream, Connection>()
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
  /** Keys the firewall refused, oldest first (a bounded memory of Hyperswarm's bans). */
  #refused = new Set<string>()
  /** When each peer was last heard from (any data or keep-alive), oldest first, bounded by MAX_CONTACTS. */
  #contacts = new Map<string, number>()
  #nodesAtStart = 0
  /** Dials, reconnection help, the DHT watch and "looking for" reports (./dialer.ts). */
  #dialer: Dialer | null = null
  /** When the network opened (a catalog never held by a connected peer has had none since). */
  #openedAt = Date.now()
  /** When the last connected holder of each catalog (hex) went away, bounded by MAX_CONTACTS. */
  #holdersLostAt = new Map<string, number>()
  /** Ports and peer addresses remembered across restarts (null: no memory file). */
  #memory: NetMemory | null = null
  /** Reads each connection's packet counter every CONTACT_CHECK_MS (last contact). */
  #contactTimer: NodeJS.Timeout | null = null

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
    const memory = this.#openMemory()
    // dht-rpc tries port..port+5 and then any port unless told otherwise: a given port is that
    // port or an error, never a neighbour the operator did not choose (nor firewall rules allow).
    // No port given: the ports this node had before (peers remember them; a direct dial after a
    // restart needs them), any free one when the remembered one is busy (dht-rpc falls back).
    const remembered = port === 0 ? memory?.data.serverPort ?? 0 : 0
    const ports = port !== 0 ? { port: [port, port + 1], anyPort: false } : remembered > 0 ? { port: [remembered, remembered + 1], anyPort: true } : { port: 0 }
    this.#openedAt = Date.now()
    this.dht = new DHT({ bootstrap, keyPair, ...ports, host, udx: udxWithLargeBuffers() } as unknown as ConstructorParameters<typeof DHT>[0])
    // dht-rpc binds a second (client) socket, which a firewalled node's connections use: it has
    // no option, but dht-rpc retries its previous port first (falling back to any): seed it.
    const io = (this.dht as unknown as { io?: { _boundClientPort?: number } }).io
    if (port === 0 && memory && memory.data.clientPort > 0 && io && typeof io._boundClientPort === 'number') io._boundClientPort = memory.data.clientPort
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
    this.#rememberPorts(remembered)
    this.#nodesAtStart = this.#routingNodes()
    if (this.#nodesAtStart < MIN_DHT_NODES) this.emit('few-dht-nodes', this.#nodesAtStart)
    this.#contactTimer = setInterval(() => this.#checkContacts(), CONTACT_CHECK_MS)
    this.#contactTimer.unref()
    this.#startDialer()
  }

  /** Dialling, reconnection help and the DHT watch (./dialer.ts) on our swarm. */
  #startDialer(): void {
    const net = this
    const dialer = new Dialer(
      {
        swarm: this.swarm,
        dht: this.dht,
        get closing() {
          return !!net.closing
        },
        // Connected: its custody handshake arrived, or a connection of it received bytes (one
        // still opening — a hole-punch that may go nowhere — leaves the peer waiting).
        isConnected: (hex, key) => this.peers.has(hex) || this.#receiving(key),
        routingNodes: () => this.#routingNodes(),
        refreshTopics: () => {
          for (const d of this.#topics.values()) d.refresh().catch(() => {})
        },
        readmitAdmitted: () => this.#readmitAdmitted(),
        online: () => this.emit('online'),
        offline: () => this.emit('offline'),
        dhtBack: () => this.emit('dht-back'),
        lookingFor: (key, attempt, nextInMs) => this.emit('looking-for', key, attempt, nextInMs)
      },
      { reconnect: this.opts.reconnect !== false, lookingReportMs: this.opts.lookingReportMs ?? LOOKING_REPORT_MS, remembered: this.#memory?.data.peers ?? [] }
    )
    this.#dialer = dialer
    dialer.start()
  }

  /** Reads the memory file (a damaged one is ignored and reported). */
  #openMemory(): NetMemory | null {
    const file = this.opts.memoryFile
    if (!file) return null
    const memory = new NetMemory(file)
    memory.onerror = (err) => this.emit('memory-error', file, `not written: ${err.message}`)
    const { ignored } = memory.load()
    if (ignored) this.emit('memory-error', file, `ignored: ${ignored}`)
    this.#memory = memory
    return memory
  }

  /** A live connection with `key` that received bytes. */
  #receiving(key: Buffer): boolean {
    const hex = key.toString('hex')
    for (const c of this.#connections.values()) if (c.peer.id === hex && !c.conn.destroyed && ((c.conn as unknown as { rawBytesRead?: number }).rawBytesRead ?? 0) > 0) return true
    return false
  }

  /** Our DHT server socket's UDP port (0 before it is bound). */
  #dhtServerPort(): number {
    const io = (this.dht as unknown as { io?: { serverSocket?: { address(): { port: number } } | null } }).io
    try {
      return io?.serverSocket?.address().port ?? 0
    } catch {
      return 0
    }
  }

  /**
   * The peer's handshake states its DHT server port (minor 4): at the host its connection comes
   * from, that is where it is probed and dialled directly after a restart or a cut (remembered
   * across our restarts). Only where we dial, never whom we trust: every connection is still
   * authenticated by the peer's Noise key, and an address that does not answer leaves the DHT
   * path as it was (a relayed connection's host is the relay's: its probes go unanswered). Port
   * 0 (not said) or an unusable host: ignored.
   */
  #statedAddress(c: Connection, remote: Handshake): void {
    const port = remote.dhtPort
    if (!port || !Number.isInteger(port) || port < 1 || port > 65535) return
    const raw = c.conn.rawStream as unknown as { remoteHost?: string | null } | undefined
    const host = raw?.remoteHost
    if (!host || c.conn.destroyed) return
    const address = { host, port }
    if (this.#dialer?.reconnect?.stated(c.peer.id, address)) this.#memory?.setPeer(c.peer.id, address)
  }

  /** Records the ports bound; says so when the remembered one was busy. */
  #rememberPorts(remembered: number): void {
    const io = (this.dht as unknown as { io?: { serverSocket?: { address(): { port: number } } | null; clientSocket?: { address(): { port: number } } | null } }).io
    const server = io?.serverSocket?.address().port ?? 0
    const client = io?.clientSocket?.address().port ?? 0
    if (remembered > 0 && server !== remembered) this.emit('port-changed', remembered, server)
    this.#memory?.setPorts(server, client)
    // Written now: a node killed soon after start still comes back on these ports.
    this.#memory?.flush()
  }

  /**
   * Last contact: every CONTACT_CHECK_MS, each connection whose UDX packet counter moved (data or
   * keep-alive) was heard from. O(connections) per check, nothing per packet.
   */
  #checkContacts(): void {
    const now = Date.now()
    for (const c of this.#connections.values()) {
      const raw = c.conn.rawStream as unknown as { packetsReceived?: number } | null
      const rx = raw?.packetsReceived
      if (typeof rx !== 'number' || rx === c.rx) continue
      c.rx = rx
      this.#touch(c.peer.id, now)
    }
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
    const r = this.#dialer?.reconnect
    return r ? { dials: { ...r.dials }, knownAddresses: r.knownAddresses } : null
  }

  override async _close(): Promise<void> {
    this.#dialer?.close()
    if (this.#contactTimer) clearInterval(this.#contactTimer)
    this.#memory?.close()
    await this.lane?.close() // LANE HOOK
    // Destroy connections first: swarm.destroy() leaves them open and peers notice only later.
    for (const conn of this.#connections.keys()) conn.destroy()
    // Unannouncing is a courtesy (DHT records expire by themselves): never let an unreachable DHT
    // node hold a shutdown for its request timeouts.
    const unannounced = Promise.all([...this.#topics.values()].map((d) => d.destroy().catch(() => {})))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([unannounced, new Promise<void>((resolve) => (timer = setTimeout(resolve, UNANNOUNCE_WAIT_MS)))])
    clearTimeout(timer)
    const swarmClosed = this.swarm.destroy({ force: true }).then(
      () => true,
      () => true
    )
    await Promise.race([swarmClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, SWARM_CLOSE_WAIT_MS)))])
    clearTimeout(timer)
    // force: the DHT's servers are the swarm's, closed (or given up on) above; closing the sockets
    // fails whatever the swarm still waits for.
    await this.dht.destroy({ force: true })
  }

  #firewall(remoteKey: Buffer, payload: unknown): boolean {
    // Hyperswarm asks on incoming connections (with the handshake payload) and before dialling
    // (null): both are admitted by the same rule, so we never dial a peer we would refuse.
    if (this.opts.isAllowed(remoteKey)) {
      if (payload !== null) this.#dialer?.incoming(remoteKey, true)
      return false
    }
    if (payload !== null) this.#dialer?.incoming(remoteKey, this.opts.dialAnyone === true && this.#foundOnTopic(remoteKey))
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
    this.#dialer?.redialKnownPeers()
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
    for (const c of [...this.#connections.values(), ...this.#lanes.values()]) {
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
    for (const c of [...this.#connections.values(), ...this.#lanes.values()]) {
      if (!c.started || c.repl.all) continue
      if (c.repl.catalogs.has(catalog)) this.#attach(c, core, true)
      else if (c.repl.downloadOnly.has(catalog)) this.#attach(c, core, false)
    }
  }

  /**
   * Called when a peer opens the channel of a core not offered now (a held core closed while
   * idle?): the role opens and offers it if that peer may have it; the peer's open waits for the
   * returned promise (then pairs with the offered core, or is rejected).
   */
  wanted: ((discoveryKey: Buffer, peer: Peer) => Promise<unknown> | void) | null = null

  /**
   * Stops replicating `core` (its holder closes it while idle): no longer offered, and forgotten
   * by every connection, so that a later offer of the core (opened again) attaches it afresh.
   * Its channels close with the core.
   */
  release(core: Hypercore): void {
    const dk = core.discoveryKey?.toString('hex')
    if (!dk) return
    this.withdraw(core)
    for (const c of [...this.#connections.values(), ...this.#lanes.values()]) {
      c.repl.attached.delete(dk)
      c.repl.uploads.delete(dk)
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
    const raw = conn.rawStream as unknown as { remoteHost?: string | null; remotePort?: number; packetsReceived?: number } | undefined
    const from = raw?.remoteHost ? { host: raw.remoteHost, port: raw.remotePort ?? 0 } : null
    this.#dialer?.reconnect?.connected(peer.id, from)
    this.#dialer?.opened(peer.id, conn as unknown as { rawBytesRead?: number; destroyed?: boolean })
    // Remembered across restarts: its DHT node's address when a handshake of ours taught it, else where it came from.
    const address = this.#dialer?.reconnect?.addressOf(peer.id) ?? from
    if (address) this.#memory?.setPeer(peer.id, address)
    const c: Connection = {
      conn,
      peer,
      started: false,
      rx: raw?.packetsReceived ?? 0,
      repl: { all: false, catalogs: new Set(), downloadOnly: new Set(), uploads: new Set(), attached: new Set(), refused: 0 }
    }
    this.#connections.set(conn, c)
    // Last contact: now, then whenever its packet counter moved (#checkContacts; keep-alives count).
    this.#touch(peer.id)
    conn.on('close', () => {
      this.#connections.delete(conn)
      this.#pending.delete(c)
      if (!this.connectionTo(key)) this.#dialer?.reconnect?.lost(peer.id)
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
    // Minor 4: where our DHT server listens (peers probe and dial it directly after a restart).
    const dhtPort = own.minor >= 4 && own.dhtPort === undefined ? this.#dhtServerPort() : own.dhtPort
    const local = dhtPort === undefined ? { ...own, catalogs } : { ...own, catalogs, dhtPort }
    const channel = new CustodyChannel(mux, local, { ...this.opts.handlers?.(peer), ...this.lane?.handlers(peer) })
    peer.channel = channel
    channel.on('open', (remote) => {
      peer.handshake = remote
      peer.role = peerRoleName(remote.role)
      this.#statedAddress(c, remote)
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
  #ondiscoverykey(c: Connection, dk: Buffer): Promise<unknown> | void {
    const entry = this.#cores.get(Buffer.from(dk).toString('hex'))
    if (!entry || entry.core.closing) {
      // Not offered now: perhaps a held core closed while idle; its holder opens it again (and
      // offers it, which attaches it within each connection's scope) if the peer may have it.
      // Protomux keeps the peer's open pending until the returned promise settles.
      if (!c.conn.destroyed && this.wanted) return this.wanted(Buffer.from(dk), c.peer)
      return
    }
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
  describePeers(): Array<{ nodeKey: string; role: string; since: number; lastContact: number | null; lane?: LaneInfo }> {
    return [...this.peers.values()].map((p) => {
      const lane = this.lane?.describe(p.key) // LANE HOOK
      return { nodeKey: toZ32(p.key), role: p.role, since: p.connectedAt, lastContact: this.lastContact(p.key), ...(lane ? { lane } : {}) }
    })
  }

  // ---- LANE HOOK (issue 16 item 5): the logic is in lane-link.ts; here only what needs the network's internals. ----

  /**
   * Turns the bulk lane on (before setScope, so every connection's custody channel takes lane
   * offers). Resolves once the listener (if any) listens; PORT_IN_USE when its port is busy.
   */
  useLane(opts: LaneLinkOptions): Promise<void> {
    if (this.lane) return Promise.resolve()
    const link = new LaneLink(
      {
        keyPair: this.opts.keyPair,
        isAllowed: (key) => this.opts.isAllowed(key),
        peer: (key) => this.peers.get(Buffer.from(key).toString('hex')) ?? null,
        connected: () => [...this.peers.values()],
        attach: (peer, stream) => this.#attachLane(peer as Peer, stream),
        emit: (event: string, peer: unknown, info: unknown) => this.emit(event as 'lane-failed', peer as Peer, info as Error)
      },
      opts
    )
    this.lane = link
    this.on('peer', (p) => link.onpeer(p))
    this.on('peer-lost', (p) => link.onpeerLost(p))
    return link.open()
  }

  /** A lane of `peer`: replicated with the peer's scope, as its swarm connection (no custody channel). */
  #attachLane(peer: Peer, stream: NoiseSecretStream): boolean {
    const scope = this.#scope
    if (!scope || this.closing || stream.destroyed) return false
    const c: Connection = { conn: stream, peer, started: true, rx: 0, repl: { all: false, catalogs: new Set(), downloadOnly: new Set(), uploads: new Set(), attached: new Set(), refused: 0 } }
    this.#lanes.set(stream, c)
    stream.once('close', () => this.#lanes.delete(stream))
    const entitled = scope.entitled(peer.key)
    if (entitled === true) {
      c.repl.all = true
      this.opts.store.replicate(stream)
    } else {
      gateUploads(Protomux.from(stream), c.repl)
      Hypercore.createProtocolStream(stream, { ondiscoverykey: (dk: Buffer) => this.#ondiscoverykey(c, dk) })
      this.#applyScope(c, entitled)
    }
    return !stream.destroyed
  }
}

/** One connection and what it replicates. */
interface Connection {
  conn: NoiseSecretStream
  peer: Peer
  /** Replication and the custody channel started (the role's scope was known). */
  started: boolean
  /** UDX packets received when last checked (last contact, #checkContacts). */
  rx: number
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
