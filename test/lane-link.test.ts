/**
 * The bulk lane in running networks (lib/net/lane-link.ts + the lane hook in lib/net/network.ts):
 * offers over the custody channel (message `lane`, minor 3), one lane per pair, the lane as an
 * extra replication connection with the peer's scope, the swarm connection carrying on when the
 * lane dies, and the attacker cases (someone else's address, a non-lane port, an unadmitted key,
 * a malformed offer, a flood of offers).
 */
import net from 'node:net'
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import DHT from 'hyperdht'
import type Hypercore from 'hypercore'
import { parseHostPort, validateConfig, type EmbassyError } from '../lib/index.js'
import { Network, type Peer } from '../lib/net/network.js'
import { LaneServer, dialLane } from '../lib/net/lane.js'
import type { LaneLinkOptions } from '../lib/net/lane-link.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, CustodyMessage, CUSTODY_MESSAGES, PeerRole } from '../protocol/index.js'
import { eventually, testnet, type Test } from './helpers/index.js'

const CATALOG = Buffer.alloc(32, 0xca)
const BLOCK = 64 * 1024

interface Node {
  net: Network
  store: Corestore
  keyPair: { publicKey: Buffer; secretKey: Buffer }
}

/** A network that admits `allowed()` and entitles them to CATALOG; with a lane when `lane` is given. */
async function node(t: Test, bootstrap: string[], name: string, allowed: () => Buffer[], lane: LaneLinkOptions | null, catalogs: (key: Buffer) => Buffer[] = () => [CATALOG]): Promise<Node> {
  const keyPair = DHT.keyPair()
  const store = new Corestore(path.join(await t.tmp(), name))
  const admits = (key: Buffer) => allowed().some((k) => k.equals(key))
  const n = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [CATALOG] }),
    isAllowed: admits,
    host: '127.0.0.1'
  })
  t.teardown(
    async () => {
      await n.close()
      await store.close()
    },
    { order: 0 }
  )
  await n.ready()
  if (lane) await n.useLane(lane)
  n.setScope({ entitled: (key) => (admits(key) ? catalogs(key) : []), catalogOfTopic: () => null })
  return { net: n, store, keyPair }
}

async function writeCore(store: Corestore, blocks: number, name = 'bulk'): Promise<Hypercore> {
  const core = store.get({ name })
  await core.ready()
  const batch: Buffer[] = []
  for (let i = 0; i < blocks; i++) {
    const b = Buffer.alloc(BLOCK, i % 251)
    b.writeUInt32BE(i, 0)
    batch.push(b)
    if (batch.length === 64) await core.append(batch.splice(0))
  }
  if (batch.length) await core.append(batch)
  return core
}

function nextPeer(n: Network, key: Buffer): Promise<Peer> {
  const have = n.connectedTo(key)
  if (have) return Promise.resolve(have)
  return new Promise((resolve) => {
    const on = (p: Peer) => {
      if (!p.key.equals(key)) return
      n.off('peer', on)
      resolve(p)
    }
    n.on('peer', on)
  })
}

function laneEvent<E extends 'lane-open' | 'lane-close' | 'lane-failed'>(n: Network, event: E, pred: (...args: any[]) => boolean = () => true): Promise<any[]> {
  return new Promise((resolve) => {
    const on = (...args: any[]) => {
      if (!pred(...args)) return
      n.off(event, on as never)
      resolve(args)
    }
    n.on(event, on as never)
  })
}

const LOCAL_LANE: LaneLinkOptions = { listen: { host: '127.0.0.1', port: 0 }, backoffs: [200, 400, 800] }

test('lane-link: two nodes with lanes open exactly one (the lower key dials), replicate over it, and the swarm finishes the transfer when the lane is killed mid-way', async (t) => {
  const bootstrap = await testnet(t)
  const keys: Buffer[] = []
  const a = await node(t, bootstrap, 'a', () => keys, LOCAL_LANE)
  const b = await node(t, bootstrap, 'b', () => keys, LOCAL_LANE)
  keys.push(a.keyPair.publicKey, b.keyPair.publicKey)

  const blocks = 768 // 48 MiB
  const writer = await writeCore(a.store, blocks)
  a.net.offer(CATALOG, writer)
  const reader = b.store.get({ key: writer.key })
  await reader.ready()
  b.net.offer(CATALOG, reader)

  const lowerIsA = Buffer.compare(a.keyPair.publicKey, b.keyPair.publicKey) < 0
  const dialler = lowerIsA ? a : b
  const opened = Promise.all([laneEvent(a.net, 'lane-open'), laneEvent(b.net, 'lane-open')])
  const lost: string[] = []
  a.net.on('peer-lost', (p) => lost.push(`a lost ${p.id}`))
  b.net.on('peer-lost', (p) => lost.push(`b lost ${p.id}`))
  b.net.joinPeer(a.keyPair.publicKey)
  const [[, ia], [, ib]] = await opened
  t.is(ia.initiator, dialler === a, 'a: initiator only when it has the lower key')
  t.is(ib.initiator, dialler === b, 'b: initiator only when it has the lower key')
  t.is(a.net.lane!.stats.dials + b.net.lane!.stats.dials, 1, 'one dial in all: one lane per pair')
  t.is(a.net.peers.size, 1, 'the lane adds no entry to peers (a)')
  t.is(b.net.peers.size, 1, 'the lane adds no entry to peers (b)')

  // Pull everything; kill the lane (synchronously, from the reader's own event) when a quarter of
  // the blocks arrived: the transfer is mid-way by construction, whatever the machine's speed.
  const closed = laneEvent(b.net, 'lane-close')
  let arrived = 0
  let killedAt = -1
  let viaLane = 0
  let status: ReturnType<Network['describePeers']>[number] | null = null
  reader.on('download', () => {
    if (++arrived !== blocks / 4) return
    killedAt = arrived
    status = b.net.describePeers()[0]!
    viaLane = status.lane?.bytesIn ?? 0
    b.net.lane!.streamOf(a.keyPair.publicKey)?.destroy()
  })
  const done = reader.download({ start: 0, end: blocks }).done()
  await closed
  t.is(killedAt, blocks / 4, `the lane was killed mid-transfer (${killedAt}/${blocks} blocks arrived)`)
  t.ok(status!.lane?.up && viaLane > 0, `status showed the lane up with bytes over it (${viaLane} in)`)
  await done
  t.is(reader.contiguousLength, blocks, 'every block arrived (Merkle-verified by Hypercore)')
  for (const i of [0, Math.floor(blocks / 2), blocks - 1]) t.alike(await reader.get(i), await writer.get(i), `block ${i} equal`)
  t.alike(lost, [], 'no peer was lost: the lane closing is not losing the peer')
  t.ok(a.net.connectedTo(b.keyPair.publicKey) && b.net.connectedTo(a.keyPair.publicKey), 'the swarm connection is still up')
  t.comment(`${(viaLane / 1024 / 1024).toFixed(1)} MiB over the lane before it was killed`)

  // The dialler dials again (after its back-off) while the peer stays connected.
  await eventually('the lane is back', () => a.net.lane!.openLanes === 1 && b.net.lane!.openLanes === 1, 60_000)
  t.pass('the lane came back after its back-off')
})

test('lane-link: a lane carries only what the peer is entitled to (the scope of its swarm connection)', async (t) => {
  const bootstrap = await testnet(t)
  const OTHER = Buffer.alloc(32, 0x0e)
  const keys: Buffer[] = []
  // a holds CATALOG and OTHER and entitles b to CATALOG only; b would take both.
  const a = await node(t, bootstrap, 'a', () => keys, LOCAL_LANE)
  const b = await node(t, bootstrap, 'b', () => keys, LOCAL_LANE, () => [CATALOG, OTHER])
  keys.push(a.keyPair.publicKey, b.keyPair.publicKey)
  const open = await writeCore(a.store, 16, 'open')
  const secret = await writeCore(a.store, 16, 'secret')
  a.net.offer(CATALOG, open)
  a.net.offer(OTHER, secret)
  const opened = Promise.all([laneEvent(a.net, 'lane-open'), laneEvent(b.net, 'lane-open')])
  b.net.joinPeer(a.keyPair.publicKey)
  await opened
  const r1 = b.store.get({ key: open.key })
  const r2 = b.store.get({ key: secret.key })
  await Promise.all([r1.ready(), r2.ready()])
  b.net.offer(CATALOG, r1)
  b.net.offer(OTHER, r2)
  const before = b.net.lane!.describe(a.keyPair.publicKey)!.bytesIn
  await r1.download({ start: 0, end: 16 }).done()
  t.is(r1.contiguousLength, 16, 'the entitled core replicated')
  t.ok(b.net.lane!.describe(a.keyPair.publicKey)!.bytesIn > before, 'with the lane up and carrying data')
  // The core of a catalog b is not entitled to: neither the swarm connection nor the lane serves it.
  await t.exception(r2.get(0, { timeout: 3000 }), /REQUEST_TIMEOUT/, 'a block of a catalog not entitled never arrives')
  t.is(r2.contiguousLength, 0, 'nothing of it held')
})

test('lane-link: a stranger, and a key the swarm does not have connected, are dropped on the lane before any replication', async (t) => {
  const bootstrap = await testnet(t)
  const keys: Buffer[] = []
  const a = await node(t, bootstrap, 'a', () => keys, LOCAL_LANE)
  const writer = await writeCore(a.store, 4)
  a.net.offer(CATALOG, writer)
  const stranger = DHT.keyPair()
  const closedEarly = async (keyPair: typeof stranger) => {
    try {
      const s = await dialLane('127.0.0.1', a.net.lane!.server!.port, { keyPair, remotePublicKey: a.keyPair.publicKey })
      let bytes = 0
      s.on('data', (d) => (bytes += (d as Buffer).length))
      await new Promise<void>((resolve) => s.once('close', () => resolve()))
      return bytes
    } catch (err) {
      t.is((err as EmbassyError).code, 'PEER_UNREACHABLE', 'closed during the handshake')
      return 0
    }
  }
  t.is(await closedEarly(stranger), 0, 'a stranger gets no byte')
  keys.push(stranger.publicKey) // admitted now, but not connected on the swarm
  t.is(await closedEarly(stranger), 0, 'an admitted key that is not connected on the swarm gets no byte')
  t.is(a.net.lane!.server!.stats.refused, 2, 'both refused by the firewall')
  t.is(a.net.lane!.server!.stats.accepted, 0, 'none admitted')
  t.is(a.net.lane!.openLanes, 0, 'no lane attached')
})

test('lane-link: a peer advertising someone else\'s lane, a non-lane port, a flood of offers and a malformed offer: failed dials logged, bounded, replication unaffected', async (t) => {
  const bootstrap = await testnet(t)
  const keys: Buffer[] = []
  // v dials what it is offered (no listener of its own); m is a hostile admitted peer without a lane.
  const v = await node(t, bootstrap, 'v', () => keys, { listen: null, backoffs: [300] })
  const m = await node(t, bootstrap, 'm', () => keys, null)
  keys.push(v.keyPair.publicKey, m.keyPair.publicKey)
  // Someone else's lane: c, a peer of v with a lane up to v. And a TCP port that does not speak Noise.
  const c = await node(t, bootstrap, 'c', () => keys, LOCAL_LANE)
  keys.push(c.keyPair.publicKey)
  const other = c.net.lane!.server!
  const sockets = new Set<net.Socket>()
  const junk = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.once('close', () => sockets.delete(s))
    s.end('HTTP/1.1 400 Bad Request\r\n\r\n')
  })
  await new Promise<void>((resolve) => junk.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => junk.close(() => resolve()))
  })
  const junkPort = (junk.address() as net.AddressInfo).port

  const writer = await writeCore(m.store, 8)
  m.net.offer(CATALOG, writer)
  const reader = v.store.get({ key: writer.key })
  await reader.ready()
  v.net.offer(CATALOG, reader)
  const lost: string[] = []
  v.net.on('peer-lost', (p) => lost.push(p.id))

  v.net.joinPeer(m.keyPair.publicKey)
  const toV = await nextPeer(m.net, v.keyPair.publicKey)
  await nextPeer(v.net, m.keyPair.publicKey)
  await eventually('m sees v speak minor 3', () => toV.channel.supports('lane'))

  const cLane = laneEvent(v.net, 'lane-open', (p) => p.key.equals(c.keyPair.publicKey))
  v.net.joinPeer(c.keyPair.publicKey)
  await cLane
  const laneToC = v.net.lane!.streamOf(c.keyPair.publicKey)!
  t.ok(laneToC, 'v has a lane with c')
  const wrong = laneEvent(v.net, 'lane-failed', (_p, err) => err.code === 'WRONG_PEER')
  t.ok(toV.channel.send('lane', { host: '127.0.0.1', port: other.port }), 'offer of someone else\'s lane sent')
  const [, e1] = await wrong
  t.ok(/the peer there is/.test(e1.message), `WRONG_PEER: ${e1.message}`)
  await eventually('c saw the handshake end', () => other.stats.accepted + other.stats.failedHandshakes >= 2)
  await eventually('c dropped the second lane', () => other.connections === 1)
  t.is(v.net.lane!.streamOf(c.keyPair.publicKey), laneToC, 'the lane v–c is the same one, still up: an offer naming c cannot close it')
  t.is(c.net.lane!.openLanes, 1, 'c has one lane')

  const unreachable = laneEvent(v.net, 'lane-failed', (_p, err) => err.code === 'PEER_UNREACHABLE')
  t.ok(toV.channel.send('lane', { host: '127.0.0.1', port: junkPort }), 'offer of a non-lane port sent')
  const [, e2] = await unreachable
  t.pass(`PEER_UNREACHABLE: ${e2.message}`)

  // A flood: 500 offers of different ports. At most one dial in flight, then one per back-off.
  const before = { ...v.net.lane!.stats }
  const t0 = Date.now()
  for (let i = 0; i < 500; i++) toV.channel.send('lane', { host: '127.0.0.1', port: 20_000 + i })
  await eventually('the 500 offers arrived', () => v.net.lane!.stats.offersReceived - before.offersReceived >= 500)
  const elapsed = Date.now() - t0
  const dials = v.net.lane!.stats.dials - before.dials
  t.ok(dials <= 2 + Math.ceil(elapsed / 300), `${dials} dial(s) for 500 offers in ${elapsed} ms (bounded by the back-off)`)

  // Replication over the swarm connection is untouched.
  await reader.download({ start: 0, end: 8 }).done()
  t.is(reader.contiguousLength, 8, 'the core replicated over the swarm')

  // A malformed offer: a clear channel error; the connection and replication stay.
  const channelError = new Promise<Error>((resolve) => v.net.once('channel-error', (_p, err) => resolve(err)))
  t.is(CUSTODY_MESSAGES[CustodyMessage.LANE]!.name, 'lane', 'lane is message 7')
  t.ok(toV.channel.sendRaw('lane', Buffer.from([0, 0xfd, 0xff, 0x00])), 'malformed offer sent (host length 255 over 253)')
  const err = await channelError
  t.ok(/malformed message: a lane host of/.test(err.message), `channel error: ${err.message}`)
  await writer.append(Buffer.alloc(BLOCK, 7))
  t.alike(await reader.get(8), Buffer.alloc(BLOCK, 7), 'a block appended after the malformed offer still replicates')
  t.alike(lost, [], 'm was never lost')
  t.is(v.net.lane!.openLanes, 1, 'v has one lane: the one with c (none with m, whatever m offered)')
  t.is(v.net.lane!.streamOf(m.keyPair.publicKey), null, 'no lane with m')
  t.is(v.net.lane!.streamOf(c.keyPair.publicKey), laneToC, 'the lane with c is the same one throughout')
})

test('lane-link: config "lane" is validated', (t) => {
  const base = { version: 1, role: 'embassy', name: '', bootstrap: [], allow: [], follow: [], sources: [], peers: [] }
  t.alike(validateConfig({ ...base, lane: { listen: '0.0.0.0:7100', advertise: 'embassy.example.org:7100' } }).lane, { listen: '0.0.0.0:7100', advertise: 'embassy.example.org:7100' })
  t.alike(validateConfig({ ...base, lane: {} }).lane, {}, 'dial only')
  t.is(validateConfig(base).lane, undefined, 'off by default')
  t.exception(() => validateConfig({ ...base, lane: { listen: 'nope' } }), /"lane.listen": "nope" is not host:port/)
  t.exception(() => validateConfig({ ...base, lane: { advertise: 'a:1' } }), /"lane.advertise" needs "lane.listen"/)
  t.exception(() => validateConfig({ ...base, lane: { listen: '0.0.0.0:7100', port: 1 } }), /unknown field "lane.port"/)
  t.exception(() => validateConfig({ ...base, lane: { dial: 'yes' } }), /"lane.dial" must be true or false/)
  t.exception(() => validateConfig({ ...base, lane: 7100 }), /"lane" must be an object/)
  t.exception(() => validateConfig({ ...base, lane: { listen: '0.0.0.0:1', advertise: 'user@host:7100' } }), /"lane.advertise": the host must be/)
})
