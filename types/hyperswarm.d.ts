// Ambient types for hyperswarm v4 (CommonJS: `module.exports = class Hyperswarm`).
// Written against node_modules/hyperswarm/index.js + lib/*.js (4.17.x).
// Usage: `import Hyperswarm from 'hyperswarm'`; types as `Hyperswarm.PeerInfo`, `Hyperswarm.PeerDiscovery`.

declare module 'hyperswarm' {
  import { EventEmitter } from 'events'
  import HyperDHT = require('hyperdht')
  import NoiseSecretStream = require('@hyperswarm/secret-stream')

  class Hyperswarm extends EventEmitter<Hyperswarm.Events> {
    constructor(opts?: Hyperswarm.Options)

    keyPair: HyperDHT.KeyPair
    dht: HyperDHT
    server: HyperDHT.Server
    destroyed: boolean
    suspended: boolean
    maxPeers: number
    maxClientConnections: number
    maxServerConnections: number
    maxParallel: number
    /** Number of client connections currently being attempted. */
    connecting: number
    /** All open (client + server) connections. */
    connections: Set<NoiseSecretStream>
    /** Known peers keyed by hex noise public key. */
    peers: Map<string, Hyperswarm.PeerInfo>
    explicitPeers: Set<Hyperswarm.PeerInfo>
    /** The pending/finished `server.listen()` promise, or null if not listening yet. */
    listening: Promise<HyperDHT.Server> | null
    stats: {
      updates: number
      connects: {
        client: { opened: number; closed: number; attempted: number }
        server: { opened: number; closed: number }
      }
      bannedPeers: number
    }

    /**
     * Start discovering/announcing `topic` (32 bytes). Defaults: server and client both true.
     * Joining the same topic again returns a new session on the same discovery.
     */
    join(topic: Uint8Array, opts?: Hyperswarm.JoinOptions): Hyperswarm.PeerDiscovery
    /** Destroys the topic's discovery (all sessions) — unannounces. Never rejects. */
    leave(topic: Uint8Array): Promise<void>
    /** Keep a connection to this noise public key (retried with backoff). */
    joinPeer(publicKey: Uint8Array): void
    leavePeer(publicKey: Uint8Array): void
    /** The discovery for `topic`, or null. */
    status(topic: Uint8Array): Hyperswarm.Discovery | null
    topics(): IterableIterator<Hyperswarm.Discovery>
    /** Make sure the swarm is listening (server.listen(keyPair)). join() with server:true does it for you when flushed. */
    listen(): Promise<HyperDHT.Server>
    /**
     * Wait until all pending announces/lookups are done and all discovered peers were
     * connected to (or failed). Resolves false if the swarm was destroyed meanwhile.
     */
    flush(): Promise<boolean>
    /** Destroy all discoveries (unannounce) without closing connections. */
    clear(): Promise<PromiseSettledResult<void>[]>
    /** Close the server, discoveries and the DHT (which it destroys even if you passed `dht`). */
    destroy(opts?: { force?: boolean }): Promise<void>
    suspend(opts?: { log?: (msg: string) => void }): Promise<void>
    resume(opts?: { log?: (msg: string) => void }): Promise<void>
  }

  namespace Hyperswarm {
    interface Options {
      keyPair?: HyperDHT.KeyPair
      /** 32-byte seed for a deterministic key pair (ignored if keyPair given). */
      seed?: Uint8Array
      /** Reuse a DHT node (e.g. a testnet node). Note: swarm.destroy() destroys it. */
      dht?: HyperDHT
      /** Passed to the internal HyperDHT when `dht` is not given. */
      bootstrap?: HyperDHT.Options['bootstrap']
      nodes?: HyperDHT.NodeAddress[]
      port?: number
      /** Default 64. */
      maxPeers?: number
      maxClientConnections?: number
      maxServerConnections?: number
      /** Parallel client connection attempts (default 3). */
      maxParallel?: number
      /** Return true to REJECT a peer. Called with (remotePublicKey, handshakePayload|null). */
      firewall?: (remotePublicKey: Buffer, payload: unknown) => boolean
      relayThrough?: Uint8Array | ((force: boolean, swarm: Hyperswarm) => Uint8Array | null) | null
      backoffs?: number[]
      jitter?: number
      deferRandomPunch?: boolean
      randomPunchInterval?: number
      handshakeClearWait?: number
    }

    interface JoinOptions {
      /** Announce ourselves on the topic (accept connections). Default true. */
      server?: boolean
      /** Look up and connect to peers on the topic. Default true. */
      client?: boolean
      limit?: number
      onerror?: (err: Error) => void
    }

    /** What join() returns (a session on the topic's discovery). */
    interface PeerDiscovery {
      readonly swarm: Hyperswarm
      readonly topic: Buffer
      isClient: boolean
      isServer: boolean
      destroyed: boolean
      /** Resolves once the first announce/lookup round finished (true), false if it failed. */
      flushed(): Promise<boolean>
      /** Re-announce / re-lookup, optionally switching modes. */
      refresh(opts?: { client?: boolean; server?: boolean; limit?: number }): Promise<void>
      /** Leave this session; the topic is unannounced when its last session is destroyed. */
      destroy(): Promise<void>
    }

    /** The per-topic discovery behind the sessions (returned by status()/topics()). */
    interface Discovery {
      swarm: Hyperswarm
      topic: Buffer
      isClient: boolean
      isServer: boolean
      destroyed: boolean
      suspended: boolean
      flushed(): Promise<boolean>
      refresh(): Promise<void>
      destroy(): Promise<void>
    }

    interface PeerInfo extends EventEmitter<{ topic: [topic: Buffer] }> {
      publicKey: Buffer
      relayAddresses: HyperDHT.NodeAddress[] | null
      /** Topics this peer was discovered on (only for peers found via lookups). */
      topics: Buffer[]
      /** True if we initiated the connection. */
      client: boolean
      readonly server: boolean
      readonly prioritized: boolean
      priority: number
      attempts: number
      banned: boolean
      explicit: boolean
      reconnecting: boolean
      proven: boolean
      tried: boolean
      queued: boolean
      waiting: boolean
      forceRelaying: boolean
      connectedTime: number
      disconnectedTime: number
      /** ban(true) stops reconnects to this peer; note the argument defaults to false (unban). */
      ban(banned?: boolean): void
      reconnect(enabled: boolean): void
    }

    interface Events {
      /** `socket` is an encrypted NoiseSecretStream; replicate over it (e.g. `store.replicate(socket)`). */
      connection: [socket: NoiseSecretStream, peerInfo: PeerInfo]
      /** Emitted whenever connections/peers/attempts change. */
      update: []
      ban: [peerInfo: PeerInfo, err: Error]
    }
  }

  export = Hyperswarm
}
