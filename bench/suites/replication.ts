/**
 * 1. Replication: a `log` and a `files` dataset, agency → embassy (two `embassy run` processes),
 * MiB/s from the embassy's connection to the agency until every core is held at full length,
 * against plain Hypercore replication of the same bytes at the same block size (raw-worker
 * processes) in the same run. Trials alternate product and baseline so drift hits both.
 */
import path from 'node:path'
import { FILE_BLOCK_SIZE } from '../../lib/data/files-dataset.js'
import { cliOk, describeInProcess, setupCli, udpDrops, median, mibPerS, MiB, result, rmdir, round, startRun, tmpdir, TUNE_ARGS, type Json, type Proc, type Result } from '../harness.js'
import { connectedEvent, fillLog, makeFolder, newAgency, newEmbassy, rawRead, rawWriter, runEmbassy, waitHeld, type CoreInfo, type NodeDir } from '../product.js'
import type { Ctx } from '../context.js'

export type Kind = 'log' | 'files'

export interface Prepared {
  kind: Kind
  agency: NodeDir
  cores: CoreInfo[]
  /** Bytes in the dataset's cores (what the embassy must fetch, the catalog aside). */
  payload: number
  blocks: number
  /** Block size of the data (log: record block; files: content block size used). */
  blockSize: number
  /** files: the source folder. */
  source: string | null
  setupMs: number
}

export interface Variant {
  /** Environment for tune.ts (BENCH_*), applied to the process started with it. */
  env?: NodeJS.ProcessEnv
}

/** An agency with one dataset of `bytes`: a log filled through `embassy append`, or a folder through `embassy publish`. */
export async function prepare(ctx: Ctx, kind: Kind, bytes: number, opts: { source?: string; env?: NodeJS.ProcessEnv; label?: string } = {}): Promise<Prepared> {
  const started = performance.now()
  const agency = await newAgency(opts.label ?? `repl-${kind}`)
  await setupCli(['dataset', 'create', 'data', '--kind', kind, '--dir', agency.dir, '--json'])
  let source: string | null = null
  if (kind === 'log') {
    await fillLog(agency.dir, 'data', bytes)
  } else {
    source = opts.source ?? path.join(tmpdir('folder'), 'src')
    if (!opts.source) makeFolder(source, bytes)
    await cliOk(['publish', 'data', source, '--dir', agency.dir, '--json'], { timeoutMs: 900_000, ...(opts.env ? { env: opts.env, nodeArgs: TUNE_ARGS } : {}) })
  }
  const cores = await describeInProcess(agency.dir)
  const data = cores.filter((c) => c.name !== 'catalog')
  const payload = data.reduce((n, c) => n + c.byteLength, 0)
  const blocks = data.reduce((n, c) => n + c.length, 0)
  const main = kind === 'log' ? data[0]! : data[data.length - 1]!
  const blockSize = kind === 'log' ? Math.round(main.byteLength / Math.max(1, main.length)) : Number(opts.env?.BENCH_FILE_BLOCK_SIZE ?? FILE_BLOCK_SIZE)
  ctx.say(`  ${kind}: ${round(payload / MiB, 1)} MiB in ${blocks} blocks (${round(blockSize / 1024, 1)} KiB blocks), set up in ${round((performance.now() - started) / 1000, 1)} s`)
  return { kind, agency, cores, payload, blocks, blockSize, source, setupMs: performance.now() - started }
}

/**
 * One product trial: a fresh embassy follows the running agency; connected → every core held.
 * CPU (ms): the embassy's whole life until held and until connected, the agency's during the trial.
 */
export async function productTrial(
  ctx: Ctx,
  p: Prepared,
  agency: Proc,
  variant: Variant = {},
  timeoutMs = 300_000
): Promise<{ ms: number; spawnToHeld: number; embassyCpu: number; agencyCpu: number; embassyStartCpu: number; pickedUpMs: number; firstHeldMs: number }> {
  const t0 = Date.now()
  const emb = await newEmbassy('embassy', [p.agency])
  const agencyCpu0 = agency.cpu()
  const t1 = Date.now()
  const proc = await runEmbassy(emb.dir, ctx.bootstrap, variant.env ? { env: variant.env, nodeArgs: TUNE_ARGS } : {})
  const t2 = Date.now()
  try {
    const conn = await connectedEvent(proc)
    const embassyStartCpu = proc.cpu()
    const held = await waitHeld(proc, p.cores, timeoutMs)
    // Inside the timed span, before any data moves: the embassy learns the catalog and picks up
    // the dataset's cores (`dataset-picked-up`, one a core). The plain reader starts with its keys.
    const want = new Set(p.cores.filter((c) => c.name !== 'catalog').map((c) => c.key))
    const picked = proc.events.filter((e) => e.event === 'dataset-picked-up' && want.has(e.core)).map((e) => e.time as number)
    const pickedUpMs = picked.length === want.size ? Math.max(...picked) - conn.time : NaN
    if (process.env.BENCH_DEBUG) ctx.say(`    setup ${t1 - t0} ms, start ${t2 - t1} ms, connect ${conn.time - t2} ms, cores picked up ${pickedUpMs} ms, transfer ${held.at - conn.time} ms`)
    return { ms: held.at - conn.time, spawnToHeld: held.at - proc.spawnedAt, embassyCpu: proc.cpu(), agencyCpu: agency.cpu() - agencyCpu0, embassyStartCpu, pickedUpMs, firstHeldMs: held.firstAt - conn.time }
  } finally {
    await proc.stop()
    rmdir(path.dirname(emb.dir))
  }
}

export async function startAgency(ctx: Ctx, p: Prepared, variant: Variant = {}): Promise<Proc> {
  return startRun(p.agency.dir, ctx.bootstrap, `agency-${p.kind}`, variant.env ? { env: variant.env, nodeArgs: TUNE_ARGS } : {})
}

/** Raw writer config that moves the same bytes at the same block size as `p`. */
export function rawConfigFor(p: Prepared): Json {
  return p.kind === 'log'
    ? { bytes: p.cores.filter((c) => c.name !== 'catalog')[0]!.byteLength, blockSize: p.blockSize, batch: 64 }
    : { source: p.source, blockSize: p.blockSize, batch: 64 }
}

/** One way of moving the dataset: the product (with a variant's settings) or the raw baseline. */
export interface Arm {
  name: string
  kind: 'product' | 'raw'
  prepared: Prepared
  env?: NodeJS.ProcessEnv
  /** Receiver-side inflight range for the raw reader. */
  inflight?: [number, number]
}

export interface ArmResult {
  arm: Arm
  /** MiB/s per trial */
  rates: number[]
  ms: number[]
  /** CPU ms per trial spent moving the data: receiver from connected to held + sender during the trial */
  cpu: number[]
  /** CPU ms of the receiver from its start until connected */
  startCpu: number[]
  /** CPU ms of the receiver alone (whole life) */
  receiverCpu: number[]
  /** UDP datagrams dropped for a full receive buffer during the trial (system-wide counter) */
  drops: number[]
  /** Product: connected → every dataset core picked up (the catalog read: a fixed cost inside the timed span; NaN for the plain reader, which starts with its keys) */
  pickedUpMs: number[]
  bytes: number
  /** Blocks moved per trial (product: every dataset core's, index included; plain: its core's) */
  blocks: number
}

/**
 * Runs every arm once per round, `trials` rounds (interleaved, so the machine's drift hits every
 * arm alike). One running agency per prepared dataset and one plain writer per prepared dataset,
 * shared by the arms on it (a node directory cannot be opened twice); an arm's `env` applies to
 * its receiving side (the embassy, or the plain reader), where the settings tried here act.
 */
export async function runArms(ctx: Ctx, arms: Arm[], trials: number): Promise<ArmResult[]> {
  const senders: Array<{ stop(): Promise<unknown> }> = []
  const results: ArmResult[] = arms.map((arm) => ({ arm, rates: [], ms: [], cpu: [], startCpu: [], receiverCpu: [], drops: [], pickedUpMs: [], bytes: 0, blocks: 0 }))
  const agencies = new Map<Prepared, Proc>()
  const writers = new Map<Prepared, Awaited<ReturnType<typeof rawWriter>>>()
  try {
    // The senders start together (set-up: nothing is measured until every one is listening).
    const unique = (kind: Arm['kind']) => [...new Set(arms.filter((a) => a.kind === kind).map((a) => a.prepared))]
    const starts = [
      ...unique('product').map((p) =>
        startAgency(ctx, p).then((agency) => {
          senders.push(agency)
          agencies.set(p, agency)
        })
      ),
      ...unique('raw').map((p) =>
        rawWriter(rawConfigFor(p), ctx.bootstrap).then((raw) => {
          senders.push(raw.proc)
          writers.set(p, raw)
        })
      )
    ]
    const started = await Promise.allSettled(starts)
    const failed = started.find((x): x is PromiseRejectedResult => x.status === 'rejected')
    if (failed) throw failed.reason
    for (let t = 0; t < trials; t++) {
      const line: string[] = []
      for (let i = 0; i < arms.length; i++) {
        const arm = arms[i]!
        const r = results[i]!
        const drops0 = udpDrops()
        if (arm.kind === 'product') {
          const pr = await productTrial(ctx, arm.prepared, agencies.get(arm.prepared)!, arm.env ? { env: arm.env } : {})
          r.bytes = arm.prepared.payload
          r.blocks = arm.prepared.blocks
          r.ms.push(pr.ms)
          r.cpu.push(pr.embassyCpu - pr.embassyStartCpu + pr.agencyCpu)
          r.receiverCpu.push(pr.embassyCpu)
          r.startCpu.push(pr.embassyStartCpu)
          r.pickedUpMs.push(pr.pickedUpMs)
        } else {
          const w = writers.get(arm.prepared)!
          const rr = await rawRead(w, ctx.bootstrap, { ...(arm.env ? { env: arm.env } : {}), ...(arm.inflight ? { inflight: arm.inflight } : {}) })
          r.bytes = w.byteLength
          r.blocks = w.lengths.reduce((n, x) => n + x, 0)
          r.ms.push(rr.ms)
          r.cpu.push(rr.readerCpu - rr.readerStartCpu + rr.writerCpu)
          r.receiverCpu.push(rr.readerCpu)
          r.startCpu.push(rr.readerStartCpu)
        }
        r.rates.push(mibPerS(r.bytes, r.ms[t]!))
        r.drops.push(udpDrops() - drops0)
        line.push(`${arm.name} ${round(r.rates[t]!, 1)}${r.drops[t] ? ` (${r.drops[t]} drops)` : ''}`)
      }
      ctx.say(`  round ${t + 1}/${trials} (MiB/s): ${line.join(' · ')}`)
    }
  } finally {
    for (const s of senders) await s.stop()
  }
  return results
}

/** CPU-s per GiB moved, from CPU ms and bytes. */
function cpuPerGiB(cpuMs: number, bytes: number): number {
  return cpuMs / 1000 / (bytes / (1024 * MiB))
}

export async function replication(ctx: Ctx): Promise<Result[]> {
  const fullBytes = 256 * MiB
  const bytes = ctx.pick(fullBytes, 32 * MiB) // quick: 32 MiB under the full size's result names
  // Quick: one round per arm (a smoke check of the same results; full mode's 5 rounds give the spread).
  const trials = ctx.pick(5, 1)
  const results: Result[] = []
  const cleanupDirs: string[] = []
  try {
    // Both datasets are prepared at once (set-up only: nothing is measured while they are made).
    const made = await Promise.allSettled((['log', 'files'] as const).map((kind) => prepare(ctx, kind, bytes)))
    for (const m of made) {
      if (m.status !== 'fulfilled') continue
      cleanupDirs.push(path.dirname(m.value.agency.dir))
      if (m.value.source) cleanupDirs.push(path.dirname(m.value.source))
    }
    for (const m of made) if (m.status === 'rejected') throw m.reason
    for (const m of made) {
      const p = (m as PromiseFulfilledResult<Prepared>).value
      const kind = p.kind
      const arms: Arm[] = [
        { name: 'product', kind: 'product', prepared: p },
        { name: 'raw', kind: 'raw', prepared: p }
      ]
      if (ctx.variants) arms.push(...(await variantArms(ctx, p, cleanupDirs)))
      const out = await runArms(ctx, arms, trials)
      const product = out[0]!
      const raw = out[1]!
      const value = median(product.rates)
      const base = median(raw.rates)
      results.push(
        result({
          name: `replication ${kind} ${round(fullBytes / MiB)} MiB`,
          ...(ctx.quick ? { measured: `${round(bytes / MiB)} MiB` } : {}),
          value,
          unit: 'MiB/s',
          baseline: `plain corestore+hyperswarm replication, same bytes, ${round(p.blockSize / 1024, 1)} KiB blocks`,
          baselineValue: base,
          better: 'higher',
          goal: kind === 'files' ? 'ratio ≥ 0.95; stretch ≥ 150 MiB/s' : 'ratio ≥ 0.95',
          met: value / base >= 0.95,
          detail: {
            trials: product.rates.map((x) => round(x, 1)),
            baselineTrials: raw.rates.map((x) => round(x, 1)),
            udpDrops: product.drops,
            baselineUdpDrops: raw.drops,
            connectedToPickedUpMs: product.pickedUpMs,
            transferMs: product.ms,
            baselineTransferMs: raw.ms,
            bytes: p.payload,
            blocks: p.blocks,
            coreBlocks: p.cores.filter((c) => c.name !== 'catalog').map((c) => c.length),
            baselineBytes: raw.bytes,
            baselineBlocks: raw.blocks,
            blockSize: p.blockSize,
            cores: p.cores.length - 1
          }
        })
      )
      results.push(
        result({
          name: `replication ${kind}: CPU per GiB, both nodes`,
          ...(ctx.quick ? { measured: `${round(bytes / MiB)} MiB` } : {}),
          value: cpuPerGiB(median(product.cpu), product.bytes),
          unit: 'CPU-s/GiB',
          baseline: 'plain Hypercore, same bytes: reader from connected to held + writer during the transfer (process start-up excluded on both)',
          baselineValue: cpuPerGiB(median(raw.cpu), raw.bytes),
          better: 'lower',
          detail: {
            trials: product.cpu.map((x) => round(cpuPerGiB(x, product.bytes), 1)),
            baselineTrials: raw.cpu.map((x) => round(cpuPerGiB(x, raw.bytes), 1)),
            receiverCpuS: product.receiverCpu.map((x) => round(x / 1000, 2)),
            baselineReceiverCpuS: raw.receiverCpu.map((x) => round(x / 1000, 2)),
            receiverStartCpuS: product.startCpu.map((x) => round(x / 1000, 2)),
            baselineReceiverStartCpuS: raw.startCpu.map((x) => round(x / 1000, 2))
          }
        })
      )
      for (const v of out.slice(2)) {
        const isRaw = v.arm.kind === 'raw'
        results.push(
          result({
            name: `variant: replication ${kind}, ${v.arm.name}`,
            value: median(v.rates),
            unit: 'MiB/s',
            baseline: isRaw ? 'plain Hypercore with defaults (same rounds)' : 'product defaults (same rounds)',
            baselineValue: isRaw ? base : value,
            better: 'higher',
            detail: { trials: v.rates.map((x) => round(x, 1)), udpDrops: v.drops, env: v.arm.env ?? {}, cpuPerGiB: round(cpuPerGiB(median(v.cpu), v.bytes), 1) }
          })
        )
      }
      if (p.source) rmdir(path.dirname(p.source))
    }
  } finally {
    for (const d of cleanupDirs) rmdir(d)
  }
  return results
}

/** Optimisation variants: product settings a one-line change would make (see tune.ts). */
async function variantArms(ctx: Ctx, p: Prepared, dirs: string[]): Promise<Arm[]> {
  const RCVBUF = String(4 * MiB)
  const arms: Arm[] = [
    { name: 'UDP receive buffer 4 MiB', kind: 'product', prepared: p, env: { BENCH_RCVBUF: RCVBUF } },
    { name: 'inflight window 64..512', kind: 'product', prepared: p, env: { BENCH_INFLIGHT: '64,512' } },
    { name: 'inflight window 4..512', kind: 'product', prepared: p, env: { BENCH_INFLIGHT: '4,512' } },
    { name: 'raw, UDP receive buffer 4 MiB', kind: 'raw', prepared: p, env: { BENCH_RCVBUF: RCVBUF } }
  ]
  if (p.kind === 'files') {
    for (const size of [256 * 1024, 4 * MiB]) {
      const label = `file blocks ${size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`}`
      const env: NodeJS.ProcessEnv = { BENCH_FILE_BLOCK_SIZE: String(size) }
      const q = await prepare(ctx, 'files', p.payload, { source: p.source!, env, label: 'repl-files-variant' })
      dirs.push(path.dirname(q.agency.dir))
      arms.push({ name: label, kind: 'product', prepared: q })
      arms.push({ name: `${label} + UDP receive buffer 4 MiB`, kind: 'product', prepared: q, env: { BENCH_RCVBUF: RCVBUF } })
    }
  }
  return arms
}
