import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Agency, Embassy, Mirror, Network, NodeHost, EmbassyError, toZ32, type Daemon } from '../lib/index.js'
import { eventually, initDir, makeTree, pair, readTree, startDaemon, testnet } from './helpers/index.js'

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
  const daemon = await startDaemon(t, await initDir(t, 'embassy', name), c.bootstrap)
  await pair(c.agency, daemon)
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
  await pair(embA, mirrorDaemon, { capability })
  await pair(embB, mirrorDaemon)
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
  await pair(embB, m2Daemon, { capability })
  const m2 = (await m2Daemon.host.mirror()) as Mirror
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
  const bulkHex = bulk.core.key!.toString('hex')
  const stats = (bulk.core as unknown as { replicator: { stats: { wireData: { tx: number } } } }).replicator.stats.wireData

  // "Mid-way" by construction, not by timing: once the agency has uploaded K blocks of the bulk log
  // it stops reading from its peers (every connection paused, and any new one at once), so at most
  // one request window more (hypercore keeps ≤ 512 requests in flight per peer) can still arrive.
  const K = 200
  const swarm = c.agency.network!.swarm
  type Conn = (typeof swarm.connections extends Set<infer C> ? C : never)
  const paused = new Set<Conn>()
  const hold = (conn: Conn) => {
    conn.pause()
    paused.add(conn)
  }
  const holdNew = (conn: Conn) => hold(conn)
  let uploads = 0
  const reachedK = new Promise<void>((resolve) => {
    const onupload = () => {
      if (++uploads !== K) return
      bulk.core.off('upload', onupload)
      for (const conn of swarm.connections) hold(conn)
      swarm.on('connection', holdNew)
      resolve()
    }
    bulk.core.on('upload', onupload)
  })

  const emb = await pairEmbassy(t, c, 'embassy-a')
  const embDir = emb.host.node.dir
  await reachedK
  // The K blocks sent before the pause arrive (the embassy side is not paused): wait for them.
  const embCore = async () => [...((await emb.host.embassy()) as Embassy).holders.values()][0]?.cores.get(bulkHex)?.core ?? null
  const countHeld = async (core: { has(i: number): Promise<boolean> }) => {
    let n = 0
    for (let i = 0; i < N; i++) if (await core.has(i)) n++
    return n
  }
  await eventually(`the ${K} blocks sent before the pause arrived`, async () => {
    const core = await embCore()
    return core !== null && (await countHeld(core)) >= K
  }, 60_000, 100)
  await emb.close()
  swarm.off('connection', holdNew)
  for (const conn of paused) conn.destroy() // their queued requests are never served

  // Every block the embassy stored (downloads run in parallel: not only a prefix), network off.
  const offline = new NodeHost(embDir)
  await offline.ready()
  const core = offline.node.store.get({ key: bulk.core.key! })
  await core.ready()
  const held = await countHeld(core)
  await core.close()
  await offline.close()
  t.ok(held >= K && held <= K + 512 + 64, `stopped mid-way, holding ${held} of ${N} blocks (K = ${K} plus at most one request window)`)

  // From now on the agency may send only what is missing.
  const sentBefore = stats.tx
  const reopened = await startDaemon(t, embDir, c.bootstrap)
  await eventually('embassy completes after restart', () => holdsAll(c.agency, reopened), 60_000)
  t.is((((await reopened.host.embassy()) as Embassy).holdings()[0]?.cores.find((x) => x.key === toZ32(bulk.core.key!))?.contiguousLength), N)
  const sent = stats.tx - sentBefore
  const missing = N - held
  t.ok(sent >= missing && sent <= missing + 50, `sent ${sent} data messages for ${missing} missing blocks: the ${held} held were not sent again`)
})

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
  await pair(c.agency, m, { capability: wrong })
  const mirror = (await m.host.mirror()) as Mirror
  await t.exception(mirror.list(), /WRONG_READ_KEY/)
})
