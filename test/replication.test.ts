import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Agency, Embassy, Mirror, Network, NodeHost, EmbassyError, toZ32, type Daemon } from '../lib/index.js'
import { eventually, makeTree, readTree } from './helpers.js'
import { initDir, startDaemon, testnet } from './network-helpers.js'

const MARKER = 'PLAINTEXT-MARKER-7f3a9c'

interface Cluster {
  bootstrap: string[]
  agencyDir: string
  agency: Daemon
  src: string
}

/** An agency daemon with a log (records carrying MARKER) and a files dataset. */
async function agencyWithData(t: test.Assert): Promise<Cluster> {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agency = await startDaemon(t, agencyDir, bootstrap)
  const a = (await agency.host.agency()) as Agency
  await a.createDataset('register')
  await a.append('register', Array.from({ length: 50 }, (_, i) => ({ i, owner: `${MARKER}-${i}` })))
  await a.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 512 * 1024)
  fs.writeFileSync(path.join(src, 'marker.txt'), MARKER.repeat(100))
  await a.publish('laws', src)
  return { bootstrap, agencyDir, agency, src }
}

async function pairEmbassy(t: test.Assert, c: Cluster, name: string): Promise<Daemon> {
  const dir = await initDir(t, 'embassy', name)
  const daemon = await startDaemon(t, dir, c.bootstrap)
  const embassy = (await daemon.host.embassy()) as Embassy
  const agency = (await c.agency.host.agency()) as Agency
  await agency.node.ready()
  c.agency.host.node.updateConfig((cfg) => cfg.allow.push(toZ32(daemon.host.node.nodeKey)))
  c.agency.network?.readmit(daemon.host.node.nodeKey)
  await embassy.follow(toZ32(c.agency.host.node.nodeKey))
  return daemon
}

/** True when the embassy holds every core of the agency at the agency's length. */
async function holdsAll(agencyDaemon: Daemon, embassyDaemon: Daemon): Promise<boolean> {
  const agency = (await agencyDaemon.host.agency()) as Agency
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  const want = new Map<string, number>()
  want.set(toZ32(agency.catalog.key), agency.catalog.core.length)
  for (const info of await agency.datasets.infos()) {
    const ds = await agency.datasets.open(info)
    if ('drive' in ds) {
      want.set(toZ32(ds.drive.core.key!), ds.drive.core.length)
      const blobs = await ds.drive.getBlobs()
      want.set(toZ32(blobs!.core.key!), blobs!.core.length)
    } else {
      want.set(toZ32(ds.core.key!), ds.core.length)
    }
  }
  const held = new Map(embassy.holdings().flatMap((h) => h.cores.map((c) => [c.key, c.contiguousLength] as const)))
  for (const [k, len] of want) if (held.get(k) !== len) return false
  return true
}

function dirContains(dir: string, needle: string): string[] {
  const hits: string[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const full = path.join(e.parentPath, e.name)
    if (fs.readFileSync(full).includes(needle)) hits.push(full)
  }
  return hits
}

test('replication: an embassy holds everything live; new datasets are picked up without a command', async (t) => {
  const c = await agencyWithData(t)
  const emb = await pairEmbassy(t, c, 'embassy-a')
  await eventually('embassy holds everything', () => holdsAll(c.agency, emb))
  t.pass('initial catch-up complete')

  const agency = (await c.agency.host.agency()) as Agency
  await agency.append('register', [{ live: true }])
  await eventually('live append reaches the embassy', () => holdsAll(c.agency, emb), 10_000)
  t.pass('live append held')

  await agency.createDataset('budget')
  await agency.append('budget', [{ line: 1 }, { line: 2 }])
  await eventually('new dataset picked up', () => holdsAll(c.agency, emb), 10_000)
  const embassy = (await emb.host.embassy()) as Embassy
  t.is(embassy.holdings()[0]?.cores.length, 1 + 1 + 2 + 1, 'catalog + register + laws(2) + budget')
  t.ok(embassy.node.config.follow[0]?.catalogKey, 'catalog key learnt and persisted')
})

test('replication: blind embassy storage holds no plaintext; a mirror reads everything with the agency gone', async (t) => {
  const c = await agencyWithData(t)
  const embA = await pairEmbassy(t, c, 'embassy-a')
  const embB = await pairEmbassy(t, c, 'embassy-b')
  await eventually('embassy A holds everything', () => holdsAll(c.agency, embA))
  await eventually('embassy B holds everything', () => holdsAll(c.agency, embB))

  // positive control: the scan finds the marker where it is stored in the clear
  t.ok(dirContains(c.src, MARKER).length > 0, 'scan finds plaintext where it is')
  t.alike(dirContains(embA.host.node.dir, MARKER), [], 'embassy A: no plaintext')
  t.alike(dirContains(embB.host.node.dir, MARKER), [], 'embassy B: no plaintext')

  const capability = ((await c.agency.host.agency()) as Agency).capability()
  await c.agency.close()

  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const mirrorDaemon = await startDaemon(t, mirrorDir, c.bootstrap)
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  for (const emb of [embA, embB]) {
    emb.host.node.updateConfig((cfg) => cfg.allow.push(toZ32(mirrorDaemon.host.node.nodeKey)))
    emb.network?.readmit(mirrorDaemon.host.node.nodeKey)
  }
  await mirror.add(capability)
  const records: string[] = []
  for await (const r of mirror.read('register')) records.push(r.text)
  t.is(records.length, 50)
  t.ok(records[49]?.includes(`${MARKER}-49`), 'decrypted')
  const out = path.join(await t.tmp(), 'out')
  await eventually('files replicated', async () => {
    await mirror.export('laws', out)
    return true
  }, 30_000, 500)
  t.alike(readTree(out), readTree(c.src), 'files byte-identical through the embassies')

  // one embassy down too: a fresh mirror reads through the other
  await embA.close()
  const m2Dir = await initDir(t, 'mirror', 'mirror-2')
  const m2Daemon = await startDaemon(t, m2Dir, c.bootstrap)
  embB.host.node.updateConfig((cfg) => cfg.allow.push(toZ32(m2Daemon.host.node.nodeKey)))
  embB.network?.readmit(m2Daemon.host.node.nodeKey)
  const m2 = (await m2Daemon.host.mirror()) as Mirror
  await m2.add(capability)
  let n = 0
  for await (const _ of m2.read('register')) n++
  t.is(n, 50, 'second mirror reads every record through embassy B alone')
})

test('replication: an embassy restarted mid-way resumes without re-downloading', async (t) => {
  const c = await agencyWithData(t)
  const agency = (await c.agency.host.agency()) as Agency
  const N = 10_000
  await agency.createDataset('bulk')
  const blob = 'x'.repeat(8000)
  for (let i = 0; i < N; i += 2000) await agency.append('bulk', Array.from({ length: 2000 }, (_, j) => ({ i: i + j, blob })))
  const bulk = await agency.datasets.openLog('bulk')
  const bulkKey = toZ32(bulk.core.key!)
  const stats = (bulk.core as unknown as { replicator: { stats: { wireData: { tx: number } } } }).replicator.stats.wireData
  const emb = await pairEmbassy(t, c, 'embassy-a')
  const embDir = emb.host.node.dir
  const heldBulk = (e: Embassy) => e.holdings()[0]?.cores.find((x) => x.key === bulkKey)?.contiguousLength ?? 0
  await eventually('some blocks arrived', async () => heldBulk((await emb.host.embassy()) as Embassy) > 100, 20_000, 2)
  await emb.close()

  // Every block the embassy stored (downloads run in parallel: not only a prefix), network off.
  const offline = new NodeHost(embDir)
  await offline.ready()
  const core = offline.node.store.get({ key: bulk.core.key! })
  await core.ready()
  let held = 0
  for (let i = 0; i < N; i++) if (await core.has(i)) held++
  await core.close()
  await offline.close()
  t.ok(held > 0 && held < N, `stopped mid-way, holding ${held} of ${N} blocks`)

  // From now on the agency may send only what is missing.
  const sentBefore = stats.tx
  const reopened = await startDaemon(t, embDir, c.bootstrap)
  await eventually('embassy completes after restart', () => holdsAll(c.agency, reopened), 60_000)
  t.is(heldBulk((await reopened.host.embassy()) as Embassy), N)
  const sent = stats.tx - sentBefore
  const missing = N - held
  t.ok(sent >= missing && sent <= missing + 50, `sent ${sent} data messages for ${missing} missing blocks: the ${held} held were not sent again`)
})

/** Blocks the embassy holds contiguously, over every core. */
async function embassyHeldBlocks(d: Daemon): Promise<number> {
  const e = (await d.host.embassy()) as Embassy
  let n = 0
  for (const hold of e.holdings()) for (const c of hold.cores) n += c.contiguousLength
  return n
}

test('hostile: a peer not on the allowlist is refused; no bootstrap refuses to start', async (t) => {
  const c = await agencyWithData(t)
  const strangerDir = await initDir(t, 'embassy', 'stranger')
  const stranger = await startDaemon(t, strangerDir, c.bootstrap)
  const refused: string[] = []
  c.agency.network!.on('refused', (k) => refused.push(toZ32(k)))
  await ((await stranger.host.embassy()) as Embassy).follow(toZ32(c.agency.host.node.nodeKey))
  await eventually('agency refuses the stranger', () => refused.includes(toZ32(stranger.host.node.nodeKey)), 15_000)
  t.absent(c.agency.network!.connectedTo(stranger.host.node.nodeKey), 'not connected')
  const holdings = ((await stranger.host.embassy()) as Embassy).holdings()
  t.is(holdings[0]?.catalogKey, null, 'learnt nothing')

  t.exception(() => new Network({ keyPair: c.agency.host.node.keyPair, bootstrap: [], store: c.agency.host.node.store, handshake: () => { throw new Error('x') }, isAllowed: () => true }), /NO_BOOTSTRAP/)
  const idle = await initDir(t, 'embassy', 'idle')
  const { Daemon: D } = await import('../lib/index.js')
  const d = new D({ dir: idle })
  await t.exception(d.ready(), /NO_BOOTSTRAP/)
  await d.close().catch(() => {})
  t.ok(EmbassyError)
})

test('hostile: a mirror with a wrong read key gets a clear error', async (t) => {
  const c = await agencyWithData(t)
  const agency = (await c.agency.host.agency()) as Agency
  const { formatReadCapability, parseReadCapability } = await import('../lib/index.js')
  const cap = parseReadCapability(agency.capability())
  const wrong = formatReadCapability({ ...cap, readKey: Buffer.alloc(32, 7) })
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const m = await startDaemon(t, mirrorDir, c.bootstrap)
  c.agency.host.node.updateConfig((cfg) => cfg.allow.push(toZ32(m.host.node.nodeKey)))
  c.agency.network?.readmit(m.host.node.nodeKey)
  const mirror = (await m.host.mirror()) as Mirror
  await mirror.add(wrong)
  await t.exception(mirror.list(), /WRONG_READ_KEY/)
})
