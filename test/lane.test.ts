/**
 * Direct lane (lib/net/lane.ts): Corestore replication over TCP + secret-stream, the firewall
 * before any replication, a wrong peer key, garbage on the port, and a clean close.
 */
import test from 'brittle'
import net from 'node:net'
import path from 'node:path'
import { once } from 'node:events'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import { LaneServer, dialLane } from '../lib/net/index.js'
import type { EmbassyError } from '../lib/errors.js'
import { toZ32 } from '../lib/ids.js'
import { eventually, type Test } from './helpers/index.js'

const BLOCKS = 200
const BLOCK_SIZE = 16 * 1024

function block(i: number): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE, i & 0xff)
  b.writeUInt32LE(i, 0)
  return b
}

/** A writer store with one core of BLOCKS blocks, closed at teardown. */
async function writerStore(t: Test): Promise<{ store: Corestore; key: Buffer; length: number }> {
  const store = new Corestore(path.join(await t.tmp(), 'writer'))
  t.teardown(() => store.close())
  const core = store.get({ name: 'lane-data' })
  await core.ready()
  const batch: Buffer[] = []
  for (let i = 0; i < BLOCKS; i++) batch.push(block(i))
  await core.append(batch)
  return { store, key: core.key!, length: core.length }
}

async function readerStore(t: Test, name = 'reader'): Promise<Corestore> {
  const store = new Corestore(path.join(await t.tmp(), name))
  t.teardown(() => store.close())
  return store
}

/** A lane server on 127.0.0.1:0 that admits `allowed` and replicates `store` on each lane. */
async function laneServer(t: Test, store: Corestore | null, allowed: Buffer[], extra: Partial<ConstructorParameters<typeof LaneServer>[0]> = {}): Promise<{ server: LaneServer; keyPair: { publicKey: Buffer; secretKey: Buffer } }> {
  const keyPair = crypto.keyPair()
  const server = new LaneServer({ keyPair, host: '127.0.0.1', port: 0, firewall: (key) => !allowed.some((k) => k.equals(key)), ...extra })
  server.on('connection', (stream) => {
    stream.on('error', () => {})
    // A lane admitted while the test tears down (its store already closed) is simply dropped.
    if (!store) return
    try {
      store.replicate(stream)
    } catch {
      stream.destroy()
    }
  })
  await server.ready()
  t.teardown(() => server.close())
  return { server, keyPair }
}

test('lane: two corestores replicate a core over the lane, every block verified and equal', async (t) => {
  const w = await writerStore(t)
  const reader = crypto.keyPair()
  const { server, keyPair } = await laneServer(t, w.store, [reader.publicKey])
  const store = await readerStore(t)
  const stream = await dialLane('127.0.0.1', server.port, { keyPair: reader, remotePublicKey: keyPair.publicKey })
  stream.on('error', () => {})
  t.teardown(() => stream.destroy())
  t.alike(stream.remotePublicKey, keyPair.publicKey, 'the dialler sees the key it asked for')
  store.replicate(stream)
  const core = store.get({ key: w.key })
  await core.ready()
  core.download({ start: 0, end: -1 })
  await eventually('every block held', () => core.contiguousLength === w.length, 120_000)
  let same = 0
  for (let i = 0; i < w.length; i++) if ((await core.get(i, { wait: false }))?.equals(block(i))) same++
  t.is(same, BLOCKS, 'every block arrived (hypercore verified each against the signed tree) and equals what was written')
  t.is(server.stats.accepted, 1)
  t.is(server.connections, 1)
})

test('lane: an unknown key is refused by the firewall before any replication and gets nothing', async (t) => {
  const w = await writerStore(t)
  const friend = crypto.keyPair()
  const stranger = crypto.keyPair()
  let connections = 0
  const { server, keyPair } = await laneServer(t, w.store, [friend.publicKey])
  server.on('connection', () => connections++)
  const refused = once(server, 'refused')
  const store = await readerStore(t)
  const core = store.get({ key: w.key })
  await core.ready()
  core.download({ start: 0, end: -1 })
  let stream: Awaited<ReturnType<typeof dialLane>> | null = null
  try {
    // Noise XX: the dialler finishes its handshake first, so it usually opens and is then closed.
    stream = await dialLane('127.0.0.1', server.port, { keyPair: stranger, remotePublicKey: keyPair.publicKey })
  } catch (err) {
    t.is((err as EmbassyError).code, 'PEER_UNREACHABLE', 'a lane closed during the handshake is PEER_UNREACHABLE')
  }
  if (stream) {
    stream.on('error', () => {})
    const closed = once(stream, 'close')
    store.replicate(stream)
    await closed
    t.pass('the refused lane was closed by the server')
  }
  const [key] = await refused
  t.alike(key, stranger.publicKey, 'the refused event names the stranger')
  t.is(server.stats.refused, 1)
  t.is(server.stats.accepted, 0)
  t.is(connections, 0, 'the server never replicated with it')
  t.is(core.contiguousLength, 0, 'the stranger holds no block')
  t.is(core.length, 0, 'nor even learned the length')
})

test('lane: dialling with the wrong remotePublicKey fails WRONG_PEER; a closed port fails PEER_UNREACHABLE', async (t) => {
  const w = await writerStore(t)
  const me = crypto.keyPair()
  const { server, keyPair } = await laneServer(t, w.store, [me.publicKey])
  const other = crypto.keyPair()
  const wrong = await dialLane('127.0.0.1', server.port, { keyPair: me, remotePublicKey: other.publicKey }).then(
    () => null,
    (err: EmbassyError) => err
  )
  t.is(wrong?.code, 'WRONG_PEER', 'another key answered: WRONG_PEER')
  t.is(wrong?.exitCode, 1)
  t.ok(wrong?.message.includes(toZ32(keyPair.publicKey)) && wrong.message.includes(toZ32(other.publicKey)), 'the message names the key expected and the key that answered')
  await t.exception(dialLane('127.0.0.1', server.port, { keyPair: me, remotePublicKey: Buffer.alloc(5) }), { code: 'BAD_ARGUMENT' })
  // A port nobody listens on: take a free one and release it.
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()))
  const free = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  await t.exception(dialLane('127.0.0.1', free, { keyPair: me, remotePublicKey: keyPair.publicKey }), { code: 'PEER_UNREACHABLE' })
  // The server still serves the right dialler afterwards.
  const good = await dialLane('127.0.0.1', server.port, { keyPair: me, remotePublicKey: keyPair.publicKey })
  good.on('error', () => {})
  t.teardown(() => good.destroy())
  t.ok(good.remotePublicKey!.equals(keyPair.publicKey))
  // The WRONG_PEER dial finished its handshake on the server's side too (the server cannot tell),
  // so it may count as accepted before the dialler hung up: one or two admitted lanes.
  await eventually('the server admitted the right dialler', () => server.connections >= 1)
  t.is(server.stats.refused, 0)
})

test('lane: a garbage TCP client is dropped without crashing the server; an oversized handshake frame is refused at once', async (t) => {
  const w = await writerStore(t)
  const friend = crypto.keyPair()
  const { server, keyPair } = await laneServer(t, w.store, [friend.publicKey], { handshakeTimeout: 1000 })
  const failures: Array<Error | null> = []
  server.on('handshake-failed', (err) => failures.push(err))

  // 1. A frame of random bytes where the first Noise message should be.
  const junk = net.connect(server.port, '127.0.0.1')
  junk.on('error', () => {})
  junk.resume() // read what the server sends, so its close (FIN or RST) is seen
  await once(junk, 'connect')
  const frame = crypto.randomBytes(3 + 64)
  frame.writeUIntLE(64, 0, 3)
  junk.write(frame)
  await closed(junk)
  t.pass('the server closed the connection that sent random bytes')

  // 2. A frame header promising 16 MiB, then silence: closed at once (MAX_HANDSHAKE_FRAME), not
  //    left holding a 16 MiB buffer until the handshake timeout.
  const stall = net.connect(server.port, '127.0.0.1')
  stall.on('error', () => {})
  stall.resume() // read what the server sends, so its close (FIN or RST) is seen
  await once(stall, 'connect')
  stall.write(Buffer.from([0xff, 0xff, 0xff, 1, 2, 3]))
  await closed(stall)
  t.is(server.stats.oversized, 1, 'the oversized handshake frame closed it (not the timeout)')

  // 3. Pure noise in bulk.
  const flood = net.connect(server.port, '127.0.0.1')
  flood.on('error', () => {})
  flood.resume() // read what the server sends, so its close (FIN or RST) is seen
  await once(flood, 'connect')
  flood.write(crypto.randomBytes(256 * 1024))
  await closed(flood)

  await eventually('three failed handshakes counted', () => server.stats.failedHandshakes === 3)
  t.is(failures.length, 3)
  t.is(server.stats.accepted, 0)
  t.ok(server.stats.oversized >= 1)

  // The server still works.
  const store = await readerStore(t)
  const stream = await dialLane('127.0.0.1', server.port, { keyPair: friend, remotePublicKey: keyPair.publicKey })
  stream.on('error', () => {})
  t.teardown(() => stream.destroy())
  store.replicate(stream)
  const core = store.get({ key: w.key })
  await core.ready()
  core.download({ start: 0, end: -1 })
  await eventually('every block held after the garbage', () => core.contiguousLength === w.length, 120_000)
  t.is(core.contiguousLength, BLOCKS, 'a real peer still replicates everything')
})

/** A socket's 'close' (its 'error', e.g. ECONNRESET when the server drops it, is expected here). */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()))
}

/** TCP handles alive in this process (servers and sockets). */
function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap' || r === 'TCPSocketWrap').length
}

test('lane: close() ends the listener and every lane, leaving no open TCP handle', async (t) => {
  const before = tcpHandles()
  const w = await writerStore(t)
  const reader = crypto.keyPair()
  const keyPair = crypto.keyPair()
  const server = new LaneServer({ keyPair, host: '127.0.0.1', port: 0, firewall: (key) => !key.equals(reader.publicKey) })
  server.on('connection', (s) => {
    s.on('error', () => {})
    w.store.replicate(s)
  })
  await server.ready()
  const port = server.port
  t.ok(port > 0, 'listening on a free port')
  const stream = await dialLane('127.0.0.1', port, { keyPair: reader, remotePublicKey: keyPair.publicKey })
  stream.on('error', () => {})
  const closed = once(stream, 'close')
  await eventually('the lane is admitted', () => server.connections === 1)
  t.ok(tcpHandles() >= before + 3, 'listener and both ends of the lane are open')
  await server.close()
  await closed
  t.pass('the dialler saw its lane close')
  t.is(server.connections, 0)
  await eventually('no TCP handle left', () => tcpHandles() === before)
  t.is(tcpHandles(), before, 'every TCP handle the lane opened is gone')
  await t.exception(dialLane('127.0.0.1', port, { keyPair: reader, remotePublicKey: keyPair.publicKey }), { code: 'PEER_UNREACHABLE' }, 'nothing listens after close()')
  await server.close() // idempotent
})
