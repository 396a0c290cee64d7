// Ambient types for hypercore-storage v3 (CommonJS: `module.exports = CoreStorage`): only what
// lib/node/node.ts uses — the storage a Corestore is built on, with RocksDB's options.
// Usage: `import CoreStorage from 'hypercore-storage'`.

declare module 'hypercore-storage' {
  namespace CoreStorage {
    interface Options {
      /** RocksDB write buffer (memtable) size in bytes, per memtable (two at most). @default 64 MiB */
      writeBufferSize?: number
    }
  }
  class CoreStorage {
    constructor(dir: string, opts?: CoreStorage.Options)
    close(): Promise<void>
  }
  export = CoreStorage
}
