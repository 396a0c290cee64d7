// Ambient types for hypercore v11 (CommonJS: `module.exports = Hypercore`).
// Written against node_modules/hypercore/index.js + lib/*.js (11.39.x).
// Usage from ESM TypeScript: `import Hypercore from 'hypercore'`
// (types: `Hypercore.KeyPair`, `Hypercore.Peer`, ... or `import type { KeyPair } from 'hypercore'`).

declare module 'hypercore' {
  import { EventEmitter } from 'events'
  import type { Encoder } from 'compact-encoding'
  import type { Readable, Writable, Duplex } from 'streamx'
  import Protomux = require('protomux')
  import NoiseSecretStream = require('@hyperswarm/secret-stream')

  /**
   * A single append-only log. `T` is the block type produced by `get()` and
   * accepted by `append()`; it is `Buffer` unless a `valueEncoding` is set
   * (annotate it yourself, e.g. `store.get<MyJson>({ name, valueEncoding: 'json' })`).
   */
  class Hypercore<T = Buffer> extends EventEmitter<Hypercore.Events> {
    /**
     * `storage`: a directory path or a hypercore-storage instance (or null when
     * passing `opts.storage` / `opts.core`). `key`: 32-byte key, hex or z32 string.
     * Prefer `corestore.get()` over constructing directly.
     */
    constructor(storage: string | unknown | null, key?: Uint8Array | string | null, opts?: Hypercore.Options)
    constructor(storage: string | unknown | null, opts?: Hypercore.Options)
    constructor(opts: Hypercore.Options)

    /** 15 MiB; `append()` throws BAD_ARGUMENT for any larger block. */
    static readonly MAX_SUGGESTED_BLOCK_SIZE: number
    static readonly DefaultEncryption: Hypercore.DefaultEncryptionConstructor
    static readonly SMALL_WANTS: number

    /** Key (manifest hash) for a manifest or for a single signer's 32-byte public key. */
    static key(
      manifest: Hypercore.ManifestInput | Uint8Array,
      opts?: { compat?: boolean; version?: number; namespace?: Uint8Array }
    ): Buffer
    static discoveryKey(key: Uint8Array): Buffer
    static blockEncryptionKey(key: Uint8Array, encryptionKey: Uint8Array): Buffer
    static parseManifest(manifest: Hypercore.ManifestInput | Uint8Array, key?: Uint8Array): Hypercore.Manifest | null
    static getProtocolMuxer(stream: Hypercore.ReplicationStream): Protomux
    static createProtocolStream(
      isInitiator: boolean | Duplex | Protomux,
      opts?: Hypercore.ReplicateOptions
    ): Hypercore.ReplicationStream
    static defaultStorage(storage: string | unknown, opts?: Record<string, unknown>): unknown
    static createCore(storage: string | unknown, opts?: Record<string, unknown>): unknown

    // ---- state (getters in the implementation; 0 / null until opened) ----
    /** z-base-32 of the key; null until the core is opened (unless key was given). */
    readonly id: string | null
    readonly key: Buffer | null
    readonly discoveryKey: Buffer | null
    readonly manifest: Hypercore.Manifest | null
    readonly length: number
    readonly signedLength: number
    readonly contiguousLength: number
    readonly remoteContiguousLength: number
    /** Deprecated upstream in favour of `(await core.info()).byteLength`. Excludes encryption padding. */
    readonly byteLength: number
    readonly fork: number
    /** Bytes of per-block encryption padding (8 with the default encryption, else 0). */
    readonly padding: number
    /** Replication peers; `[]` until opened. */
    readonly peers: Hypercore.Peer[]
    readonly recovering: number

    keyPair: Hypercore.KeyPair | null
    /** Current encryption provider (DefaultEncryption when `encryption: { key }` was passed). */
    encryption: Hypercore.EncryptionProvider | null
    writable: boolean
    readable: boolean
    opened: boolean
    closed: boolean
    closing: Promise<void> | null
    opening: Promise<void> | null
    snapshotted: boolean
    weak: boolean
    exclusive: boolean
    /** Default `wait` for get()/seek() (from the `wait` option, default true). */
    wait: boolean
    /** Default timeout (ms) for get()/seek(); 0 = none. */
    timeout: number
    extensions: Map<string, Hypercore.Extension>
    /** Internal `lib/core.js` instance (bitfield, verifier, replicator, header, ...). No stability guarantees. */
    core: unknown
    /** Internal `lib/session-state.js` instance (tree, storage, mutex, ...). No stability guarantees. */
    state: unknown
    readonly replicator: unknown

    ready(): Promise<void>
    close(opts?: { error?: Error }): Promise<void>

    append(
      blocks: Hypercore.AppendInput<T> | Hypercore.AppendInput<T>[],
      opts?: Hypercore.AppendOptions
    ): Promise<{ length: number; byteLength: number }>

    /** Resolves null if the block is unavailable and `wait: false` (or no peer has it and waiting is off). */
    get(index: number, opts: Hypercore.GetOptions & { raw: true }): Promise<Buffer | null>
    get(index: number, opts: Hypercore.GetOptions & { valueEncoding: 'binary' }): Promise<Buffer | null>
    get(index: number, opts: Hypercore.GetOptions & { valueEncoding: 'utf-8' | 'utf8' | 'ascii' | 'hex' | 'base64' }): Promise<string | null>
    get(index: number, opts: Hypercore.GetOptions & { valueEncoding: 'json' | 'ndjson' }): Promise<unknown>
    get<U>(index: number, opts: Hypercore.GetOptions & { valueEncoding: Encoder<any, U> }): Promise<U | null>
    get(index: number, opts?: Hypercore.GetOptions): Promise<T | null>

    /** True if all blocks in [start, end) are stored locally (end defaults to start + 1). */
    has(start: number, end?: number): Promise<boolean>
    /** Number of locally stored blocks in [start, end). */
    count(start: number, end: number): Promise<number>
    /** Resolves true if the length was upgraded. No-op (false) on writable cores unless `force: true`, and on snapshots. */
    update(opts?: Hypercore.UpdateOptions): Promise<boolean>
    /** Resolves `[blockIndex, relativeOffset]`, or null if not available and not waiting. */
    seek(byteOffset: number, opts?: { wait?: boolean; timeout?: number }): Promise<[index: number, relativeOffset: number] | null>
    /** Delete local copies of blocks in [start, end). Resolves `{ blocks }` only with `diff: true`. */
    clear(start: number, end?: number, opts?: { diff?: boolean }): Promise<{ blocks: number } | null>
    clear(start: number, opts: { diff?: boolean }): Promise<{ blocks: number } | null>
    /** Delete the whole core from storage. */
    purge(): Promise<void>

    /** Start downloading a range; `core.download()` with no args downloads everything (live). */
    download(range?: Hypercore.DownloadRange): Hypercore.Download

    /** `opts` may be a number, meaning `{ fork }`. Default newLength 0, fork = current + 1. */
    truncate(newLength?: number, opts?: number | { fork?: number; keyPair?: Hypercore.KeyPair; signature?: Uint8Array | null }): Promise<void>

    /** Merkle tree root hash at `length` (default current length). */
    treeHash(length?: number): Promise<Buffer>
    /** The bytes that are signed for (length, fork). */
    signable(length?: number, fork?: number): Promise<Buffer>

    info(opts?: { storage?: boolean }): Promise<Hypercore.Info>

    createReadStream(opts?: Hypercore.ReadStreamOptions): Hypercore.BlockStream<T>
    createWriteStream(): Writable
    createByteStream(opts?: { byteOffset?: number; byteLength?: number; prefetch?: number }): Hypercore.BlockStream<Buffer>

    session(opts?: Hypercore.SessionOptions): Hypercore<T>
    /** A session that is frozen at the current length (does not see appends/truncates). */
    snapshot(opts?: Hypercore.SessionOptions): Hypercore<T>

    /** Accepts any object with padding/encrypt/decrypt, or null to disable. */
    setEncryption(encryption: Hypercore.EncryptionProvider | null): Promise<void>
    setEncryptionKey(key: Uint8Array, opts?: { block?: boolean }): Promise<void>
    setKeyPair(keyPair: Hypercore.KeyPair | null): void
    setActive(active: boolean): void
    setUserData(key: string, value: Uint8Array | string | null): Promise<void>
    getUserData(key: string): Promise<Buffer | null>

    /**
     * Replicate over a new noise stream (`true`/`false` = initiator) or attach to an
     * existing stream / Protomux (returns what you passed in that case).
     */
    replicate(isInitiatorOrStream: boolean | Duplex | Protomux, opts?: Hypercore.ReplicateOptions): Hypercore.ReplicationStream
    /** Tell the core you are looking for peers; call the returned function when done. */
    findingPeers(): () => void

    registerExtension<M = Buffer>(name: string, handlers?: Hypercore.ExtensionHandlers<M>): Hypercore.Extension<M>

    commit(session: Hypercore<any>, opts?: { length?: number; treeLength?: number; keyPair?: Hypercore.KeyPair; signature?: Uint8Array }): Promise<{ length: number; byteLength: number } | null>

    // ---- proofs (structures are internal; typed loosely) ----
    proof(opts: Record<string, unknown>): Promise<unknown>
    applyProof(proof: unknown, from?: unknown): Promise<unknown>
    verifyFullyRemote(proof: unknown): Promise<unknown>
    missingNodes(index: number): Promise<number>
  }

  namespace Hypercore {
    interface KeyPair {
      publicKey: Buffer
      /** null on read-only cores */
      secretKey: Buffer | null
    }

    type ValueEncoding =
      | 'binary'
      | 'utf-8'
      | 'utf8'
      | 'json'
      | 'ndjson'
      | 'ascii'
      | 'hex'
      | 'base64'
      | Encoder<any, any>

    /** Buffers are always stored as-is; strings are utf-8 encoded when there is no valueEncoding. */
    type AppendInput<T> = [T] extends [Buffer] ? Uint8Array | string : T | Uint8Array

    interface Signer {
      signature?: 'ed25519'
      namespace?: Buffer
      publicKey: Buffer
    }

    interface Manifest {
      version: number
      hash: 'blake2b'
      allowPatch: boolean
      quorum: number
      signers: Signer[]
      prologue: { hash: Buffer; length: number } | null
      linked?: Buffer[] | null
      userData?: Buffer | null
    }

    /** Accepted wherever a manifest is passed in; missing fields get defaults. */
    interface ManifestInput {
      version?: number
      hash?: 'blake2b'
      allowPatch?: boolean
      quorum?: number
      signers: Array<{ signature?: 'ed25519'; namespace?: Uint8Array; publicKey: Uint8Array }>
      prologue?: { hash: Uint8Array; length: number } | null
      linked?: Uint8Array[] | null
      userData?: Uint8Array | null
    }

    /** The HypercoreEncryption interface (see hypercore-encryption). */
    interface EncryptionProvider {
      padding(core: unknown, index: number): number
      encrypt(index: number, block: Buffer, fork: number, core: unknown): void | Promise<void>
      decrypt(index: number, block: Buffer, core: unknown): void | Promise<void>
    }

    interface DefaultEncryptionConstructor {
      new (encryptionKey: Uint8Array, hypercoreKey: Uint8Array, opts?: { block?: boolean; compat?: boolean }): EncryptionProvider & {
        key: Buffer
        blockKey: Buffer
        blindingKey: Buffer
      }
      readonly PADDING: number
      blockEncryptionKey(hypercoreKey: Uint8Array, encryptionKey: Uint8Array): Buffer
    }

    interface Options {
      key?: Uint8Array | string | null
      storage?: string | unknown
      /** Create a new key pair if none is stored. Default true. */
      createIfMissing?: boolean
      overwrite?: boolean
      force?: boolean
      valueEncoding?: ValueEncoding
      encodeBatch?: (batch: unknown[]) => Uint8Array[]
      keyPair?: KeyPair | { publicKey: Uint8Array; secretKey?: Uint8Array | null } | null
      /** `{ key }` for the default block encryption, a raw 32-byte key, or a custom provider. */
      encryption?: { key: Uint8Array; block?: boolean } | Uint8Array | EncryptionProvider | null
      /** Legacy spelling of `encryption: { key }` (still read by hypercore and corestore). */
      encryptionKey?: Uint8Array | null
      isBlockKey?: boolean
      onwait?: ((index: number, core: Hypercore<any>) => void) | null
      onseq?: ((index: number, core: Hypercore<any>) => void) | null
      /** Default for get()/seek(); default true. */
      wait?: boolean
      timeout?: number
      /** false makes this session read-only even if the key pair could sign. */
      writable?: boolean
      inflightRange?: [number, number] | null
      ongc?: (session: Hypercore<any>) => void
      notDownloadingLinger?: number
      allowFork?: boolean
      allowLatestBlock?: boolean
      allowPush?: boolean
      pushOnly?: boolean
      userData?: Record<string, Uint8Array | string>
      manifest?: ManifestInput | null
      preload?: Promise<Record<string, unknown>> | null
      active?: boolean
      weak?: boolean
      snapshot?: boolean
      exclusive?: boolean
      compat?: boolean
      group?: Uint8Array | null
      discoveryKey?: Uint8Array
    }

    interface SessionOptions extends Options {
      /** Named, persisted branch (beta). */
      name?: string | null
      atom?: unknown
      checkout?: number
      /** Subclass to instantiate for the session. */
      class?: new (...args: any[]) => Hypercore<any>
    }

    interface AppendOptions {
      keyPair?: KeyPair | null
      signature?: Uint8Array | null
      maxLength?: number
      /** Skip the writable check (for named/atom sessions). */
      writable?: boolean
    }

    interface GetOptions {
      /** Wait for the block to be downloaded (default: the session's `wait`, normally true). */
      wait?: boolean
      onwait?: (index: number, core: Hypercore<any>) => void
      /** ms; 0 = no timeout. Rejects with REQUEST_TIMEOUT. */
      timeout?: number
      valueEncoding?: ValueEncoding
      /** Default true: decrypt with the session's encryption provider. */
      decrypt?: boolean
      /** Return the raw stored block (no decryption, no decoding, padding kept). */
      raw?: boolean
      force?: boolean
      activeRequests?: unknown[]
    }

    interface UpdateOptions {
      wait?: boolean
      /** Also try to update when the core is writable. */
      force?: boolean
      activeRequests?: unknown[]
    }

    interface DownloadRange {
      start?: number
      /** exclusive; -1 = to the (live) end */
      end?: number
      length?: number
      /** explicit block indexes (start/end then frame this array) */
      blocks?: number[] | null
      linear?: boolean
      activeRequests?: unknown[]
    }

    /** Returned by `core.download()`. */
    interface Download {
      readonly opened: boolean
      ready(): Promise<void>
      /** Resolves true when the whole range is local, false if the range was cancelled/destroyed. */
      done(): Promise<boolean>
      /** Deprecated alias of done(). */
      downloaded(): Promise<boolean>
      /** Cancel (in the background; a pending done() then resolves false). */
      destroy(): void
    }

    interface Info {
      key: Buffer
      discoveryKey: Buffer
      length: number
      contiguousLength: number
      byteLength: number
      fork: number
      padding: number
      storage: { oplog: number; tree: number; blocks: number; bitfield: number } | null
    }

    interface ReadStreamOptions {
      start?: number
      /** exclusive; default: length at open time (or forever when live) */
      end?: number
      live?: boolean
      /** default true unless live */
      snapshot?: boolean
      wait?: boolean
      timeout?: number
    }

    /** A streamx Readable whose chunks are blocks. */
    interface BlockStream<B> extends Readable {
      [Symbol.asyncIterator](): AsyncIterator<B>
    }

    /** What replicate()/createProtocolStream() return (the outer, framed stream). */
    interface ReplicationStream extends Duplex {
      noiseStream: NoiseSecretStream
    }

    interface ReplicateOptions {
      keepAlive?: boolean
      ondiscoverykey?: (discoveryKey: Buffer) => unknown
      stream?: Duplex
      keyPair?: KeyPair
      [option: string]: unknown
    }

    /** A replication peer (lib/replicator.js Peer). Most fields are internal. */
    interface Peer {
      remotePublicKey: Buffer
      /** The NoiseSecretStream the peer is connected over. */
      stream: NoiseSecretStream
      protomux: Protomux
      channel: Protomux.Channel
      remoteLength: number
      remoteFork: number
      remoteSynced: boolean
      remoteOpened: boolean
      remoteUploading: boolean
      remoteDownloading: boolean
      remoteCanUpgrade: boolean
      remoteHasManifest: boolean
      paused: boolean
      removed: boolean
      inflight: number
      stats: Record<string, unknown>
      core: unknown
      extensions: Map<string, Extension<any>>
    }

    interface ExtensionHandlers<M> {
      encoding?: ValueEncoding
      onmessage?: (message: M, peer: Peer) => void
    }

    interface Extension<M = Buffer> {
      name: string
      session: Hypercore<any>
      send(message: M, peer: Peer): void
      broadcast(message: M): void
      destroy(): void
    }

    interface Events {
      ready: []
      close: []
      /** Fired after blocks were appended (locally or via replication). */
      append: []
      /** (newLength, fork) — README calls them (ancestors, forkId). */
      truncate: [length: number, fork: number]
      'peer-add': [peer: Peer]
      'peer-remove': [peer: Peer]
      /** byteLength excludes encryption padding. */
      download: [index: number, byteLength: number, from: Peer]
      upload: [index: number, byteLength: number, from: Peer]
      manifest: []
      migrate: [key: Buffer]
      conflict: [length: number, fork: number, proof: unknown]
      'verification-error': [err: Error, req: unknown, res: unknown, from: Peer]
      'invalid-request': [err: Error, req: unknown, from: Peer]
      'remote-contiguous-length': [length: number]
      repairing: [proof: unknown]
      'repair-failed': []
      repaired: [proof: unknown]
    }
  }

  export = Hypercore
}
