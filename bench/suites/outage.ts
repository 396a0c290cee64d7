/**
 * 5. Outage catch-up: the embassy holds a log; it stops; the running agency appends 64 MiB
 * (`embassy append` through its control socket); the embassy restarts. Time from the restart
 * (process spawn) until it holds the new length, against a plain Hypercore reader process pulling
 * the same 64 MiB at the same block size from spawn to done (fresh each time).
 */
import path from 'node:path'
import { describeInProcess, setupCli, median, MiB, mibPerS, result, rmdir, round, startRun, type Proc, type Result } from '../harness.js'
import { connectedEvent, fillLog, LOG_RECORD_BYTES, newAgency, newEmbassy, rawRead, rawWriter, record, runEmbassy, waitHeld } from '../product.js'
import type { Ctx } from '../context.js'

export async function outage(ctx: Ctx): Promise<Result[]> {
  // Quick: 32 MiB under the same result name (its `measured` says so).
  const bytes = ctx.pick(64, 32) * MiB
  const trials = ctx.pick(3, 1) // quick: one restart (each is a 32 MiB fill, a restart and a plain pull)
  const procs: Proc[] = []
  const dirs: string[] = []
  let pending: Promise<unknown> = Promise.resolve()
  try {
    const agency = await newAgency('outage-agency')
    dirs.push(path.dirname(agency.dir))
    await setupCli(['dataset', 'create', 'data', '--dir', agency.dir, '--json'])
    await setupCli(['append', 'data', record(0, LOG_RECORD_BYTES), '--dir', agency.dir, '--json'])
    const cores = await describeInProcess(agency.dir)
    const log = cores.find((c) => c.name === 'data')!
    // The baseline's plain writer (same bytes, the product's stored block size: its one record's)
    // appends and listens while the product is measured (set-up: its idle CPU is in the detail).
    const writer = rawWriter({ bytes, blockSize: log.byteLength, batch: 64 }, ctx.bootstrap).then((w) => {
      procs.push(w.proc)
      return w
    })
    writer.catch(() => {}) // awaited below
    pending = writer
    const embassy = await newEmbassy('outage-embassy', [agency])
    dirs.push(path.dirname(embassy.dir))
    const agencyProc = await startRun(agency.dir, ctx.bootstrap, 'outage-agency')
    procs.push(agencyProc)
    let emb = await runEmbassy(embassy.dir, ctx.bootstrap)
    procs.push(emb)
    await waitHeld(emb, cores, 60_000)
    let length = log.length

    const w = await writer
    const writerCpu0 = w.proc.cpu()
    const restartMs: number[] = []
    const transferMs: number[] = []
    for (let t = 0; t < trials; t++) {
      await emb.stop()
      const r = await fillLog(agency.dir, 'data', bytes)
      length += r.records
      emb = await runEmbassy(embassy.dir, ctx.bootstrap)
      procs.push(emb)
      const conn = await connectedEvent(emb)
      const held = await waitHeld(emb, [{ key: log.key, length }], 300_000)
      restartMs.push(held.at - emb.spawnedAt)
      transferMs.push(held.at - conn.time)
      ctx.say(`  trial ${t + 1}/${trials}: restart → held ${round(restartMs[t]! / 1000, 2)} s (connected → held ${round(transferMs[t]! / 1000, 2)} s)`)
    }
    const idleWriterCpu = w.proc.cpu() - writerCpu0
    await emb.stop()
    const list = (await setupCli(['list', '--dir', agency.dir, '--json'])).json
    const ds = list.datasets.find((d: { name: string }) => d.name === 'data')
    const blockSize = Math.round(ds.byteLength / ds.length)
    if (Math.abs(blockSize - log.byteLength) > 64) throw new Error(`the log's blocks average ${blockSize} B, its first is ${log.byteLength} B: the baseline would not move the same blocks`)
    await agencyProc.stop()

    // Baseline: a plain reader process pulling the same 64 MiB, spawn → done.
    const rawSpawn: number[] = []
    const rawTransfer: number[] = []
    for (let t = 0; t < trials; t++) {
      const rr = await rawRead(w, ctx.bootstrap)
      rawSpawn.push(rr.spawnToDone)
      rawTransfer.push(rr.ms)
    }
    ctx.say(`  raw: spawn → held ${rawSpawn.map((x) => round(x / 1000, 2)).join(', ')} s`)
    await w.proc.stop()
    return [
      result({
        name: 'outage catch-up 64 MiB: restart → held',
        ...(ctx.quick ? { measured: `${bytes / MiB} MiB` } : {}),
        value: median(restartMs) / 1000,
        unit: 's',
        baseline: `plain Hypercore reader process pulling the same ${bytes / MiB} MiB (64 KiB blocks), spawn → held`,
        baselineValue: median(rawSpawn) / 1000,
        better: 'lower',
        detail: {
          trials: restartMs.map((x) => round(x / 1000, 2)),
          baselineTrials: rawSpawn.map((x) => round(x / 1000, 2)),
          connectedToHeldS: transferMs.map((x) => round(x / 1000, 2)),
          baselineConnectedToHeldS: rawTransfer.map((x) => round(x / 1000, 2)),
          catchUpMiBs: round(mibPerS(bytes, median(transferMs)), 1),
          baselineMiBs: round(mibPerS(bytes, median(rawTransfer)), 1),
          blockSize,
          baselineBlockSize: log.byteLength,
          baselineWriterIdleCpuS: round(idleWriterCpu / 1000, 2)
        }
      })
    ]
  } finally {
    await pending.catch(() => null) // a plain writer still starting: settled, so it is in procs and stopped
    for (const p of procs.reverse()) await p.stop().catch(() => {})
    for (const d of dirs) rmdir(d)
  }
}
