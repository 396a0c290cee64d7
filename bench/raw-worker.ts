/**
 * Baseline worker: plain Corestore + Hyperswarm in its own process, with an explicit bootstrap list
 * (never the public DHT). No catalog, no custody channel, no firewall, no daemon: what Hypercore
 * itself does with the same bytes, block size and network, measured in the same run as the product.
 *
 *   node dist/bench/raw-worker.js '{"role":"writer", ...}'
 *
 * Roles (one JSON config argument; JSON-line events on stdout; stops on SIGTERM or stdin end):
 *   writer         appends `bytes` in `blockSize` blocks to `cores` cores (or a `source` folder, or the lines of an
 *                  `ndjson` file one block each), then serves them; with `live`, after the first connection,
 *                  appends `live.count` more blocks at `live.rate` per second and reports each append's time
 *   reader         opens `keys` with a live download range, dials `peer` (or `peers`), reports when every core
 *                  reaches `lengths` (with `live`, also when each block arrived)
 *   connect-server listens; answers a one-byte ping on every connection (an application round trip)
 *   connect-client dials `peer`, reports each (re)connection confirmed by a ping round trip
 */
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
import type Hypercore from 'hypercore'
import './tune.js'
import { RECONNECT_BACKOFFS } from '../lib/net/network.js'
import { udxWithLargeBuffers } from '../lib/net/udp.js'
import { closers, out, runRole, shutdown, startWorker, workerConfig } from './worker-io.js'
import { pseudoRandom } from '../test/helpers/files.js'

interface RawConfig {
  role: 'writer' | 'reader' | 'connect-server' | 'connect-client'
  dir: string
  bootstrap: string[]
  /** writer: bytes per core */
  bytes?: number
  /** writer: bytes per block @default 65536 */
  blockSize?: number
  /** writer: blocks per append call @default 64 */
  batch?: number
  /** writer: number of cores @default 1 */
  cores?: number
  /** writer: append the files of this folder (read sequentially, chunked at blockSize) instead of `bytes` */
  source?: string
  /** writer/reader: block-encrypt like the product (the reader is blind either way) @default false */
  encrypt?: boolean
  /** writer: append the lines of this NDJSON file, one block each, `batch` per append */
  ndjson?: string
  /** writer: only append, report, and exit (no network) */
  appendOnly?: boolean
  /** writer: live appends after the first connection; reader: record each block's arrival */
  live?: { count: number; rate: number; recordBytes: number; delayMs?: number } | true
  /** reader: core keys (hex) and the lengths to reach */
  keys?: string[]
  lengths?: number[]
  /** reader/client: the writer's/server's swarm public key (hex) */
  peer?: string
  /** reader: several writers' keys (hex) */
  peers?: string[]
  /**
   * reader with `peers`: how many of `keys` (in order) belong to each peer. With it, the reader's
   * Corestore is inactive (`active: false`) and each core replicates only on its own writer's
   * connection, instead of Corestore opening every core on every connection.
   */
  groups?: number[]
  /** reader: hypercore inflight range [min, max] (default hypercore's [16, 512]) */
  inflight?: [number, number]
  /** reader: exit once done */
  exitWhenDone?: boolean
}

const config = workerConfig<RawConfig>()
/** Run as a worker (not imported by another worker for its helpers, like lane-worker.ts). */
const MAIN = /raw-worker\.[cm]?[jt]s$/.test(process.argv[1] ?? '')
if (MAIN) startWorker()

function bootstrapNodes(list: string[]): Array<{ host: string; port: number }> {
  if (!list || list.length === 0) throw new Error('raw-worker: an explicit bootstrap list is required')
  return list.map((hp) => {
    const i = hp.lastIndexOf(':')
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) }
  })
}

async function openSwarm(store: Corestore | null, keyPair: { publicKey: Buffer; secretKey: Buffer }, onconn: (conn: any) => void): Promise<Hyperswarm> {
  // Same socket settings as the product (lib/udp.ts), so the ratio measures our layers, not the buffer.
  const dht = new DHT({ bootstrap: bootstrapNodes(config.bootstrap), keyPair, port: 0, host: '0.0.0.0', udx: udxWithLargeBuffers() } as ConstructorParameters<typeof DHT>[0])
  const swarm = new Hyperswarm({ keyPair, dht, backoffs: RECONNECT_BACKOFFS })
  const conns = new Set<any>()
  swarm.on('connection', (conn: any) => {
    conns.add(conn)
    conn.on('error', () => {})
    conn.on('close', () => conns.delete(conn))
    if (store) store.replicate(conn)
    onconn(conn)
  })
  closers.push(async () => {
    for (const c of conns) c.destroy()
    await swarm.destroy({ force: true })
  })
  return swarm
}

/** The same pseudo-random block contents everywhere, varied per block (no two blocks equal). */
export function blockFactory(blockSize: number): (i: number) => Buffer {
  const base = pseudoRandom(blockSize, 0x9e3779b9)
  return (i) => {
    const b = Buffer.from(base)
    if (blockSize >= 8) b.writeDoubleLE(i, 0)
    return b
  }
}

function encryptionFor(i: number): { key: Buffer } | undefined {
  if (!config.encrypt) return undefined
  const key = Buffer.alloc(32, 7)
  key.writeUInt32LE(i, 0)
  return { key }
}

async function writer(): Promise<void> {
  const store = new Corestore(path.join(config.dir, 'store'))
  await store.ready()
  closers.push(() => store.close())
  const blockSize = config.blockSize ?? 65536
  const batch = config.batch ?? 64
  const count = config.cores ?? 1
  const cores: Hypercore[] = []
  const started = performance.now()
  let bytes = 0
  let blocks = 0
  for (let c = 0; c < count; c++) {
    const enc = encryptionFor(c)
    const core = store.get({ name: `bench-${c}`, ...(enc ? { encryption: enc } : {}) })
    await core.ready()
    cores.push(core)
    if (core.length > 0) continue
    if (config.ndjson) {
      const lines = fs.readFileSync(config.ndjson, 'utf8').split('\n').filter((l) => l.length > 0)
      for (let i = 0; i < lines.length; i += batch) await core.append(lines.slice(i, i + batch).map((l) => Buffer.from(l)))
      bytes += core.byteLength
      blocks += core.length
      continue
    }
    if (config.source) {
      const r = await appendFolder(core, config.source, blockSize, batch)
      bytes += r.bytes
      blocks += r.blocks
      continue
    }
    await appendBlocks(core, config.bytes ?? 0, blockSize, batch)
    bytes += core.byteLength
    blocks += core.length
  }
  const appendMs = performance.now() - started
  out({ event: 'appended', ms: appendMs, bytes, blocks, cores: count })
  if (config.appendOnly) return shutdown(0)

  const keyPair = await store.createKeyPair('bench-swarm')
  let liveStarted = false
  const swarm = await openSwarm(store, keyPair, () => {
    out({ event: 'connected' })
    if (config.live && config.live !== true && !liveStarted) {
      liveStarted = true
      void liveAppends(cores[0]!, config.live)
    }
  })
  await swarm.listen()
  out({
    event: 'listening',
    publicKey: keyPair.publicKey.toString('hex'),
    keys: cores.map((c) => c.key!.toString('hex')),
    lengths: cores.map((c) => c.length),
    byteLength: cores.reduce((n, c) => n + c.byteLength, 0)
  })
}

/** Appends `total` bytes of blockFactory blocks of `blockSize`, `batch` per append (the writers' loop; lane-worker uses it too). */
export async function appendBlocks(core: Hypercore, total: number, blockSize: number, batch: number): Promise<void> {
  const make = blockFactory(blockSize)
  let pending: Buffer[] = []
  for (let off = 0, i = 0; off < total; off += blockSize, i++) {
    pending.push(off + blockSize <= total ? make(i) : make(i).subarray(0, total - off))
    if (pending.length >= batch) {
      await core.append(pending)
      pending = []
    }
  }
  if (pending.length) await core.append(pending)
}

/** Resolves once `core` holds blocks 0 … want-1 (the readers' wait; lane-worker uses it too). */
export function untilLength(core: Hypercore, want: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (core.contiguousLength < want) return
      core.off('download', check)
      resolve()
    }
    core.on('download', check)
    check()
  })
}

/** Appends `count` blocks at `rate` per second (one block per append), reporting when each started. */
async function liveAppends(core: Hypercore, live: { count: number; rate: number; recordBytes: number; delayMs?: number }): Promise<void> {
  await new Promise((r) => setTimeout(r, live.delayMs ?? 1000))
  const make = blockFactory(live.recordBytes)
  const first = core.length
  const starts: number[] = []
  const ends: number[] = []
  const interval = 1000 / live.rate
  const t0 = performance.now()
  for (let i = 0; i < live.count; i++) {
    const wait = t0 + i * interval - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    starts.push(Date.now())
    await core.append(make(first + i))
    ends.push(Date.now())
  }
  out({ event: 'live-result', first, starts, ends })
}

/** Appends every file of `dir` (sorted paths, read sequentially) chunked at `blockSize`: Hyperblobs' layout without the index. */
async function appendFolder(core: Hypercore, dir: string, blockSize: number, batch: number): Promise<{ bytes: number; blocks: number }> {
  const files: string[] = []
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) files.push(p)
    }
  }
  walk(dir)
  let bytes = 0
  let pending: Buffer[] = []
  for (const f of files) {
    const fd = fs.openSync(f, 'r')
    try {
      for (;;) {
        const chunk = Buffer.allocUnsafe(blockSize)
        const n = fs.readSync(fd, chunk, 0, blockSize, null)
        if (n === 0) break
        pending.push(n === blockSize ? chunk : chunk.subarray(0, n))
        bytes += n
        if (pending.length >= batch) {
          await core.append(pending)
          pending = []
        }
        if (n < blockSize) break
      }
    } finally {
      fs.closeSync(fd)
    }
  }
  if (pending.length) await core.append(pending)
  return { bytes, blocks: core.length }
}

async function reader(): Promise<void> {
  const perPeer = !!config.groups
  const store = new Corestore(path.join(config.dir, 'store'), perPeer ? { active: false } : {})
  await store.ready()
  closers.push(() => store.close())
  const keys = config.keys ?? []
  const lengths = config.lengths ?? []
  let remaining = keys.length
  let connectedAt = 0
  let finished = false
  let openedMs = 0
  const opened = performance.now()
  const heldAt: number[][] = []
  const all: Hypercore[] = []
  const finish = () => {
    if (finished) return
    finished = true
    const doneAt = Date.now()
    out({ event: 'done', connectedAt, doneAt, ms: doneAt - connectedAt, openMs: openedMs, ...(config.live ? { heldAt } : {}) })
    if (config.exitWhenDone) void shutdown(0)
  }
  for (let i = 0; i < keys.length; i++) {
    const key = Buffer.from(keys[i]!, 'hex')
    const want = lengths[i] ?? 0
    const enc = encryptionFor(i)
    const core = store.get({ key, ...(config.inflight ? { inflightRange: config.inflight } : {}), ...(enc ? { encryption: enc } : {}) })
    await core.ready()
    core.download({ start: 0, end: -1 })
    all.push(core)
    if (config.live) {
      const times: number[] = []
      heldAt.push(times)
      core.on('download', (index: number) => {
        times[index] = Date.now()
      })
    }
    if (want === 0 || core.contiguousLength >= want) remaining--
    else void untilLength(core, want).then(() => --remaining === 0 && finish())
  }
  openedMs = performance.now() - opened
  const keyPair = await store.createKeyPair('bench-swarm')
  const byPeer = new Map<string, Hypercore[]>()
  if (perPeer) {
    let at = 0
    ;(config.peers ?? []).forEach((p, i) => {
      const n = config.groups![i] ?? 0
      byPeer.set(p, all.slice(at, at + n))
      at += n
    })
  }
  const swarm = await openSwarm(store, keyPair, (conn) => {
    if (!connectedAt) connectedAt = Date.now()
    if (perPeer) for (const core of byPeer.get(Buffer.from(conn.remotePublicKey).toString('hex')) ?? []) core.replicate(conn)
    out({ event: 'connected' })
  })
  out({ event: 'opened', cores: keys.length, ms: openedMs })
  if (remaining === 0) finish()
  for (const peer of config.peers ?? [config.peer!]) swarm.joinPeer(Buffer.from(peer, 'hex'))
}

async function connectServer(): Promise<void> {
  const store = new Corestore(path.join(config.dir, 'store'))
  await store.ready()
  const keyPair = await store.createKeyPair('bench-swarm')
  await store.close()
  const swarm = await openSwarm(null, keyPair, (conn) => {
    conn.on('data', (d: Buffer) => {
      if (d[0] === 1) conn.write(Buffer.from([2]))
    })
  })
  await swarm.listen()
  out({ event: 'listening', publicKey: keyPair.publicKey.toString('hex') })
}

async function connectClient(): Promise<void> {
  const store = new Corestore(path.join(config.dir, 'store'))
  await store.ready()
  const keyPair = await store.createKeyPair('bench-swarm')
  await store.close()
  const swarm = await openSwarm(null, keyPair, (conn) => {
    const opened = Date.now()
    conn.once('data', (d: Buffer) => {
      if (d[0] === 2) out({ event: 'connected', openedAt: opened })
    })
    conn.on('close', () => out({ event: 'disconnected' }))
    conn.write(Buffer.from([1]))
  })
  out({ event: 'dialing' })
  swarm.joinPeer(Buffer.from(config.peer!, 'hex'))
}

if (MAIN) runRole({ writer, reader, 'connect-server': connectServer, 'connect-client': connectClient }, config.role)
