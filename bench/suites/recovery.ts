/**
 * 7. Recovery: an agency holding 256 MiB (quick: 32, under the same result name) of files is destroyed; it is rebuilt from its
 * recovery kit and one embassy. Time from `embassy kit import` to the rebuilt node's
 * `restore-complete` (every core synced, writes allowed again), against a plain Hypercore reader
 * process pulling the same bytes at the same block size, spawn → done.
 */
import fs from 'node:fs'
import path from 'node:path'
import { cliOk, describeInProcess, setupCli, MiB, mibPerS, result, rmdir, round, startRun, type Proc, type Result } from '../harness.js'
import { makeFolder, newAgency, newEmbassy, rawRead, rawWriter, runEmbassy, waitHeld } from '../product.js'
import type { Ctx } from '../context.js'

/** The size the result's name states; quick mode measures less (its `measured` says how much). */
const FULL_MIB = 256
const PASSPHRASE = { EMBASSY_PASSPHRASE: 'benchmark recovery passphrase' }

export async function recovery(ctx: Ctx): Promise<Result[]> {
  const bytes = ctx.pick(FULL_MIB, 32) * MiB
  const procs: Proc[] = []
  const dirs: string[] = []
  let pending: Promise<unknown> = Promise.resolve()
  try {
    // The baseline's plain writer appends and listens while the agency is made (set-up; it waits
    // idle through the product's measurement: its CPU then is in the result's detail).
    const writer = rawWriter({ bytes, blockSize: MiB, batch: 16 }, ctx.bootstrap).then((w) => {
      procs.push(w.proc)
      return w
    })
    writer.catch(() => {}) // awaited below
    pending = writer
    const agency = await newAgency('recovery-agency')
    dirs.push(path.dirname(agency.dir))
    const source = path.join(path.dirname(agency.dir), 'source')
    makeFolder(source, bytes)
    await setupCli(['dataset', 'create', 'archive', '--kind', 'files', '--dir', agency.dir, '--json'])
    await setupCli(['publish', 'archive', source, '--dir', agency.dir, '--json'])
    fs.rmSync(source, { recursive: true, force: true })
    const cores = await describeInProcess(agency.dir)
    const embassy = await newEmbassy('recovery-embassy', [agency])
    dirs.push(path.dirname(embassy.dir))
    const agencyProc = await startRun(agency.dir, ctx.bootstrap, 'recovery-agency')
    procs.push(agencyProc)
    const emb = await runEmbassy(embassy.dir, ctx.bootstrap)
    procs.push(emb)
    await waitHeld(emb, cores, 600_000)
    // Wait for the embassy's receipts to reach the agency, so the kit lists it as a known embassy.
    await setupCli(['status', '--dir', agency.dir, '--json'])
    const kit = path.join(path.dirname(agency.dir), 'agency.kit')
    await setupCli(['kit', 'export', '--out', kit, '--dir', agency.dir, '--json'], { env: PASSPHRASE })

    await agencyProc.kill()
    fs.rmSync(agency.dir, { recursive: true, force: true })
    const w = await writer
    const writerCpu0 = w.proc.cpu()
    const t0 = Date.now()
    await cliOk(['kit', 'import', kit, '--dir', agency.dir, '--json'], { env: PASSPHRASE })
    const imported = Date.now()
    const restored = await startRun(agency.dir, ctx.bootstrap, 'recovery-restored')
    procs.push(restored)
    const done = await restored.waitEvent((e) => e.event === 'restore-complete' || e.event === 'restore-error', 600_000, 'restore-complete')
    if (done.event === 'restore-error') throw new Error(`restore failed: ${done.message}`)
    const total = done.time - t0
    ctx.say(`  kit import ${round((imported - t0) / 1000, 2)} s, then run → restore-complete ${round((done.time - imported) / 1000, 2)} s (${round(done.bytes / MiB, 1)} MiB, ${done.blocks} blocks)`)
    const idleWriterCpu = w.proc.cpu() - writerCpu0
    await restored.stop()
    await emb.stop()

    // Baseline: a plain reader process pulling the same bytes in the same 1 MiB blocks.
    const raw = await rawRead(w, ctx.bootstrap)
    ctx.say(`  raw: spawn → held ${round(raw.spawnToDone / 1000, 2)} s`)
    await w.proc.stop()
    return [
      result({
        name: `recovery: kit import → restore-complete, ${FULL_MIB} MiB from one embassy`,
        ...(ctx.quick ? { measured: `${bytes / MiB} MiB` } : {}),
        value: total / 1000,
        unit: 's',
        baseline: `plain Hypercore reader process pulling the same ${bytes / MiB} MiB (1 MiB blocks), spawn → held`,
        baselineValue: raw.spawnToDone / 1000,
        better: 'lower',
        detail: {
          kitImportS: round((imported - t0) / 1000, 2),
          runToCompleteS: round((done.time - imported) / 1000, 2),
          restoreReportedS: round(done.ms / 1000, 2),
          bytes: done.bytes,
          blocks: done.blocks,
          syncMiBs: round(mibPerS(done.bytes, done.time - imported), 1),
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
