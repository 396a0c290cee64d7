// Ambient types for hyperdht v6 (CommonJS: `module.exports = HyperDHT`, which extends dht-rpc's DHT)
// and its testnet helper. Written against hyperdht 6.34.x / dht-rpc 6.27.x sources.
// Usage: `import DHT from 'hyperdht'`, `import createTestnet from 'hyperdht/testnet.js'`.
// NOTE: hyperdht has no "exports" map, so from ESM the subpath needs the `.js` extension —
// `import 'hyperdht/testnet'` fails at runtime with ERR_MODULE_NOT_FOUND, hence only the `.js`
// specifier is declared. '@hyperswarm/testnet' (re-export) works without it.

declare module 'hyperdht' {
  import { EventEmitter } from 'events'
  import type { Readable } from 'streamx'
  import NoiseSecretStream = require('@hyperswarm/secret-stream')

  class HyperDHT extends EventEmitter<HyperDHT.Events> {
    /**
     * NOTE: `bootstrap` falls back to the public bootstrap nodes when falsy — pass `[]`
     * (not `false`) for an isolated network. `port` defaults to 49737 (any free port is
     * used if it is taken).
     */
    constructor(opts?: HyperDHT.Options)

    static readonly DEFAULTS: Record<string, number>
    /** Ed25519 key pair (deterministic when `seed` is given). */
    static keyPair(seed?: Uint8Array): HyperDHT.KeyPair
    static hash(data: Uint8Array): Buffer
    /**
     * A persistent, non-firewalled node bound to `port` that advertises `host:port`
     * (host must be a concrete IPv4 address, not 0.0.0.0).
     */
    static bootstrapper(port: number, host: string, opts?: HyperDHT.Options): HyperDHT

    defaultKeyPair: HyperDHT.KeyPair
    /** Servers created by this node that are (or are becoming) listening. */
    listening: Set<HyperDHT.Server>
    bootstrapNodes: HyperDHT.NodeAddress[]
    bootstrapped: boolean
    /** True until the node has proven it is reachable and long-lived. */
    ephemeral: boolean
    firewalled: boolean
    adaptive: boolean
    destroyed: boolean
    suspended: boolean
    online: boolean
    degraded: boolean
    connectionKeepAlive: number
    stats: Record<string, unknown>
    udx: unknown
    /** Routing id; null while ephemeral. */
    readonly id: Buffer | null
    /** Public host/port as seen by the network (NAT sampling); null/0 until known. */
    readonly host: string | null
    readonly port: number
    readonly randomized: boolean
    readonly socket: unknown

    /** Resolves once the initial bootstrap finished. */
    fullyBootstrapped(): Promise<void>
    /** Deprecated alias of fullyBootstrapped(). */
    ready(): Promise<void>
    bind(): Promise<void>
    /** Closes (unannounces) all servers first unless `force`. */
    destroy(opts?: { force?: boolean }): Promise<void>
    suspend(opts?: { log?: (msg: string) => void }): Promise<void>
    resume(opts?: { log?: (msg: string) => void }): Promise<void>

    /** Local UDP socket address (null before bind). `host` is the bind host, e.g. '0.0.0.0'. */
    address(): { host: string; family: number; port: number } | null
    localAddress(): HyperDHT.NodeAddress | null
    remoteAddress(): HyperDHT.NodeAddress | null
    addNode(node: HyperDHT.NodeAddress): void
    toArray(opts?: { limit?: number }): HyperDHT.NodeAddress[]
    refresh(): void

    /** Encrypted connection to a server listening on `remotePublicKey` (Buffer, hex or z32). */
    connect(remotePublicKey: Uint8Array | string, opts?: HyperDHT.ConnectOptions): NoiseSecretStream
    createServer(opts?: HyperDHT.ServerOptions, onconnection?: (socket: NoiseSecretStream) => void): HyperDHT.Server
    createServer(onconnection: (socket: NoiseSecretStream) => void): HyperDHT.Server

    lookup(target: Uint8Array, opts?: Record<string, unknown>): HyperDHT.Query<HyperDHT.LookupReply>
    announce(
      target: Uint8Array,
      keyPair: HyperDHT.KeyPair,
      relayAddresses?: HyperDHT.NodeAddress[],
      opts?: Record<string, unknown>
    ): HyperDHT.Query<HyperDHT.LookupReply>
    unannounce(target: Uint8Array, keyPair: HyperDHT.KeyPair, opts?: Record<string, unknown>): Promise<void>
    findPeer(publicKey: Uint8Array, opts?: Record<string, unknown>): HyperDHT.Query<unknown>

    immutablePut(value: Uint8Array, opts?: Record<string, unknown>): Promise<{ hash: Buffer; closestNodes: unknown[] }>
    immutableGet(hash: Uint8Array, opts?: Record<string, unknown>): Promise<{ value: Buffer; from: HyperDHT.NodeAddress } | null>
    mutablePut(
      keyPair: HyperDHT.KeyPair,
      value: Uint8Array,
      opts?: { seq?: number; [option: string]: unknown }
    ): Promise<{ publicKey: Buffer; closestNodes: unknown[]; seq: number; signature: Buffer }>
    mutableGet(
      publicKey: Uint8Array,
      opts?: { seq?: number; latest?: boolean; [option: string]: unknown }
    ): Promise<{ value: Buffer; from: HyperDHT.NodeAddress; seq: number; signature: Buffer } | null>
  }

  namespace HyperDHT {
    interface KeyPair {
      publicKey: Buffer
      secretKey: Buffer
    }

    interface NodeAddress {
      host: string
      port: number
    }

    interface Options {
      /** 'host:port', '[suggested-ip@]host:port', a port number (127.0.0.1) or {host, port}. */
      bootstrap?: Array<string | number | NodeAddress>
      /** Preferred UDP port (default 49737). */
      port?: number
      /** Bind host (default '0.0.0.0'). */
      host?: string
      /** Force ephemeral (true) or persistent (false); omit for adaptive. */
      ephemeral?: boolean
      /** Start assuming we are firewalled (default true). */
      firewalled?: boolean
      anyPort?: boolean
      keyPair?: KeyPair
      seed?: Uint8Array
      nodes?: NodeAddress[]
      connectionKeepAlive?: number | false
      randomPunchInterval?: number
      deferRandomPunch?: boolean
      concurrency?: number
      maxWindow?: number
      adaptive?: boolean
      quickFirewall?: boolean
      udx?: unknown
      filterNode?: (node: NodeAddress) => boolean
      [option: string]: unknown
    }

    interface ConnectOptions {
      keyPair?: KeyPair
      nodes?: NodeAddress[]
      relayAddresses?: NodeAddress[] | null
      relayThrough?: Uint8Array | null | ((force: boolean) => Uint8Array | null)
      reusableSocket?: boolean
      [option: string]: unknown
    }

    interface ServerOptions {
      /** Return true to REJECT the connection. */
      firewall?: (remotePublicKey: Buffer, remoteHandshakePayload: unknown, clientAddress?: unknown) => boolean | Promise<boolean>
      holepunch?: boolean | ((...args: unknown[]) => boolean)
      relayThrough?: Uint8Array | null | ((force: boolean) => Uint8Array | null)
      shareLocalAddress?: boolean
      reusableSocket?: boolean
      handshakeClearWait?: number
      onconnection?: (socket: NoiseSecretStream) => void
      [option: string]: unknown
    }

    interface ServerEvents {
      connection: [socket: NoiseSecretStream]
      listening: []
      close: []
    }

    interface Server extends EventEmitter<ServerEvents> {
      dht: HyperDHT
      closed: boolean
      suspended: boolean
      /** true once listen() was called (and until close) */
      readonly listening: boolean
      readonly publicKey: Buffer | null
      readonly relayAddresses: NodeAddress[]
      /** Announce on `keyPair.publicKey` (default: the dht's defaultKeyPair). */
      listen(keyPair?: KeyPair, opts?: Record<string, unknown>): Promise<Server>
      close(): Promise<void>
      refresh(): void
      /** { publicKey, host, port } once listening, else null. */
      address(): { publicKey: Buffer; host: string | null; port: number } | null
      suspend(opts?: { log?: (msg: string) => void }): Promise<void>
      resume(): Promise<void>
    }

    interface LookupReply {
      token: Buffer | null
      from: NodeAddress & { id: Buffer | null }
      to: NodeAddress | null
      peers: Array<{ publicKey: Buffer; relayAddresses: NodeAddress[] }>
    }

    /** dht-rpc Query: a streamx Readable of mapped replies. */
    interface Query<R> extends Readable {
      closestNodes: unknown[]
      finished(): Promise<void>
      [Symbol.asyncIterator](): AsyncIterator<R>
    }

    interface Events {
      ready: []
      listening: []
      close: []
      persistent: []
      ephemeral: []
      wakeup: []
      suspend: []
      resume: []
      'network-change': [interfaces: unknown]
      'network-update': []
      'nat-update': [host: string, port: number]
      'add-node': [node: unknown]
      'remove-node': [node: unknown]
      request: [req: unknown]
    }
  }

  export = HyperDHT
}

declare module 'hyperdht/testnet.js' {
  import HyperDHT = require('hyperdht')

  namespace createTestnet {
    interface Testnet extends Iterable<HyperDHT> {
      /** All nodes; the first `size` are persistent, non-firewalled bootstrap-capable nodes. */
      nodes: HyperDHT[]
      /** Pass as `{ bootstrap }` to HyperDHT / Hyperswarm to join the testnet. Always 127.0.0.1 by default. */
      bootstrap: HyperDHT.NodeAddress[]
      /** Adds an ephemeral node on this testnet (also destroyed by destroy()). */
      createNode(opts?: HyperDHT.Options): HyperDHT
      /** Closes listening servers, then destroys all nodes. */
      destroy(): Promise<void>
      [Symbol.iterator](): Iterator<HyperDHT>
    }

    /** A brittle `t.teardown`-compatible function. */
    type Teardown = (fn: () => Promise<void>, opts: { order: number }) => void

    interface Options {
      /** Registers `testnet.destroy()` (order Infinity). Not called when size is 0. */
      teardown?: Teardown
      /** Advertised host (default '127.0.0.1'; any other value binds 0.0.0.0). */
      host?: string
      /** Port of the first node (default: random). */
      port?: number
      /** Join an existing network instead of starting a new one. */
      bootstrap?: HyperDHT.NodeAddress[]
    }
  }

  /** Spin up `size` (default 10) local DHT nodes. Pass `t.teardown` to auto-destroy in brittle tests. */
  function createTestnet(size?: number, opts?: createTestnet.Options | createTestnet.Teardown): Promise<createTestnet.Testnet>

  export = createTestnet
}
