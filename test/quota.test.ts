/**
 * Per-agency quotas at an embassy (`embassy follow AGENCY --max-bytes N --max-cores N`): near and
 * over the quota raise alarms on the embassy and at the agency, the embassy keeps what it held and
 * takes nothing beyond the quota, status shows it, and raising the quota lets it catch up.
 */
import test from 'brittle'
import { toZ32, type Agency, type Embassy } from '../lib/index.js'
import { QuotaAlarmCode, alarmFromQuotaReport, quotaReport, type QuotaStatus } from '../lib/roles/quota.js'
import { validateConfig } from '../lib/node/config.js'
import { parseByteSize } from '../lib/daemon/commands/peers.js'
import { eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

/** Records of one size (so the average block is every block's size). */
const record = (i: number) => ({ i: String(i).padStart(6, '0'), pad: 'x'.repeat(1000) })

async function cluster(t: test.Assert) {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 10 }, (_, i) => record(i)))
  const embassyD = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyD, embassyD)
  const embassy = (await embassyD.host.embassy()) as Embassy
  const agencyKey = toZ32(agencyD.host.node.nodeKey)
  const embassyKey = toZ32(embassyD.host.node.nodeKey)
  return { agency, embassy, agencyD, embassyD, agencyKey, embassyKey, bootstrap }
}

/** The embassy's row for the agency: its quota and its dataset cores (the catalog left out). */
function holding(embassy: Embassy) {
  const h = embassy.holdings()[0]!
  return { quota: h.quota as QuotaStatus, cores: h.cores.filter((c) => c.dataset !== 'catalog') }
}

test('quota: near and over the byte quota alarm on both sides; the embassy keeps what it held, takes no more, and shows it', { timeout: 180_000 }, async (t) => {
  const { agency, embassy, embassyD, agencyKey, embassyKey } = await cluster(t)
  await eventually('the embassy holds all 10 records', () => {
    const h = holding(embassy)
    return h.cores.length === 1 && h.cores[0]!.length === 10 && h.cores[0]!.contiguousLength === 10
  })
  const before = holding(embassy).quota
  const logged: Array<{ level: string; event: string; message: string }> = []
  embassy.on('notice', (n) => logged.push(n)) // what `embassy run` logs
  t.is(before.maxBytes, null, 'no quota yet')

  // A quota far above the data, warning at 50 %: ok, and the usage is measured.
  const r = await embassy.follow(agencyKey, { maxBytes: 10 ** 12, warn: 0.5 })
  t.is((r.quota as QuotaStatus).state, 'ok', 'within the quota: no alarm')
  // Then one with room for about 1.5 more records: near at once.
  const held = (await eventually('usage measured', () => (holding(embassy).quota.heldBytes > 10_000 ? holding(embassy).quota : null))).heldBytes
  const maxBytes = Math.floor(held + 1.5 * 1040)
  await embassy.follow(agencyKey, { maxBytes })
  const cfg = embassyD.host.node.config.follow.find((f) => f.nodeKey === agencyKey)!
  t.is(cfg.maxBytes, maxBytes, 'persisted in config.json (follow entry)')
  t.is(cfg.quotaWarn, 0.5)
  await eventually('quota-near on the embassy', () => embassy.alarms.find((a) => a.kind === 'quota-near'))
  t.is(holding(embassy).quota.state, 'near')
  await eventually('quota-near reported to the agency', async () => (await agency.custody()).alarms.find((a) => a.kind === 'quota-near' && a.reportedBy === embassyKey))

  // The agency publishes 10 more records: over the quota.
  await agency.append('register', Array.from({ length: 10 }, (_, i) => record(10 + i)))
  const over = await eventually('quota-exceeded on the embassy', () => embassy.alarms.find((a) => a.kind === 'quota-exceeded'))
  t.ok(/over the quota/.test(over.detail), over.detail)
  const agencyAlarm = await eventually('quota-exceeded at the agency', async () =>
    (await agency.custody()).alarms.find((a) => a.kind === 'quota-exceeded' && a.reportedBy === embassyKey)
  )
  t.ok(agencyAlarm.detail.includes(embassyKey) && /takes nothing beyond the quota/.test(agencyAlarm.detail), agencyAlarm.detail)

  // It learns the new length, fetches what fits (one more record), then stops: it never drops what it held.
  const settled = await eventually('the embassy stops at its quota', () => {
    const h = holding(embassy)
    const c = h.cores[0]!
    return c.length === 20 && c.contiguousLength === 11 && h.quota.state === 'exceeded' ? h : null
  })
  t.ok(settled.quota.heldBytes <= maxBytes, `held ${settled.quota.heldBytes} bytes ≤ quota ${maxBytes}`)
  t.ok(settled.quota.bytes > maxBytes, `the agency publishes ${settled.quota.bytes} bytes`)
  t.is(settled.quota.reason?.includes('over the quota'), true, settled.quota.reason ?? '')
  const status = (await embassy.status()) as { agencies: Array<{ quota: QuotaStatus }>; alarms: Array<{ kind: string }> }
  t.is(status.agencies[0]!.quota.state, 'exceeded', 'status shows the state')
  t.ok(status.alarms.some((a) => a.kind === 'quota-exceeded'), 'status lists the alarm')
  const row = await eventually('the agency sees it behind', async () => {
    const e = (await agency.custody()).datasets.find((d) => d.name === 'register')?.embassies.find((x) => x.nodeKey === embassyKey)
    return e && e.heldLength === 11 ? e : null
  })
  t.is(row.behindBlocks, 9, 'receipts show it 9 records behind')
  t.ok(logged.some((n) => n.event === 'quota-near' && n.level === 'warn'), 'quota-near logged')
  t.ok(logged.some((n) => n.event === 'quota-exceeded' && n.level === 'error' && /over the quota/.test(n.message)), 'quota-exceeded logged')

  // A live append while over: still not taken.
  await agency.append('register', [record(20)])
  await eventually('the new length is known', () => holding(embassy).cores[0]!.length === 21)
  t.is(holding(embassy).cores[0]!.contiguousLength, 11, 'still 11: nothing beyond the quota')

  // Lifting the quota: it catches up, and the state is ok again.
  const lifted = await embassy.follow(agencyKey, { maxBytes: null })
  t.is((lifted.quota as QuotaStatus).maxBytes, null)
  t.is((lifted.quota as QuotaStatus).state, 'ok')
  t.absent(embassyD.host.node.config.follow[0]!.maxBytes, 'removed from config.json')
  await eventually('caught up after the quota is lifted', () => {
    const h = holding(embassy)
    return h.cores[0]!.contiguousLength === 21 && h.quota.state === 'ok'
  })
  t.ok(logged.some((n) => n.event === 'quota-ok'), 'back within the quota: logged')
})

test('quota: over the core quota, later datasets are not held (alarm on both sides) until it is raised', { timeout: 180_000 }, async (t) => {
  const { agency, embassy, agencyKey, embassyKey } = await cluster(t)
  await embassy.follow(agencyKey, { maxCores: 1 })
  await eventually('register held', () => holding(embassy).cores[0]?.contiguousLength === 10)
  await agency.createDataset('laws', { kind: 'files' })
  await eventually('quota-exceeded on the embassy', () => embassy.alarms.find((a) => a.kind === 'quota-exceeded'))
  await eventually('quota-exceeded at the agency', async () => (await agency.custody()).alarms.find((a) => a.kind === 'quota-exceeded' && a.reportedBy === embassyKey))
  const h = holding(embassy)
  t.is(h.quota.cores, 3, 'the catalog lists 3 dataset cores')
  t.is(h.quota.heldCores, 1, 'one is held')
  t.is(h.cores.length, 1, 'the files dataset\'s cores were not opened')
  await embassy.follow(agencyKey, { maxCores: 3 })
  await eventually('all three held once the quota is raised', () => holding(embassy).cores.length === 3 && holding(embassy).quota.state !== 'exceeded')
  t.is(holding(embassy).quota.state, 'near', '3 of 3 is at the 90 % warning')
})

test('quota: over the quota across a restart: what it held stays, the alarm is raised again, nothing more is taken', { timeout: 180_000 }, async (t) => {
  const { agency, embassy, embassyD, agencyKey, embassyKey, bootstrap } = await cluster(t)
  await eventually('the embassy holds all 10 records', () => holding(embassy).cores[0]?.contiguousLength === 10)
  await embassy.follow(agencyKey, { maxBytes: 10 ** 12 })
  const held = (await eventually('usage measured', () => (holding(embassy).quota.heldBytes > 10_000 ? holding(embassy).quota : null))).heldBytes
  await embassy.follow(agencyKey, { maxBytes: held + 100 })
  await agency.append('register', Array.from({ length: 5 }, (_, i) => record(10 + i)))
  await eventually('over the quota', () => holding(embassy).quota.state === 'exceeded' && holding(embassy).cores[0]!.length === 15)
  const before = (await embassy.status()) as { alarmCounts: Record<string, number> }
  t.is(before.alarmCounts['quota-exceeded'], 1, 'raised once')
  const dir = embassyD.host.node.dir
  await embassyD.close()
  const again = await startDaemon(t, dir, bootstrap)
  const e2 = (await again.host.embassy()) as Embassy
  const after = await eventually('over the quota again after the restart', () => {
    const h = holding(e2)
    return h.quota.state === 'exceeded' && h.cores[0]?.length === 15 ? h : null
  })
  t.is(after.cores[0]!.contiguousLength, 10, 'the 10 records held before are still held, none more')
  t.ok(after.quota.heldBytes <= held + 100)
  const s = (await e2.status()) as { alarmCounts: Record<string, number> }
  t.is(s.alarmCounts['quota-exceeded'], 2, 'raised again at start (counted; folded into the listed alarm within a minute)')
  await eventually('the agency hears it again', async () => {
    const a = (await agency.custody()).alarms.find((x) => x.kind === 'quota-exceeded' && x.reportedBy === embassyKey)
    return a && (a.repeats ?? 0) >= 1
  })
})

test('quota: config and CLI values are checked', (t) => {
  const base = { version: 1, role: 'embassy', name: '', bootstrap: [], allow: [], sources: [], peers: [] }
  const key = toZ32(Buffer.alloc(32, 7))
  t.exception(() => validateConfig({ ...base, follow: [{ nodeKey: key, catalogKey: null, maxBytes: -1 }] }), /maxBytes/)
  t.exception(() => validateConfig({ ...base, follow: [{ nodeKey: key, catalogKey: null, maxCores: 1.5 }] }), /maxCores/)
  t.exception(() => validateConfig({ ...base, follow: [{ nodeKey: key, catalogKey: null, quotaWarn: 2 }] }), /quotaWarn/)
  const ok = validateConfig({ ...base, follow: [{ nodeKey: key, catalogKey: null, maxBytes: 1000, maxCores: 4, quotaWarn: 0.8 }] })
  t.alike({ ...ok.follow[0] }, { nodeKey: key, catalogKey: null, maxBytes: 1000, maxCores: 4, quotaWarn: 0.8 })
  t.is(parseByteSize('500MiB'), 500 * 2 ** 20)
  t.is(parseByteSize('2GB'), 2e9)
  t.is(parseByteSize('1000'), 1000)
  t.ok(Number.isNaN(parseByteSize('12 parsecs')))
  t.ok(Number.isNaN(parseByteSize('-5')))
})

test('quota: the agency takes a quota report only from an embassy, and only about its own catalog', (t) => {
  const catalog = Buffer.alloc(32, 1)
  const status: QuotaStatus = { maxBytes: 1000, maxCores: null, warn: 0.9, state: 'exceeded', bytes: 5000, heldBytes: 990, cores: 2, heldCores: 2, reason: 'over' }
  const report = quotaReport(catalog, status)
  t.is(report.code, QuotaAlarmCode.EXCEEDED)
  t.is(report.length, 5000)
  t.is(report.offeredLength, 1000)
  t.is(report.offeredFork, 0, 'no core limit: 0')
  const a = alarmFromQuotaReport(report, 'emb', catalog, 'embassy')
  t.is(a?.kind, 'quota-exceeded')
  t.is(a?.reportedBy, 'emb')
  t.is(alarmFromQuotaReport(report, 'm', catalog, 'mirror'), null, 'a mirror holds no quota: dropped')
  t.is(alarmFromQuotaReport(report, 'emb', Buffer.alloc(32, 2), 'embassy'), null, 'another catalog: dropped')
  t.is(alarmFromQuotaReport({ ...report, code: 1 }, 'emb', catalog, 'embassy'), null, 'not a quota code')
  t.is(alarmFromQuotaReport(quotaReport(catalog, { ...status, state: 'near' }), 'emb', catalog, 'embassy')?.kind, 'quota-near')
})
