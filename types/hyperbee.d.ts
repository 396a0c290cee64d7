// Ambient types for hyperbee v2 (CommonJS: `module.exports = Hyperbee`, extends ReadyResource).
// Deliberately partial: the surface Hyperdrive exposes through `drive.db` plus the common
// read/write calls. Written against node_modules/hyperbee/index.js (2.27.x).
// Usage: `import Hyperbee from 'hyperbee'`.

declare module 'hyperbee' {
  import ReadyResource = require('ready-resource')
  import type { Readable } from 'streamx'
  import Hypercore = require('hypercore')

  /** K/V are the decoded key/value types (as given by keyEncoding/valueEncoding). */
  class Hyperbee<K = unknown, V = unknown> extends ReadyResource {
    constructor(core: Hypercore<any>, opts?: Hyperbee.Options)

    static isHyperbee(core: Hypercore<any>, opts?: Record<string, unknown>): Promise<boolean>

    core: Hypercore<any>
    /** Deprecated alias of core. */
    feed: Hypercore<any>
    keyEncoding: unknown
    valueEncoding: unknown
    metadata: unknown
    readonly: boolean
    prefix: Buffer | null
    /** max(1, checkout || core.length) */
    readonly version: number
    readonly id: string | null
    readonly key: Buffer | null
    readonly discoveryKey: Buffer | null
    readonly writable: boolean
    readonly readable: boolean

    replicate(isInitiatorOrStream: Parameters<Hypercore['replicate']>[0], opts?: Hypercore.ReplicateOptions): Hypercore.ReplicationStream
    update(opts?: Hypercore.UpdateOptions): Promise<boolean>

    get(key: K, opts?: Hyperbee.GetOptions): Promise<Hyperbee.Node<K, V> | null>
    getBySeq(seq: number, opts?: Hyperbee.GetOptions): Promise<Hyperbee.Node<K, V> | null>
    put(key: K, value?: V, opts?: Hyperbee.PutOptions<K, V>): Promise<void>
    del(key: K, opts?: Hyperbee.DelOptions<K, V>): Promise<void>
    batch(opts?: Record<string, unknown>): Hyperbee.Batch<K, V>

    /** First node in the range, or null. */
    peek(range?: Hyperbee.Range<K>, opts?: Hyperbee.ReadStreamOptions): Promise<Hyperbee.Node<K, V> | null>
    createReadStream(range?: Hyperbee.Range<K>, opts?: Hyperbee.ReadStreamOptions): Hyperbee.NodeStream<Hyperbee.Node<K, V>>
    createHistoryStream(opts?: { live?: boolean; reverse?: boolean; gt?: number; gte?: number; lt?: number; lte?: number; limit?: number }): Hyperbee.NodeStream<Hyperbee.Node<K, V> & { type: 'put' | 'del' }>
    /** Changes between this version and `right` (a version number or another bee). */
    createDiffStream(right: number | Hyperbee<K, V>, range?: Hyperbee.Range<K>, opts?: Hyperbee.ReadStreamOptions): Hyperbee.NodeStream<Hyperbee.DiffEntry<K, V>>

    /** Read-only view at `version`; close it when done. */
    checkout(version: number, opts?: { keyEncoding?: unknown; valueEncoding?: unknown; reuseSession?: boolean }): Hyperbee<K, V>
    snapshot(opts?: { keyEncoding?: unknown; valueEncoding?: unknown }): Hyperbee<K, V>
    sub(prefix: string | Uint8Array, opts?: { sep?: string | Uint8Array; keyEncoding?: unknown; valueEncoding?: unknown }): Hyperbee<K, V>
    getHeader(opts?: Hypercore.GetOptions): Promise<unknown>
    watch(range?: Hyperbee.Range<K>, opts?: Record<string, unknown>): Hyperbee.Watcher<Hyperbee<K, V>>
  }

  namespace Hyperbee {
    interface Options {
      keyEncoding?: Hypercore.ValueEncoding
      valueEncoding?: Hypercore.ValueEncoding
      metadata?: unknown
      readonly?: boolean
      prefix?: Uint8Array | null
      sep?: Uint8Array
      extension?: unknown
      alwaysDuplicate?: boolean
      sessions?: boolean
      checkout?: number
    }

    interface Node<K = unknown, V = unknown> {
      seq: number
      key: K
      value: V
    }

    interface DiffEntry<K = unknown, V = unknown> {
      /** Entry at this (newer) version, null if deleted */
      left: Node<K, V> | null
      /** Entry at the other version, null if added */
      right: Node<K, V> | null
    }

    interface Range<K = unknown> {
      gt?: K
      gte?: K
      lt?: K
      lte?: K
    }

    interface GetOptions {
      wait?: boolean
      timeout?: number
      update?: boolean
      keyEncoding?: unknown
      valueEncoding?: unknown
      [option: string]: unknown
    }

    interface PutOptions<K = unknown, V = unknown> {
      cas?: (prev: Node<K, V>, next: Node<K, V>) => boolean
      keyEncoding?: unknown
      valueEncoding?: unknown
      [option: string]: unknown
    }

    interface DelOptions<K = unknown, V = unknown> {
      cas?: (prev: Node<K, V>) => boolean
      keyEncoding?: unknown
      [option: string]: unknown
    }

    interface ReadStreamOptions {
      reverse?: boolean
      limit?: number
      wait?: boolean
      timeout?: number
      keyEncoding?: unknown
      valueEncoding?: unknown
      signal?: AbortSignal
      [option: string]: unknown
    }

    interface NodeStream<T> extends Readable {
      [Symbol.asyncIterator](): AsyncIterator<T>
    }

    interface Batch<K = unknown, V = unknown> {
      readonly version: number
      ready(): Promise<void>
      lock(): Promise<void>
      get(key: K, opts?: GetOptions): Promise<Node<K, V> | null>
      put(key: K, value?: V, opts?: PutOptions<K, V>): Promise<void>
      del(key: K, opts?: DelOptions<K, V>): Promise<void>
      peek(range?: Range<K>, opts?: ReadStreamOptions): Promise<Node<K, V> | null>
      createReadStream(range?: Range<K>, opts?: ReadStreamOptions): NodeStream<Node<K, V>>
      /** Append all batched writes atomically. */
      flush(): Promise<void>
      /** Discard the batch. */
      close(): Promise<void>
      destroy(): void
    }

    /** Async iterable of [current, previous] snapshots; they are auto-closed before the next value. */
    interface Watcher<S> extends ReadyResource, AsyncIterable<[current: S, previous: S]> {
      next(): Promise<IteratorResult<[current: S, previous: S]>>
      destroy(): Promise<void>
    }
  }

  export = Hyperbee
}
