// Ambient types for localdrive v2 (CommonJS: `module.exports = class Localdrive`).
// Written against node_modules/localdrive/index.js + streams.js (2.2.x).
// Usage: `import Localdrive from 'localdrive'`.

declare module 'localdrive' {
  import type { Readable, Writable } from 'streamx'
  import MirrorDrive = require('mirror-drive')

  /**
   * A Hyperdrive-compatible view of a directory. ready/close/flush are no-ops, and
   * batch()/checkout() return the drive itself. (The README's `roots` option does not
   * exist in 2.2.x.)
   */
  class Localdrive {
    constructor(root: string, opts?: Localdrive.Options)

    /** Absolute root directory. */
    root: string
    /** The metadata hooks ({} when none were given). */
    metadata: Localdrive.MetadataHooks
    /** true only if `metadata` hooks were given. */
    supportsMetadata: boolean

    ready(): Promise<void>
    close(): Promise<void>
    flush(): Promise<void>
    batch(): this
    checkout(): this

    /** Absolute filesystem path for a drive key. */
    toPath(key: string): string

    /** null for missing paths and directories. `blob` is a synthetic id (byteLength = file size). */
    entry(key: string | Localdrive.Entry, opts?: { follow?: boolean }): Promise<Localdrive.Entry | null>
    /** File contents, null for missing files / symlinks. */
    get(key: string | Localdrive.Entry, opts?: { follow?: boolean }): Promise<Buffer | null>
    /** Creates parent directories as needed. */
    put(key: string, data: Uint8Array | string, opts?: { executable?: boolean; metadata?: unknown }): Promise<void>
    /** No error if missing; removes now-empty parent directories. */
    del(key: string): Promise<void>
    symlink(key: string, linkname: string): Promise<void>
    exists(key: string): Promise<boolean>
    /** By mtime: 1 if a is newer, -1 if older, 0 if equal. */
    compare(a: Localdrive.Entry, b: Localdrive.Entry): number

    /** Recursive listing of files (not directories) under `folder` (default '/'). An async generator, not a stream. */
    list(folder?: string, opts?: { ignore?: string | string[] | ((key: string) => boolean) | null }): AsyncGenerator<Localdrive.Entry, void, unknown>
    list(opts: { ignore?: string | string[] | ((key: string) => boolean) | null }): AsyncGenerator<Localdrive.Entry, void, unknown>
    /** Names of the direct children (non-empty subdirectories included). */
    readdir(folder?: string): AsyncGenerator<string, void, unknown>

    mirror(out: MirrorDrive.Drive, opts?: MirrorDrive.Options): MirrorDrive

    /** `start`/`end` inclusive; `length` overrides `end`. */
    createReadStream(key: string | Localdrive.Entry, opts?: { start?: number; end?: number; length?: number }): Localdrive.Stream<Buffer>
    createWriteStream(key: string, opts?: { executable?: boolean; metadata?: unknown }): Writable
  }

  namespace Localdrive {
    interface MetadataHooks {
      get?(key: string): unknown
      put?(key: string, value: unknown): unknown
      del?(key: string): unknown
    }

    interface Options {
      /** Follow all symlinks when resolving entries. */
      followLinks?: boolean
      /** Follow only symlinks pointing outside `root`. */
      followExternalLinks?: boolean
      /** Hook object or a Map used as metadata store. */
      metadata?: MetadataHooks | Map<string, unknown>
      /** Write to a temp file and rename on finish. */
      atomic?: boolean
    }

    interface Entry {
      key: string
      value: {
        executable: boolean
        linkname: string | null
        blob: { byteOffset: number; blockOffset: number; blockLength: number; byteLength: number } | null
        metadata: unknown
      }
      /** mtimeMs */
      mtime: number
    }

    interface Stream<T> extends Readable {
      [Symbol.asyncIterator](): AsyncIterator<T>
    }
  }

  export = Localdrive
}
