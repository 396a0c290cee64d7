// Ambient types for mirror-drive v1 (CommonJS: `module.exports = class MirrorDrive`).
// Written against node_modules/mirror-drive/index.js (1.14.x).
// Usage: `import MirrorDrive from 'mirror-drive'` (or `src.mirror(dst, opts)` on a Hyperdrive/Localdrive).

declare module 'mirror-drive' {
  import { EventEmitter } from 'events'
  import type { Duplex } from 'streamx'

  /**
   * Mirrors `src` into `dst`. Nothing happens until you call `done()` or iterate it.
   * NOTE: `prune` defaults to TRUE — files in `dst` (under `prefix`) that are not in `src`
   * are deleted. A read-only Hyperdrive `dst` makes it throw 'Destination must be writable'.
   */
  class MirrorDrive implements AsyncIterable<MirrorDrive.Diff> {
    constructor(src: MirrorDrive.Drive, dst: MirrorDrive.Drive, opts?: MirrorDrive.Options)

    src: MirrorDrive.Drive
    dst: MirrorDrive.Drive
    prefix: string[]
    dedup: boolean
    dryRun: boolean
    prune: boolean
    preload: boolean
    preloaded: boolean
    includeProgress: boolean
    includeEquals: boolean
    batch: boolean
    filter: ((key: string) => boolean) | null
    metadataEquals: ((srcMetadata: unknown, dstMetadata: unknown) => boolean) | null
    entries: MirrorDrive.Options['entries'] | null
    ignore: ((key: string) => boolean) | null
    finished: boolean
    /** Running totals, updated as the mirror progresses. */
    count: { files: number; add: number; remove: number; change: number }
    bytesAdded: number
    bytesRemoved: number
    downloadedBlocks: number
    downloadedBlocksEstimate: number
    downloadedBytes: number
    uploadedBlocks: number
    uploadedBytes: number
    monitors: MirrorDrive.Monitor[]
    readonly peers: unknown[]
    /** 0..1 (capped at 0.99 until finished) */
    readonly downloadProgress: number

    /** Run the whole mirror. Rejects on the first error. */
    done(): Promise<void>
    /** Each yielded diff is reported before it is applied. */
    [Symbol.asyncIterator](): AsyncIterator<MirrorDrive.Diff>
    monitor(opts?: { interval?: number }): MirrorDrive.Monitor
  }

  namespace MirrorDrive {
    interface Options {
      /** Only mirror under these path prefixes (default '/'). Ignored when `entries` is given. */
      prefix?: string | string[]
      /** Report diffs without writing anything. */
      dryRun?: boolean
      /** Delete dst entries missing from src. DEFAULT TRUE. */
      prune?: boolean
      /** Also yield `{ op: 'equal' }` for unchanged files. */
      includeEquals?: boolean
      /** Called with each src key; return false to skip it (not applied when pruning). */
      filter?: (key: string) => boolean
      metadataEquals?: (srcMetadata: unknown, dstMetadata: unknown) => boolean
      /** Write into `dst.batch()` and flush at the end. */
      batch?: boolean
      /** Explicit list of keys (or entries) to mirror instead of listing `src`. */
      entries?: Iterable<string | DriveEntry> | AsyncIterable<string | DriveEntry>
      /** Paths (and everything below them) to skip, or a predicate. */
      ignore?: string | string[] | ((key: string) => boolean)
      /** Per-file stream factories applied between read and write; null = skip for this key. */
      transformers?: Array<(key: string) => Duplex | null>
      /** Content-defined chunking + blob dedup (Hyperdrive dst only). */
      dedup?: boolean
      /** Pre-download src blobs (default true when a Hyperdrive is involved). */
      preload?: boolean
      /** Track download/upload progress (see monitor()). */
      progress?: boolean
    }

    interface Diff {
      op: 'add' | 'remove' | 'change' | 'equal'
      key: string
      bytesRemoved: number
      bytesAdded: number
    }

    interface BlobId {
      byteOffset: number
      blockOffset: number
      blockLength: number
      byteLength: number
      blockMap?: boolean
    }

    /** Entry shape shared by Hyperdrive (has seq) and Localdrive (has mtime). */
    interface DriveEntry {
      key: string
      value: {
        executable: boolean
        linkname: string | null
        blob: BlobId | null
        metadata: unknown
      }
      seq?: number
      mtime?: number
    }

    /** What MirrorDrive needs from a source/destination drive (Hyperdrive and Localdrive both fit). */
    interface Drive {
      supportsMetadata?: boolean
      ready(): Promise<void>
      entry(key: string | DriveEntry): Promise<DriveEntry | null>
      list(folder?: string, opts?: { ignore?: ((key: string) => boolean) | null }): AsyncIterable<DriveEntry | string>
      createReadStream(key: string | DriveEntry): unknown
      createWriteStream(key: string, opts?: { executable?: boolean; metadata?: unknown; dedup?: boolean }): unknown
      del(key: string): Promise<void>
      symlink(key: string, linkname: string): Promise<void>
    }

    interface MonitorStats {
      peers: number
      download: { bytes: number; blocks: number; speed: number; progress: number }
      upload: { bytes: number; blocks: number; speed: number }
    }

    interface Monitor extends EventEmitter<{ update: [stats: MonitorStats]; preloaded: []; destroy: [] }> {
      mirror: MirrorDrive
      stats: MonitorStats | null
      readonly preloaded: boolean
      readonly destroyed: boolean
      update(): void
      destroy(): void
    }
  }

  export = MirrorDrive
}
