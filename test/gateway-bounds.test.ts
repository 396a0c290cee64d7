/**
 * The gateway's bounds, asserted with counters (never with timings): a search scans a bounded
 * window and names where to continue; work stops when the client leaves; requests are admitted
 * per client and in all (the rest wait, and beyond that are refused at once); /api/status is
 * opt-in beyond loopback; a block changed in storage is never served.
 */
import http from 'node:http'
import test from 'brittle'
import { Gateway, type Agency, type GatewayOptions } from '../lib/index.js'
import { corruptBlock, eventually, initDir, openAgency, pair, startDaemon, testnet, type Test } from './helpers/index.js'

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  json: any
}

/** One GET (optionally from another local address); `onRequest` gets the request to abort it. */
function get(gw: Gateway, target: string, opts: { localAddress?: string; onRequest?: (req: http.ClientRequest) => void } = {}): Promise<Res> {
  const { port } = gw.address()
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, agent: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: any = null
        try {
          json = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.on('error', reject)
    opts.onRequest?.(req)
    req.end()
  })
}

async function startGateway(t: Test, opts: GatewayOptions): Promise<Gateway> {
  const gw = new Gateway(opts)
  t.teardown(() => gw.close(), { order: -1, force: true })
  await gw.ready()
  return gw
}

async function agencyWithLog(t: Test, records: number): Promise<Agency> {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: records }, (_, i) => ({ i, owner: `owner-${i}` })))
  return agency
}

/** Makes every read of the register's blocks wait for `gate` (counting calls). The gateway reads the same session. */
async function gateReads(agency: Agency): Promise<{ calls: () => number; open: () => void }> {
  const core = (await agency.datasets.openLog('register')).core
  const original = core.get.bind(core)
  let calls = 0
  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  core.get = (async (index: number, opts?: unknown) => {
    calls++
    await gate
    return original(index, opts as never)
  }) as typeof core.get
  return { calls: () => calls, open }
}

test('gateway search: one request scans a bounded window and names where to continue', async (t) => {
  const agency = await agencyWithLog(t, 2500)
  const gw = await startGateway(t, { reader: agency.datasets, searchScan: 1000 })
  const first = await get(gw, '/api/datasets/register/records?q=nomatch')
  t.is(first.status, 200)
  t.is(first.text, '', 'no match in the window')
  t.is(first.headers['x-embassy-next-start'], '1000', 'continuation cursor')
  t.is(first.headers.link, '</api/datasets/register/records?q=nomatch&start=1000>; rel="next"')
  t.is(gw.stats.recordsScanned, 1000, 'exactly the window was read')
  const second = await get(gw, '/api/datasets/register/records?q=owner-2499&start=1000')
  t.is(second.headers['x-embassy-next-start'], '2000')
  t.is(second.text, '')
  const third = await get(gw, '/api/datasets/register/records?q=owner-2499&start=2000')
  t.is(third.headers['x-embassy-next-start'], undefined, 'the last window has no cursor')
  t.alike(third.text.trim().split('\n').map((l) => JSON.parse(l).seq), [2499], 'the match is found in its window')
  t.is(gw.stats.recordsScanned, 2500, 'every record read once over the three requests')
  const whole = await get(gw, '/api/datasets/register/records?start=0&end=2500')
  t.is(whole.text.trim().split('\n').length, 2500, 'a listing without q is not windowed (the client reads what it asked for)')
  t.is(whole.headers['x-embassy-next-start'], undefined)
})

test('gateway search: a client that leaves stops the scan', async (t) => {
  const agency = await agencyWithLog(t, 3000)
  const gw = await startGateway(t, { reader: agency.datasets })
  const core = (await agency.datasets.openLog('register')).core
  const original = core.get.bind(core)
  let calls = 0
  let reached!: () => void
  const atHundred = new Promise<void>((resolve) => (reached = resolve))
  // The gateway answers `request` once the response is closed: here, once it saw the client leave.
  const closed = new Promise<void>((resolve) => gw.on('request', (info: { route: string }) => info.route === '/api/datasets/:name/records' && resolve()))
  core.get = (async (index: number, opts?: unknown) => {
    calls++
    if (index === 100) {
      reached()
      await closed
    }
    return original(index, opts as never)
  }) as typeof core.get
  let req!: http.ClientRequest
  const answer = get(gw, '/api/datasets/register/records?q=nomatch', { onRequest: (r) => (req = r) })
  answer.catch(() => {}) // the client aborts it
  await atHundred
  req.destroy()
  await closed
  // Finished: the admission slot is back (or, without a stop, every record was read).
  await eventually('the handler has finished', () => gw.stats.active === 0 || calls >= 3000)
  t.ok(calls <= 102, `reads stopped when the client left (${calls} of 3000)`)
  t.ok(gw.stats.recordsScanned <= 101, `records scanned: ${gw.stats.recordsScanned}`)
})

test('gateway admission: per client, extra requests wait; a full queue gets 429 at once; a client that leaves its queued request drops it', async (t) => {
  const agency = await agencyWithLog(t, 10)
  const gw = await startGateway(t, { reader: agency.datasets, limits: { activePerClient: 2, queuedPerClient: 1, active: 10, queued: 10 } })
  const reads = await gateReads(agency)
  const r1 = get(gw, '/api/datasets/register/records/1')
  const r2 = get(gw, '/api/datasets/register/records/2')
  await eventually('two requests reading', () => reads.calls() === 2)
  let queuedReq!: http.ClientRequest
  const r3 = get(gw, '/api/datasets/register/records/3', { onRequest: (r) => (queuedReq = r) })
  r3.catch(() => {})
  await eventually('the third waits', () => gw.stats.queued === 1)
  const r4 = await get(gw, '/api/datasets/register/records/4')
  t.is(r4.status, 429, 'over the client\'s queue: refused at once')
  t.is(r4.json?.error?.code, 'TOO_MANY_REQUESTS')
  t.is(r4.headers['retry-after'], '1')
  t.is(gw.stats.refused, 1)
  queuedReq.destroy()
  await eventually('the abandoned request left the queue', () => gw.stats.queued === 0)
  reads.open()
  t.is((await r1).status, 200)
  t.is((await r2).status, 200)
  await eventually('both done', () => gw.stats.active === 0)
  t.is(reads.calls(), 2, 'the abandoned request never ran')
  t.is((await get(gw, '/api/datasets/register/records/5')).status, 200, 'served normally afterwards')
})

test('gateway admission: in all, extra requests wait; a full queue gets 503 BUSY at once', async (t) => {
  const agency = await agencyWithLog(t, 10)
  const gw = await startGateway(t, { reader: agency.datasets, limits: { activePerClient: 2, queuedPerClient: 5, active: 3, queued: 1 } })
  const reads = await gateReads(agency)
  const a = [get(gw, '/api/datasets/register/records/1'), get(gw, '/api/datasets/register/records/2')]
  const b = get(gw, '/api/datasets/register/records/3', { localAddress: '127.0.0.2' })
  await eventually('three requests reading', () => reads.calls() === 3)
  const bQueued = get(gw, '/api/datasets/register/records/4', { localAddress: '127.0.0.2' })
  await eventually('the fourth waits', () => gw.stats.queued === 1)
  const busy = await get(gw, '/api/datasets/register/records/5')
  t.is(busy.status, 503)
  t.is(busy.json?.error?.code, 'BUSY')
  reads.open()
  for (const r of [...a, b, bQueued]) t.is((await r).status, 200)
})

test('gateway status: /api/status is published on loopback, and beyond it only when asked', async (t) => {
  const agency = await agencyWithLog(t, 1)
  const status = async (): Promise<unknown> => ({ custody: 'the custody table', alarms: ['an alarm'] })
  const wide = await startGateway(t, { reader: agency.datasets, host: '0.0.0.0', status })
  const refused = await get(wide, '/api/status')
  t.is(refused.status, 404, 'bound beyond loopback: not published by default')
  t.ok(!refused.text.includes('custody table'))
  t.ok(/--http-status/.test(refused.json?.error?.message ?? ''), 'says how to publish it')
  t.absent('/api/status' in ((await get(wide, '/api')).json?.routes ?? {}), 'not listed in /api')
  const optIn = await startGateway(t, { reader: agency.datasets, host: '0.0.0.0', status, publishStatus: true })
  const published = await get(optIn, '/api/status')
  t.is(published.status, 200, 'published when asked')
  t.is(published.json?.node?.custody, 'the custody table')
  const loopback = await startGateway(t, { reader: agency.datasets, status })
  t.is((await get(loopback, '/api/status')).status, 200, 'loopback: as before')
})

test('gateway status: `embassy run --http-status` publishes it beyond loopback', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { Daemon } = await import('../lib/index.js')
  for (const httpStatus of [false, true]) {
    const dir = await initDir(t, 'mirror', `mirror-${httpStatus}`)
    const d = new Daemon({ dir, bootstrap, http: '0.0.0.0:0', httpStatus })
    t.teardown(() => d.close(), { order: 0, force: true })
    await d.ready()
    const r = await get(d.gateway!, '/api/status')
    t.is(r.status, httpStatus ? 200 : 404, `--http-status ${httpStatus}: ${r.status}`)
  }
})

test('tampering at rest: a changed block is never served; the request fails clearly, everything else keeps working', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('treasury')
  await agency.append('treasury', [{ amount: 100 }, { amount: 100 }, { amount: 300 }])
  const core = (await agency.datasets.openLog('treasury')).core
  await corruptBlock(core, 1)
  const gw = await startGateway(t, { reader: agency.datasets })
  const bad = await get(gw, '/api/datasets/treasury/records/1')
  t.is(bad.status, 500)
  t.is(bad.json?.error?.code, 'TAMPERED', bad.json?.error?.message)
  t.ok(!bad.text.includes('amount'), 'nothing of the changed block is served')
  const good = await get(gw, '/api/datasets/treasury/records/2')
  t.is(good.status, 200, 'other records are served')
  t.is(JSON.parse(good.json.text).amount, 300)
  const range = await get(gw, '/api/datasets/treasury/records?start=1&end=3')
  t.not(range.status, 200, `a list starting at the changed block fails before any record (${range.status})`)
  let code = null
  const seen: number[] = []
  try {
    for await (const r of agency.datasets.read('treasury')) seen.push(r.seq)
  } catch (err) {
    code = (err as { code?: string }).code
  }
  t.is(code, 'TAMPERED', '`embassy read` stops with TAMPERED')
  t.alike(seen, [0], 'after the records before it')
  await t.exception(agency.datasets.export('treasury', await t.tmp()), /TAMPERED/, 'export refuses too')
})

test('tampering at rest on a mirror: a byte flipped in its storage is caught when reading', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('treasury')
  await agency.append('treasury', [{ amount: 100 }, { amount: 100 }])
  const mirrorD = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(agencyD, mirrorD)
  const mirror = await mirrorD.host.mirror()
  const log = await eventually('the mirror holds the log', async () => {
    const l = await mirror.openLog('treasury')
    await l.core.download({ start: 0, end: 2 }).done()
    return l.core.contiguousLength === 2 ? l : null
  })
  const before: string[] = []
  for await (const r of mirror.read('treasury', { wait: false })) before.push(r.text)
  t.alike(before, ['{"amount":100}', '{"amount":100}'], 'read intact before tampering')
  await corruptBlock(log.core, 1)
  const seen: string[] = []
  let code = null
  try {
    for await (const r of mirror.read('treasury', { wait: false })) seen.push(r.text)
  } catch (err) {
    code = (err as { code?: string }).code
  }
  t.is(code, 'TAMPERED')
  t.alike(seen, ['{"amount":100}'])
})
