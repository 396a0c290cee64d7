/**
 * Network: Hyperswarm on a DHT built from an explicit bootstrap list (never the public DHT),
 * an allowlist firewall, Corestore replication and our custody channel on every connection.
 */
import ReadyResource from 'ready-resource'
import Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
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

export interface NetworkOptions {
  keyPair: KeyPair
  bootstrap: HostPort[]
  store: Corestore
  /** Our custody handshake, built when a connection opens (it may change over time). */
  handshake: () => Handshake
  /** True when `remoteKey` may connect to us (incoming). */
  isAllowed: (remoteKey: Buffer) => boolean
  /** True when we may dial peers we are not told about (mirrors read from any holder). @default false */
  dialAnyone?: boolean
  /** What this node does with each custody message a peer sends (the table is in protocol/). */
  handlers?: (peer: Peer) => CustodyHandlers
  /** UDP port for the DHT node. @default 0 (any) */
  port?: number
  /** Host to bind. @default '0.0.0.0' */
  host?: string
  /** Refused keys remembered as banned. @default MAX_REFUSED_PEERS */
  maxRefusedPeers?: number
}

/** One connected peer whose custody handshake arrived. */
export interface Peer {
  key: Buffer
  id: string
  role: 'agency' | 'embassy' | 'mirror' | 'unknown'
  handshake: Handshake | null
  channel: CustodyChannel
  connectedAt: number
  initiator: boolean
  conn: { destroy(err?: Error): void }
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
}

export class Network extends ReadyResource {
  readonly opts: NetworkOptions
  readonly peers = new Map<string, Peer>()
  dht!: DHT
  swarm!: Hyperswarm
  #topics = new Map<string, { destroy(): Promise<void>; refresh(): Promise<void> }>()
  #connections = new Set<{ destroy(err?: Error): void }>()
  #watch: NodeJS.Timeout | null = null
  #dhtReachable = true
  #dhtOnline = true
  /** Keys the firewall refused, oldest first (a bounded memory of Hyperswarm's bans). */
  #refused = new Set<string>()

  constructor(opts: NetworkOptions) {
    super()
    if (!opts.bootstrap || opts.bootstrap.length === 0) throw EmbassyError.noBootstrap()
    this.opts = opts
  }

  override async _open(): Promise<void> {
    const { keyPair, bootstrap } = this.opts
    this.dht = new DHT({ bootstrap, keyPair, port: this.opts.port ?? 0, host: this.opts.host ?? '0.0.0.0', udx: udxWithLargeBuffers() } as ConstructorParameters<typeof DHT>[0])
    this.swarm = new Hyperswarm({
      keyPair,
      dht: this.dht,
      backoffs: RECONNECT_BACKOFFS,
      firewall: (remoteKey: Buffer, payload: unknown) => this.#firewall(remoteKey, payload)
    })
    this.swarm.on('connection', (conn, info) => this.#onconnection(conn, info))
    this.swarm.on('update', () => this.#keepTopicPeers())
    await this.swarm.listen()
    this.#dhtReachable = this.#routingNodes() > 0
    this.#dhtOnline = this.dht.online
    this.dht.on('network-update', () => this.#onNetworkUpdate())
    this.#watch = setInterval(() => this.#watchDht(), DHT_WATCH_MS)
    this.#watch.unref()
  }

  override async _close(): Promise<void> {
    if (this.#watch) clearInterval(this.#watch)
    // Destroy connections first: swarm.destroy() leaves them open and peers notice only after ~13 s.
    for (const conn of this.#connections) conn.destroy()
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
    // Hyperswarm asks on incoming connections (with the handshake payload) and before dialling (null).
    if (payload === null && this.opts.dialAnyone) return false
    if (this.opts.isAllowed(remoteKey)) return false
    // A node that reads from any holder admits the holders it found on its own topics both ways:
    // whoever dials first, the connection it needs is never refused (nor banned for the swarm's life).
    if (this.opts.dialAnyone && this.#foundOnTopic(remoteKey)) return false
    this.#remember(remoteKey)
    if (payload !== null) this.emit('refused', remoteKey)
    return true
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

  /** Dials at once every known (explicit) peer that is not connected. */
  redialKnownPeers(): void {
    for (const info of this.swarm.explicitPeers) {
      if (info.banned || this.peers.has(info.publicKey.toString('hex'))) continue
      info.attempts = 0
      this.swarm.joinPeer(info.publicKey)
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

  #onconnection(conn: NoiseSecretStream, info: { publicKey: Buffer }): void {
    this.#connections.add(conn)
    conn.on('error', () => {})
    this.opts.store.replicate(conn)
    const mux = Protomux.from(conn)
    const key = Buffer.from(conn.remotePublicKey ?? info.publicKey)
    const id = key.toString('hex')
    const peer: Peer = {
      key,
      id,
      role: 'unknown',
      handshake: null,
      channel: null as unknown as CustodyChannel,
      connectedAt: Date.now(),
      initiator: !!conn.isInitiator,
      conn
    }
    const channel = new CustodyChannel(mux, this.opts.handshake(), this.opts.handlers?.(peer) ?? {})
    peer.channel = channel
    channel.on('open', (remote) => {
      peer.handshake = remote
      peer.role = peerRoleName(remote.role)
      const existing = this.peers.get(id)
      if (existing && existing !== peer) existing.conn.destroy()
      this.peers.set(id, peer)
      this.emit('peer', peer)
    })
    channel.on('invalid', (err) => this.emit('channel-error', peer, err))
    channel.on('remote-error', (e) => this.emit('channel-error', peer, new Error(`remote says: ${e.message}`)))
    channel.open()
    conn.on('close', () => {
      this.#connections.delete(conn)
      if (this.peers.get(id) === peer) {
        this.peers.delete(id)
        this.emit('peer-lost', peer, 'connection closed')
      }
    })
  }

  /** Peers as z32 keys with their role (status output). */
  describePeers(): Array<{ nodeKey: string; role: string; since: number }> {
    return [...this.peers.values()].map((p) => ({ nodeKey: toZ32(p.key), role: p.role, since: p.connectedAt }))
  }
}
