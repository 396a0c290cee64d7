/**
 * Limits on what a peer or a hostile agency can make a node hold: cores per catalog entry and per
 * agency (refused before anything is opened, and reported), custody handshakes checked for size
 * before decoding, and a bounded memory of refused peers.
 */
import crypto from 'node:crypto'
import path from 'node:path'
import test from 'brittle'
import c from 'compact-encoding'
import Corestore from 'corestore'
import DHT from 'hyperdht'
import { Catalog } from '../lib/data/catalog.js'
import { Holder } from '../lib/roles/holder.js'
import { Network } from '../lib/net/network.js'
import { CustodyChannel } from '../lib/index.js'
import { CatalogType, CUSTODY_MINOR, DatasetKind, KEY_CHECK_BYTES, PeerRole, catalogBlock, encode, handshake as handshakeCodec, type Codec } from '../protocol/index.js'
import { eventually, muxPair, testnet, type Test } from './helpers/index.js'

const raw = c.raw as unknown as Codec<Buffer>
const hello = { major: 1, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] }

/** A Corestore in a temporary folder, closed at teardown. */
async function store(t: Test): Promise<Corestore> {
  const s = new Corestore(path.join(await t.tmp(), 'store'))
  t.teardown(() => s.close())
  await s.ready()
  return s
}

/** A writable catalog core with its header, as a hostile agency would have. */
async function catalogCore(s: Corestore) {
  const core = s.get({ name: 'catalog' })
  await core.ready()
  await Catalog.writeHeader(core, { agencyNodeKey: crypto.randomBytes(32), keyCheck: crypto.randomBytes(KEY_CHECK_BYTES), meta: Buffer.alloc(0) })
  return core
}

function entry(kind: number, cores: number): Buffer {
  return encode(catalogBlock, {
    type: CatalogType.ADD,
    id: crypto.randomBytes(16),
    kind,
    cores: Array.from({ length: cores }, () => crypto.randomBytes(32)),
    meta: Buffer.alloc(0)
  })
}

test('limits: a catalog entry listing hundreds of cores is refused before any is opened, and reported', async (t) => {
  const s = await store(t)
  const core = await catalogCore(s)
  await core.append(entry(DatasetKind.LOG, 500))
  await core.append(entry(DatasetKind.LOG, 1))
  const holder = new Holder(s, core.key!)
  t.teardown(() => holder.close())
  await holder.open()
  t.is(holder.cores.size, 1, 'only the well-formed entry\'s core is opened (not 500 more)')
  const problems = holder.catalog.problems
  t.ok(problems.some((p) => p.seq === 1 && /500 cores/.test(p.error)), `reported: ${problems.map((p) => p.error).join('; ')}`)
})

test('limits: an agency over its cap of cores: later entries are skipped and reported, never silently', async (t) => {
  const s = await store(t)
  const core = await catalogCore(s)
  for (let i = 0; i < 3; i++) await core.append(entry(DatasetKind.LOG, 1))
  await core.append(entry(DatasetKind.FILES, 2))
  const catalog = new Catalog(core, { maxCores: 4 })
  const list = await catalog.datasets(null, { includeRetired: true })
  t.is(list.length, 3, 'the entry that would go over 4 cores is skipped')
  t.is((await catalog.coreKeys()).length, 3)
  t.ok(catalog.problems.some((p) => p.seq === 4 && /more than 4 cores/.test(p.error)), 'and reported as a catalog problem')
  await catalog.datasets(null)
  t.is(catalog.problems.filter((p) => p.seq === 4).length, 1, 'reported once, however often it is read')
})

test('limits: a huge custody handshake is refused by its size, before it is decoded', async (t) => {
  const { a, b, ma, mb } = muxPair(t)
  const ours = new CustodyChannel(ma, hello)
  const bad = mb.createChannel({ protocol: 'data-embassy/custody/1', handshake: raw, onopen() {} })!
  ours.open()
  // Well-formed, but 300 KB of capability names: decodable, and far over any real handshake.
  bad.open(encode(handshakeCodec, { ...hello, capabilities: Array.from({ length: 300 }, () => 'x'.repeat(1000)) }))
  await eventually('handshake judged', () => ours.closed || ours.remote, 10_000, 5)
  t.is(ours.remote, null, 'not accepted')
  t.is(ours.invalidMessages, 1)
  t.absent(a.destroyed || b.destroyed, 'the connection stays')
})

test('limits: refused peers are remembered up to a bound; the oldest are forgotten', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const s = await store(t)
  const network = new Network({
    keyPair: DHT.keyPair(),
    bootstrap: bootstrap.map((b) => ({ host: b.split(':')[0]!, port: Number(b.split(':')[1]) })),
    store: s,
    handshake: () => hello,
    isAllowed: () => false,
    maxRefusedPeers: 2,
    host: '127.0.0.1'
  })
  t.teardown(() => network.close(), { order: 0 })
  await network.ready()
  let refused = 0
  network.on('refused', () => refused++)
  const client = new DHT({ bootstrap: bootstrap.map((b) => ({ host: b.split(':')[0]!, port: Number(b.split(':')[1]) })) } as ConstructorParameters<typeof DHT>[0])
  t.teardown(() => client.destroy(), { order: 0 })
  for (let i = 0; i < 5; i++) {
    const socket = client.connect(network.swarm.keyPair.publicKey, { keyPair: DHT.keyPair() })
    socket.on('error', () => {})
    await eventually(`attempt ${i + 1} refused`, () => refused === i + 1, 30_000)
    socket.destroy()
  }
  const banned = [...network.swarm.peers.values()].filter((p) => p.banned).length
  t.is(banned, 2, `banned entries kept: ${banned} of 5 refused`)
  t.is(network.refusedPeers, 2)
})
