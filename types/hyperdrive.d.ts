// Ambient types for hyperdrive v13 (CommonJS: `module.exports = class Hyperdrive extends ReadyResource`).
// Written against node_modules/hyperdrive/index.js + lib/download.js (13.3.x) and the
// hyperblobs 2.x instance it exposes as `drive.blobs`.
// Usage: `import Hyperdrive from 'hyperdrive'`; types as `Hyperdrive.Entry`, `Hyperdrive.BlobId`, ...

declare module 'hyperdrive' {
  import ReadyResource = require('ready-resource')
  import type { Readable, Writable } from 'streamx'
  import Corestore = require('corestore')
  import Hypercore = require('hypercore')
  import Hyperbee = require('hyperbee')
  import MirrorDrive = require('mirror-drive')

  /**
   * Events (untyped, via ReadyResource): 'ready', 'close', 'blobs' (blobs), 'content-key' (key).
   *
   * NOTE: closing a top-level drive (not a checkout/batch) also closes the Corestore it
   * was given — pass `store.session()` / `store.namespace(..)` if the store must outlive it.
   */
  class Hyperdrive extends ReadyResource implements AsyncIterable<Hyperdrive.Entry> {
    /** Without `key` the drive is the writable core `{ name: 'db' }` of the given store (namespace). */
    constructor(corestore: Corestore, key?: Uint8Array | string | null, opts?: Hyperdrive.Options)
    constructor(corestore: Corestore, opts?: Hyperdrive.Options)

    /** Key the drive would get in this store (opens and closes the 'db' core). */
    static getDriveKey(corestore: Corestore): Promise<Buffer>
    /** Content (blobs) core key for a db core or manifest; null for compat cores. */
    static getContentKey(m: Hypercore<any> | Hypercore.ManifestInput, key?: Uint8Array): Buffer | null
    static getContentManifest(m: Hypercore.ManifestInput, key?: Uint8Array): Hypercore.ManifestInput | null
    /** '/'-prefixed, resolved path as stored in the db (throws on '/'). */
    static normalizePath(name: string): string

    corestore: Corestore
    /** The Hyperbee with the file tree (keys are normalized paths). A Hyperbee batch on drive.batch(). */
    db: Hyperbee<string, Hyperdrive.EntryValue>
    /** The db Hypercore (== db.core). */
    core: Hypercore
    /** Blob store; null until opened (or until the content key is known on a remote drive). */
    blobs: Hyperdrive.Hyperblobs | null
    supportsMetadata: true
    encryptionKey: Buffer | null
    monitors: Set<unknown>

    readonly id: string | null
    /** null until ready() when opened without a key */
    readonly key: Buffer | null
    readonly discoveryKey: Buffer | null
    /** Key of the blobs core; undefined while blobs are not loaded. */
    readonly contentKey: Buffer | null | undefined
    /** db version (max(1, db core length)). */
    readonly version: number
    readonly writable: boolean
    readonly readable: boolean

    findingPeers(): () => void
    replicate(isInitiatorOrStream: Parameters<Corestore['replicate']>[0], opts?: Hypercore.ReplicateOptions): Hypercore.ReplicationStream
    /** Resolves true if the db core got a new length. */
    update(opts?: Hypercore.UpdateOptions): Promise<boolean>

    /** Read-only snapshot at `version` (close it when done). */
    checkout(version: number): Hyperdrive
    /** Atomic batch with the same API; commit with `await batch.flush()` (which also closes it). */
    batch(): Hyperdrive
    /** Only for drives returned by batch(): commit the batch, then close it. (A plain drive's Hyperbee has no flush().) */
    flush(): Promise<void>
    setActive(active: boolean): void
    truncate(version: number, opts?: { blobs?: number }): Promise<void>
    getBlobsLength(checkout?: number): Promise<number>
    getBlobs(): Promise<Hyperdrive.Hyperblobs>
    monitor(name?: string, opts?: Record<string, unknown>): unknown
    closeMonitors(): Promise<void>

    /** File contents, or null if missing / symlink / no blob. Rejects BLOCK_NOT_AVAILABLE if a blob block can't be fetched. */
    get(path: string, opts?: Hyperdrive.GetOptions): Promise<Buffer | null>
    put(path: string, data: Uint8Array | string, opts?: { executable?: boolean; metadata?: unknown }): Promise<void>
    putEntry(path: string, entry?: Partial<Hyperdrive.EntryValue>): Promise<void>
    del(path: string): Promise<void>
    symlink(path: string, linkname: string, opts?: { metadata?: unknown }): Promise<void>
    /** Passing an entry object returns it unchanged. */
    entry(path: string | Hyperdrive.Entry, opts?: Hyperdrive.EntryOptions): Promise<Hyperdrive.Entry | null>
    exists(path: string): Promise<boolean>
    /** 1 if a is newer (higher seq), -1 if older, 0 if equal. */
    compare(a: Hyperdrive.Entry, b: Hyperdrive.Entry): number
    /** Is the blob at `path` (or all blobs under a folder path ending in '/') stored locally? */
    has(path: string): Promise<boolean>

    /** Free local blob storage for a file; `{ blocks }` only with `diff: true`. */
    clear(path: string, opts?: { diff?: boolean }): Promise<{ blocks: number } | null>
    clearAll(opts?: { diff?: boolean }): Promise<{ blocks: number } | null>
    /** Close and delete both cores from storage. */
    purge(): Promise<void>

    /** All entries under `folder` (default '/'), recursive unless `recursive: false`. */
    list(folder?: string, opts?: Hyperdrive.ListOptions): Hyperdrive.Stream<Hyperdrive.Entry>
    list(opts: Hyperdrive.ListOptions): Hyperdrive.Stream<Hyperdrive.Entry>
    /** Names (not paths) of the direct children of `folder`. */
    readdir(folder?: string, opts?: { wait?: boolean }): Hyperdrive.Stream<string>
    entries(range?: Hyperbee.Range<string>, opts?: Hyperbee.ReadStreamOptions & { ignore?: (key: string) => boolean }): Hyperdrive.Stream<Hyperdrive.Entry>
    [Symbol.asyncIterator](): AsyncIterator<Hyperdrive.Entry>
    /** Changes in `folder` between `version` and now: `left` = now, `right` = at version. */
    diff(version: number, folder?: string | null, opts?: Hyperbee.ReadStreamOptions): Hyperdrive.Stream<Hyperdrive.DiffEntry>
    diff(version: number, opts: Hyperbee.ReadStreamOptions): Hyperdrive.Stream<Hyperdrive.DiffEntry>
    watch(folder?: string): Hyperbee.Watcher<Hyperdrive>

    /** Download all blobs under `folder` (default '/'); `await dl.done()`. */
    download(folder?: string, opts?: Hyperdrive.ListOptions): Hyperdrive.Download
    download(opts: Hyperdrive.ListOptions): Hyperdrive.Download
    downloadDiff(version: number, folder?: string | null, opts?: Record<string, unknown>): Promise<Hyperdrive.Download>
    downloadRange(dbRanges: Hypercore.DownloadRange[], blobRanges: Hypercore.DownloadRange[]): Promise<Hyperdrive.Download>

    /** `out` is any drive-like target (Hyperdrive or Localdrive). */
    mirror(out: MirrorDrive.Drive, opts?: MirrorDrive.Options): MirrorDrive

    /** Errors ('Blob does not exist') are emitted on the stream. `start`/`end` are inclusive byte offsets. */
    createReadStream(path: string | Hyperdrive.Entry, opts?: Hyperdrive.ReadStreamOptions): Hyperdrive.Stream<Buffer>
    /** The entry is written when the stream finishes. */
    createWriteStream(path: string, opts?: { executable?: boolean; metadata?: unknown; dedup?: boolean }): Writable
  }

  namespace Hyperdrive {
    interface Options {
      /** Block encryption key for both the db and blobs cores. */
      encryptionKey?: Uint8Array | null
      onwait?: ((index: number, core: Hypercore<any>) => void) | null
      active?: boolean
      compat?: boolean
      extension?: unknown
    }

    /** A hyperblobs id. */
    interface BlobId {
      byteOffset: number
      blockOffset: number
      blockLength: number
      byteLength: number
      /** set when written with dedup/blockMap */
      blockMap?: boolean
    }

    interface EntryValue {
      executable: boolean
      /** symlink target, null for files */
      linkname: string | null
      /** null for symlinks (and files written without content) */
      blob: BlobId | null
      metadata: unknown
    }

    interface Entry {
      seq: number
      /** normalized path, e.g. '/dir/file.txt' */
      key: string
      value: EntryValue
    }

    interface DiffEntry {
      left: Entry | null
      right: Entry | null
    }

    interface GetOptions {
      wait?: boolean
      timeout?: number
      follow?: boolean
      [option: string]: unknown
    }

    interface EntryOptions {
      /** follow symlinks (max 16) */
      follow?: boolean
      wait?: boolean
      timeout?: number
      [option: string]: unknown
    }

    interface ListOptions {
      /** default true */
      recursive?: boolean
      /** paths (or a predicate on the full key) to skip */
      ignore?: string | string[] | ((key: string) => boolean) | null
      wait?: boolean
      [option: string]: unknown
    }

    interface ReadStreamOptions {
      start?: number
      /** inclusive */
      end?: number
      /** overrides end */
      length?: number
      wait?: boolean
      timeout?: number
      prefetch?: boolean
    }

    interface Stream<T> extends Readable {
      [Symbol.asyncIterator](): AsyncIterator<T>
    }

    /** lib/download.js (a ReadyResource). */
    interface Download extends ReadyResource {
      destroyed?: boolean
      /** Resolves when all underlying range downloads settled (never rejects for individual failures). */
      done(): Promise<void>
      destroy(): void
    }

    /** The hyperblobs instance behind `drive.blobs` / `drive.getBlobs()`. */
    interface Hyperblobs {
      core: Hypercore
      blockSize: number
      readonly key: Buffer | null
      readonly discoveryKey: Buffer | null
      /** Alias of core. */
      readonly feed: Hypercore
      ready(): Promise<void>
      close(): Promise<void>
      put(blob: Uint8Array | string, opts?: { blockSize?: number; [option: string]: unknown }): Promise<BlobId>
      get(id: BlobId, opts?: Hypercore.GetOptions & { start?: number; end?: number; length?: number }): Promise<Buffer | null>
      getByteLength(id: BlobId): Promise<number>
      clear(id: BlobId, opts?: { diff?: boolean }): Promise<{ blocks: number } | null>
      createReadStream(id: BlobId, opts?: ReadStreamOptions & { core?: Hypercore<any> }): Stream<Buffer>
      createWriteStream(opts?: { core?: Hypercore<any>; dedup?: boolean; blockMap?: boolean; [option: string]: unknown }): Writable & { id: BlobId }
      snapshot(): Hyperblobs
    }
  }

  export = Hyperdrive
}
