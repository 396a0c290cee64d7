/**
 * Rewrite during a partition: the agency's key holder truncates a dataset and appends (a signed
 * fork) while one embassy is cut off. Both embassies must refuse it — the partitioned one when it
 * reconnects — and keep every block they had verified. Counted in their storage afterwards.
 */
import test from 'brittle'
import { NodeHost, toZ32, type Agency } from '../../lib/index.js'
import { cli } from '../helpers/index.js'
import { control, custody, report, startCluster, waitCaughtUp, type Cluster } from './cluster.js'
import { canRunLab } from './lab.js'

const skip = canRunLab()
const DATASET = 'register'
/** Records before the rewrite, the length it truncates to, and what it appends after. */
const ORIGINAL = 200
const TRUNCATE_TO = 50
const REWRITTEN = 5

interface AlarmRow {
  kind: string
  core: string
  peer: string
  reportedBy?: string
  held?: { length: number; fork: number }
  offered?: { length: number; fork: number }
}

function heldCore(status: any, key: string): { key: string; length: number; contiguousLength: number; fork: number; offered?: { length: number; fork: number } } | null {
  for (const a of status?.agencies ?? []) for (const c of a.cores ?? []) if (c.key === key) return c
  return null
}

/** Polls the running node's status (control socket) until `pick` returns something; bounded. */
async function waitStatus<T>(dir: string, what: string, pick: (s: any) => T | null | undefined | false, timeout: number): Promise<T> {
  const deadline = Date.now() + timeout
  let last: unknown = null
  while (Date.now() < deadline) {
    try {
      const s = await control(dir, 'status')
      last = s
      const v = pick(s)
      if (v) return v
    } catch (err) {
      last = (err as Error).message
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 2000)}`)
}

function rewriteAlarm(s: any, core: string, reportedBy?: string): AlarmRow | null {
  return ((s?.alarms ?? []) as AlarmRow[]).find((a) => a.kind === 'history-rewrite' && a.core === core && (reportedBy === undefined || a.reportedBy === reportedBy)) ?? null
}

/** In a stopped embassy's storage: how many of the first `n` blocks of `core` it holds, its fork, length, and tree hash at `n`. */
async function countPreserved(dir: string, coreZ: string, n: number): Promise<{ held: number; length: number; fork: number; treeHash: string | null }> {
  const host = new NodeHost(dir)
  await host.ready()
  try {
    const ref = (await host.heldCores()).find((r) => toZ32(r.core.key!) === coreZ)
    if (!ref) return { held: 0, length: 0, fork: -1, treeHash: null }
    const core = ref.core
    let held = 0
    for (let i = 0; i < Math.min(n, core.length); i++) if (await core.has(i)) held++
    const treeHash = core.length >= n ? Buffer.from(await core.treeHash(n)).toString('hex') : null
    return { held, length: core.length, fork: core.fork, treeHash }
  } finally {
    await host.close()
  }
}

/** Truncates and appends with the agency's own key, on its (stopped) directory. Returns the core key and the tree hash before. */
async function rewrite(c: Cluster): Promise<{ coreZ: string; originalTreeHash: string; length: number; fork: number }> {
  const host = new NodeHost(c.agencyDir)
  await host.ready()
  try {
    const agency = (await host.agency()) as Agency
    const log = await agency.datasets.openLog(DATASET)
    const originalTreeHash = Buffer.from(await log.core.treeHash(ORIGINAL)).toString('hex')
    await log.core.truncate(TRUNCATE_TO)
    await agency.append(
      DATASET,
      Array.from({ length: REWRITTEN }, (_, i) => ({ rewritten: i }))
    )
    return { coreZ: toZ32(log.core.key!), originalTreeHash, length: log.core.length, fork: log.core.fork }
  } finally {
    await host.close()
  }
}

test('rewrite: the agency key rewrites history during a partition; both embassies refuse it and keep every verified block', { skip: !!skip, timeout: 300_000 }, async (t) => {
  const c = await startCluster(t, { embassies: 2, dataset: DATASET })
  const [dirA, dirB] = c.embassyDirs as [string, string]
  const [keyA, keyB] = c.embassyKeys as [string, string]
  const records = Array.from({ length: ORIGINAL }, (_, i) => JSON.stringify({ original: i }))
  await control(c.agencyDir, 'append', [DATASET], records)
  await waitCaughtUp(c, 60_000)
  t.pass(`both embassies proved custody of ${ORIGINAL} records`)

  // B is cut off; the agency stops; its key holder truncates and appends; the agency comes back.
  c.lab.link('emb1', false)
  t.is(await c.agency!.stop(), 0, 'agency stopped')
  const rw = await rewrite(c)
  t.is(rw.length, TRUNCATE_TO + REWRITTEN, `agency now at length ${TRUNCATE_TO + REWRITTEN}`)
  t.is(rw.fork, 1, 'on fork 1')
  const restartAt = Date.now()
  c.agency = await c.lab.run(t, 'agency', c.agencyDir, c.bootstrap)

  // A (connected) refuses it and tells the agency.
  const alarmA = await waitStatus(dirA, 'history-rewrite alarm on embassy A', (s) => rewriteAlarm(s, rw.coreZ), 60_000)
  const alarmAMs = Date.now() - restartAt
  t.is(alarmA.peer, c.agencyKey, 'A: offered by the agency')
  t.alike(alarmA.offered, { length: TRUNCATE_TO + REWRITTEN, fork: 1 }, 'A: the offered fork')
  t.is(alarmA.held?.length, ORIGINAL, 'A: keeps the length it verified')
  const onAgencyA = await waitStatus(c.agencyDir, 'the agency hears of A\'s refusal', (s) => rewriteAlarm(s, rw.coreZ, keyA), 60_000)
  const agencyAMs = Date.now() - restartAt
  t.ok(onAgencyA, 'agency: alarm reported by A')

  // B, still partitioned, has heard nothing: the partition was real. (B may still believe its
  // connection to the old agency process is up: a cut link is only noticed by a timeout.)
  const bDuring = await control(dirB, 'status')
  t.absent(rewriteAlarm(bDuring, rw.coreZ), 'B: no alarm while partitioned')
  t.is(heldCore(bDuring, rw.coreZ)?.length, ORIGINAL, 'B: still holds the original length while partitioned')
  t.absent(heldCore(bDuring, rw.coreZ)?.offered, 'B: not offered the rewrite while partitioned')
  const agencyDuring = await custody(c.agencyDir)
  t.is(agencyDuring.datasets[0].embassies.find((e: { nodeKey: string }) => e.nodeKey === keyB)?.connected, false, 'the restarted agency cannot reach B')

  // Heal: B reconnects, is offered the rewrite by the agency, refuses it and keeps its history.
  c.lab.link('emb1', true)
  const healedAt = Date.now()
  const refusedB = await waitStatus(
    dirB,
    'B is offered the rewrite and keeps fork 0',
    (s) => {
      const row = heldCore(s, rw.coreZ)
      return row && row.offered?.fork === 1 ? row : null
    },
    120_000
  )
  const refusedBMs = Date.now() - healedAt
  t.alike(refusedB.offered, { length: TRUNCATE_TO + REWRITTEN, fork: 1 }, 'B: offered the rewritten head after the heal')
  t.is(refusedB.fork, 0, 'B: refused it: still on fork 0')
  t.is(refusedB.length, ORIGINAL, 'B: still at the length it verified')
  t.is(refusedB.contiguousLength, ORIGINAL, 'B: with every block')
  // B hears A's report and finds the offered fork itself (its own sweep): wait for its own refusal,
  // whichever of the two arrives first.
  const ownAlarm = (s: { alarms?: AlarmRow[] } | null) => (s?.alarms ?? []).find((a) => a.kind === 'history-rewrite' && a.core === rw.coreZ && !a.reportedBy)
  const statusB = await waitStatus(dirB, 'embassy B lists its own history-rewrite refusal', (s) => (ownAlarm(s) ? s : null), 60_000)
  const alarmBMs = Date.now() - healedAt
  const alarmsB = ((statusB.alarms ?? []) as AlarmRow[]).filter((a) => a.kind === 'history-rewrite' && a.core === rw.coreZ)
  t.ok(alarmsB.every((a) => a.peer === c.agencyKey && a.offered?.fork === 1 && a.held?.length === ORIGINAL), 'B: alarm names the agency, the offered fork and the kept length')
  t.ok(ownAlarm(statusB), "B lists its own refusal (not only A's relayed report)")

  // The agency hears of B's refusal too: its own alarm, apart from A's.
  await waitStatus(c.agencyDir, "the agency lists B's refusal", (s) => rewriteAlarm(s, rw.coreZ, keyB), 60_000)
  const agencyBMs = Date.now() - healedAt
  t.pass("agency: B's refusal listed with reportedBy B")
  const rows = await waitStatus(
    c.agencyDir,
    'custody rows of both embassies show pre-rewrite history',
    (s) => {
      const ds = s?.datasets?.find((d: { name: string }) => d.name === DATASET)
      const rs = [keyA, keyB].map((k) => ds?.embassies?.find((e: { nodeKey: string }) => e.nodeKey === k))
      return rs.every((r) => r && r.preRewrite?.length > 0) ? rs : null
    },
    60_000
  )
  for (const [i, r] of rows.entries()) {
    t.alike(r.preRewrite, [{ core: rw.coreZ, length: ORIGINAL, fork: 0 }], `custody ${i ? 'B' : 'A'}: pre-rewrite history ${ORIGINAL} blocks on fork 0`)
    t.ok(r.behindBlocks > 0, `custody ${i ? 'B' : 'A'}: not shown as caught up (${r.behindBlocks} behind)`)
  }

  // Count what was preserved, in each embassy's own storage (the daemons stopped first).
  for (const p of c.embassies) {
    const stopping = Date.now()
    t.is(await p!.stop(), 0, 'embassy stopped')
    t.comment(`embassy stopped in ${Date.now() - stopping} ms`)
  }
  let preserved = 0
  let refused = 0
  for (const [i, dir] of [dirA, dirB].entries()) {
    const name = i ? 'B' : 'A'
    const got = await countPreserved(dir, rw.coreZ, ORIGINAL)
    t.is(got.held, ORIGINAL, `${name}: ${got.held}/${ORIGINAL} originally verified blocks still stored`)
    t.is(got.length, ORIGINAL, `${name}: length ${got.length}`)
    t.is(got.fork, 0, `${name}: fork ${got.fork}`)
    t.is(got.treeHash, rw.originalTreeHash, `${name}: tree hash at ${ORIGINAL} equals the agency's before the rewrite (the same blocks)`)
    const verify = await cli(['verify', '--dir', dir, '--json'], { timeout: 120_000 })
    t.is(verify.code, 0, `${name}: embassy verify passes (${verify.json?.totals?.checked} blocks checked)`)
    preserved += got.treeHash === rw.originalTreeHash && verify.code === 0 ? got.held : 0
    if (got.fork === 0 && got.length === ORIGINAL) refused++
  }
  const lost = 2 * ORIGINAL - preserved
  t.comment(`rewrite → alarm on A ${alarmAMs} ms after the agency restart; on the agency (from A) ${agencyAMs} ms; heal → B offered and refusing ${refusedBMs} ms, alarm on B ${alarmBMs} ms, agency hears B ${agencyBMs} ms`)
  report(t, {
    scenario: `history rewritten with the agency key (truncate ${ORIGINAL}→${TRUNCATE_TO} + ${REWRITTEN}) while one embassy is partitioned`,
    runs: 1,
    lost,
    recoverMs: refusedBMs,
    notes: `refused on ${refused}/2 embassies; ${lost} blocks lost (${preserved}/${2 * ORIGINAL} verified blocks kept); alarm on agency (A and B listed); time is heal → refusal on the partitioned embassy`
  })
})
