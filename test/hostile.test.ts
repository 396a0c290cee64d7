import test from 'brittle'
import c from 'compact-encoding'
import fc from 'fast-check'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { CATALOG_CORE_NAME } from '../lib/node/caps.js'
import { CustodyChannel, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { signReceipt } from '../lib/custody/receipts.js'
import { CUSTODY_MINOR, CustodyMessage, PeerRole, encode, receipt as receiptCodec, type Codec } from '../protocol/index.js'
import { eventually, forgeBlock, initDir, pair, report as reportRow, startDaemon, testnet } from './helpers/index.js'
import { verifyCores } from '../lib/verify/verify.js'
import { Gateway } from '../lib/index.js'

const raw = c.raw as unknown as Codec<Buffer>

/** Two Protomux instances over a secret-stream pair in memory (no network). */
function streamPair() {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  a.rawStream!.pipe(b.rawStream!).pipe(a.rawStream!)
  return { a, b, ma: Protomux.from(a), mb: Protomux.from(b) }
}

const hello = { major: 1, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] }

/** Opens a custody channel pair; `received` collects what reaches the receipt handler. */
async function openPair() {
  const p = streamPair()
  const received: unknown[] = []
  const ours = new CustodyChannel(p.ma, hello, { receipt: (r) => received.push(r) })
  const theirs = new CustodyChannel(p.mb, hello)
  ours.open()
  theirs.open()
  await eventually('open', () => ours.remote && theirs.remote, 5000, 5)
  return { ...p, ours, theirs, received }
}

test('hostile (property): random and truncated custody messages close only that channel', { timeout: 300_000 }, async (t) => {
  const valid = encode(receiptCodec, signReceipt({ publicKey: Buffer.alloc(32), secretKey: Buffer.alloc(64, 1) }, { core: Buffer.alloc(32, 1), length: 5, treeHash: Buffer.alloc(32, 2), fork: 0, time: 1 }))
  const message = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 300 }),
    fc.integer({ min: 0, max: valid.length - 1 }).map((n) => valid.subarray(0, n)),
    fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const copy = Buffer.from(valid)
      copy[i] = v
      return copy
    })
  )
  let runs = 0
  let closed = 0
  await fc.assert(
    fc.asyncProperty(message, async (bytes) => {
      runs++
      const p = await openPair()
      try {
        p.theirs.sendRaw('receipt', Buffer.from(bytes))
        await eventually('handled', () => p.ours.closed || p.received.length > 0, 5000, 2)
        if (p.ours.closed) closed++
        // whatever the bytes, the connection under the channel is untouched
        return !p.a.destroyed && !p.b.destroyed && (p.ours.closed ? p.ours.invalidMessages === 1 : p.received.length === 1)
      } finally {
        p.a.destroy()
        p.b.destroy()
      }
    }),
    { numRuns: 150 }
  )
  t.pass(`${runs} messages: ${closed} closed the channel, the rest decoded; no connection was lost`)
  reportRow(t, { scenario: 'random/truncated/bit-flipped custody messages (fast-check)', runs, lost: 0, recoverMs: null, notes: 'only the custody channel closes; the connection stays' })
})

test('hostile (property): random handshakes never take the connection down', { timeout: 300_000 }, async (t) => {
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200 }), async (bytes) => {
      runs++
      const p = streamPair()
      try {
        const ours = new CustodyChannel(p.ma, hello)
        const bad = p.mb.createChannel({ protocol: 'data-embassy/custody/1', handshake: raw, onopen() {} })!
        ours.open()
        bad.open(Buffer.from(bytes))
        await eventually('handshake judged', () => ours.closed || ours.remote, 5000, 2)
        return !p.a.destroyed && !p.b.destroyed
      } finally {
        p.a.destroy()
        p.b.destroy()
      }
    }),
    { numRuns: 150 }
  )
  t.pass(`${runs} random handshakes; the connection survived every one`)
  reportRow(t, { scenario: 'random custody handshakes (fast-check)', runs, lost: 0, recoverMs: null })
})

test('hostile: a corrupt catalog entry is skipped and reported; holders keep everything else', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('before')
  await agency.append('before', [{ a: 1 }])
  const catalog = agencyD.host.node.store.get({ name: CATALOG_CORE_NAME })
  await catalog.ready()
  await catalog.append(Buffer.from([1, 0, 0xde, 0xad])) // a signed but undecodable entry
  await catalog.close()
  await agency.createDataset('after')
  await agency.append('after', [{ b: 2 }])
  t.alike((await agency.list()).map((d) => d.name).sort(), ['after', 'before'], 'the agency itself skips it')

  const embD = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyD, embD)
  const embassy = (await embD.host.embassy()) as Embassy
  const h = await eventually('embassy holds both datasets', () => {
    const x = embassy.holdings()[0]
    return x && x.cores.length === 3 && x.cores.every((c) => c.length > 0 && c.contiguousLength === c.length) ? x : null
  })
  t.ok(h.problems.some((p) => /catalog block 2/.test(p)), `reported: ${h.problems.join('; ')}`)
  reportRow(t, { scenario: 'corrupt catalog entry', runs: 1, lost: 0, recoverMs: null, notes: 'skipped and reported; every other dataset held' })
})

test('hostile: a peer serving tampered blocks is caught by verification; nothing corrupt is stored', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 50 }, (_, i) => ({ i })))
  const logKey = (await agency.datasets.openLog('register')).core.key!
  const embs: Daemon[] = []
  for (const name of ['evil', 'good']) {
    const d = await startDaemon(t, await initDir(t, 'embassy', name), bootstrap)
    await pair(agencyD, d)
    embs.push(d)
  }
  const [evil, good] = embs as [Daemon, Daemon]
  for (const d of embs) {
    const e = (await d.host.embassy()) as Embassy
    await eventually('embassy holds the log', () => e.holdings()[0]?.cores.find((c) => c.key === toZ32(logKey))?.contiguousLength === 50)
  }
  const capability = agency.capability()
  await agencyD.close()

  // The evil embassy rewrites blocks 10..14 and their leaves in its own storage (so its own
  // pre-serve check passes and it sends them); the signed roots above no longer match.
  const evilCore = [...((await evil.host.embassy()) as Embassy).holders.values()][0]!.find(logKey)!
  for (let i = 10; i < 15; i++) await forgeBlock(evilCore, i)

  const mirrorD = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(evil, mirrorD, { capability })
  const mirror = (await mirrorD.host.mirror()) as Mirror
  const log = await eventually('catalog from the evil embassy', async () => mirror.openLog('register').catch(() => null))
  // Only the evil embassy is reachable. The mirror downloads eagerly; the first tampered block it
  // gets fails Merkle verification (counted by hypercore) and the evil peer is no longer asked for
  // this core. Wait for that proof instead of waiting out a timeout.
  const replicatorStats = (log.core as unknown as { replicator: { stats: { invalidData: number } } }).replicator.stats
  await eventually('a tampered block from the evil embassy failed verification', () => replicatorStats.invalidData > 0, 60_000)
  // Blocks requested before that (hypercore keeps ≥ 16 requests in flight, only 5 are tampered) arrive.
  const stored = async () => {
    const held: number[] = []
    for (let i = 0; i < 50; i++) if (await log.core.has(i)) held.push(i)
    return held
  }
  const early = await eventually('untampered blocks arrive from the evil embassy', async () => {
    const held = await stored()
    return held.length > 0 ? held : null
  }, 60_000)
  t.ok(early.length > 0, `untampered blocks arrive (${early.length} stored)`)
  for (let i = 10; i < 15; i++) t.absent(await log.core.has(i), `tampered block ${i} is refused, not stored`)
  const partial = await verifyCores(await mirrorD.host.heldCores())
  t.ok(partial.ok, `every block the mirror stored from the evil embassy verifies (${partial.totals.checked} checked)`)

  // The good embassy admits the mirror: once they are connected, everything arrives, verified.
  await pair(good, mirrorD)
  await eventually('the mirror is connected to the good embassy', () => mirrorD.network!.connectedTo(good.host.node.nodeKey), 60_000)
  const texts: string[] = []
  try {
    for await (const r of mirror.read('register', { timeout: 60_000 })) texts.push(r.text)
  } catch (err) {
    t.fail(`reading through the good embassy failed after ${texts.length} records: ${(err as Error).message}`)
  }
  t.is(texts.length, 50)
  t.alike(texts.map((x) => JSON.parse(x).i), Array.from({ length: 50 }, (_, i) => i), 'every record, correct')
  const report = await verifyCores(await mirrorD.host.heldCores())
  t.ok(report.ok, `the mirror's copy verifies (${report.totals.checked} blocks)`)
  t.ok(mirrorD.host.node.config.role === 'mirror' && !mirrorD.closed, 'the mirror stayed up')
  reportRow(t, { scenario: 'peer serving tampered blocks', runs: 5, lost: 0, recoverMs: null, notes: 'refused by Merkle verification; fetched intact from another embassy' })
})


test('hostile: 1,000 parallel abusive HTTP requests; the gateway answers each correctly and stays up', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 100 }, (_, i) => ({ i })))
  await agency.createDataset('docs', { kind: 'files' })
  const src = await t.tmp()
  const fs = await import('node:fs')
  fs.writeFileSync(`${src}/a.txt`, 'x'.repeat(100_000))
  await agency.publish('docs', src)
  const gw = new Gateway({ reader: agency.datasets, host: '127.0.0.1', port: 0 })
  await gw.ready()
  t.teardown(() => gw.close(), { force: true })
  const base = gw.url
  const cases: Array<{ path: string; method?: string; headers?: Record<string, string>; expect: number[] }> = [
    { path: '/api/datasets', expect: [200] },
    { path: '/api/datasets/register/records?start=0&end=10', expect: [200] },
    { path: '/api/datasets/docs/files/a.txt', expect: [200] },
    { path: '/api/datasets/docs/files/a.txt', headers: { range: 'bytes=0-99' }, expect: [206] },
    { path: '/api/datasets/docs/files/a.txt', headers: { range: 'bytes=999999999-' }, expect: [416] },
    { path: '/api/datasets/docs/files/a.txt', headers: { range: 'bytes=500-100' }, expect: [416] },
    { path: '/api/datasets/docs/files/..%2F..%2Fetc%2Fpasswd', expect: [400, 404] },
    { path: '/api/datasets/docs/files/%2e%2e/%2e%2e/etc/passwd', expect: [400, 404] },
    { path: '/api/datasets/docs/files/a.txt%00.png', expect: [400, 404] },
    { path: '/api/datasets/nope', expect: [404] },
    { path: '/api/datasets', method: 'POST', expect: [405] },
    { path: '/api/datasets/register', method: 'DELETE', expect: [405] },
    { path: '/metrics', expect: [200] }
  ]
  const started = Date.now()
  const results = await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const c = cases[i % cases.length]!
      const res = await fetch(base + c.path, { method: c.method ?? 'GET', headers: c.headers ?? {} })
      await res.arrayBuffer()
      return c.expect.includes(res.status) ? null : `${c.method ?? 'GET'} ${c.path} → ${res.status}`
    })
  )
  const wrong = results.filter(Boolean)
  t.alike(wrong, [], `all 1,000 answered as expected in ${Date.now() - started} ms`)
  const after = await fetch(`${base}/api/datasets`)
  t.is(after.status, 200, 'still up afterwards')
  reportRow(t, { scenario: 'HTTP gateway abuse: 1,000 parallel requests (traversal, bad ranges, bad methods)', runs: 1000, lost: 0, recoverMs: null })
})
