// Ambient types for corestore v7 (CommonJS: `module.exports = Corestore`, extends ReadyResource).
// Written against node_modules/corestore/index.js (7.12.x).
// Usage: `import Corestore from 'corestore'`.

declare module 'corestore' {
  import ReadyResource = require('ready-resource')
  import { EventEmitter } from 'events'
  import type { Readable, Duplex } from 'streamx'
  import Hypercore = require('hypercore')
  import Protomux = require('protomux')

  /**
   * Events (untyped, inherited from ReadyResource): 'ready', 'close',
   * 'group-active' (topic: Buffer, update) — experimental.
   * There is no 'core' event: use `watch(fn)`.
   */
  class Corestore extends ReadyResource {
    /**
     * `storage`: directory path or a hypercore-storage instance.
     * Passing `primaryKey` throws unless `unsafe: true` is set too.
     * Opening a directory that already holds a different primary key rejects ready()
     * with 'Another corestore is stored here'.
     */
    constructor(storage: string | unknown, opts?: Corestore.Options)

    /** The root store for sessions/namespaces, null on the root itself. */
    root: Corestore | null
    /** hypercore-storage instance (shared by all sessions). */
    storage: unknown
    /** 32-byte seed all names are derived from; null until ready() unless passed in. */
    primaryKey: Buffer | null
    /** Current 32-byte namespace (all zeros by default). */
    ns: Buffer
    readOnly: boolean
    active: boolean
    manifestVersion: number
    shouldSuspend: boolean
    globalCache: unknown
    watchers: Set<(core: unknown) => void> | null

    /**
     * Load a core by key (Buffer / hex / z32 string) or options. Returns a session
     * synchronously; `await core.ready()` before relying on length/writable. `core.key`
     * is set synchronously for get(key) / get({ key | keyPair | manifest }), but only
     * after ready() for get({ name }) and get({ discoveryKey }).
     * `T` lets you annotate the block type when using a valueEncoding.
     */
    get<T = Buffer>(keyOrOpts: Uint8Array | string | Corestore.GetOptions): Hypercore<T>

    /** New session on the same storage; closing it closes only the cores opened through it. */
    session(opts?: Corestore.SessionOptions): Corestore
    /** Session whose names (and createKeyPair) are derived under hash(ns, name). Chainable. */
    namespace(name: string | Uint8Array, opts?: Corestore.SessionOptions): Corestore

    /**
     * Replicate all loaded cores (and lazily any core the remote asks about that we store).
     * Pass a Hyperswarm connection or a boolean (initiator) for a fresh stream.
     */
    replicate(isInitiatorOrStream: boolean | Duplex | Protomux, opts?: Hypercore.ReplicateOptions): Hypercore.ReplicationStream

    /** Deterministic key pair derived from primaryKey + namespace + name. */
    createKeyPair(name: string | Uint8Array, ns?: Uint8Array): Promise<{ publicKey: Buffer; secretKey: Buffer }>

    /**
     * Stream of discovery keys (Buffer) of every stored core, or only those with a
     * name alias in the given 32-byte namespace buffer (e.g. `store.ns`; NOT a string name).
     */
    list(namespace?: Uint8Array): Corestore.KeyStream

    getAuth(discoveryKey: Uint8Array): Promise<unknown>

    /** Called with the internal core (not a Hypercore session) whenever a core is opened. */
    watch(fn: (core: unknown) => void): void
    unwatch(fn: (core: unknown) => void): void

    findingPeers(): () => void
    notifyGroup(topic: Uint8Array): Corestore.GroupNotifyHandle
    audit(opts?: { dryRun?: boolean }): AsyncGenerator<{ discoveryKey: Buffer; key: Buffer | null; audit: unknown }>
    /** Create a static (signer-less, prologue-pinned) copy of a core. */
    staticify(core: Hypercore<any>, opts?: Corestore.GetOptions): Promise<Hypercore>
    suspend(opts?: { log?: (msg: string) => unknown }): Promise<void>
    resume(): Promise<void>
  }

  namespace Corestore {
    interface Options {
      /** Requires `unsafe: true`. */
      primaryKey?: Uint8Array | null
      unsafe?: boolean
      /** false = read-only store (cores default to writable: false). */
      writable?: boolean
      readOnly?: boolean
      /** Passed to hypercore-storage (RocksDB). */
      allowBackup?: boolean
      id?: unknown
      wait?: boolean
      treeCache?: { maxSize?: number }
      globalCache?: unknown
      /** 32-byte namespace buffer (prefer `store.namespace(name)`). */
      namespace?: Uint8Array
      manifestVersion?: number
      suspend?: boolean
      /** Attach downloading cores to replication streams (default true). */
      active?: boolean
    }

    interface SessionOptions extends Omit<Options, 'primaryKey' | 'unsafe'> {}

    interface GetOptions extends Omit<Hypercore.Options, 'key' | 'discoveryKey'> {
      /** Writable core whose key pair is derived from primaryKey + namespace + name. */
      name?: string
      key?: Uint8Array | string | null
      /**
       * Open an existing core by discovery key only; ready() rejects with STORAGE_EMPTY
       * if it is not stored locally.
       */
      discoveryKey?: Uint8Array | string
      exclusive?: boolean
      draft?: boolean
      cache?: boolean
      legacy?: boolean
    }

    interface KeyStream extends Readable {
      [Symbol.asyncIterator](): AsyncIterator<Buffer>
    }

    interface GroupNotifyHandle extends EventEmitter {
      index: number
      updates(opts?: { since?: number; reverse?: boolean }): Readable
      destroy(): void
    }
  }

  export = Corestore
}
