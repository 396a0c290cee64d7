/**
 * Bulk lane (issue 16 item 5, first step): one core of `bytes` in 64 KiB blocks, pulled by a fresh
 * reader process per trial over
 *   - udx:  plain Corestore + Hyperswarm on the run's local DHT (raw-worker, the replication suite's baseline)
 *   - tcp:  plain Corestore over a TCP socket + secret-stream (Node's socket defaults, no firewall)
 *   - lane: Corestore over lib/net/lane.ts (LaneServer/dialLane: firewall, keep-alive, no-delay)
 *   - lane ×2: the same reader over two parallel lanes to the same writer (a "better path" try)
 *   - lane nagle: one lane with Nagle's algorithm on both ends (noDelay: false; the other "better path" try)
 *   - product swarm / product lane: the product (`embassy run`, a fresh embassy following a running agency
 *     whose config has `lane.listen`), the embassy without `lane` (swarm connection only) and with
 *     `lane: {}` (it dials the agency's offered lane; lib/net/lane-link.ts), on a log of the same size
 *     (`embassy append`, 64 KiB records); connected → every core held, from the embassy's log
 * in the same run, interleaved round by round. MiB/s from the reader's (first) connection to the
 * whole core held; CPU of both processes over the same span.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import crypto from 'hypercore-crypto'
import { median, mibPerS, MiB, result, rmdir, round, tmpdir, type Proc, type Result } from '../harness.js'
import { connectedEvent, newEmbassy, rawRead, rawWriter, runEmbassy, spawnWorker, waitHeld } from '../product.js'
import { prepare, startAgency, type Prepared } from './replication.js'
import type { Ctx } from '../context.js'

const LANE_WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'lane-worker.js')
const BLOCK_SIZE = 64 * 1024
/** The reader's key pair seed (the writer's lane firewall admits its public key only). */
const READER_SEED = Buffer.alloc(32, 0x1a)

interface LaneWriter {
  proc: Proc
  publicKey: string
  key: string
  length: number
  byteLength: number
  lanePort: number
  nagleLanePort: number
  tcpPort: number
}

interface Trial {
  ms: number
  /** CPU ms of both processes from the reader's connection to done */
  cpu: number
}

async function laneWriter(dir: string, bytes: number, allow: string[]): Promise<LaneWriter> {
  const proc = spawnWorker(LANE_WORKER, { role: 'writer', dir, bytes, blockSize: BLOCK_SIZE, batch: 64, allow }, 'lane-writer')
  const a = await proc.waitEvent((e) => e.event === 'appended' || e.event === 'error', 600_000, 'appended')
  if (a.event === 'error') throw new Error(`lane writer: ${a.message}`)
  const l = await proc.waitEvent((e) => e.event === 'listening' || e.event === 'error', 60_000, 'listening')
  if (l.event === 'error') throw new Error(`lane writer: ${l.message}`)
  return { proc, publicKey: l.publicKey, key: l.key, length: l.length, byteLength: l.byteLength, lanePort: l.lanePort, nagleLanePort: l.nagleLanePort, tcpPort: l.tcpPort }
}

async function laneRead(w: LaneWriter, mode: 'lane' | 'tcp', lanes = 1, noDelay = true): Promise<Trial> {
  const dir = tmpdir('lane-reader')
  const port = mode === 'tcp' ? w.tcpPort : noDelay ? w.lanePort : w.nagleLanePort
  const proc = spawnWorker(LANE_WORKER, { role: 'reader', dir, mode, lanes, noDelay, port, peer: w.publicKey, key: w.key, length: w.length, seed: READER_SEED.toString('hex') }, `lane-reader-${mode}`)
  let cpu0 = NaN
  proc.onEvent(
    (e) => e.event === 'connected',
    () => {
      if (Number.isNaN(cpu0)) cpu0 = proc.cpu() + w.proc.cpu()
    }
  )
  try {
    const d = await proc.waitEvent((e) => e.event === 'done' || e.event === 'error', 300_000, `${mode} replication done`)
    if (d.event === 'error') throw new Error(`lane reader: ${d.message}`)
    return { ms: d.ms, cpu: proc.cpu() + w.proc.cpu() - cpu0 }
  } finally {
    await proc.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Adds `lane` to a node directory's config.json (the bench edits a stopped node's file, as an operator would). */
function setLane(dir: string, lane: Record<string, unknown>): void {
  const file = path.join(dir, 'config.json')
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>
  fs.writeFileSync(file, JSON.stringify({ ...config, lane }, null, 2), { mode: 0o600 })
}

/**
 * One product trial: a fresh embassy follows the running agency (whose lane listens), with the lane
 * (`lane: {}`: it dials the agency's offer) or without; connected → every core held (its log).
 */
async function productTrial(ctx: Ctx, p: Prepared, agency: Proc, lane: boolean): Promise<Trial & { laneOpened: boolean }> {
  const emb = await newEmbassy(lane ? 'embassy-lane' : 'embassy-swarm', [p.agency])
  if (lane) setLane(emb.dir, {})
  const proc = await runEmbassy(emb.dir, ctx.bootstrap, { label: lane ? 'embassy-lane' : 'embassy-swarm' })
  let laneOpened = false
  proc.onEvent(
    (e) => e.event === 'lane-open',
    () => (laneOpened = true)
  )
  try {
    const conn = await connectedEvent(proc)
    const cpu0 = proc.cpu() + agency.cpu()
    const held = await waitHeld(proc, p.cores, 600_000)
    return { ms: held.at - conn.time, cpu: proc.cpu() + agency.cpu() - cpu0, laneOpened }
  } finally {
    await proc.stop()
    rmdir(path.dirname(emb.dir))
  }
}

function cpuPerGiB(cpuMs: number, bytes: number): number {
  return cpuMs / 1000 / (bytes / (1024 * MiB))
}

export async function lane(ctx: Ctx): Promise<Result[]> {
  const fullBytes = 256 * MiB
  const bytes = ctx.pick(fullBytes, 16 * MiB)
  const trials = ctx.pick(3, 1)
  const readerKey = crypto.keyPair(READER_SEED).publicKey.toString('hex')
  const arms = ['udx', 'tcp', 'lane', 'lane ×2', 'lane nagle', 'product swarm', 'product lane'] as const
  const runs: Record<(typeof arms)[number], Trial[]> = { udx: [], tcp: [], lane: [], 'lane ×2': [], 'lane nagle': [], 'product swarm': [], 'product lane': [] }
  let product: Prepared | null = null
  let agency: Proc | null = null
  let productBytes = 0
  let lanesOpened = 0
  const udxDir = tmpdir('lane-udx-writer')
  const laneDir = tmpdir('lane-writer')
  let udx: Awaited<ReturnType<typeof rawWriter>> | null = null
  let tcp: LaneWriter | null = null
  let udxBytes = 0
  const bytesOf = (arm: (typeof arms)[number]): number => (arm === 'udx' ? udxBytes : arm.startsWith('product') ? productBytes : (tcp?.byteLength ?? 0))
  try {
    udx = await rawWriter({ dir: udxDir, bytes, blockSize: BLOCK_SIZE, batch: 64 }, ctx.bootstrap, undefined, 'lane-udx-writer')
    udxBytes = udx.byteLength
    tcp = await laneWriter(laneDir, bytes, [readerKey])
    // The product: an agency with a log of the same size whose lane listens on loopback.
    product = await prepare(ctx, 'log', bytes, { label: 'lane-product' })
    productBytes = product.payload
    setLane(product.agency.dir, { listen: '127.0.0.1:0' })
    agency = await startAgency(ctx, product)
    ctx.say(`  one core, ${round(tcp.byteLength / MiB, 1)} MiB in ${tcp.length} blocks of ${BLOCK_SIZE / 1024} KiB (UDX writer: ${round(udx.byteLength / MiB, 1)} MiB)`)
    for (let t = 0; t < trials; t++) {
      const line: string[] = []
      for (const arm of arms) {
        let trial: Trial
        if (arm === 'product swarm' || arm === 'product lane') {
          const r = await productTrial(ctx, product!, agency!, arm === 'product lane')
          if (arm === 'product lane' && !r.laneOpened) throw new Error('lane suite: the product embassy never opened its lane')
          if (r.laneOpened) lanesOpened++
          trial = r
        } else if (arm === 'udx') {
          const r = await rawRead(udx, ctx.bootstrap)
          trial = { ms: r.ms, cpu: r.readerCpu - r.readerStartCpu + r.writerCpu }
          udxBytes = udx.byteLength
        } else {
          trial = await laneRead(tcp, arm === 'tcp' ? 'tcp' : 'lane', arm === 'lane ×2' ? 2 : 1, arm !== 'lane nagle')
        }
        runs[arm].push(trial)
        line.push(`${arm} ${round(mibPerS(bytesOf(arm), trial.ms), 1)}`)
      }
      ctx.say(`  round ${t + 1}/${trials} (MiB/s): ${line.join(' · ')}`)
    }
  } finally {
    if (udx) await udx.proc.stop()
    if (tcp) await tcp.proc.stop()
    if (agency) await agency.stop()
    if (product) rmdir(path.dirname(product.agency.dir))
    rmdir(udxDir)
    rmdir(laneDir)
  }
  const rates = (arm: (typeof arms)[number]) => runs[arm].map((r) => mibPerS(bytesOf(arm), r.ms))
  const cpus = (arm: (typeof arms)[number]) => runs[arm].map((r) => cpuPerGiB(r.cpu, bytesOf(arm)))
  const udxRate = median(rates('udx'))
  const tcpRate = median(rates('tcp'))
  const laneRate = median(rates('lane'))
  const lane2Rate = median(rates('lane ×2'))
  const nagleRate = median(rates('lane nagle'))
  const productSwarmRate = median(rates('product swarm'))
  const productLaneRate = median(rates('product lane'))
  const name = `replication log ${round(fullBytes / MiB)} MiB`
  const measured = ctx.quick ? { measured: `${round(bytes / MiB)} MiB` } : {}
  const detail = (arm: (typeof arms)[number]) => ({
    trials: rates(arm).map((x) => round(x, 1)),
    cpuPerGiB: round(median(cpus(arm)), 1),
    cpuPerGiBTrials: cpus(arm).map((x) => round(x, 1)),
    bytes: bytesOf(arm),
    blockSize: BLOCK_SIZE
  })
  const udxBaseline = `plain Hypercore over UDX (Corestore + Hyperswarm on the local DHT), same bytes, ${BLOCK_SIZE / 1024} KiB blocks`
  return [
    result({
      name: `${name}, bulk lane`,
      ...measured,
      value: laneRate,
      unit: 'MiB/s',
      baseline: udxBaseline,
      baselineValue: udxRate,
      better: 'higher',
      goal: 'ratio ≥ 2 against plain Hypercore over UDX (≥ 120 MiB/s on an idle machine)',
      met: laneRate / udxRate >= 2 && (ctx.quick || laneRate >= 120),
      detail: { ...detail('lane'), baselineTrials: rates('udx').map((x) => round(x, 1)), baselineCpuPerGiB: round(median(cpus('udx')), 1) }
    }),
    result({
      name: `${name}, bulk lane vs plain TCP`,
      ...measured,
      value: laneRate,
      unit: 'MiB/s',
      baseline: 'plain Hypercore over TCP + secret-stream (Node socket defaults, no firewall), same bytes and run',
      baselineValue: tcpRate,
      better: 'higher',
      detail: { ...detail('lane'), baselineTrials: rates('tcp').map((x) => round(x, 1)), baselineCpuPerGiB: round(median(cpus('tcp')), 1) }
    }),
    result({
      name: `${name}, lane baseline: plain Hypercore over TCP`,
      ...measured,
      value: tcpRate,
      unit: 'MiB/s',
      baseline: udxBaseline,
      baselineValue: udxRate,
      better: 'higher',
      detail: detail('tcp')
    }),
    result({
      name: `${name}, product with bulk lane`,
      ...measured,
      value: productLaneRate,
      unit: 'MiB/s',
      baseline: udxBaseline,
      baselineValue: udxRate,
      better: 'higher',
      goal: 'ratio ≥ 2 against plain Hypercore over UDX (issue 16: twice today\'s bulk replication)',
      met: productLaneRate / udxRate >= 2,
      detail: {
        ...detail('product lane'),
        note: 'embassy run following a running agency; agency config lane.listen 127.0.0.1:0, embassy lane {} (dials the offer); connected → held, so the first moments before the lane opens run over the swarm connection',
        lanesOpened,
        baselineTrials: rates('udx').map((x) => round(x, 1)),
        baselineCpuPerGiB: round(median(cpus('udx')), 1)
      }
    }),
    result({
      name: `${name}, product bulk lane vs product swarm only`,
      ...measured,
      value: productLaneRate,
      unit: 'MiB/s',
      baseline: 'the same product nodes, the embassy without `lane` (swarm connection over UDX only), same run',
      baselineValue: productSwarmRate,
      better: 'higher',
      detail: { ...detail('product lane'), baselineTrials: rates('product swarm').map((x) => round(x, 1)), baselineCpuPerGiB: round(median(cpus('product swarm')), 1) }
    }),
    result({
      name: `${name}, bulk lane ×2 (two parallel lanes)`,
      ...measured,
      value: lane2Rate,
      unit: 'MiB/s',
      baseline: 'one bulk lane, same run',
      baselineValue: laneRate,
      better: 'higher',
      detail: detail('lane ×2')
    }),
    result({
      name: `${name}, bulk lane with Nagle (no TCP_NODELAY)`,
      ...measured,
      value: nagleRate,
      unit: 'MiB/s',
      baseline: 'one bulk lane with TCP_NODELAY (the default), same run',
      baselineValue: laneRate,
      better: 'higher',
      detail: detail('lane nagle')
    })
  ]
}
