/**
 * Reconnection with few DHT nodes (issue 15 item 4, issue 16 item 3): a node keeps its UDP ports
 * across restarts and remembers its peers' last addresses (lib/net/net-memory.ts), so with ONE DHT
 * node — even after that node is gone entirely — a restarted peer, and a restarted dialler, find
 * each other again at once by those addresses. A damaged memory file is ignored, said, never fatal.
 */
import dgram from 'node:dgram'
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import DHT from 'hyperdht'
import { LocalDHT } from '../lib/net/local-dht.js'
import { Network, type Peer } from '../lib/net/network.js'
import { MAX_NET_MEMORY_BYTES, NET_MEMORY_FILE, NetMemory, readNetMemory } from '../lib/net/net-memory.js'
import { eventually, holdDefaultPorts, startNetwork, testnet, type Test } from './helpers/index.js'

/** Upper bound for a reconnection that must happen (a failure, not a race: it takes ~1–3 s). */
const MUST_RECONNECT_MS = 45_000

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)

function connected(net: Network, key: Buffer, what: string): Promise<Peer> {
  return eventually(what, () => net.connectedTo(key), MUST_RECONNECT_MS)
}

/** The DHT's server socket port (the one peers dial; the memory's serverPort). */
function portOf(net: Network): number {
  return ports(net).server
}

/** Both UDP ports of a node's DHT (server, and client: a firewalled node's connections use it). */
function ports(net: Network): { server: number; client: number } {
  const io = (net.dht as unknown as { io: { serverSocket: { address(): { port: number } }; clientSocket: { address(): { port: number } } } }).io
  return { server: io.serverSocket.address().port, client: io.clientSocket.address().port }
}


/** One local DHT node (closed after the peers), two node key pairs and a directory for each. */
async function oneDhtNode(t: Test) {
  await holdDefaultPorts(t)
  const dht = new LocalDHT({ port: 0, nodes: 1 })
  t.teardown(() => dht.close(), { order: 1 })
  await dht.ready()
  const root = await t.tmp()
  return { dht, aKeys: DHT.keyPair(), bKeys: DHT.keyPair(), aDir: path.join(root, 'a'), bDir: path.join(root, 'b') }
}

test('net memory: with ONE DHT node, stopped entirely, a restarted peer and a restarted dialler reconnect by remembered ports and addresses', { timeout: 240_000 }, async (t) => {
  const { dht, aKeys, bKeys, aDir, bDir } = await oneDhtNode(t)
  let b = await startNetwork(t, dht.bootstrap, bKeys, { dir: bDir })
  let a = await startNetwork(t, dht.bootstrap, aKeys, { dir: aDir })
  a.net.joinPeer(bKeys.publicKey)
  await connected(a.net, bKeys.publicKey, 'a first connection through the DHT')
  await connected(b.net, aKeys.publicKey, 'b sees a')
  const bPorts = ports(b.net)
  const aPorts = ports(a.net)
  t.pass(`connected through the DHT (a on ${aPorts.server}/${aPorts.client}, b on ${bPorts.server}/${bPorts.client})`)

  // The only DHT node goes away for good: from now on no lookup, no announcement, no relay.
  await dht.close()
  t.pass('the only DHT node is stopped')

  // b restarts in the same directory: same ports, and a dials the address it remembers.
  await b.stop()
  await eventually('a sees b lost', () => !a.net.connectedTo(bKeys.publicKey), MUST_RECONNECT_MS)
  let from = Date.now()
  b = await startNetwork(t, dht.bootstrap, bKeys, { dir: bDir })
  let upAt = Date.now()
  t.alike(ports(b.net), bPorts, 'the restarted b bound the UDP ports it had (server and client, remembered in its node directory)')
  t.alike(b.portChanges, [], 'no port change reported')
  await connected(a.net, bKeys.publicKey, 'a reconnects to the restarted b without any DHT node')
  t.pass(`a reconnected to the restarted b ${Date.now() - upAt} ms after b was up (b took ${upAt - from} ms to start without a DHT)`)

  // a (the dialler) restarts: it forgot nothing — b's address is in its memory file.
  await a.stop()
  const file = readNetMemory(path.join(aDir, NET_MEMORY_FILE))
  t.is(file.ignored, null, "a's memory file is valid")
  t.ok(file.data.peers.has(bKeys.publicKey.toString('hex')), "b's address is in a's memory file")
  t.is((fs.statSync(path.join(aDir, NET_MEMORY_FILE)).mode & 0o777).toString(8), '600', 'the memory file is 0600')
  from = Date.now()
  a = await startNetwork(t, dht.bootstrap, aKeys, { dir: aDir })
  upAt = Date.now()
  t.alike(ports(a.net), aPorts, 'the restarted a bound its old ports too')
  a.net.joinPeer(bKeys.publicKey)
  await connected(a.net, bKeys.publicKey, 'the restarted a reconnects to b at its remembered address, without any DHT node')
  t.pass(`the restarted a reconnected ${Date.now() - upAt} ms after it was up (it took ${upAt - from} ms to start without a DHT)`)
  t.ok((a.net.reconnectStatus()?.dials.probe ?? 0) >= 1, 'by a probe of the remembered address and a direct dial')
})

test('net memory: with ONE DHT node up, each node remembers the DHT server address the other states in its custody handshake (never a hole-punch socket); a restarted node reconnects', { timeout: 240_000 }, async (t) => {
  // On one loopback DHT node HyperDHT cannot classify NATs: every connection is hole-punched from
  // a throwaway socket, and the address a handshake of ours learns (serverAddress) is that socket.
  // The port each node states (custody handshake, minor 4) is its DHT server's: probes answer there.
  const { dht, aKeys, bKeys, aDir, bDir } = await oneDhtNode(t)
  const a = await startNetwork(t, dht.bootstrap, aKeys, { dir: aDir })
  let b = await startNetwork(t, dht.bootstrap, bKeys, { dir: bDir })
  // Both dial, as an agency and its embassy do.
  a.net.joinPeer(bKeys.publicKey)
  b.net.joinPeer(aKeys.publicKey)
  const aSeesB = await connected(a.net, bKeys.publicKey, 'a connects to b')
  const bSeesA = await connected(b.net, aKeys.publicKey, 'b connects to a')
  const bPort = portOf(b.net)
  t.is(aSeesB.handshake?.dhtPort, bPort, "b's handshake states its DHT server port")
  t.is(bSeesA.handshake?.dhtPort, portOf(a.net), "a's too")

  // b restarts in the same directory: its memory names a's DHT server, and it binds its old port.
  await b.stop()
  const bFile = readNetMemory(path.join(bDir, NET_MEMORY_FILE))
  t.is(bFile.data.peers.get(aKeys.publicKey.toString('hex'))?.port, portOf(a.net), "b remembered a's DHT server port")
  await eventually('a sees b lost', () => !a.net.connectedTo(bKeys.publicKey), MUST_RECONNECT_MS)
  b = await startNetwork(t, dht.bootstrap, bKeys, { dir: bDir })
  t.is(portOf(b.net), bPort, 'the restarted b bound its old port')
  b.net.joinPeer(aKeys.publicKey)
  await connected(a.net, bKeys.publicKey, 'a sees the restarted b')
  await connected(b.net, aKeys.publicKey, 'the restarted b sees a')
  t.pass('reconnected on one DHT node')

  // a's memory (written at close) names b's DHT server too, not a socket of a hole-punch.
  await b.stop()
  await a.stop()
  const aFile = readNetMemory(path.join(aDir, NET_MEMORY_FILE))
  t.alike(aFile.data.peers.get(bKeys.publicKey.toString('hex')), { host: '127.0.0.1', port: bPort }, "a remembered b's DHT server address")
})

test('net memory: a peer lying about its DHT port only misdirects our probes: they go unanswered, it is never dialled there, and the DHT reconnects it (nothing lost)', { timeout: 240_000 }, async (t) => {
  const bootstrap = await testnet(t)
  // A UDP socket that never answers: where the liar says its DHT listens.
  const silent = dgram.createSocket('udp4')
  let probes = 0
  silent.on('message', () => probes++)
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()))
  t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())), { order: 2 })
  const bogus = silent.address().port
  const root = await t.tmp()
  const aKeys = DHT.keyPair()
  const bKeys = DHT.keyPair()
  const aDir = path.join(root, 'a')
  const a = await startNetwork(t, bootstrap, aKeys, { dir: aDir })
  let b = await startNetwork(t, bootstrap, bKeys, { dir: path.join(root, 'b'), statedDhtPort: bogus })
  a.net.joinPeer(bKeys.publicKey)
  const first = await connected(a.net, bKeys.publicKey, 'a connects to the liar')
  t.is(first.handshake?.dhtPort, bogus, 'the liar states a port where no DHT listens')
  await b.stop()
  await eventually('a sees b lost', () => !a.net.connectedTo(bKeys.publicKey), MUST_RECONNECT_MS)
  await eventually('a probes the stated address (the only one it has)', () => probes > 0, MUST_RECONNECT_MS)
  b = await startNetwork(t, bootstrap, bKeys, { dir: path.join(root, 'b'), statedDhtPort: bogus })
  await connected(a.net, bKeys.publicKey, 'the DHT reconnects a to the restarted liar')
  t.is(a.net.reconnectStatus()?.dials.probe, 0, 'no dial ever went to the lying address (no probe there was answered)')
  await a.stop()
  const file = readNetMemory(path.join(aDir, NET_MEMORY_FILE))
  t.alike(file.data.peers.get(bKeys.publicKey.toString('hex')), { host: '127.0.0.1', port: bogus }, 'remembered only as where to probe, at the host its connection came from')
})

test('net memory: without a memory (as before), a restarted peer is NOT found once the only DHT node is gone', { timeout: 240_000 }, async (t) => {
  // The same scenario with no memory file: the baseline the fix is measured against. A restarted
  // node binds a random port; nothing else can tell the dialler where it went.
  await holdDefaultPorts(t)
  const dht = new LocalDHT({ port: 0, nodes: 1 })
  t.teardown(() => dht.close(), { order: 1 })
  await dht.ready()
  const root = await t.tmp()
  const aKeys = DHT.keyPair()
  const bKeys = DHT.keyPair()
  let b = await startNetwork(t, dht.bootstrap, bKeys, { dir: path.join(root, 'b'), memory: false })
  const a = await startNetwork(t, dht.bootstrap, aKeys, { dir: path.join(root, 'a'), memory: false })
  a.net.joinPeer(bKeys.publicKey)
  await connected(a.net, bKeys.publicKey, 'first connection')
  const bPort = portOf(b.net)
  await dht.close()
  await b.stop()
  await eventually('a sees b lost', () => !a.net.connectedTo(bKeys.publicKey), MUST_RECONNECT_MS)
  b = await startNetwork(t, dht.bootstrap, bKeys, { dir: path.join(root, 'b'), memory: false })
  t.not(portOf(b.net), bPort, 'without a memory the restarted node binds another port')
  // Bounded wait for something that must NOT happen: a's probes go to the dead port.
  await new Promise((r) => setTimeout(r, 8000))
  t.is(a.net.connectedTo(bKeys.publicKey), null, 'not reconnected after 8 s (today: never, without a DHT node)')
})

test('net memory: a damaged, tampered or foreign memory file is ignored with a reason, and the node starts and rewrites it', { timeout: 120_000 }, async (t) => {
  const dht = new LocalDHT({ port: 0, nodes: 1 })
  t.teardown(() => dht.close(), { order: 1 })
  await dht.ready()
  const root = await t.tmp()
  const cases: Array<[string, string | Buffer]> = [
    ['not JSON', '{"version":1,"serverPort":'],
    ['not JSON', Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x22])],
    ['unknown version', JSON.stringify({ version: 99, serverPort: 1234 })],
    ['bad port', JSON.stringify({ version: 1, serverPort: 70_000 })],
    ['bad port', JSON.stringify({ version: 1, serverPort: '1234' })],
    ['bad peer entry', JSON.stringify({ version: 1, serverPort: 0, peers: { [A]: '10.0.0.1:0' } })],
    ['bad peer entry', JSON.stringify({ version: 1, serverPort: 0, peers: { [A]: '999.0.0.1:80' } })],
    ['bad peer entry', JSON.stringify({ version: 1, serverPort: 0, peers: { 'not-a-key': '10.0.0.1:80' } })],
    ['bad peer entry', JSON.stringify({ version: 1, serverPort: 0, peers: { [A]: { host: '10.0.0.1', port: 80 } } })],
    ['peers is not an object', JSON.stringify({ version: 1, peers: [] })],
    ['not an object', '[1,2,3]'],
    ['too large', Buffer.alloc(MAX_NET_MEMORY_BYTES + 1, 0x20)]
  ]
  for (const [i, [reason, content]] of cases.entries()) {
    const dir = path.join(root, `n${i}`)
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, NET_MEMORY_FILE), content)
    const n = await startNetwork(t, dht.bootstrap, DHT.keyPair(), { dir })
    t.ok(n.errors.length === 1 && n.errors[0]!.startsWith('ignored: ') && n.errors[0]!.includes(reason), `${reason}: ignored and said (${n.errors[0]})`)
    const again = readNetMemory(path.join(dir, NET_MEMORY_FILE))
    t.ok(again.ignored === null && again.data.serverPort === portOf(n.net), `${reason}: the node started and rewrote a valid file (${again.ignored} ${again.data.serverPort} ${portOf(n.net)})`)
    await n.stop()
  }
  // A directory where the file should be: ignored, the node starts (nothing can be written there).
  const dir = path.join(root, 'dir')
  fs.mkdirSync(path.join(dir, NET_MEMORY_FILE), { recursive: true })
  const n = await startNetwork(t, dht.bootstrap, DHT.keyPair(), { dir })
  t.ok(n.errors.some((e) => e.includes('not a regular file')), 'a directory instead of the file: ignored and said')
  t.ok(n.errors.some((e) => e.startsWith('not written')), 'and the write failure is said too, not thrown')
  t.ok(n.net.opened, 'the node runs')
})

test('net memory: a remembered port that is busy: another is bound and said (port-changed)', { timeout: 120_000 }, async (t) => {
  const dht = new LocalDHT({ port: 0, nodes: 1 })
  t.teardown(() => dht.close(), { order: 1 })
  await dht.ready()
  const dir = path.join(await t.tmp(), 'n')
  const keys = DHT.keyPair()
  const first = await startNetwork(t, dht.bootstrap, keys, { dir })
  const port = portOf(first.net)
  await first.stop()
  // Someone else took the port meanwhile.
  const squatter = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    squatter.once('error', reject)
    squatter.bind(port, '0.0.0.0', () => resolve())
  })
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())))
  const second = await startNetwork(t, dht.bootstrap, keys, { dir })
  t.not(portOf(second.net), port, 'another port bound')
  t.alike(second.portChanges, [[port, portOf(second.net)]], 'port-changed says which (remembered → bound)')
  t.is(readNetMemory(path.join(dir, NET_MEMORY_FILE)).data.serverPort, portOf(second.net), 'and the new one is remembered')
})

test('net memory: bounded, written only on change, atomically, 0600; the most recent addresses kept', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, NET_MEMORY_FILE)
  const m = new NetMemory(file, { maxPeers: 3 })
  t.is(m.load().ignored, null, 'no file yet: an empty memory, nothing said')
  m.setPeer(A, { host: '10.0.0.1', port: 4000 })
  m.setPeer('x'.repeat(64), { host: '10.0.0.1', port: 4000 })
  m.setPeer(B, { host: '::1', port: 4000 })
  m.setPeer(B, { host: '0.0.0.0', port: 4000 })
  t.is(m.data.peers.size, 1, 'a non-hex key, an IPv6 or unspecified host: not remembered (the file could not hold them)')
  for (let i = 0; i < 5; i++) m.setPeer(i.toString(16).repeat(64), { host: '10.0.0.2', port: 5000 + i })
  m.flush()
  const read = readNetMemory(file, 3)
  t.is(read.data.peers.size, 3, 'bounded')
  t.alike(read.data.peers.get('4'.repeat(64)), { host: '10.0.0.2', port: 5004 }, 'the most recent kept')
  t.absent(read.data.peers.has(A), 'the oldest forgotten')
  t.is((fs.statSync(file).mode & 0o777).toString(8), '600', '0600')
  t.alike(fs.readdirSync(dir), [NET_MEMORY_FILE], 'no temp file left beside it')
  fs.rmSync(file)
  m.setPeer('4'.repeat(64), { host: '10.0.0.2', port: 5004 })
  m.flush()
  t.absent(fs.existsSync(file), 'the same address again: nothing written (never per packet, never per reconnection)')
  m.setPeer('4'.repeat(64), { host: '10.0.0.2', port: 5005 })
  m.close()
  t.is(readNetMemory(file, 3).data.peers.get('4'.repeat(64))?.port, 5005, 'a changed address is written (at close at the latest)')
})
