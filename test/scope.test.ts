/**
 * Who may see what on the wire (issue 14 items 6 and 7, issue 15 items 1 and 13):
 * outgoing dials are admitted like incoming ones, replication is scoped per connection to the
 * catalogs a peer is entitled to, the handshake names only those, a restarted holder is never
 * banned for good, and a dead peer shows as lost within the keep-alive window.
 */
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
import type Hypercore from 'hypercore'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { EmbassyNode, agencyTopic, parseHostPort, readConfig, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { writeConfig } from '../lib/node/config.js'
import { CONNECTION_TIMEOUT_MS } from '../lib/net/network.js'
import { allow, eventually, initDir, pair, spawnRun, startDaemon, testnet, type Test } from './helpers/index.js'

/** How long a request a peer must refuse is given before we call it refused (a served one takes ms). */
const REFUSED_WITHIN_MS = 3000

async function agencyWithRecords(t: Test, bootstrap: string[], name: string, records: number): Promise<{ daemon: Daemon; agency: Agency; registerKey: Buffer }> {
  const daemon = await startDaemon(t, await initDir(t, 'agency', name), bootstrap)
  const agency = (await daemon.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: records }, (_, i) => ({ i, agency: name })))
  const log = await agency.datasets.openLog('register')
  return { daemon, agency, registerKey: Buffer.from(log.core.key!) }
}

/** A mirror's held copy of `coreKey` (its holder's session), once it holds it. */
function heldCore(mirror: Mirror, coreKey: Buffer): Hypercore | null {
  for (const s of mirror.sources.values()) {
    const core = s.holder.find(coreKey)
    if (core) return core
  }
  return null
}

/**
 * A stranger: its own Corestore and swarm on the test DHT, announcing `topic` (so that a node
 * looking the topic up finds it), replicating its whole store with whoever connects.
 */
async function stranger(t: Test, bootstrap: string[], topic: Buffer): Promise<{ store: Corestore; swarm: Hyperswarm; key: Buffer; connections: Set<string> }> {
  const store = new Corestore(path.join(await t.tmp(), 'stranger'))
  const dht = new DHT({ bootstrap: bootstrap.map((b) => parseHostPort(b)) } as ConstructorParameters<typeof DHT>[0])
  const swarm = new Hyperswarm({ dht, keyPair: DHT.keyPair() })
  const connections = new Set<string>()
  swarm.on('connection', (conn: NoiseSecretStream) => {
    conn.on('error', () => {})
    const remote = Buffer.from(conn.remotePublicKey!).toString('hex')
    connections.add(remote)
    conn.on('close', () => connections.delete(remote))
    store.replicate(conn)
  })
  t.teardown(async () => {
    // Not `force`: that skips destroying the topic's discovery, whose 10-minute refresh timer
    // would keep the process alive.
    await swarm.destroy()
    await dht.destroy()
    await store.close()
  }, { order: 0 })
  await swarm.join(topic, { server: true, client: false }).flushed()
  return { store, swarm, key: Buffer.from(swarm.keyPair.publicKey), connections }
}

/** True when `core` hears from a peer (by node key) that it has `length` blocks. */
function peerSays(core: Hypercore, nodeKey: Buffer, length: number): boolean {
  return core.peers.some((p) => Buffer.from(p.remotePublicKey).equals(nodeKey) && p.remoteLength >= length)
}

test('scope: a stranger on the agency topic gets no block from a mirror; once allowed, it does', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { daemon: agencyDaemon, agency } = await agencyWithRecords(t, bootstrap, 'agency', 20)
  const catalogKey = Buffer.from(agency.catalogKey)
  // The stranger announces on the agency's topic (its key is public) before the mirror looks it up.
  const s = await stranger(t, bootstrap, agencyTopic(catalogKey))
  const core = s.store.get({ key: catalogKey })
  await core.ready()
  const mirrorDaemon = await startDaemon(t, await initDir(t, 'mirror'), bootstrap)
  await pair(agencyDaemon, mirrorDaemon)
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  const catalogLength = agency.catalog.core.length
  await eventually('the mirror holds the catalog and the register', () => {
    const s = mirror.sourceStatus()[0]
    return s && s.complete && s.cores.length === 2 && s.cores.every((c) => c.length > 0)
  }, 60_000)
  // The agency is gone (it never served the stranger anyway): whatever it gets comes from the mirror.
  await agencyDaemon.close()
  const mirrorKey = mirrorDaemon.host.node.nodeKey
  // The mirror connects (it reads from holders found on its topic) and tells its length...
  await eventually('the mirror and the stranger exchange the catalog core', () => peerSays(core, mirrorKey, catalogLength), 90_000)
  const peer = mirrorDaemon.network!.connectionTo(s.key)
  t.ok(peer, 'connected to the stranger')
  t.absent(mirrorDaemon.network!.connectedTo(s.key), 'no custody handshake with it (it does not speak our protocol)')
  t.alike(peer!.catalogs, [], 'our handshake named no catalog to the stranger')
  const scope = mirrorDaemon.network!.scopeOf(peer!)
  t.alike(scope?.catalogs, [], 'the stranger is entitled to nothing')
  t.alike(scope?.downloadOnly.map((k) => toZ32(k)), [toZ32(catalogKey)], 'the mirror only downloads from it')
  // ...but serves no block of it.
  await t.exception(core.get(0, { timeout: REFUSED_WITHIN_MS }), /REQUEST_TIMEOUT|timed out/i, 'block 0 is refused')
  t.is(core.contiguousLength, 0, 'the stranger holds no block')

  // Positive control: the same request succeeds once the mirror's operator allows the stranger.
  mirror.allow(s.key)
  const block = await core.get(0, { timeout: 60_000 })
  t.ok(block && block.byteLength > 0, 'allowed: the same request is served')
})

test('scope: a denied mirror gets no new data from another mirror', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { daemon: agencyDaemon, agency, registerKey } = await agencyWithRecords(t, bootstrap, 'agency', 20)
  // m2 reads the agency through m1 only (the agency never allowed it); it is on the topic first,
  // so m1's lookup finds it.
  const m2Daemon = await startDaemon(t, await initDir(t, 'mirror', 'm2'), bootstrap)
  const m2 = (await m2Daemon.host.mirror()) as Mirror
  await m2.add(agency.capability())
  const m1Daemon = await startDaemon(t, await initDir(t, 'mirror', 'm1'), bootstrap)
  await pair(agencyDaemon, m1Daemon)
  const m1 = (await m1Daemon.host.mirror()) as Mirror
  m1.allow(m2Daemon.host.node.nodeKey)
  await eventually('m2 holds 20 records through m1', () => heldCore(m2, registerKey)?.contiguousLength === 20, 90_000)
  t.pass('allowed: m1 serves m2')

  m1.deny(m2Daemon.host.node.nodeKey)
  await agency.append('register', [{ i: 20 }, { i: 21 }, { i: 22 }])
  await eventually('m1 holds the new records', () => heldCore(m1, registerKey)?.contiguousLength === 23, 60_000)
  const m2core = heldCore(m2, registerKey)!
  // m1 still connects to m2 (found on the topic) and says it has 23 blocks...
  await eventually('m2 hears from m1 that it has 23 blocks', () => peerSays(m2core, m1Daemon.host.node.nodeKey, 23), 90_000)
  t.absent(m2Daemon.network!.connectedTo(agencyDaemon.host.node.nodeKey), 'm2 is not connected to the agency')
  // ...and serves none of them.
  await t.exception(m2core.get(22, { timeout: REFUSED_WITHIN_MS }), /REQUEST_TIMEOUT|timed out/i, 'a new block is refused')
  t.is(m2core.contiguousLength, 20, 'm2 got nothing new')
  const scope = m1Daemon.network!.scopeOf(m1Daemon.network!.connectionTo(m2Daemon.host.node.nodeKey)!)
  t.alike(scope?.catalogs, [], 'm1 entitles the denied m2 to nothing')
})

test('scope: a mirror of agency A on an embassy holding A and B never sees B (key or cores)', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const a = await agencyWithRecords(t, bootstrap, 'agency-a', 10)
  const b = await agencyWithRecords(t, bootstrap, 'agency-b', 10)
  const embassyDaemon = await startDaemon(t, await initDir(t, 'embassy'), bootstrap)
  await pair(a.daemon, embassyDaemon)
  await pair(b.daemon, embassyDaemon)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  await eventually('the embassy holds both agencies', () => embassy.holdings().length === 2 && embassy.holdings().every((h) => h.complete && h.cores.length === 2 && h.cores[1]!.length === 10), 90_000)
  const catalogA = Buffer.from(a.agency.catalogKey)
  const catalogB = Buffer.from(b.agency.catalogKey)

  const mirrorDaemon = await startDaemon(t, await initDir(t, 'mirror'), bootstrap)
  const mirrorKey = mirrorDaemon.host.node.nodeKey
  // An unscoped allow on an embassy holding two agencies says what it means.
  t.ok(embassy.allow(mirrorKey).warning, 'an unscoped allow warns: the peer would see every agency held')
  const scoped = embassy.allow(mirrorKey, { agency: a.daemon.host.node.nodeKey })
  t.alike(scoped.scope?.map(toZ32), [toZ32(a.daemon.host.node.nodeKey)], 'scoped to agency A')
  t.alike(readConfig(embassyDaemon.host.node.dir).allowScopes, { [toZ32(mirrorKey)]: [toZ32(a.daemon.host.node.nodeKey)] }, 'the scope is persisted')
  t.exception(() => embassy.allow(mirrorKey, { agency: Buffer.alloc(32, 7) }), /UNKNOWN_AGENCY/, 'a scope to an agency not held is refused')
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  await mirror.add(a.agency.capability())
  // Both agencies go: the mirror reads A through the embassy only.
  await a.daemon.close()
  await b.daemon.close()
  await eventually('the mirror holds A through the embassy', () => heldCore(mirror, a.registerKey)?.contiguousLength === 10, 90_000)

  const embassyPeer = mirrorDaemon.network!.connectedTo(embassyDaemon.host.node.nodeKey)
  t.ok(embassyPeer?.handshake, 'connected to the embassy')
  const named = (embassyPeer!.handshake!.catalogs ?? []).map((k) => toZ32(k))
  t.alike(named, [toZ32(catalogA)], 'the embassy named only catalog A')
  const mirrorPeer = embassyDaemon.network!.connectedTo(mirrorKey)!
  t.alike(embassyDaemon.network!.scopeOf(mirrorPeer)?.catalogs.map((k) => toZ32(k)), [toZ32(catalogA)], 'the embassy replicates only A with it')

  // An attacker who learnt B's keys elsewhere asks for B's cores on this very connection.
  const conn = (embassyPeer!.conn as unknown as NoiseSecretStream)
  const store = mirrorDaemon.host.node.store
  for (const key of [catalogB, b.registerKey]) {
    const core = store.get({ key })
    await core.ready()
    core.replicate(conn as unknown as Parameters<Hypercore['replicate']>[0])
    await t.exception(core.get(0, { timeout: REFUSED_WITHIN_MS }), /REQUEST_TIMEOUT|timed out/i, `B's ${key.equals(catalogB) ? 'catalog' : 'register'} core is not served`)
    t.is(core.contiguousLength, 0)
    await core.close()
  }
  // Positive control: asked the same way, a core of A is served.
  const aCore = store.get({ key: a.registerKey })
  await aCore.ready()
  aCore.replicate(conn as unknown as Parameters<Hypercore['replicate']>[0])
  t.ok(await aCore.get(9, { timeout: 30_000 }), "A's register is served on the same connection")
  await aCore.close()
})

test('scope: a running mirror reconnects to a restarted embassy, admitted both ways (no permanent ban)', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { daemon: agencyDaemon, agency, registerKey } = await agencyWithRecords(t, bootstrap, 'agency', 10)
  const embassyDir = await initDir(t, 'embassy')
  let embassyDaemon = await startDaemon(t, embassyDir, bootstrap)
  await pair(agencyDaemon, embassyDaemon)
  const embassyKey = embassyDaemon.host.node.nodeKey
  const mirrorDaemon = await startDaemon(t, await initDir(t, 'mirror'), bootstrap)
  await pair(agencyDaemon, mirrorDaemon)
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  // The embassy's operator admits the mirror; the mirror admits the embassy because the agency lists it.
  await allow(embassyDaemon, mirrorDaemon)
  await eventually('the agency lists its embassy to the mirror', () => mirrorDaemon.host.node.config.sources[0]?.holders?.includes(toZ32(embassyKey)), 60_000)
  t.ok(mirror.isAllowed(embassyKey), 'a listed holder is admitted')
  await eventually('mirror and embassy connected', () => mirrorDaemon.network!.connectedTo(embassyKey), 60_000)
  await eventually('the mirror holds the register', () => heldCore(mirror, registerKey)?.contiguousLength === 10, 60_000)
  const catalog = toZ32(agency.catalogKey)
  await agencyDaemon.close()

  await embassyDaemon.close()
  await eventually('the mirror saw the embassy go', () => !mirrorDaemon.network!.connectedTo(embassyKey), 30_000)
  const restarted = Date.now()
  embassyDaemon = await startDaemon(t, embassyDir, bootstrap)
  const peer = await eventually('the mirror reconnects to the restarted embassy', () => mirrorDaemon.network!.connectedTo(embassyKey), 90_000)
  const ms = Date.now() - restarted
  t.comment(`reconnected ${ms} ms after the embassy restarted`)
  t.ok(ms < 60_000, 'within a minute on a loaded machine (never, before: the refused key stayed banned)')
  const scope = mirrorDaemon.network!.scopeOf(peer)
  t.alike(scope?.catalogs.map((k) => toZ32(k)), [catalog], 'the listed holder is entitled both ways, not download-only')
  t.alike(embassyDaemon.network!.peers.size > 0, true, 'the embassy sees the mirror')
})

test('scope: a killed peer shows connected:false within the keep-alive window', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const embassyDaemon = await startDaemon(t, await initDir(t, 'embassy'), bootstrap)
  const agencyDir = path.join(await t.tmp(), 'agency')
  const id = await EmbassyNode.init(agencyDir, { role: 'agency', name: 'agency' })
  writeConfig(agencyDir, { ...readConfig(agencyDir), allow: [toZ32(embassyDaemon.host.node.nodeKey)] })
  const proc = await spawnRun(t, agencyDir, bootstrap)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  await embassy.follow(id.nodeKey)
  await eventually('the embassy is connected to the agency', () => embassy.holdings()[0]?.connected && embassy.holdings()[0]?.catalogKey, 60_000)

  const lost = new Promise<number>((resolve) => {
    embassyDaemon.network!.on('peer-lost', (p) => {
      if (toZ32(p.key) === id.nodeKey) resolve(Date.now())
    })
  })
  const killed = Date.now()
  await proc.kill()
  const ms = (await lost) - killed
  t.comment(`lost ${ms} ms after kill -9 (connection timeout ${CONNECTION_TIMEOUT_MS} ms)`)
  t.is(embassy.holdings()[0]?.connected, false, 'status says connected: false')
  // Before: 13–17 s (Hyperdht's 5 s keep-alive, then UDX giving up). Generous for a loaded machine.
  t.ok(ms < 12_000, `lost within 12 s (${ms} ms)`)
})
