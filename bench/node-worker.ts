/**
 * Product worker: the Data Embassy library (dist/lib) in its own process, for what the CLI cannot
 * drive: bulk set-up, core listings, and the live-lag loop that appends at a fixed rate and
 * watches verified receipts arrive. One JSON config argument; JSON-line events on stdout;
 * commands as JSON lines on stdin; stops on SIGTERM or stdin end.
 *
 * Roles:
 *   describe        prints every core of a node directory with its length (offline)
 *   make-datasets   creates `count` log datasets of `records` small records each (offline)
 *   live-agency     runs the agency daemon; on {cmd:'live'} appends at `rate`/s and reports
 *                   each append's time and each verified receipt's arrival
 *   publish-batched a publish variant for a fresh files dataset: small files read whole and written
 *                   with one Hyperdrive batch (`drive.batch().put`), large ones streamed into it
 */
import fs from 'node:fs'
import './tune.js'
import path from 'node:path'
import { Daemon, FILE_BLOCK_SIZE, NodeHost, toZ32, type LogEvent } from '../lib/index.js'
import { closers, out, runRole, shutdown, startWorker, workerConfig } from './worker-io.js'

interface NodeConfig {
  role: 'describe' | 'make-datasets' | 'live-agency' | 'publish-batched'
  dir: string
  /** publish-batched: dataset name and source folder */
  dataset?: string
  source?: string
  bootstrap?: string[]
  /** make-datasets */
  count?: number
  records?: number
  recordBytes?: number
  prefix?: string
}

interface LiveCommand {
  cmd: 'live'
  dataset: string
  count: number
  rate: number
  recordBytes: number
}

const config = workerConfig<NodeConfig>()
const commands: Array<(msg: any) => void> = []
startWorker({ graceMs: 10_000, onmessage: (msg) => commands.forEach((c) => c(msg)) })

/** A JSON record of about `bytes` bytes. */
export function record(i: number, bytes: number): string {
  const head = `{"seq":${i},"at":${Date.now()},"pad":"`
  const padLen = Math.max(0, bytes - head.length - 2)
  return head + 'x'.repeat(padLen) + '"}'
}

async function describe(): Promise<void> {
  const host = new NodeHost(config.dir)
  await host.ready()
  try {
    const cores = await host.heldCores()
    out({
      event: 'cores',
      cores: cores.map((c) => ({ key: toZ32(c.core.key!), name: c.name, catalog: c.catalog, length: c.core.length, byteLength: c.core.byteLength }))
    })
  } finally {
    await host.close()
  }
  await shutdown(0)
}

async function makeDatasets(): Promise<void> {
  const host = new NodeHost(config.dir)
  await host.ready()
  closers.push(() => host.close())
  const agency = await host.agency()
  const count = config.count ?? 1
  const records = config.records ?? 1
  const bytes = config.recordBytes ?? 100
  const prefix = config.prefix ?? 'ds'
  const started = performance.now()
  let last = started
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`
    await agency.createDataset(name)
    if (records > 0) await agency.appendJson(name, Array.from({ length: records }, (_, j) => record(j, bytes)))
    if (performance.now() - last > 2000) {
      last = performance.now()
      out({ event: 'progress', done: i + 1, count, ms: last - started })
    }
  }
  out({ event: 'done', count, records, ms: performance.now() - started })
  await shutdown(0)
}

async function liveAgency(): Promise<void> {
  const daemon = new Daemon({
    dir: config.dir,
    bootstrap: config.bootstrap!,
    log: (e: LogEvent) => out({ ...e, event: 'log:' + e.event })
  })
  closers.push(() => daemon.close())
  await daemon.ready()
  const agency = await daemon.host.agency()
  const receipts: Array<{ core: string; length: number; at: number }> = []
  agency.on('receipt', (r: { core: string; length: number }) => receipts.push({ core: r.core, length: r.length, at: Date.now() }))
  commands.push((msg: LiveCommand) => {
    if (msg.cmd !== 'live') return
    runLive(msg).catch((err) => out({ event: 'error', message: (err as Error).stack ?? String(err) }))
  })
  out({ event: 'ready' })

  async function runLive(cmd: LiveCommand): Promise<void> {
    const log = await agency.datasets.openLog(cmd.dataset)
    const core = toZ32(log.core.key!)
    const first = log.core.length
    const starts: number[] = []
    const ends: number[] = []
    const interval = 1000 / cmd.rate
    const t0 = performance.now()
    const wall0 = Date.now()
    let late = 0
    for (let i = 0; i < cmd.count; i++) {
      const due = t0 + i * interval
      const wait = due - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      else late++
      starts.push(Date.now())
      await agency.appendJson(cmd.dataset, [record(first + i, cmd.recordBytes)])
      ends.push(Date.now())
    }
    // Wait (bounded) for the receipt of the last append.
    const want = first + cmd.count
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && !receipts.some((r) => r.core === core && r.length >= want)) await new Promise((r) => setTimeout(r, 20))
    out({
      event: 'live-result',
      core,
      first,
      starts,
      ends,
      late,
      elapsed: Date.now() - wall0,
      receipts: receipts.filter((r) => r.core === core && r.length > first)
    })
  }
}

/** Files up to this size are read whole and `put`; larger ones are streamed. */
const WHOLE_FILE_MAX = 4 * 1024 * 1024

/** Copies a file into a (streamx) writable, 1 MiB at a time, honouring back-pressure. */
async function streamFile(file: string, ws: any): Promise<void> {
  const fd = fs.openSync(file, 'r')
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(1024 * 1024)
      const n = fs.readSync(fd, chunk, 0, chunk.length, null)
      if (n === 0) break
      if (!ws.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await new Promise((r) => ws.once('drain', r))
    }
  } finally {
    fs.closeSync(fd)
  }
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject)
    ws.once('close', () => resolve())
    ws.end()
  })
}

async function publishBatched(): Promise<void> {
  const host = new NodeHost(config.dir)
  await host.ready()
  closers.push(() => host.close())
  const agency = await host.agency()
  const files = await agency.datasets.openFiles(config.dataset!)
  const blobs = await files.drive.getBlobs()
  if (blobs) blobs.blockSize = FILE_BLOCK_SIZE
  const started = performance.now()
  const batch = files.drive.batch()
  let count = 0
  let bytes = 0
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, e.name)
      const key = prefix + '/' + e.name
      if (e.isDirectory()) await walk(full, key)
      else if (e.isFile()) {
        const size = fs.statSync(full).size
        if (size <= WHOLE_FILE_MAX) await batch.put(key, fs.readFileSync(full))
        else await streamFile(full, batch.createWriteStream(key))
        count++
        bytes += size
      }
    }
  }
  await walk(config.source!, '')
  await batch.flush()
  out({ event: 'done', files: count, bytes, ms: performance.now() - started })
  await shutdown(0)
}

runRole({ describe, 'make-datasets': makeDatasets, 'live-agency': liveAgency, 'publish-batched': publishBatched }, config.role)
