/**
 * Bulk-lane worker: one core replicated over TCP, in its own process (bench/suites/lane.ts).
 *
 *   node dist/bench/lane-worker.js '{"role":"writer", ...}'
 *
 * Roles (one JSON config argument; JSON-line events on stdout; stops on SIGTERM or stdin end):
 *   writer  appends `bytes` in `blockSize` blocks to one core (the same bytes as raw-worker's writer), then
 *           serves it on three TCP ports on 127.0.0.1: a LaneServer (lib/net/lane.ts: firewall admitting
 *           `allow`, keep-alive, no-delay), the same with Nagle on (`noDelay: false`), and a plain
 *           TCP + secret-stream listener (Node's socket defaults, no firewall: stock Hypercore over TCP)
 *   reader  dials the writer `lanes` times (mode `lane`: dialLane; mode `tcp`: plain socket + secret-stream),
 *           replicates the store on each, reports when the core reaches `length`
 */
import net from 'node:net'
import path from 'node:path'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import type Hypercore from 'hypercore'
import './tune.js'
import { LaneServer, dialLane } from '../lib/net/lane.js'
import { closers, out, runRole, startWorker, workerConfig } from './worker-io.js'
import { appendBlocks, untilLength } from './raw-worker.js'

interface LaneConfig {
  role: 'writer' | 'reader'
  dir: string
  /** writer: bytes in the core */
  bytes?: number
  /** writer: bytes per block @default 65536 */
  blockSize?: number
  /** writer: blocks per append @default 64 */
  batch?: number
  /** writer: public keys (hex) the lane's firewall admits */
  allow?: string[]
  /** reader: which listener to dial */
  mode?: 'lane' | 'tcp'
  /** reader: parallel connections to the writer @default 1 */
  lanes?: number
  port?: number
  /** reader: the writer's public key (hex) */
  peer?: string
  /** reader: the core key (hex) and the length to reach */
  key?: string
  length?: number
  /** reader (mode lane): TCP_NODELAY on its side @default true */
  noDelay?: boolean
  /** reader: 32-byte seed (hex) of its key pair (the writer's firewall admits its public key) */
  seed?: string
}

const config = workerConfig<LaneConfig>()
startWorker()

type RawSocket = ConstructorParameters<typeof NoiseSecretStream>[1]

async function writer(): Promise<void> {
  const store = new Corestore(path.join(config.dir, 'store'))
  await store.ready()
  closers.push(() => store.close())
  const blockSize = config.blockSize ?? 65536
  const batch = config.batch ?? 64
  const core = store.get({ name: 'bench-0' })
  await core.ready()
  const started = performance.now()
  // The same bytes, blocks and batches as raw-worker's writer (its loop).
  await appendBlocks(core, config.bytes ?? 0, blockSize, batch)
  out({ event: 'appended', ms: performance.now() - started, bytes: core.byteLength, blocks: core.length })

  const keyPair = await store.createKeyPair('bench-lane')
  const allow = (config.allow ?? []).map((h) => Buffer.from(h, 'hex'))
  const lane = new LaneServer({ keyPair, host: '127.0.0.1', port: 0, firewall: (key) => !allow.some((k) => k.equals(key)) })
  lane.on('connection', (stream) => {
    stream.on('error', () => {})
    store.replicate(stream)
  })
  await lane.ready()
  closers.push(() => lane.close())
  // The same lane with Nagle's algorithm on (no TCP_NODELAY), on its own port.
  const nagle = new LaneServer({ keyPair, host: '127.0.0.1', port: 0, noDelay: false, firewall: (key) => !allow.some((k) => k.equals(key)) })
  nagle.on('connection', (stream) => {
    stream.on('error', () => {})
    store.replicate(stream)
  })
  await nagle.ready()
  closers.push(() => nagle.close())

  const plain = new Set<NoiseSecretStream>()
  const server = net.createServer((socket) => {
    const stream = new NoiseSecretStream(false, socket as unknown as RawSocket, { keyPair })
    stream.on('error', () => {})
    plain.add(stream)
    stream.once('close', () => plain.delete(stream))
    store.replicate(stream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  closers.push(async () => {
    for (const s of plain) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  out({
    event: 'listening',
    publicKey: keyPair.publicKey.toString('hex'),
    key: core.key!.toString('hex'),
    length: core.length,
    byteLength: core.byteLength,
    lanePort: lane.port,
    nagleLanePort: nagle.port,
    tcpPort: (server.address() as net.AddressInfo).port
  })
}

async function plainDial(port: number, keyPair: { publicKey: Buffer; secretKey: Buffer }): Promise<NoiseSecretStream> {
  const socket = net.connect({ host: '127.0.0.1', port })
  const stream = new NoiseSecretStream(true, socket as unknown as RawSocket, { keyPair })
  stream.on('error', () => {})
  if (!(await stream.opened)) throw new Error(`plain TCP dial to 127.0.0.1:${port} failed`)
  return stream
}

async function reader(): Promise<void> {
  const store = new Corestore(path.join(config.dir, 'store'))
  await store.ready()
  closers.push(() => store.close())
  const keyPair = crypto.keyPair(Buffer.from(config.seed!, 'hex'))
  const remotePublicKey = Buffer.from(config.peer!, 'hex')
  const core: Hypercore = store.get({ key: Buffer.from(config.key!, 'hex') })
  await core.ready()
  core.download({ start: 0, end: -1 })
  const want = config.length ?? 0
  let connectedAt = 0
  const done = untilLength(core, want)
  const n = Math.max(1, config.lanes ?? 1)
  const streams: NoiseSecretStream[] = []
  closers.push(async () => {
    for (const s of streams) s.destroy()
  })
  for (let i = 0; i < n; i++) {
    const stream = config.mode === 'tcp' ? await plainDial(config.port!, keyPair) : await dialLane('127.0.0.1', config.port!, { keyPair, remotePublicKey, noDelay: config.noDelay ?? true })
    stream.on('error', () => {})
    streams.push(stream)
    if (!connectedAt) {
      connectedAt = Date.now()
      out({ event: 'connected' })
    }
    store.replicate(stream)
  }
  await done
  const doneAt = Date.now()
  out({ event: 'done', connectedAt, doneAt, ms: doneAt - connectedAt })
}

runRole({ writer, reader }, config.role)
