/**
 * Continuity: time to service must not grow with the data. An agency holding S bytes of files
 * (64 MiB, and 1 GiB; quick: 256 MiB) is destroyed and rebuilt from its recovery kit (shares, so no
 * Argon2id cost in the figure) and one embassy. Measured: `embassy run` spawn → the first accepted
 * `embassy append` (writes are taken as soon as every core's newest witnessed head is here; blocks
 * are backfilled behind), and spawn → `restore-complete` (every block held again). Baseline, same
 * run: a plain Hypercore reader process pulling the same bytes in the same 1 MiB blocks.
 */
import fs from 'node:fs'
import path from 'node:path'
import { cli, cliOk, MiB, result, rmdir, round, startRun, type Proc, type Result } from '../harness.js'
import { describe, makeFolder, newAgency, newEmbassy, rawRead, rawWriter, runEmbassy, waitHeld } from '../product.js'
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
}

async function once(ctx: Ctx, bytes: number): Promise<Measured> {
  const procs: Proc[] = []
  const dirs: string[] = []
  const label = `continuity-${bytes / MiB}`
  try {
    const agency = await newAgency(label)
    dirs.push(path.dirname(agency.dir))
    const source = path.join(path.dirname(agency.dir), 'source')
    makeFolder(source, bytes)
    await cliOk(['dataset', 'create', 'archive', '--kind', 'files', '--dir', agency.dir, '--json'])
    await cliOk(['publish', 'archive', source, '--dir', agency.dir, '--json'], { timeoutMs: 900_000 })
    fs.rmSync(source, { recursive: true, force: true })
    await cliOk(['dataset', 'create', 'ledger', '--dir', agency.dir, '--json'])
    await cliOk(['append', 'ledger', '{"entry":0}', '--dir', agency.dir, '--json'])
    const cores = await describe(agency.dir)
    const embassy = await newEmbassy(`${label}-embassy`, [agency])
    dirs.push(path.dirname(embassy.dir))
    const agencyProc = await startRun(agency.dir, ctx.bootstrap, `${label}-agency`)
    procs.push(agencyProc)
    const emb = await runEmbassy(embassy.dir, ctx.bootstrap)
    procs.push(emb)
    await waitHeld(emb, cores, 900_000)
    const kit = path.join(path.dirname(agency.dir), 'agency.kit')
    await cliOk(['kit', 'export', '--out', kit, '--shares', '2/2', '--dir', agency.dir, '--json'])
    await agencyProc.kill()
    fs.rmSync(agency.dir, { recursive: true, force: true })
    await cliOk(['kit', 'import', `${kit}.1`, `${kit}.2`, '--dir', agency.dir, '--json'])

    const restored = await startRun(agency.dir, ctx.bootstrap, `${label}-restored`)
    procs.push(restored)
    const t0 = restored.spawnedAt
    const writable = await restored.waitEvent((e) => e.event === 'restore-writable' || e.event === 'restore-error', 600_000, 'restore-writable')
    if (writable.event === 'restore-error') throw new Error(`restore failed: ${writable.message}`)
    const appended = await cliOk(['append', 'ledger', '{"entry":"first after restore"}', '--dir', agency.dir, '--json'])
    const firstAppend = Date.now()
    if (appended.json?.length !== 2) throw new Error(`unexpected append result ${JSON.stringify(appended.json)}`)
    const st = (await cli(['status', '--dir', agency.dir, '--json'])).json?.restore
    const done = await restored.waitEvent((e) => e.event === 'restore-complete' || e.event === 'restore-error', 900_000, 'restore-complete')
    if (done.event === 'restore-error') throw new Error(`backfill failed: ${done.message}`)
    ctx.say(`  ${bytes / MiB} MiB: run → writable ${round((writable.time - t0) / 1000, 2)} s, → first append ${round((firstAppend - t0) / 1000, 2)} s (held ${st?.heldBlocks} of ${st?.totalBlocks} blocks), → restore-complete ${round((done.time - t0) / 1000, 2)} s`)
    await restored.stop()
    await emb.stop()

    const w = await rawWriter({ bytes, blockSize: MiB, batch: 16 }, ctx.bootstrap)
    procs.push(w.proc)
    const raw = await rawRead(w, ctx.bootstrap)
    await w.proc.stop()
    return {
      bytes,
      firstAppendS: (firstAppend - t0) / 1000,
      writableS: (writable.time - t0) / 1000,
      completeS: (done.time - t0) / 1000,
      heldAtFirstAppend: st?.heldBlocks ?? null,
      totalBlocks: st?.totalBlocks ?? null,
      rawS: raw.spawnToDone / 1000
    }
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => {})
    for (const d of dirs) rmdir(d)
  }
}

export async function continuity(ctx: Ctx): Promise<Result[]> {
  const small = await once(ctx, 64 * MiB)
  const large = await once(ctx, ctx.pick(1024, 256) * MiB)
  const out: Result[] = []
  for (const m of [small, large]) {
    out.push(
      result({
        name: `continuity: run → first accepted append, restored agency of ${m.bytes / MiB} MiB`,
        value: round(m.firstAppendS, 2),
        unit: 's',
        baseline: `plain Hypercore reader process pulling the same ${m.bytes / MiB} MiB (1 MiB blocks), spawn → held (what a full download before writes costs)`,
        baselineValue: round(m.rawS, 2),
        better: 'lower',
        goal: `< ${FIRST_APPEND_GOAL_S} s`,
        met: m.firstAppendS < FIRST_APPEND_GOAL_S,
        detail: { writableS: round(m.writableS, 2), restoreCompleteS: round(m.completeS, 2), heldAtFirstAppend: m.heldAtFirstAppend, totalBlocks: m.totalBlocks }
      })
    )
  }
  out.push(
    result({
      name: `continuity: first append, ${large.bytes / MiB} MiB vs 64 MiB`,
      value: round(large.firstAppendS, 2),
      unit: 's',
      baseline: 'the same figure for the 64 MiB agency, this run',
      baselineValue: round(small.firstAppendS, 2),
      better: 'lower',
      goal: `≤ ${SIZE_RATIO_GOAL}× the small one`,
      met: large.firstAppendS <= SIZE_RATIO_GOAL * small.firstAppendS
    })
  )
  return out
}
