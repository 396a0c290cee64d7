/**
 * On-demand mirrors (issue 13 item 3): a mirror serves the gateway, `read` and `export` before it
 * holds everything — what is asked for is fetched on request from any holder — prefetches the rest
 * in the background (newest first), and a sparse mirror keeps only what was asked for, under a
 * cache limit. A block no holder can serve fails with a clear error after a bounded wait.
 *
 * Deterministic: the mirror's background prefetch is held (`prefetch: off`) while the on-demand
 * answers are checked, so only the blocks requested can flow; it is then resumed and awaited.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import test from 'brittle'
import type Hypercore from 'hypercore'
import { Gateway, parseKey, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { BLOCK_WAIT_MS } from '../lib/gateway/library.js'
import { validateConfig } from '../lib/node/config.js'
import { cli, eventually, initDir, makeTree, pair, spawnRun, startDaemon, testnet, type Test } from './helpers/index.js'

/** Records in the log: large enough that a few windows of requests are a small part of it. */
const RECORDS = 20_000

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  text: string
  json: any
}

function request(gw: Gateway, target: string, timeout = 60_000): Promise<Res> {
  const { host, port } = gw.address()
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: target, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        let json: any = null
        try {
          json = JSON.parse(body.toString('utf8'))
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), json })
      })
    })
    req.setTimeout(timeout, () => req.destroy(new Error(`${target}: no answer within ${timeout} ms`)))
    req.on('error', reject)
    req.end()
  })
}

async function startGateway(t: Test, mirror: Mirror, daemon: Daemon): Promise<Gateway> {
  const gw = new Gateway({ reader: mirror, peers: () => daemon.network?.peers.size ?? 0, ready: () => daemon.opened })
  t.teardown(() => gw.close(), { order: -1, force: true })
  await gw.ready()
  return gw
}

const record = (i: number): Record<string, unknown> => ({ i, parcel: `EE-${i}`, owner: `owner-${i}`, note: 'x'.repeat(200) })

interface Cluster {
  bootstrap: string[]
  embassy: Daemon
  capability: string
  src: string
  logKey: string
}

/** An agency with a 20,000-record log and a files tree, held in full by one embassy; the agency then stops. */
async function cluster(t: Test): Promise<Cluster> {
  const bootstrap = await testnet(t)
  const agencyDaemon = await startDaemon(t, await initDir(t, 'agency'), bootstrap)
  const agency = (await agencyDaemon.host.agency()) as Agency
  await agency.createDataset('register')
  for (let i = 0; i < RECORDS; i += 5000) await agency.append('register', Array.from({ length: 5000 }, (_, j) => record(i + j)))
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src)
  await agency.publish('laws', src)
  const embassy = await startDaemon(t, await initDir(t, 'embassy'), bootstrap)
  await pair(agencyDaemon, embassy)
  const want = new Map<string, number>([[toZ32(agency.catalog.key), agency.catalog.core.length]])
  for (const info of await agency.datasets.infos()) {
    const ds = await agency.datasets.open(info)
    for (const { core } of await ds.cores()) want.set(toZ32(core.key!), core.length)
  }
  const emb = (await embassy.host.embassy()) as Embassy
  await eventually('the embassy holds everything', () => {
    const held = new Map(emb.holdings().flatMap((h) => h.cores.map((c) => [c.key, c.contiguousLength] as const)))
    return [...want].every(([k, len]) => held.get(k) === len)
  }, 120_000, 100)
  const logKey = toZ32((await agency.datasets.openLog('register')).core.key!)
  const capability = agency.capability()
  await agencyDaemon.close() // from now on the embassy is the only holder
  return { bootstrap, embassy, capability, src, logKey }
}

/** A running mirror of the cluster's agency, fetching as `settings` say (set before it learns of any core). */
async function startMirror(t: Test, c: Cluster, settings: Parameters<Mirror['configure']>[0]): Promise<{ daemon: Daemon; mirror: Mirror; gw: Gateway }> {
  const daemon = await startDaemon(t, await initDir(t, 'mirror', `mirror-${crypto.randomBytes(4).toString('hex')}`), c.bootstrap)
  const mirror = (await daemon.host.mirror()) as Mirror
  mirror.configure(settings)
  await pair(c.embassy, daemon, { capability: c.capability })
  const gw = await startGateway(t, mirror, daemon)
  return { daemon, mirror, gw }
}

async function mirrorLog(mirror: Mirror): Promise<Hypercore> {
  return (await mirror.openLog('register')).core
}

const held = (core: Hypercore): Promise<number> => core.count(0, core.length)

test('on-demand mirror: serves the first, the newest and the last two records, `read --start LAST` and a file before its backfill; then backfills newest first', async (t) => {
  t.timeout(300_000)
  const c = await cluster(t)
  const { daemon, mirror, gw } = await startMirror(t, c, { prefetch: 'off' })
  const LAST = RECORDS - 1

  // The verified length arrives with the holder's signed head; no block is fetched in the background.
  const info = await eventually('the mirror knows the log length', async () => {
    const r = await request(gw, '/api/datasets/register')
    return r.status === 200 && r.json.dataset.length === RECORDS ? r : null
  }, 60_000, 200)
  t.is(info.headers['x-embassy-core-key'], c.logKey)
  const core = await mirrorLog(mirror)
  // Hypercore fetches the newest block with a new head (its "latest block"): nothing else yet.
  const before = await held(core)
  t.ok(before === 0 || (before === 1 && (await core.has(RECORDS - 1))), `nothing held yet but the newest block: prefetch is off (${before} held)`)

  const first = await request(gw, '/api/datasets/register/records/0')
  t.is(first.status, 200, '/records/0 served on demand')
  t.is(JSON.parse(first.json.text).owner, 'owner-0')

  const newest = await request(gw, `/api/datasets/register/records/${LAST}`)
  t.is(newest.status, 200, 'the newest record served on demand')
  t.is(JSON.parse(newest.json.text).i, LAST)
  t.is(newest.headers['x-embassy-length'], String(RECORDS))
  t.ok(Number(newest.headers['x-embassy-contiguous-length']) < RECORDS, `contiguous length ${newest.headers['x-embassy-contiguous-length']} below the length`)

  const range = await request(gw, `/api/datasets/register/records?start=${LAST - 1}&end=${RECORDS}`)
  t.is(range.status, 200, 'the streamed range of the last two records')
  const lines = range.text.trimEnd().split('\n').map((l) => JSON.parse(l))
  t.alike(lines.map((l) => l.seq), [LAST - 1, LAST])
  t.is(JSON.parse(lines[1].text).owner, `owner-${LAST}`)
  t.is(range.headers['x-embassy-length'], String(RECORDS), 'provenance: the verified length')
  t.ok(Number(range.headers['x-embassy-contiguous-length']) < Number(range.headers['x-embassy-length']), 'X-Embassy-Contiguous-Length below X-Embassy-Length')
  t.is(range.headers['x-embassy-core-key'], c.logKey, 'provenance: the core key')
  t.ok(range.headers['x-embassy-tree-hash'], 'provenance: the signed tree hash')

  // A window in the middle, through the page too.
  const mid = await request(gw, '/api/datasets/register/records?start=10000&end=10300')
  t.is(mid.status, 200)
  t.is(mid.text.trimEnd().split('\n').length, 300, 'a range over two fetch windows')
  const page = await request(gw, '/datasets/register?start=5000')
  t.is(page.status, 200)
  t.ok(page.text.includes('owner-5049') && !page.text.includes('not replicated yet'), 'the records page fetches its page')

  const read = await cli(['read', 'register', '--start', String(LAST), '--dir', daemon.host.node.dir, '--json'])
  t.is(read.code, 0, `read --start LAST through the running mirror: ${read.stderr.slice(-300)}`)
  t.is(read.json?.records?.length, 1, 'one record')
  t.is(read.json?.records?.[0]?.seq, LAST)

  const status = await mirror.status()
  const source = (status.sources as Array<{ held: { heldBlocks: number; totalBlocks: number; state: string } }>)[0]!
  t.is(source.held.state, 'partial', 'status: partial (prefetch off)')
  const cliStatus = await cli(['status', '--dir', daemon.host.node.dir, '--json'])
  t.is(cliStatus.code, 0)
  t.is(cliStatus.json?.sources?.[0]?.held?.state, 'partial', '`embassy status --json` shows how much is held')
  t.is(cliStatus.json?.sources?.[0]?.held?.totalBlocks, source.held.totalBlocks)
  t.is(cliStatus.json?.fetch?.prefetch, 'off', 'and how the mirror fetches')
  t.ok(source.held.heldBlocks < source.held.totalBlocks / 10, `status: ${source.held.heldBlocks} of ${source.held.totalBlocks} blocks held`)
  t.ok((await held(core)) < 1500, `only what was asked for came (${await held(core)} of ${RECORDS} records)`)
  const metrics = await request(gw, '/metrics')
  const verified = /^embassy_dataset_blocks\{catalog="[^"]+",dataset="register",kind="log"\} (\d+)$/m.exec(metrics.text)
  const heldNow = /^embassy_dataset_blocks\{catalog="[^"]+",dataset="register",kind="log",state="held"\} (\d+)$/m.exec(metrics.text)
  t.is(verified?.[1], String(RECORDS), '/metrics: the verified blocks')
  t.is(heldNow?.[1], String(await held(core)), '/metrics: the blocks held, wherever they are')

  // Files: one file of the tree, before the rest of the content is held.
  const big = fs.readFileSync(path.join(c.src, 'big/registry.bin'))
  const file = await request(gw, '/api/datasets/laws/files/big/registry.bin')
  t.is(file.status, 200, 'a file served on demand')
  t.ok(file.body.equals(big), 'byte-identical')
  const laws = await mirror.openFiles('laws')
  const blobs = laws.drive.blobs!.core
  t.ok((await held(blobs)) < blobs.length, `the drive is not all held (${await held(blobs)} of ${blobs.length} content blocks)`)
  const part = await request(gw, '/api/datasets/laws/files/README.txt')
  t.is(part.text, 'Laws of the land, consolidated.\n')

  // Resume the backfill: newest first, then everything; status says when it is complete.
  mirror.configure({ prefetch: 'newest' })
  await eventually('the backfill completes', async () => (await held(core)) === RECORDS && core.contiguousLength === RECORDS && (await held(blobs)) === blobs.length, 120_000, 200)
  const done = (await mirror.status()).sources as Array<{ held: { state: string; heldBlocks: number; totalBlocks: number } }>
  t.is(done[0]!.held.state, 'complete', 'status: complete')
  t.is(done[0]!.held.heldBlocks, done[0]!.held.totalBlocks)
  const after = await request(gw, `/api/datasets/register/records/${LAST}`)
  t.is(after.headers['x-embassy-contiguous-length'], String(RECORDS), 'contiguous length reaches the length')
  t.alike(daemon.host.node.config.mirror ?? {}, {}, 'the default (prefetch newest) is saved as no setting')
})

test('on-demand mirror: export fetches what is not held; newest-first prefetch holds the end before the start', async (t) => {
  t.timeout(300_000)
  const c = await cluster(t)
  const { daemon, mirror } = await startMirror(t, c, { prefetch: 'off' })
  const core = await eventually('the mirror knows the log length', async () => {
    const k = await mirrorLog(mirror).catch(() => null)
    return k && k.length === RECORDS ? k : null
  }, 60_000, 200)
  const out = path.join(await t.tmp(), 'export')
  const exp = await cli(['export', 'register', out, '--dir', daemon.host.node.dir, '--json'], { timeout: 120_000 })
  t.is(exp.code, 0, `export through the running mirror, nothing held before: ${exp.stderr.slice(-300)}`)
  const lines = fs.readFileSync(path.join(out, 'register.ndjson'), 'utf8').trimEnd().split('\n')
  t.is(lines.length, RECORDS, 'every record exported')
  t.is(JSON.parse(lines[lines.length - 1]!).i, RECORDS - 1)
  const files = await cli(['export', 'laws', path.join(out, 'laws'), '--dir', daemon.host.node.dir, '--json'], { timeout: 120_000 })
  t.is(files.code, 0, `files export fetched on demand: ${files.stderr.slice(-300)}`)
  t.ok(fs.readFileSync(path.join(out, 'laws', 'big/registry.bin')).equals(fs.readFileSync(path.join(c.src, 'big/registry.bin'))), 'files byte-identical')

  // Drop what export fetched, then switch newest-first prefetch on: the blocks must come end first.
  await core.clear(0, RECORDS)
  t.is(await held(core), 0)
  const order: number[] = []
  core.on('download', (index: number) => order.push(index))
  mirror.configure({ prefetch: 'newest' })
  await eventually('the whole log arrives', async () => (await held(core)) === RECORDS, 120_000, 200)
  const firstWindow = order.slice(0, 1024)
  t.ok(firstWindow.every((i) => i >= RECORDS - 1024), `the first ${firstWindow.length} blocks fetched are the newest ${1024} (lowest ${Math.min(...firstWindow)})`)
  t.ok(order.indexOf(0) > order.length - 1025, `record 0 comes in the last window (at ${order.indexOf(0)} of ${order.length})`)
  t.is(core.contiguousLength, RECORDS)
})

test('sparse mirror: keeps only what was asked for, evicts over its cache limit; a block no holder has fails cleanly and the server keeps working', async (t) => {
  t.timeout(300_000)
  const c = await cluster(t)
  const bootstrapDir = await initDir(t, 'mirror', 'sparse')
  // The mode is set with the CLI on the node directory (saved in config.json), before it runs.
  const set = await cli(['mirror', '--sparse', '--cache-bytes', '65536', '--dir', bootstrapDir, '--json'])
  t.is(set.code, 0, `embassy mirror --sparse --cache-bytes: ${set.stderr.slice(-300)}`)
  t.alike(set.json?.mirror, { sparse: true, cacheBytes: 65536 }, 'persisted')
  const bad = await cli(['mirror', '--sparse', '--cache-bytes', '-5', '--dir', bootstrapDir])
  t.is(bad.code, 2, 'a bad cache size is a usage error')
  const badPrefetch = await cli(['mirror', '--prefetch', 'sideways', '--dir', bootstrapDir])
  t.is(badPrefetch.code, 2, 'a bad prefetch mode is a usage error')
  const daemon = await startDaemon(t, bootstrapDir, c.bootstrap)
  const mirror = (await daemon.host.mirror()) as Mirror
  t.is(mirror.fetchStatus().sparse, true, 'sparse after a restart from config')
  await pair(c.embassy, daemon, { capability: c.capability })
  const gw = await startGateway(t, mirror, daemon)
  await eventually('the mirror knows the log length', async () => {
    const r = await request(gw, '/api/datasets/register')
    return r.status === 200 && r.json.dataset.length === RECORDS
  }, 60_000, 200)
  const core = await mirrorLog(mirror)

  const a = await request(gw, '/api/datasets/register/records?start=0&end=100')
  t.is(a.status, 200)
  t.is(a.text.trimEnd().split('\n').length, 100)
  const asked = (await held(core)) - ((await core.has(RECORDS - 1)) ? 1 : 0)
  t.is(asked, 100, 'exactly the records asked for are held (and the newest, fetched with the head)')
  t.ok(mirror.fetchStatus().cachedBytes <= 65536, `cache ${mirror.fetchStatus().cachedBytes} bytes`)
  // The stream fetches ahead only what fits in half the cache: nothing it fetched is evicted before it
  // is read and fetched again (with a window larger than the cache, ~8 % were, more on a busy machine).
  const downloaded: number[] = []
  const countDownload = (index: number): number => downloaded.push(index)
  core.on('download', countDownload)
  const b = await request(gw, '/api/datasets/register/records?start=1000&end=1400')
  core.off('download', countDownload)
  t.is(b.status, 200, 'a range larger than the cache still streams whole')
  t.is(b.text.trimEnd().split('\n').length, 400)
  t.is(downloaded.length, 400, `each record of the range fetched once (${downloaded.length} downloads for 400 records)`)
  t.is(new Set(downloaded).size, 400)
  t.ok(downloaded.every((i) => i >= 1000 && i < 1400), 'and nothing outside it')
  const fs1 = mirror.fetchStatus()
  t.ok(fs1.evicted > 0, `blocks evicted (${fs1.evicted})`)
  t.ok(fs1.cachedBytes <= 65536, `cache under its limit (${fs1.cachedBytes} of 65536 bytes)`)
  await eventually('evicted blocks are gone from storage', async () => !(await core.has(0, 1)), 10_000, 20)
  t.ok((await held(core)) < 500, `held ${await held(core)} blocks, not more than asked for`)
  t.absent(await core.has(0, 1), 'the least recently fetched record was dropped')
  const again = await request(gw, '/api/datasets/register/records/0')
  t.is(again.status, 200, 'an evicted record is fetched again on request')
  t.is(JSON.parse(again.json.text).i, 0)
  const st = await mirror.status()
  t.is((st.fetch as { sparse: boolean }).sparse, true, 'status shows the sparse cache')

  // The only holder loses records 5000–5099 (as if it never had them): nobody can serve them.
  const emb = (await c.embassy.host.embassy()) as Embassy
  const embCore = [...emb.holders.values()].flatMap((h) => h.allCores()).find((k) => toZ32(k.key!) === c.logKey)!
  await embCore.clear(5000, 5100)
  const started = Date.now()
  const missing = await request(gw, '/api/datasets/register/records/5050')
  t.is(missing.status, 503, 'a record no holder has: 503')
  t.is(missing.json?.error?.code, 'NOT_REPLICATED')
  t.ok(Date.now() - started < BLOCK_WAIT_MS + 15_000, `answered after a bounded wait (${Date.now() - started} ms)`)
  const missingRange = await request(gw, '/api/datasets/register/records?start=5000&end=5010')
  t.is(missingRange.status, 503, 'a range no holder has: 503, not a hung stream')
  t.ok(/no holder sent record 5000/.test(missingRange.json?.error?.message ?? ''), `says why: ${missingRange.json?.error?.message}`)
  const readMissing = await cli(['read', 'register', '--start', '5050', '--end', '5051', '--dir', daemon.host.node.dir], { timeout: 90_000 })
  t.is(readMissing.code, 3, 'read of a record no holder has fails: TIMEOUT, exit 3')
  t.ok(/did not arrive in time|not held/.test(readMissing.stderr), `with a clear error: ${readMissing.stderr.trim().slice(0, 200)}`)
  const fine = await request(gw, '/api/datasets/register/records/7')
  t.is(fine.status, 200, 'the server keeps working')
  t.is(JSON.parse(fine.json.text).i, 7)

  // Stopped, the sparse mirror's directory still holds its cache: an offline read of record 7 works.
  await gw.close()
  await daemon.close()
  const offline = await cli(['read', 'register', '--start', '7', '--end', '8', '--dir', daemon.host.node.dir, '--json'])
  t.is(offline.code, 0, `offline read of a cached record: ${offline.stderr.slice(-300)}`)
  t.is(offline.json?.records?.[0]?.value?.i, 7)
})

test('on-demand mirror killed -9 with a partial copy: what it fetched survives; restarted with prefetch on, the backfill completes', async (t) => {
  t.timeout(300_000)
  const c = await cluster(t)
  const dir = await initDir(t, 'mirror', 'killed')
  const capFile = path.join(await t.tmp(), 'cap.txt')
  fs.writeFileSync(capFile, c.capability, { mode: 0o600 })
  const add = await cli(['mirror', '--capability-file', capFile, '--prefetch', 'off', '--dir', dir, '--json'])
  t.is(add.code, 0, `embassy mirror --capability-file --prefetch off: ${add.stderr.slice(-300)}`)
  t.is(add.json?.mirror?.prefetch, 'off')
  t.ok(add.json?.catalogKey, 'and the agency was added')
  const id = await cli(['id', '--dir', dir, '--json'])
  ;(await c.embassy.host.role()).allow(parseKey(id.json.nodeKey))
  const run1 = await spawnRun(t, dir, c.bootstrap)
  const range = ['read', 'register', '--start', '15000', '--end', '15300', '--dir', dir, '--json']
  const first = await eventually('300 records read on demand through the running mirror', async () => {
    const r = await cli(range)
    return r.code === 0 && r.json?.records?.length === 300 ? r : null
  }, 90_000, 500)
  t.is(first.json.records[299].value.i, 15299)
  await run1.kill() // SIGKILL: no shutdown
  const offline = await cli(range)
  t.is(offline.code, 0, `what was fetched survived kill -9 (read offline): ${offline.stderr.slice(-300)}`)
  t.is(offline.json?.records?.length, 300)
  const on = await cli(['mirror', '--prefetch', 'newest', '--dir', dir, '--json'])
  t.is(on.code, 0, 'prefetch switched on with the node stopped (options alone: no capability asked for)')
  t.alike(on.json?.mirror, {}, 'newest is the default: saved as no setting')
  await spawnRun(t, dir, c.bootstrap)
  const done = await eventually('the backfill completes after the restart', async () => {
    const st = await cli(['status', '--dir', dir, '--json'])
    const held = st.json?.sources?.[0]?.held
    return held?.state === 'complete' ? held : null
  }, 180_000, 1000)
  t.is(done.heldBlocks, done.totalBlocks, `every block held (${done.heldBlocks})`)
  const all = await cli(['read', 'register', '--dir', dir, '--json'], { timeout: 120_000 })
  t.is(all.json?.records?.length, RECORDS, 'the whole log reads')
})

test('mirror settings in config.json: validated, a mistake is named', async (t) => {
  const base = { version: 1, role: 'mirror', name: '', bootstrap: [], allow: [], follow: [], sources: [], peers: [] }
  t.alike(validateConfig({ ...base, mirror: { sparse: true, cacheBytes: 4096 } }).mirror, { sparse: true, cacheBytes: 4096 })
  t.alike(validateConfig({ ...base, mirror: { prefetch: 'off' } }).mirror, { prefetch: 'off' })
  for (const [mirror, what] of [
    [{ prefetch: 'sideways' }, /mirror\.prefetch/],
    [{ sparse: 'yes' }, /mirror\.sparse/],
    [{ cacheBytes: -1 }, /mirror\.cacheBytes/],
    [{ cacheBytes: 1.5 }, /mirror\.cacheBytes/],
    [{ cacheBytes: 'lots' }, /mirror\.cacheBytes/],
    [{ sprase: true }, /unknown field "mirror\.sprase"/],
    [[], /"mirror" must be an object/],
    [null, /"mirror" must be an object/]
  ] as Array<[unknown, RegExp]>) {
    try {
      validateConfig({ ...base, mirror })
      t.fail(`accepted ${JSON.stringify(mirror)}`)
    } catch (err) {
      t.is((err as { code?: string }).code, 'BAD_CONFIG', `${JSON.stringify(mirror)}: BAD_CONFIG`)
      t.ok(what.test((err as Error).message), `names it: ${(err as Error).message}`)
    }
  }
})
