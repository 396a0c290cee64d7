/**
 * Benchmark variants without touching the product: preloaded into a node process
 * (`node --import ./dist/bench/tune.js dist/bin/embassy.js run …`, or imported by a worker), it
 * patches the Holepunch modules the process loads, as told by environment variables:
 *
 *   BENCH_RCVBUF=BYTES           UDP receive buffer of every UDX socket (UDX default here: 1 MiB, reported as 2 MiB)
 *   BENCH_SNDBUF=BYTES           UDP send buffer of every UDX socket
 *   BENCH_INFLIGHT=MIN,MAX       Hypercore's replication inflight window (default 16,512 blocks) for cores
 *                                opened through Corestore.get without one
 *   BENCH_FILE_BLOCK_SIZE=BYTES  content block size of published files (product: FILE_BLOCK_SIZE, the block size
 *                                FilesDataset gives BlobWriter)
 *   BENCH_AGENCY_CORES_CACHE=1   Agency.cores() (run for every receipt) reuses its map while the catalog length is unchanged,
 *                                instead of re-decoding and re-opening every catalog entry per receipt
 *
 * Nothing is patched when none is set. Each patch stands for a small product change (BENCHMARKS.md).
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export interface Tuning {
  rcvbuf: number | null
  sndbuf: number | null
  inflight: [number, number] | null
  fileBlockSize: number | null
  agencyCoresCache: boolean
}

function int(name: string): number | null {
  const v = process.env[name]
  if (!v) return null
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not ${v}`)
  return n
}

export function tuningFromEnv(): Tuning {
  const inflightText = process.env.BENCH_INFLIGHT
  let inflight: [number, number] | null = null
  if (inflightText) {
    const [min, max] = inflightText.split(',').map(Number)
    if (!min || !max) throw new Error(`BENCH_INFLIGHT must be MIN,MAX, not ${inflightText}`)
    inflight = [min, max]
  }
  return {
    rcvbuf: int('BENCH_RCVBUF'),
    sndbuf: int('BENCH_SNDBUF'),
    inflight,
    fileBlockSize: int('BENCH_FILE_BLOCK_SIZE'),
    agencyCoresCache: process.env.BENCH_AGENCY_CORES_CACHE === '1'
  }
}

let applied = false

export function applyTuning(t: Tuning): void {
  if (applied) return
  applied = true
  if (t.rcvbuf || t.sndbuf) {
    const Socket = require('udx-native/lib/socket.js')
    const bind = Socket.prototype.bind
    Socket.prototype.bind = function (this: any, ...args: unknown[]) {
      const r = bind.apply(this, args)
      try {
        if (t.rcvbuf) this.setRecvBufferSize(t.rcvbuf)
        if (t.sndbuf) this.setSendBufferSize(t.sndbuf)
      } catch {}
      return r
    }
  }
  if (t.inflight) {
    const Corestore = require('corestore')
    const get = Corestore.prototype.get
    const range = t.inflight
    Corestore.prototype.get = function (this: any, opts: any) {
      if (opts && typeof opts === 'object' && !Buffer.isBuffer(opts) && !(opts instanceof Uint8Array)) {
        if (!opts.inflightRange) opts = { ...opts, inflightRange: range }
      } else if (opts) {
        opts = { key: opts, inflightRange: range }
      }
      return get.call(this, opts)
    }
  }
}

/** Patches of the product itself (ES modules: the same instances the CLI imports). */
export async function applyProductTuning(t: Tuning): Promise<void> {
  if (t.fileBlockSize) {
    const { BlobWriter } = await import('../lib/data/blob-writer.js')
    const open = BlobWriter.open
    const size = t.fileBlockSize
    BlobWriter.open = function (core, _blockSize, room, onAppended) {
      return open.call(BlobWriter, core, size, room, onAppended)
    }
  }
  if (t.agencyCoresCache) {
    const { Agency } = await import('../lib/roles/agency.js')
    const cores = Agency.prototype.cores
    type Cached = { length: number; map: ReturnType<typeof cores> }
    const cache = new WeakMap<object, Cached>()
    Agency.prototype.cores = function (this: InstanceType<typeof Agency>) {
      const length = this.catalog.core.length
      const hit = cache.get(this)
      if (hit && hit.length === length) return hit.map
      const map = cores.call(this)
      cache.set(this, { length, map })
      map.catch(() => cache.delete(this))
      return map
    }
  }
}

const tuning = tuningFromEnv()
applyTuning(tuning)
await applyProductTuning(tuning)
