/**
 * 3. Live lag: an agency appends one record at a time at a fixed rate (node-worker running the
 * agency daemon); an embassy (`embassy run`) holds each; its signed receipt comes back and is
 * verified at the agency. Per append: append → embassy holds it (the embassy's `caught-up` event),
 * and append → verified receipt at the agency (the Agency 'receipt' event). All processes share the
 * machine's clock. Baseline: the same appends on a plain Hypercore writer, held by a plain reader.
 */
import path from 'node:path'
import { describeInProcess, setupCli, percentile, result, rmdir, round, NODE_WORKER, RAW_WORKER, tmpdir, type Json, type Result } from '../harness.js'
import { newAgency, newEmbassy, record, runEmbassy, spawnWorker, waitHeld } from '../product.js'
import type { Ctx } from '../context.js'

const RECORD_BYTES = 512

/** For each append i (block first + i), the first time a length ≥ first + i + 1 was seen, minus its start. */
function lags(starts: number[], first: number, seen: Array<{ length: number; at: number }>): number[] {
  const sorted = [...seen].sort((a, b) => a.at - b.at)
  const out: number[] = []
  let j = 0
  let best = 0
  for (let i = 0; i < starts.length; i++) {
    const need = first + i + 1
    while (j < sorted.length && best < need) {
      best = Math.max(best, sorted[j]!.length)
      if (best >= need) break
      j++
    }
    if (best < need) {
      out.push(NaN)
      continue
    }
    out.push(sorted[j]!.at - starts[i]!)
  }
  return out
}

function summary(values: number[]): Json {
  const ok = values.filter((v) => Number.isFinite(v))
  return {
    n: ok.length,
    missing: values.length - ok.length,
    p50: round(percentile(ok, 50), 1),
    p90: round(percentile(ok, 90), 1),
    p99: round(percentile(ok, 99), 1),
    max: round(Math.max(...ok), 1)
  }
}

export async function liveLag(ctx: Ctx): Promise<Result[]> {
  const count = ctx.pick(1000, 400) // quick: 4 s of appends instead of 10 (p99 of 400 samples)
  const rate = 100
  const root = tmpdir('live')
  const closers: Array<() => Promise<unknown>> = []
  try {
    // ---- product
    const agency = await newAgency('live-agency')
    await setupCli(['dataset', 'create', 'events', '--dir', agency.dir, '--json'])
    await setupCli(['append', 'events', record(0, RECORD_BYTES), '--dir', agency.dir, '--json'])
    const cores = await describeInProcess(agency.dir)
    const log = cores.find((c) => c.name === 'events')!
    const embassy = await newEmbassy('live-embassy', [agency])
    const worker = spawnWorker(NODE_WORKER, { role: 'live-agency', dir: agency.dir, bootstrap: ctx.bootstrap }, 'live-agency')
    closers.push(() => worker.stop())
    await worker.waitEvent((e) => e.event === 'ready' || e.event === 'error', 60_000, 'agency ready')
    const emb = await runEmbassy(embassy.dir, ctx.bootstrap)
    closers.push(() => emb.stop())
    await waitHeld(emb, cores, 60_000)
    // The first receipt for the held length: custody is up.
    await worker.waitEvent((e) => e.event === 'log:peer-connected', 30_000, 'agency sees the embassy')
    await new Promise((r) => setTimeout(r, 500))
    const cpu0 = { agency: worker.cpu(), embassy: emb.cpu() }
    worker.send({ cmd: 'live', dataset: 'events', count, rate, recordBytes: RECORD_BYTES })
    const res = await worker.waitEvent((e) => e.event === 'live-result' || e.event === 'error', (count / rate) * 1000 + 60_000, 'live appends')
    if (res.event === 'error') throw new Error(`live agency: ${res.message}`)
    const cpu = { agency: worker.cpu() - cpu0.agency, embassy: emb.cpu() - cpu0.embassy }
    const held = emb.events.filter((e) => e.event === 'caught-up' && e.core === log.key).map((e) => ({ length: e.length as number, at: e.time as number }))
    const holdLag = lags(res.starts, res.first, held)
    const receiptLag = lags(res.starts, res.first, (res.receipts as Array<{ length: number; at: number }>).map((r) => ({ length: r.length, at: r.at })))
    const appendMs = (res.ends as number[]).map((e, i) => e - res.starts[i])
    const hold = summary(holdLag)
    const receipt = summary(receiptLag)
    ctx.say(`  product: hold p50 ${hold.p50} ms p99 ${hold.p99} ms; receipt p50 ${receipt.p50} ms p99 ${receipt.p99} ms; ${res.late} appends late`)
    for (const c of closers.splice(0).reverse()) await c()

    // ---- baseline: plain Hypercore, same appends
    const wdir = path.join(root, 'raw-writer')
    const writer = spawnWorker(RAW_WORKER, { role: 'writer', dir: wdir, bootstrap: ctx.bootstrap, bytes: RECORD_BYTES, blockSize: RECORD_BYTES, live: { count, rate, recordBytes: RECORD_BYTES, delayMs: 1500 } }, 'raw-live-writer')
    closers.push(() => writer.stop())
    const l = await writer.waitEvent((e) => e.event === 'listening' || e.event === 'error', 60_000, 'raw writer listening')
    if (l.event === 'error') throw new Error(l.message)
    const reader = spawnWorker(RAW_WORKER, { role: 'reader', dir: path.join(root, 'raw-reader'), bootstrap: ctx.bootstrap, keys: l.keys, lengths: [l.lengths[0] + count], peer: l.publicKey, live: true }, 'raw-live-reader')
    closers.push(() => reader.stop())
    const wres = await writer.waitEvent((e) => e.event === 'live-result' || e.event === 'error', (count / rate) * 1000 + 60_000, 'raw live appends')
    const rdone = await reader.waitEvent((e) => e.event === 'done' || e.event === 'error', 30_000, 'raw reader done')
    if (rdone.event === 'error') throw new Error(rdone.message)
    const times = (rdone.heldAt as number[][])[0]!
    const rawLag = (wres.starts as number[]).map((s, i) => (times[wres.first + i] ?? NaN) - s)
    const raw = summary(rawLag)
    ctx.say(`  raw: hold p50 ${raw.p50} ms p99 ${raw.p99} ms`)

    const common = { appends: count, rate, recordBytes: RECORD_BYTES }
    return [
      result({
        name: 'live lag append → embassy holds, p50',
        value: hold.p50,
        unit: 'ms',
        baseline: 'plain Hypercore append → plain replica holds it, p50 (same rate and size)',
        baselineValue: raw.p50,
        better: 'lower',
        detail: { ...common, ...hold }
      }),
      result({
        name: 'live lag append → embassy holds, p99',
        value: hold.p99,
        unit: 'ms',
        baseline: 'plain Hypercore append → plain replica holds it, p99',
        baselineValue: raw.p99,
        better: 'lower',
        goal: 'p99 < 100 ms',
        met: hold.p99 < 100,
        detail: { ...common, ...hold, baseline: raw }
      }),
      result({
        name: 'live lag append → verified receipt, p50',
        value: receipt.p50,
        unit: 'ms',
        baseline: 'plain Hypercore append → replica holds it, p50 (no custody; the ratio is what custody adds)',
        baselineValue: raw.p50,
        better: 'lower',
        detail: { ...common, ...receipt }
      }),
      result({
        name: 'live lag append → verified receipt, p99',
        value: receipt.p99,
        unit: 'ms',
        baseline: 'plain Hypercore append → replica holds it, p99 (no custody)',
        baselineValue: raw.p99,
        better: 'lower',
        goal: 'p99 < 100 ms',
        met: receipt.p99 < 100,
        detail: {
          ...common,
          ...receipt,
          receipts: res.receipts.length,
          appendMsP50: round(percentile(appendMs, 50), 1),
          appendMsP99: round(percentile(appendMs, 99), 1),
          lateAppends: res.late,
          cpuSeconds: { agency: round(cpu.agency / 1000, 2), embassy: round(cpu.embassy / 1000, 2) }
        }
      })
    ]
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {})
    rmdir(root)
  }
}
