/**
 * Continuity: time to service must not grow with the data. An agency holding S bytes of files
 * (64 MiB, and 1 GiB; quick: 16 and 64 MiB, under the same result names) is destroyed and rebuilt from its recovery kit (shares, so no
 * Argon2id cost in the figure) and one embassy. Measured: `embassy run` spawn → the first accepted
 * `embassy append` (writes are taken as soon as every core's newest witnessed head is here; blocks
 * are backfilled behind), and spawn → `restore-complete` (every block held again). Baseline, same
 * run: a plain Hypercore reader process pulling the same bytes in the same 1 MiB blocks.
 *
 * And the on-demand mirror (issue 13 item 5): an agency with a log of S bytes (64 KiB records)
 * held in full by one embassy, then offline; a fresh mirror made with the read capability
 * (`embassy mirror --capability-file`, default prefetch) is started with `embassy run --http`.
 * Measured from its spawn: the first `GET /api/datasets/register/records/0` answered 200, and the
 * newest record after it. Baseline, same mirror, same run: spawn → the log held in full (its
 * `caught-up` line), the full download of the same bytes that a download-then-serve mirror waits for.
 */
import fs from 'node:fs'
import path from 'node:path'
import { cliOk, describeInProcess, setupCli, initNode, MiB, result, rmdir, round, sleep, startRun, tmpdir, type Json, type Proc, type Result } from '../harness.js'
import { fillLog, makeFolder, newAgency, newEmbassy, rawRead, rawWriter, runEmbassy, waitHeld, type CoreInfo, type RawWriter } from '../product.js'
import type { Ctx } from '../context.js'

/** The goals: first append under 5 s, and the large figure within 1.5× of the small one. */
const FIRST_APPEND_GOAL_S = 5
const SIZE_RATIO_GOAL = 1.5

interface Measured {
  bytes: number
  firstAppendS: number
  writableS: number
  completeS: number
  heldAtFirstAppend: number | null
  totalBlocks: number | null
  rawS: number
  /** CPU-s the suite's waiting processes used during the measured spans: the other cases' prepared nodes (quick mode), this case's plain writer during the product's span */
  backgroundCpuS: number
}

/**
 * Processes and directories of one case (a restore or a mirror measurement), and the CPU of the
 * suite's other live processes around a measured span: in quick mode every case is set up at once
 * and then measured one after another, so the other cases' idle nodes are alive during a
 * measurement; their CPU is recorded with the result (`backgroundCpuS`).
 */
class Case {
  static live = new Set<Case>()
  readonly procs: Proc[] = []
  readonly dirs: string[] = []
  constructor() {
    Case.live.add(this)
  }
  /** CPU ms used so far by the live processes of every other case. */
  othersCpu(): number {
    let ms = 0
    for (const c of Case.live) if (c !== this) for (const p of c.procs) if (p.child.exitCode === null && p.child.signalCode === null) ms += p.cpu() || 0
    return ms
  }
  async close(): Promise<void> {
    for (const p of this.procs.reverse()) await p.stop().catch(() => {})
    for (const d of this.dirs) rmdir(d)
    Case.live.delete(this)
  }
}

/** A restore case, set up: the agency's directory rebuilt from its kit (not running yet), its embassy running; the plain writer of the same bytes listening. */
interface RestoreSetup {
  bytes: number
  agencyDir: string
  emb: Proc
  raw: RawWriter
  c: Case
}

async function prepareRestore(ctx: Ctx, bytes: number): Promise<RestoreSetup> {
  const c = new Case()
  const label = `continuity-${bytes / MiB}`
  // The plain writer appends while the agency is made (set-up: nothing is measured yet).
  const writer = rawWriter({ bytes, blockSize: MiB, batch: 16 }, ctx.bootstrap).then((w) => {
    c.procs.push(w.proc)
    return w
  })
  writer.catch(() => {}) // awaited below
  try {
    const agency = await newAgency(label)
    c.dirs.push(path.dirname(agency.dir))
    const source = path.join(path.dirname(agency.dir), 'source')
    makeFolder(source, bytes)
    await setupCli(['dataset', 'create', 'archive', '--kind', 'files', '--dir', agency.dir, '--json'])
    await setupCli(['publish', 'archive', source, '--dir', agency.dir, '--json'])
    fs.rmSync(source, { recursive: true, force: true })
    await setupCli(['dataset', 'create', 'ledger', '--dir', agency.dir, '--json'])
    await setupCli(['append', 'ledger', '{"entry":0}', '--dir', agency.dir, '--json'])
    const cores = await describeInProcess(agency.dir)
    const embassy = await newEmbassy(`${label}-embassy`, [agency])
    c.dirs.push(path.dirname(embassy.dir))
    const agencyProc = await startRun(agency.dir, ctx.bootstrap, `${label}-agency`)
    c.procs.push(agencyProc)
    const emb = await runEmbassy(embassy.dir, ctx.bootstrap, { label: `${label}-embassy` })
    c.procs.push(emb)
    await waitHeld(emb, cores, 900_000)
    const kit = path.join(path.dirname(agency.dir), 'agency.kit')
    await setupCli(['kit', 'export', '--out', kit, '--shares', '2/2', '--dir', agency.dir, '--json'])
    await agencyProc.kill()
    fs.rmSync(agency.dir, { recursive: true, force: true })
    await setupCli(['kit', 'import', `${kit}.1`, `${kit}.2`, '--dir', agency.dir, '--json'])
    return { bytes, agencyDir: agency.dir, emb, raw: await writer, c }
  } catch (err) {
    await writer.catch(() => null) // settled, so its process is in c.procs and stopped below
    await c.close()
    throw err
  }
}

async function measureRestore(ctx: Ctx, s: RestoreSetup): Promise<Measured> {
  const { bytes, agencyDir, emb, c } = s
  const label = `continuity-${bytes / MiB}`
  try {
    // Waiting during the product's span: the other cases' nodes, and this case's own plain writer.
    const bg0 = c.othersCpu() + s.raw.proc.cpu()
    const restored = await startRun(agencyDir, ctx.bootstrap, `${label}-restored`)
    c.procs.push(restored)
    const t0 = restored.spawnedAt
    const writable = await restored.waitEvent((e) => e.event === 'restore-writable' || e.event === 'restore-error', 600_000, 'restore-writable')
    if (writable.event === 'restore-error') throw new Error(`restore failed: ${writable.message}`)
    const appended = await cliOk(['append', 'ledger', '{"entry":"first after restore"}', '--dir', agencyDir, '--json'])
    const firstAppend = Date.now()
    if (appended.json?.length !== 2) throw new Error(`unexpected append result ${JSON.stringify(appended.json)}`)
    // Not measured: how far the backfill was (through the control socket, in this process).
    const st = (await setupCli(['status', '--dir', agencyDir, '--json'])).json?.restore
    const done = await restored.waitEvent((e) => e.event === 'restore-complete' || e.event === 'restore-error', 900_000, 'restore-complete')
    if (done.event === 'restore-error') throw new Error(`backfill failed: ${done.message}`)
    let bg = c.othersCpu() + s.raw.proc.cpu() - bg0
    ctx.say(`  ${bytes / MiB} MiB: run → writable ${round((writable.time - t0) / 1000, 2)} s, → first append ${round((firstAppend - t0) / 1000, 2)} s (held ${st?.heldBlocks} of ${st?.totalBlocks} blocks), → restore-complete ${round((done.time - t0) / 1000, 2)} s`)
    await restored.stop()
    await emb.stop()

    const bg1 = c.othersCpu()
    const raw = await rawRead(s.raw, ctx.bootstrap)
    bg += c.othersCpu() - bg1
    return {
      bytes,
      firstAppendS: (firstAppend - t0) / 1000,
      writableS: (writable.time - t0) / 1000,
      completeS: (done.time - t0) / 1000,
      heldAtFirstAppend: st?.heldBlocks ?? null,
      totalBlocks: st?.totalBlocks ?? null,
      rawS: raw.spawnToDone / 1000,
      backgroundCpuS: bg / 1000
    }
  } finally {
    await c.close()
  }
}

/** The log dataset a fresh mirror serves (64 KiB JSON records, one block each). */
const MIRROR_DATASET = 'register'

interface MirrorMeasured {
  bytes: number
  records: number
  /** Spawn → `GET …/records/0` answered 200. */
  firstRecordS: number
  /** Spawn → the newest record answered 200 (asked right after the first). */
  newestRecordS: number
  /** Spawn → the `http` log line (the gateway listening). */
  httpS: number
  /** Requests answered with something else than 200 before the first record (the mirror still learning the catalog). */
  earlyAnswers: Record<string, number>
  /** The newest record's X-Embassy-Contiguous-Length / X-Embassy-Length. */
  contiguousAtNewest: number | null
  lengthAtNewest: number | null
  /** Spawn → the log held in full (the baseline). */
  fullS: number
  /** CPU-s other processes of this suite used during the measured span (see Measured) */
  backgroundCpuS: number
}

/** GET `url`: status, headers (lower-case) and the parsed JSON body when there is one. */
async function getJson(url: string): Promise<{ status: number; headers: Headers; json: Json | null }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  let json: Json | null = null
  try {
    json = JSON.parse(text) as Json
  } catch {}
  return { status: res.status, headers: res.headers, json }
}

/** The record view's seq, checked against its JSON text (the bench's records carry their own "seq"). */
function servedSeq(json: Json | null): number | null {
  if (!json || typeof json.text !== 'string') return null
  try {
    return (JSON.parse(json.text) as Json).seq ?? null
  } catch {
    return null
  }
}

/** A mirror case, set up: the log held by the embassy (running), the agency stopped, the mirror's directory made (not running yet). */
interface MirrorSetup {
  bytes: number
  records: number
  log: CoreInfo[]
  mirrorDir: string
  c: Case
}

async function prepareMirror(ctx: Ctx, bytes: number): Promise<MirrorSetup> {
  const c = new Case()
  const label = `continuity-mirror-${bytes / MiB}`
  try {
    const agency = await newAgency(label)
    c.dirs.push(path.dirname(agency.dir))
    await setupCli(['dataset', 'create', MIRROR_DATASET, '--dir', agency.dir, '--json'])
    const { records } = await fillLog(agency.dir, MIRROR_DATASET, bytes)
    const capability = (await setupCli(['capability', '--dir', agency.dir, '--json'])).json?.readCapability
    if (typeof capability !== 'string') throw new Error('embassy capability printed no readCapability')
    const cores = await describeInProcess(agency.dir)
    const log = cores.filter((x) => x.length === records)
    if (log.length !== 1) throw new Error(`expected one core of length ${records}: ${JSON.stringify(cores.map((x) => [x.name, x.length]))}`)
    const embassy = await newEmbassy(`${label}-embassy`, [agency])
    c.dirs.push(path.dirname(embassy.dir))
    const mirrorDir = path.join(tmpdir(`${label}-mirror`), 'mirror')
    c.dirs.push(path.dirname(mirrorDir))
    const mirrorId = await initNode(mirrorDir, 'mirror', label)
    const capFile = path.join(path.dirname(mirrorDir), 'capability.txt')
    fs.writeFileSync(capFile, capability + '\n', { mode: 0o600 })
    await setupCli(['mirror', '--capability-file', capFile, '--dir', mirrorDir, '--json'])
    await setupCli(['allow', mirrorId.nodeKey, '--dir', embassy.dir, '--json'])

    const agencyProc = await startRun(agency.dir, ctx.bootstrap, `${label}-agency`)
    c.procs.push(agencyProc)
    const emb = await runEmbassy(embassy.dir, ctx.bootstrap, { label: `${label}-embassy` })
    c.procs.push(emb)
    await waitHeld(emb, cores, 900_000)
    await agencyProc.stop() // from now on the embassy is the only holder
    return { bytes, records, log, mirrorDir, c }
  } catch (err) {
    await c.close()
    throw err
  }
}

async function measureMirror(ctx: Ctx, s: MirrorSetup): Promise<MirrorMeasured> {
  const { bytes, records, log, mirrorDir, c } = s
  const label = `continuity-mirror-${bytes / MiB}`
  try {
    const bg0 = c.othersCpu()
    const mirror = await startRun(mirrorDir, ctx.bootstrap, `${label}-mirror`, { extra: ['--http', '127.0.0.1:0'] })
    c.procs.push(mirror)
    const t0 = mirror.spawnedAt
    const held = waitHeld(mirror, log, 900_000)
    held.catch(() => {}) // awaited below; a failure before then must not go unhandled
    const http = await mirror.waitEvent((e) => e.event === 'http', 60_000, 'http')
    const base = `${String(http.url).replace(/\/$/, '')}/api/datasets/${MIRROR_DATASET}/records`

    // Polled until served: before the mirror has the catalog and a holder the gateway answers 404/503 at once.
    const earlyAnswers: Record<string, number> = {}
    const deadline = Date.now() + 120_000
    let first: Awaited<ReturnType<typeof getJson>>
    for (;;) {
      first = await getJson(`${base}/0`)
      if (first.status === 200) break
      earlyAnswers[first.status] = (earlyAnswers[first.status] ?? 0) + 1
      if (Date.now() > deadline) throw new Error(`record 0 not served 120 s after the mirror started (last ${first.status} ${JSON.stringify(first.json)})`)
      await sleep(20)
    }
    const firstAt = Date.now()
    if (servedSeq(first.json) !== 0) throw new Error(`/records/0 served ${JSON.stringify(first.json).slice(0, 200)}`)
    const newest = await getJson(`${base}/${records - 1}`)
    const newestAt = Date.now()
    if (newest.status !== 200 || servedSeq(newest.json) !== records - 1) throw new Error(`/records/${records - 1}: ${newest.status} ${JSON.stringify(newest.json).slice(0, 200)}`)
    const num = (h: string | null) => (h === null ? null : Number(h))
    const contiguous = num(newest.headers.get('x-embassy-contiguous-length'))
    const length = num(newest.headers.get('x-embassy-length'))
    const full = await held
    const bg = c.othersCpu() - bg0
    ctx.say(`  mirror of ${bytes / MiB} MiB (${records} records): run → http ${round((http.time - t0) / 1000, 2)} s, → /records/0 ${round((firstAt - t0) / 1000, 2)} s, → newest ${round((newestAt - t0) / 1000, 2)} s (contiguous ${contiguous} of ${length}), → held in full ${round((full.at - t0) / 1000, 2)} s`)
    return {
      bytes,
      records,
      firstRecordS: (firstAt - t0) / 1000,
      newestRecordS: (newestAt - t0) / 1000,
      httpS: (http.time - t0) / 1000,
      earlyAnswers,
      contiguousAtNewest: contiguous,
      lengthAtNewest: length,
      fullS: (full.at - t0) / 1000,
      backgroundCpuS: bg / 1000
    }
  } finally {
    await c.close()
  }
}

/** Sizes, MiB: full 64 and 1024; quick 16 and 64 (at 64 MiB the first append still comes before the backfill ends) (same names and goals as full: `measured` says what ran). */
const SMALL_MIB = { full: 64, quick: 16 }
const LARGE_MIB = { full: 1024, quick: 64 }

export async function continuity(ctx: Ctx): Promise<Result[]> {
  const smallMiB = ctx.pick(SMALL_MIB.full, SMALL_MIB.quick)
  const largeMiB = ctx.pick(LARGE_MIB.full, LARGE_MIB.quick)
  // Full mode: each case is set up and measured in turn. Quick mode: the four set-ups run at once
  // (nothing is measured while they run), then the cases are measured one after another; each
  // case has its own nodes and data, so the trials stay independent, and the CPU the others'
  // waiting nodes use during a measurement is kept in its detail (`backgroundCpuS`).
  let ready: [RestoreSetup, RestoreSetup, MirrorSetup, MirrorSetup] | null = null
  if (ctx.quick) {
    const settled = await Promise.allSettled([prepareRestore(ctx, smallMiB * MiB), prepareRestore(ctx, largeMiB * MiB), prepareMirror(ctx, smallMiB * MiB), prepareMirror(ctx, largeMiB * MiB)])
    const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected')
    if (failed) {
      await closeAll()
      throw failed.reason
    }
    ready = settled.map((x) => (x as PromiseFulfilledResult<RestoreSetup & MirrorSetup>).value) as unknown as [RestoreSetup, RestoreSetup, MirrorSetup, MirrorSetup]
    ctx.say('  the four cases set up at once (quick); now measured one after another')
  }
  try {
    return await measureAll(ctx, ready, smallMiB, largeMiB)
  } finally {
    await closeAll()
  }
}

/** Stops what is left of every case (after a failure: the prepared cases not measured yet). */
async function closeAll(): Promise<void> {
  for (const c of [...Case.live]) await c.close()
}

async function measureAll(ctx: Ctx, ready: [RestoreSetup, RestoreSetup, MirrorSetup, MirrorSetup] | null, smallMiB: number, largeMiB: number): Promise<Result[]> {
  /** The full-size label a result's name keeps, and what quick mode measured instead. */
  const named = (m: { bytes: number }) => (m.bytes / MiB === smallMiB ? SMALL_MIB.full : LARGE_MIB.full)
  const measured = (m: { bytes: number }) => (ctx.quick ? { measured: `${m.bytes / MiB} MiB` } : {})
  const vs = ctx.quick ? { measured: `${largeMiB} MiB vs ${smallMiB} MiB` } : {}
  const small = await measureRestore(ctx, ready ? ready[0] : await prepareRestore(ctx, smallMiB * MiB))
  const large = await measureRestore(ctx, ready ? ready[1] : await prepareRestore(ctx, largeMiB * MiB))
  const out: Result[] = []
  for (const m of [small, large]) {
    out.push(
      result({
        name: `continuity: run → first accepted append, restored agency of ${named(m)} MiB`,
        ...measured(m),
        value: round(m.firstAppendS, 2),
        unit: 's',
        baseline: `plain Hypercore reader process pulling the same ${m.bytes / MiB} MiB (1 MiB blocks), spawn → held (what a full download before writes costs)`,
        baselineValue: round(m.rawS, 2),
        better: 'lower',
        goal: `< ${FIRST_APPEND_GOAL_S} s`,
        met: m.firstAppendS < FIRST_APPEND_GOAL_S,
        detail: { writableS: round(m.writableS, 2), restoreCompleteS: round(m.completeS, 2), heldAtFirstAppend: m.heldAtFirstAppend, totalBlocks: m.totalBlocks, backgroundCpuS: round(m.backgroundCpuS, 2) }
      })
    )
  }
  out.push(
    result({
      name: `continuity: first append, ${LARGE_MIB.full} MiB vs ${SMALL_MIB.full} MiB`,
      ...vs,
      value: round(large.firstAppendS, 2),
      unit: 's',
      baseline: `the same figure for the ${smallMiB} MiB agency, this run`,
      baselineValue: round(small.firstAppendS, 2),
      better: 'lower',
      goal: `≤ ${SIZE_RATIO_GOAL}× the small one`,
      met: large.firstAppendS <= SIZE_RATIO_GOAL * small.firstAppendS
    })
  )
  const mSmall = await measureMirror(ctx, ready ? ready[2] : await prepareMirror(ctx, smallMiB * MiB))
  const mLarge = await measureMirror(ctx, ready ? ready[3] : await prepareMirror(ctx, largeMiB * MiB))
  for (const m of [mSmall, mLarge]) {
    out.push(
      result({
        name: `continuity: fresh mirror run → /records/0 and the newest record served, log of ${named(m)} MiB`,
        ...measured(m),
        value: round(m.newestRecordS, 2),
        unit: 's',
        baseline: `the same mirror, run → the whole ${m.bytes / MiB} MiB log held (the full download a download-then-serve mirror waits for)`,
        baselineValue: round(m.fullS, 2),
        better: 'lower',
        goal: `< ${FIRST_APPEND_GOAL_S} s`,
        met: m.newestRecordS < FIRST_APPEND_GOAL_S,
        detail: {
          records: m.records,
          httpS: round(m.httpS, 2),
          firstRecordS: round(m.firstRecordS, 2),
          newestRecordS: round(m.newestRecordS, 2),
          earlyAnswers: m.earlyAnswers,
          contiguousAtNewest: m.contiguousAtNewest,
          lengthAtNewest: m.lengthAtNewest,
          servedBeforeBackfillDone: m.contiguousAtNewest !== null && m.lengthAtNewest !== null && m.contiguousAtNewest < m.lengthAtNewest,
          backgroundCpuS: round(m.backgroundCpuS, 2)
        }
      })
    )
  }
  out.push(
    result({
      name: `continuity: mirror first records, ${LARGE_MIB.full} MiB vs ${SMALL_MIB.full} MiB`,
      ...vs,
      value: round(mLarge.newestRecordS, 2),
      unit: 's',
      baseline: `the same figure for the ${smallMiB} MiB log, this run`,
      baselineValue: round(mSmall.newestRecordS, 2),
      better: 'lower',
      goal: `≤ ${SIZE_RATIO_GOAL}× the small one`,
      met: mLarge.newestRecordS <= SIZE_RATIO_GOAL * mSmall.newestRecordS
    })
  )
  return out
}
