/**
 * The custody history (lib/custody/timeseries.ts), the custody dashboard (GET /custody,
 * lib/gateway/dashboard.ts) and `embassy status --since`.
 * Unit: the series stays bounded, downsamples to the worst lag per hour, survives a damaged file;
 * the page's structure and escaping; drill reports (good, failed, malformed, none).
 * End to end: an agency and two embassies (one stopped, so behind) as in-process daemons on a local
 * DHT; `status --since` through the real CLI; the page in headless Chromium (skipped where
 * /usr/bin/chromium is absent): matrix table with headers, alarms, two SVG charts per window with
 * titles, heading order, no request leaving the gateway, no horizontal scroll on a phone.
 * EMBASSY_SCREENSHOT=docs/dashboard.png also saves the screenshot there (it always goes to a temp dir).
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { chromium, type Browser, type Page } from 'playwright-core'
import { Daemon, Gateway, toZ32, type Agency } from '../lib/index.js'
import type { Alarm } from '../lib/custody/index.js'
import { signReceipt } from '../lib/custody/receipts.js'
import { COARSE_BUCKET_MS, COARSE_POINTS, COMPACT_SAMPLES, CustodySeries, FINE_POINTS, FINE_SPAN_MS, MAX_EVENTS, MAX_PAIRS, SERIES_FILE, loadSeries, parseSince, type SampleInput } from '../lib/custody/timeseries.js'
import { dashboardPage, readDrills, type CustodyNow } from '../lib/gateway/dashboard.js'
import { cli, eventually, initDir, openAgency, pair, startDaemon, testnet } from './helpers/index.js'

const CHROMIUM = '/usr/bin/chromium'
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM)
const EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
const MIN = 60_000
const HOUR = 3_600_000

/** One sample's input: `pairs` datasets × embassies, embassy e behind by `behind(d, e)` blocks. */
function input(datasets: string[], embassies: string[], behind: (d: string, e: string) => number, alarms: Alarm[] = []): SampleInput {
  return {
    datasets: datasets.map((name) => ({
      name,
      embassies: embassies.map((nodeKey) => ({ nodeKey, behindBlocks: behind(name, nodeKey), behindBytes: behind(name, nodeKey) * 100, held: true, receiptAt: 1 }))
    })),
    alarms
  }
}

const alarm = (time: number, detail = 'a test alarm'): Alarm => ({ time, kind: 'bad-signature', peer: 'peerkey', core: null, detail })

test('custody history: bounded, one point per sample for 24 h, the worst lag per hour for 30 days', async (t) => {
  const dir = await t.tmp()
  const s = new CustodySeries(dir)
  // Starts 33 days ago (hour-aligned) and ends near now, so that reading it back keeps it.
  const t0 = Math.floor((Date.now() - 33 * 24 * HOUR) / HOUR) * HOUR
  // 31 days at one sample every 20 min, with a spike in the middle of each hour's second sample.
  let now = t0
  for (; now < t0 + 31 * 24 * HOUR; now += 20 * MIN) {
    const spike = Math.floor(now / (20 * MIN)) % 3 === 1
    s.sample(input(['register'], ['emb-a'], () => (spike ? 50 : 2)), now, false)
  }
  const p = s.data.pairs[0]!
  t.ok(p.coarse.length <= COARSE_POINTS, `coarse points bounded (${p.coarse.length} ≤ ${COARSE_POINTS})`)
  t.ok(p.coarse.every((x) => x[0] > now - 20 * MIN - 30 * 24 * HOUR), 'coarse points cover 30 days only')
  const buckets = p.coarse.map((x) => Math.floor(x[0] / COARSE_BUCKET_MS))
  t.is(new Set(buckets).size, buckets.length, 'one coarse point per hour')
  t.ok(p.coarse.slice(0, -1).every((x) => x[1] === 50), 'each hour keeps its worst lag (the spike), not the last or the mean')
  t.ok(p.fine.every((x) => x[0] > now - 20 * MIN - FINE_SPAN_MS), 'fine points cover 24 h only')

  // A day and a bit at one sample a minute: never more than FINE_POINTS.
  for (let i = 0; i < FINE_POINTS + 100; i++, now += MIN) s.sample(input(['register'], ['emb-a'], () => 1), now, false)
  t.ok(p.fine.length <= FINE_POINTS && p.fine.length >= FINE_POINTS - 1, `fine points bounded (${p.fine.length})`)

  // Many pairs and many alarms: bounded too; an alarm seen twice is one event.
  const embassies = Array.from({ length: 10 }, (_, i) => `emb-${i}`)
  const datasets = Array.from({ length: 10 }, (_, i) => `ds-${i}`)
  const alarms = Array.from({ length: MAX_EVENTS + 50 }, (_, i) => alarm(now - 1000 + i, `alarm ${i} ${'x'.repeat(1000)}`))
  s.sample(input(datasets, embassies, () => 3, alarms), now)
  s.sample(input(datasets, embassies, () => 3, alarms), now + MIN)
  t.is(s.data.pairs.length, MAX_PAIRS, `at most ${MAX_PAIRS} dataset × embassy pairs`)
  t.is(s.data.events.length, MAX_EVENTS, `at most ${MAX_EVENTS} alarm events, each once`)
  t.ok(s.data.events.every((e) => e.detail.length <= 300), 'alarm details cut')
  t.is((fs.statSync(path.join(dir, SERIES_FILE)).mode & 0o777).toString(8), '600', 'written 0600')
  t.alike(loadSeries(dir).data.pairs.length, MAX_PAIRS, 'read back')

  // Summary of a window: the worst point and when.
  const sum = s.summary(2 * MIN, now + MIN)
  t.ok(sum.worst.length > 0 && sum.worst.every((w) => w.blocks === 3 && w.samples >= 1), 'worst lag per pair in the window')
  t.is(s.summary(30 * 24 * HOUR, now + MIN).alarms.length, MAX_EVENTS, 'alarms in the window')

  // The largest file it can be: every pair full at both resolutions, large numbers.
  const end = Date.now()
  for (const [i, p] of s.data.pairs.entries()) {
    p.dataset = `dataset-${i}-${'n'.repeat(40)}`
    p.fine = Array.from({ length: FINE_POINTS }, (_, j) => [end - (FINE_POINTS - j) * MIN, 123_456_789, 987_654_321_012, 2_592_000, 1])
    p.coarse = Array.from({ length: COARSE_POINTS }, (_, j) => [end - (COARSE_POINTS - j) * HOUR, 123_456_789, 987_654_321_012, 2_592_000, 1])
  }
  s.sample({ datasets: [], alarms: [] }, end)
  s.compact() // the points were set in memory, not sampled: write them all as one snapshot
  const size = fs.statSync(path.join(dir, SERIES_FILE)).size
  t.comment(`largest history file (${MAX_PAIRS} pairs × ${FINE_POINTS} + ${COARSE_POINTS} points, ${MAX_EVENTS} alarms): ${(size / 1048576).toFixed(1)} MiB`)
  t.ok(size < 8 * 1024 * 1024, 'bounded: under 8 MiB at its largest')
})

test('custody history: written as a journal (one short line per sample), compacted rarely, read back the same', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, SERIES_FILE)
  const s = new CustodySeries(dir)
  const datasets = Array.from({ length: 8 }, (_, i) => `dataset-${i}`)
  const embassies = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(64).slice(0, 64))
  const t0 = Math.floor((Date.now() - 6 * HOUR) / HOUR) * HOUR
  // Half a day of history in memory (as after a long run), then the first write of this process: a snapshot.
  let now = t0 - 12 * HOUR
  for (; now < t0; now += MIN) s.sample(input(datasets, embassies, (d, e) => (now / MIN) % 7 === 0 ? 5 : d === 'dataset-0' && e.startsWith('1') ? 2 : 0), now, false)
  s.sample(input(datasets, embassies, () => 1), now)
  const snapshot = fs.statSync(file).size
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 2, 'the first write is a snapshot: one line')
  // Then each sample appends one line, far smaller than rewriting the file.
  const sizes: number[] = [snapshot]
  for (let i = 0; i < 10; i++) {
    now += MIN
    s.sample(input(datasets, embassies, (d) => (d === 'dataset-3' ? i : 0), i === 4 ? [alarm(now, 'raised at sample 4')] : []), now)
    sizes.push(fs.statSync(file).size)
  }
  const grew = sizes.slice(1).map((x, i) => x - sizes[i]!)
  t.ok(grew.every((x) => x > 0 && x < 16 * 1024), `each sample appends one line (${Math.min(...grew)}–${Math.max(...grew)} bytes), the snapshot is ${snapshot} bytes`)
  t.ok(Math.max(...grew) * 10 < snapshot, 'a sample writes a small fraction of the whole history')
  t.is((fs.statSync(file).mode & 0o777).toString(8), '600', 'still 0600')
  // Read back: the snapshot and the replayed journal are exactly what the writer holds.
  const back = loadSeries(dir)
  t.is(back.journal, 10, 'ten journal lines replayed')
  t.alike(back.data, s.data, 'snapshot + journal read back equal the history in memory')
  t.is(back.data.events.filter((e) => e.detail === 'raised at sample 4').length, 1, 'an alarm from the journal, once')

  // A crash in the middle of an append leaves a last line cut short: ignored, nothing set aside.
  const whole = fs.readFileSync(file)
  fs.appendFileSync(file, '{"t":' + (now + MIN) + ',"ms":60000,"p":[["dataset-0","')
  const torn = loadSeries(dir)
  t.is(torn.damaged, null, 'a torn last line is not damage')
  t.alike(torn.data, s.data, 'a torn last line is ignored')
  // A new process's first write rewrites the snapshot (the torn line gone); then it appends again.
  const s2 = new CustodySeries(dir)
  t.alike(s2.data, s.data, 'a new process starts from the same history')
  now += MIN
  s2.sample(input(datasets, embassies, () => 0), now)
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 2, 'compacted at the first write of a process')
  t.alike(loadSeries(dir).data, s2.data, 'read back after compaction')

  // Compacted again after COMPACT_SAMPLES appended samples.
  for (let i = 0; i < COMPACT_SAMPLES; i++) s2.sample(input(datasets, embassies, () => 0), (now += MIN))
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 2 + COMPACT_SAMPLES, `${COMPACT_SAMPLES} samples appended to the journal`)
  s2.sample(input(datasets, embassies, () => 0), (now += MIN))
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 2, 'the next one compacts it into a snapshot')
  s2.sample(input(datasets, embassies, () => 0), (now += MIN))
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 3, 'then one line per sample again')
  t.alike(loadSeries(dir).data, s2.data, 'read back')
  // The file set aside by a reader (or removed) between two samples: the next write is a whole snapshot again.
  fs.renameSync(file, `${file}.aside`)
  s2.sample(input(datasets, embassies, () => 0), (now += MIN))
  t.is(fs.readFileSync(file, 'utf8').split('\n').length, 2, 'a file gone since the last write gets a snapshot, not a bare journal line')
  t.alike(loadSeries(dir).data, s2.data, 'read back')

  // A journal line in the middle that is not a sample: the damaged-file rule (set aside, start again).
  for (const [what, bad] of [
    ['not JSON', '{"t":1,"ms":'],
    ['the wrong shape', JSON.stringify({ t: now, ms: 60000, p: [['d', 'e', 1, 2, 9]], e: [] })],
    ['an alarm of the wrong shape', JSON.stringify({ t: now, ms: 60000, p: [], e: [{ id: 1 }] })]
  ] as const) {
    fs.writeFileSync(file, whole)
    fs.appendFileSync(file, bad + '\n' + JSON.stringify({ t: now, ms: 60000, p: [], e: [] }) + '\n')
    const r = loadSeries(dir)
    t.ok(r.damaged && fs.existsSync(r.damaged) && /journal line 11/.test(r.reason ?? ''), `a journal line of ${what}: set aside (${r.reason})`)
    t.is(r.data.pairs.length, 0, `a journal line of ${what}: the history starts again`)
    t.absent(fs.existsSync(file), `a journal line of ${what}: the damaged file is no longer read`)
  }
})

test('custody history: a damaged file is set aside, reported, and the history starts again', async (t) => {
  for (const [what, write] of [
    ['not JSON', (f: string) => fs.writeFileSync(f, '{"version":1,"pairs":[')],
    ['JSON of the wrong shape', (f: string) => fs.writeFileSync(f, JSON.stringify({ version: 1, sampleMs: 60000, pairs: [{ dataset: 'x', embassy: 'y', upToDateAt: null, firstAt: 1, fine: [['a', 1, 2, 3, 0]], coarse: [] }], events: [] }))],
    ['a state out of range', (f: string) => fs.writeFileSync(f, JSON.stringify({ version: 1, sampleMs: 60000, pairs: [{ dataset: 'x', embassy: 'y', upToDateAt: null, firstAt: 1, fine: [[1, 1, 2, 3, 9]], coarse: [] }], events: [] }))],
    ['a file far too large', (f: string) => fs.truncateSync((fs.writeFileSync(f, '{'), f), 17 * 1024 * 1024)]
  ] as const) {
    const dir = await t.tmp()
    const file = path.join(dir, SERIES_FILE)
    write(file)
    const reported: string[] = []
    const s = new CustodySeries(dir, { ondamaged: (aside, reason) => reported.push(`${aside}|${reason}`) })
    t.is(reported.length, 1, `${what}: reported once`)
    t.ok(s.damaged && fs.existsSync(s.damaged) && s.damaged !== file, `${what}: set aside, not deleted`)
    t.is(s.data.pairs.length, 0, `${what}: starts empty`)
    s.sample(input(['register'], ['emb'], () => 0), Date.now())
    t.is(loadSeries(dir).data.pairs.length, 1, `${what}: a new, valid history is written`)
  }
})

test('status --since: windows parsed strictly', (t) => {
  t.is(parseSince('30m'), 30 * MIN)
  t.is(parseSince('24h'), 24 * HOUR)
  t.is(parseSince('7d'), 7 * 24 * HOUR)
  t.is(parseSince('30d'), 30 * 24 * HOUR)
  for (const bad of ['', '24', '0h', '-1h', '1w', '31d', '1.5h', 'h', '24hours', '99999d', '1e3m']) t.is(parseSince(bad), null, `"${bad}" refused`)
})

function fakeNow(): CustodyNow {
  const cell = (nodeKey: string, behind: number, extra: Record<string, unknown> = {}) => ({
    nodeKey,
    heldLength: 20 - behind,
    behindBlocks: behind,
    behindBytes: behind * 100,
    receiptAge: 4000,
    connected: behind === 0,
    held: true,
    preRewrite: [],
    audit: { state: 'passed', at: Date.now() - 60_000 },
    ...extra
  })
  return {
    datasets: [
      { name: `register ${EVIL}`, length: 20, byteLength: 2000, embassies: [cell('a'.repeat(52), 0), cell('b'.repeat(52), 3)] },
      { name: 'laws', length: 20, byteLength: 2000, embassies: [cell('a'.repeat(52), 0, { held: false, audit: { state: 'failed', at: Date.now() } }), cell('b'.repeat(52), 0, { receiptAge: null })] }
    ],
    alarms: [{ id: 'abc123', time: Date.now(), kind: 'tree-mismatch', peer: 'b'.repeat(52), detail: `lied ${EVIL}` }]
  }
}

test('dashboard page: matrix with headers and a word for every state, alarms, drills, four charts; untrusted text escaped', async (t) => {
  const dir = await t.tmp()
  const s = new CustodySeries(dir)
  const now = Date.now()
  for (let i = 10; i >= 0; i--) s.sample(input([`register ${EVIL}`], ['a'.repeat(52), 'b'.repeat(52)], (_, e) => (e.startsWith('b') ? i : 0)), now - i * MIN, false)
  t.alike(readDrills(dir), [], 'no drills folder: no drills')
  fs.mkdirSync(path.join(dir, 'drills'))
  fs.writeFileSync(path.join(dir, 'drills', 'drill-2026-01-01T00-00-00Z.json'), JSON.stringify({ ok: false, embassy: `e${EVIL}`, startedAt: now - HOUR, finishedAt: now - HOUR + 5000, rto: { firstRecordMs: 120, fullCopyMs: 4000 }, rpo: { blocksBehind: 2, secondsBehind: 30 }, datasets: [{ name: 'register', ok: true }, { name: 'laws', ok: false, error: `missing block 7 ${EVIL}` }], signer: 'k' }))
  fs.writeFileSync(path.join(dir, 'drills', 'drill-2026-01-02T00-00-00Z.json'), '{"ok": tru')
  // As `embassy drill` writes one that reached no embassy: ISO times, embassy null, the reason in error.
  fs.writeFileSync(path.join(dir, 'drills', 'drill-2026-01-04T00-00-00-000Z.json'), JSON.stringify({ ok: false, embassy: null, startedAt: new Date(now - 60_000).toISOString(), finishedAt: new Date(now).toISOString(), rto: { firstRecordMs: null, fullCopyMs: null }, rpo: { blocksBehind: 0, secondsBehind: 0 }, datasets: [], error: 'no embassy answered within 30 s', signer: 'k' }))
  fs.writeFileSync(path.join(dir, 'drills', 'drill-2026-01-03T00-00-00Z.json'), JSON.stringify({ ok: true, embassy: 'x', startedAt: 'not a time', finishedAt: 1, rto: {}, rpo: {}, datasets: [] }))
  const drills = readDrills(dir)
  t.is(drills.length, 4)
  t.is(drills.filter((d) => d.report === null).length, 2, 'malformed reports are unreadable, not fatal')
  t.is(drills[3]!.report?.failed[0]?.name, 'laws', 'a failed drill names the dataset')
  t.is(drills[0]!.report?.error, 'no embassy answered within 30 s', 'a drill that reached no embassy is read, with its reason')

  const page = dashboardPage({ now, custody: fakeNow(), series: s.data, drills }).value
  t.absent(page.includes('<script>') || page.includes('<img src=x'), 'no untrusted markup in the page')
  t.ok(page.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;'), 'untrusted text shown escaped')
  t.ok(/<table class="matrix">/.test(page), 'the matrix is a table')
  t.is((page.match(/<th scope="col"><span class="key"/g) ?? []).length, 2, 'a column header per embassy')
  t.is((page.match(/<th scope="row">/g) ?? []).length, 2, 'a row header per dataset')
  for (const label of ['Up to date', 'Behind', 'Audit failed: not held', 'No receipt yet']) t.ok(page.includes(`>${label}</span>`), `state "${label}" in words, not only colour`)
  t.is((page.match(/<svg class="chart"/g) ?? []).length, 4, 'lag and recovery point, for 24 h and 30 days')
  t.is((page.match(/<title id="[a-z]+-(lag|rpo)-title">/g) ?? []).length, 4, 'each chart has a title')
  t.ok(page.includes('Unreadable report'), 'an unreadable drill report is said so')
  t.ok(page.includes('missing block 7 &lt;script&gt;'), 'a failed drill says why')
  t.ok(page.includes('none reached') && page.includes('no embassy answered within 30 s'), 'a drill that reached no embassy says so')
  t.absent(/ style="/.test(page), 'no inline style (the CSP allows none)')
  t.absent(/(src|href)="(https?:)?\/\//.test(page), 'no external asset')

  const empty = dashboardPage({ now, custody: { datasets: [], alarms: [] }, series: new CustodySeries(await t.tmp()).data, drills: [] }).value
  t.ok(empty.includes('No drill yet'), '"no drill yet"')
  t.ok(empty.includes('No open alarms'), 'no alarms said in words')
  t.ok(empty.includes('no samples in this window yet'), 'empty charts say so')
})

/** WCAG contrast ratio of two CSS rgb() colours. */
function contrastRatio(a: string, b: string): number {
  const lum = (css: string): number => {
    const [r, g, bl] = (css.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const x = Number(v) / 255
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4
    }) as [number, number, number]
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl
  }
  const [l1, l2] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number]
  return (l1 + 0.05) / (l2 + 0.05)
}

test('dashboard: served only where the status is published (loopback by default), never on a gateway without custody', async (t) => {
  const { dir, host } = await openAgency(t)
  const agency = await host.agency()
  const custody = { dir, now: async () => fakeNow(), series: () => new CustodySeries(dir).data }
  const gateways = {
    loopback: new Gateway({ reader: agency.datasets, custody }),
    unpublished: new Gateway({ reader: agency.datasets, custody, publishStatus: false }),
    none: new Gateway({ reader: agency.datasets })
  }
  for (const g of Object.values(gateways)) {
    t.teardown(() => g.close(), { order: -1, force: true })
    await g.ready()
  }
  t.is(gateways.loopback.address()?.host, '127.0.0.1', 'the gateway binds loopback by default')
  const page = await fetch(gateways.loopback.url + '/custody')
  t.is(page.status, 200, 'served on loopback')
  t.ok((await page.text()).includes('<table class="matrix">'))
  const css = await fetch(gateways.loopback.url + '/assets/dashboard.css')
  t.is(css.status, 200, 'its stylesheet is served by the gateway itself')
  t.ok((await (await fetch(gateways.loopback.url + '/')).text()).includes('href="/custody"'), 'linked from the home page')
  for (const name of ['unpublished', 'none'] as const) {
    const g = gateways[name]
    const r = await fetch(g.url + '/custody', { headers: { accept: 'text/html' } })
    t.is(r.status, 404, `${name}: 404`)
    t.absent((await (await fetch(g.url + '/')).text()).includes('href="/custody"'), `${name}: not linked`)
  }
})

/** Sets config fields of a node directory that is not running. */
function configure(dir: string, fields: Record<string, unknown>): void {
  const file = path.join(dir, 'config.json')
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...fields }, null, 2))
}

test('custody history end to end: an agency, two embassies (one stopped); status --since; the dashboard in Chromium', { timeout: 170_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  configure(agencyDir, { custodySampleSeconds: 0.25 })
  // A history damaged while stopped: set aside and logged at start, never a failed start.
  fs.writeFileSync(path.join(agencyDir, SERIES_FILE), '\u0000\u0001 not a history')
  const logged: Array<{ event: string; message: string }> = []
  const agencyD = new Daemon({ dir: agencyDir, bootstrap, http: '127.0.0.1:0', log: (e) => logged.push(e) })
  t.teardown(() => agencyD.close(), { order: 0, force: true })
  await agencyD.ready()
  const damaged = logged.find((e) => e.event === 'custody-history-damaged')
  t.ok(damaged && /set aside as .*custody-series\.json\.damaged-\d+/.test(damaged.message), 'a damaged history is logged with where it was set aside')
  t.ok(fs.readdirSync(agencyDir).some((n) => n.startsWith(`${SERIES_FILE}.damaged-`)), 'the damaged file is kept aside')
  await eventually('a new history is written', () => fs.existsSync(path.join(agencyDir, SERIES_FILE)))
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register', { description: 'who owns which parcel' })
  await agency.append('register', Array.from({ length: 20 }, (_, i) => ({ i })))
  await agency.createDataset('laws')
  await agency.append('laws', Array.from({ length: 5 }, (_, i) => ({ law: i })))
  const embs: Daemon[] = []
  for (const name of ['embassy-lu', 'embassy-ee']) {
    const d = await startDaemon(t, await initDir(t, 'embassy', name), bootstrap)
    await pair(agencyD, d)
    embs.push(d)
  }
  const [a, b] = embs as [Daemon, Daemon]
  const keyA = toZ32(a.host.node.nodeKey)
  const keyB = toZ32(b.host.node.nodeKey)
  const row = async (ds: string, key: string) => (await agency.custody()).datasets.find((d) => d.name === ds)?.embassies.find((e) => e.nodeKey === key) ?? null
  for (const k of [keyA, keyB]) for (const [ds, n] of [['register', 20], ['laws', 5]] as const) await eventually(`${k} holds ${ds}`, async () => (await row(ds, k))?.heldLength === n, 60_000)

  // A sample sees both up to date (their recovery point) before B stops.
  const synced = agencyD.sampler!.samples
  await eventually('a sample of both up to date', () => agencyD.sampler!.samples >= synced + 2, 30_000)
  // B stops; the agency appends: B is 7 blocks behind, A catches up.
  await b.close()
  await agency.append('register', Array.from({ length: 7 }, (_, i) => ({ late: i })))
  await eventually('A holds the new records', async () => (await row('register', keyA))?.heldLength === 27, 60_000)
  // A forged receipt from A: a real alarm (bad-signature) in the window.
  const peer = await eventually('A sees the agency', () => a.network!.connectedTo(agencyD.host.node.nodeKey))
  const log = await agency.datasets.openLog('register')
  const forged = { ...signReceipt(a.host.node.keyPair, { core: log.core.key!, length: 27, treeHash: await log.core.treeHash(27), fork: 0, time: Date.now() }), signature: Buffer.alloc(64, 1) }
  peer.channel.send('receipt', forged)
  await eventually('the alarm is raised', async () => (await agency.custody()).alarms.some((x) => x.kind === 'bad-signature'))
  const sampler = agencyD.sampler!
  const after = sampler.samples
  await eventually('two more samples recorded', () => sampler.samples >= after + 2, 30_000)

  // status --since through the real CLI, against the running agency (control socket).
  const res = await cli(['status', '--since', '30m', '--dir', agencyDir, '--json'])
  t.is(res.code, 0, `status --since exits 0 ${res.stderr}`)
  const h = res.json.history
  t.is(h.window, '30m')
  type Lag = { dataset: string; embassy: string; blocks: number; seconds: number; at: number; upToDateAt: number | null; latest: { blocks: number; seconds: number; state: string } }
  const lag = (ds: string, k: string): Lag | undefined => h.worst.find((w: Lag) => w.dataset === ds && w.embassy === k)
  t.is(h.worst.length, 4, 'a row per dataset × embassy')
  const b1 = lag('register', keyB)!
  t.is(b1.latest.state, 'behind', 'the stopped embassy is behind now')
  t.is(b1.latest.blocks, 7, 'by the 7 blocks appended since it stopped')
  t.ok(b1.latest.seconds > 0, 'and says for how long')
  t.ok(b1.upToDateAt !== null && b1.upToDateAt < Date.now(), 'its recovery point: when it last held everything')
  t.ok(b1.blocks >= 7 && typeof b1.at === 'number', 'the worst in the window is at least that, with when')
  t.is(lag('laws', keyB)!.latest.state, 'ok', 'it still holds all of laws (nothing appended there)')
  t.is(lag('register', keyA)!.latest.state, 'ok', 'the running embassy is up to date')
  t.ok(h.worst.every((w: Lag) => w.blocks >= w.latest.blocks), 'the worst is never less than the latest')
  t.ok(h.alarms.some((x: { kind: string }) => x.kind === 'bad-signature'), 'the alarm raised in the window is listed')
  const text = await cli(['status', '--since', '24h', '--dir', agencyDir])
  t.is(text.code, 0)
  t.ok(/worst lag per dataset and embassy/.test(text.stdout) && /bad-signature/.test(text.stdout), 'text summary')
  for (const bad of ['24', '1w', '31d', 'soon']) {
    const r = await cli(['status', '--since', bad, '--dir', agencyDir])
    t.is(r.code, 2, `--since ${bad}: usage error, exit 2`)
    t.ok(/--since must be a window/.test(r.stderr), `--since ${bad}: says what is expected`)
  }
  const onEmbassy = await cli(['status', '--since', '24h', '--dir', a.host.node.dir])
  t.is(onEmbassy.code, 2, 'an embassy has no custody history: WRONG_ROLE')

  // Drill reports as `embassy drill --out DIR/drills` writes them (one good, one malformed).
  fs.mkdirSync(path.join(agencyDir, 'drills'), { recursive: true })
  const started = Date.now() - 10 * MIN
  fs.writeFileSync(
    path.join(agencyDir, 'drills', 'drill-2026-11-30T10-00-00Z.json'),
    JSON.stringify({ ok: true, embassy: keyA, startedAt: started, finishedAt: started + 4200, rto: { firstRecordMs: 180, fullCopyMs: 4100 }, rpo: { blocksBehind: 0, secondsBehind: 0 }, datasets: [{ name: 'register', ok: true }, { name: 'laws', ok: true }], signer: 'drillkey' })
  )
  fs.writeFileSync(path.join(agencyDir, 'drills', 'drill-2026-11-30T11-00-00Z.json'), 'not json')

  const base = agencyD.gateway!.url
  const plainRes = await fetch(base + '/custody')
  t.is(plainRes.status, 200, '/custody served')
  t.ok((plainRes.headers.get('content-security-policy') ?? '').includes("default-src 'none'"), 'under the pages\' CSP')
  t.ok((await (await fetch(base + '/')).text()).includes('href="/custody"'), 'linked from the home page')

  if (!HAVE_CHROMIUM) {
    t.comment(`Chromium part SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium)`)
    return
  }
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close(), { order: -2, force: true })
  const offsite: string[] = []
  const open = async (viewport: { width: number; height: number }): Promise<Page> => {
    const ctx = await browser.newContext({ javaScriptEnabled: false, viewport })
    const page = await ctx.newPage()
    page.setDefaultTimeout(20_000)
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) offsite.push(r.url())
    })
    await page.goto(base + '/custody')
    return page
  }

  const wall = await open({ width: 1920, height: 1080 })
  t.is(await wall.title(), 'Custody · Data Embassy mirror')
  const headings = await wall.locator('h1, h2, h3').evaluateAll((els) => els.map((e) => `${e.tagName}:${e.textContent}`))
  t.alike(headings, ['H1:Custody', 'H2:Custody now', 'H2:Open alarms', 'H2:Last drills', 'H2:History', 'H3:Last 24 hours', 'H3:Last 30 days'], 'headings in order, none skipped')
  const matrix = wall.locator('table.matrix')
  t.is(await matrix.count(), 1, 'the matrix table')
  t.alike(await matrix.locator('thead th[scope=col]').allTextContents(), ['Dataset', ...[keyA, keyB].sort().map((k) => `Embassy ${k.slice(0, 8)}…`)], 'a column per embassy')
  t.alike((await matrix.locator('tbody th[scope=row]').allTextContents()).map((s) => s.split(/\d+ blocks/)[0]), ['register', 'laws'], 'a row per dataset')
  const behindCell = matrix.locator('tbody tr', { hasText: 'register' }).locator('td[data-state=behind]')
  t.is(await behindCell.count(), 1, 'one copy of register is behind')
  t.ok((await behindCell.textContent())?.includes('behind 7 blocks'), 'by 7 blocks, in words')
  t.ok((await wall.locator('section[aria-labelledby=h-alarms] table tbody tr').count()) >= 1, 'the alarms section lists the alarm')
  t.ok((await wall.locator('section[aria-labelledby=h-alarms]').textContent())?.includes('bad-signature'))
  t.is(await wall.locator('section[aria-labelledby=h-drills] tbody tr').count(), 2, 'both drill reports listed')
  t.ok((await wall.locator('section[aria-labelledby=h-drills]').textContent())?.includes('Unreadable report'), 'the malformed one as unreadable')
  const charts = wall.locator('svg.chart')
  t.is(await charts.count(), 4, 'two SVG charts per window')
  const titles = await charts.evaluateAll((els) => els.map((e) => e.querySelector(':scope > title')?.textContent ?? ''))
  t.ok(titles.every((x) => /^(Blocks behind|Recovery point) per embassy/.test(x)), 'each chart has a <title>')
  t.is(await wall.locator('svg.chart[role=img][aria-labelledby]').count(), 4, 'charts are labelled images')
  t.ok((await wall.locator('svg.chart').first().locator('path[stroke]').count()) >= 2, 'a line per embassy')
  // Contrast: the behind label's text on its background.
  const colours = await behindCell.locator('.state').evaluate((el) => {
    const cs = (globalThis as unknown as { getComputedStyle(e: unknown): { color: string; backgroundColor: string } }).getComputedStyle(el)
    return [cs.color, cs.backgroundColor]
  })
  const contrast = contrastRatio(colours[0]!, colours[1]!)
  t.ok(contrast >= 4.5, `state label contrast ${contrast.toFixed(1)}:1 ≥ 4.5:1`)
  const shot = path.join(await t.tmp(), 'dashboard.png')
  await wall.screenshot({ path: shot, fullPage: true })
  t.ok(fs.statSync(shot).size > 10_000, 'screenshot taken')
  if (process.env.EMBASSY_SCREENSHOT) {
    fs.copyFileSync(shot, path.resolve(process.env.EMBASSY_SCREENSHOT))
    fs.chmodSync(path.resolve(process.env.EMBASSY_SCREENSHOT), 0o644)
    t.comment(`screenshot saved to ${path.resolve(process.env.EMBASSY_SCREENSHOT)}`)
  }

  const phone = await open({ width: 375, height: 812 })
  const overflow = (await phone.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number
  t.ok(overflow <= 0, `no horizontal scroll on a 375 px phone (overflow ${overflow} px)`)
  t.is(await phone.locator('svg.chart').count(), 4, 'the charts on the phone too')
  const chartWidth = await phone.locator('svg.chart').first().evaluate((el) => el.getBoundingClientRect().width)
  t.ok(chartWidth <= 375 && chartWidth > 250, `charts fit the phone (${Math.round(chartWidth)} px)`)
  t.alike(offsite, [], 'no request left the gateway')
})
