/**
 * Product-side helpers: nodes made and driven through the CLI (`embassy init|dataset create|append|
 * publish|allow|follow|run`), core listings through the node worker, and waiting for an embassy to
 * hold given cores at given lengths (from its `--log-format json` events).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { configArg, setupCli, initNode, NODE_WORKER, pair, RAW_WORKER, spawnNode, startRun, startWorker, tmpdir, type Json, type Proc } from './harness.js'

export interface NodeDir {
  dir: string
  nodeKey: string
  catalogKey: string | null
}

export interface CoreInfo {
  key: string
  name: string
  catalog: string
  length: number
  byteLength: number
}

/** Default log record: a JSON record of about 64 KiB, one Hypercore block (see BENCHMARKS.md). */
export const LOG_RECORD_BYTES = 64 * 1024 - 64

export async function newAgency(label: string): Promise<NodeDir> {
  const dir = path.join(tmpdir(label), 'agency')
  const id = await initNode(dir, 'agency', label)
  return { dir, nodeKey: id.nodeKey, catalogKey: id.catalogKey }
}

/** A fresh embassy that follows `agencies` (and is allowed by them). */
export async function newEmbassy(label: string, agencies: NodeDir[]): Promise<NodeDir> {
  const dir = path.join(tmpdir(label), 'embassy')
  const id = await initNode(dir, 'embassy', label)
  for (const a of agencies) await pair(a.dir, a.nodeKey, dir, id.nodeKey)
  // The bench times each hold by the embassy's `caught-up` lines: log every one, not milestones.
  const configFile = path.join(dir, 'config.json')
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>
  fs.writeFileSync(configFile, JSON.stringify({ ...config, caughtUpLogSeconds: 0 }, null, 2), { mode: 0o600 })
  return { dir, nodeKey: id.nodeKey, catalogKey: null }
}

/** Every core of a node directory with its length (through the node worker; the node must not be running). */
export async function describe(dir: string): Promise<CoreInfo[]> {
  const w = startWorker(NODE_WORKER, { role: 'describe', dir }, 'describe')
  const e = await w.waitEvent((x) => x.event === 'cores' || x.event === 'error', 120_000, 'core listing')
  await w.exited
  if (e.event === 'error') throw new Error(`describe ${dir}: ${e.message}`)
  return e.cores as CoreInfo[]
}

/** A JSON record of about `bytes` bytes (the same shape as the node worker's). */
export function record(i: number, bytes: number): string {
  const head = `{"seq":${i},"at":${Date.now()},"pad":"`
  return head + 'x'.repeat(Math.max(0, bytes - head.length - 2)) + '"}'
}

/** Appends about `bytes` of `recordBytes` JSON records through `embassy append` (NDJSON on stdin, in chunks). */
export async function fillLog(dir: string, name: string, bytes: number, recordBytes = LOG_RECORD_BYTES, chunkBytes = 32 * 1024 * 1024): Promise<{ records: number; ms: number }> {
  const total = Math.max(1, Math.round(bytes / recordBytes))
  const perChunk = Math.max(1, Math.floor(chunkBytes / recordBytes))
  const start = performance.now()
  for (let i = 0; i < total; i += perChunk) {
    const n = Math.min(perChunk, total - i)
    const lines: string[] = new Array(n)
    for (let j = 0; j < n; j++) lines[j] = record(i + j, recordBytes)
    await setupCli(['append', name, '--dir', dir, '--json'], { input: lines.join('\n') + '\n' })
  }
  return { records: total, ms: performance.now() - start }
}

export interface FolderShape {
  files: number
  bytes: number
  largeFiles: number
  smallFiles: number
}

/**
 * A folder of about `bytes`: three quarters in four large files, one quarter in many small files
 * (1–64 KiB) spread over nested folders of 100. Random contents (nothing compresses anywhere).
 */
export function makeFolder(root: string, bytes: number): FolderShape {
  fs.mkdirSync(root, { recursive: true })
  const chunk = Buffer.allocUnsafe(1024 * 1024)
  const largeCount = 4
  const largeEach = Math.floor((bytes * 0.75) / largeCount)
  let written = 0
  for (let i = 0; i < largeCount; i++) {
    const fd = fs.openSync(path.join(root, `large-${i}.bin`), 'w')
    for (let left = largeEach; left > 0; left -= chunk.length) {
      crypto.randomFillSync(chunk)
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, left))
    }
    fs.closeSync(fd)
    written += largeEach
  }
  let small = 0
  let seed = 12345
  const next = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed
  }
  while (written < bytes) {
    const size = Math.min(bytes - written, 1024 + (next() % (63 * 1024)))
    const dir = path.join(root, 'docs', `d${Math.floor(small / 1000)}`, `s${Math.floor(small / 100) % 10}`)
    if (small % 100 === 0) fs.mkdirSync(dir, { recursive: true })
    const buf = crypto.randomBytes(size)
    fs.writeFileSync(path.join(dir, `doc-${small}.dat`), buf)
    written += size
    small++
  }
  return { files: largeCount + small, bytes: written, largeFiles: largeCount, smallFiles: small }
}

/**
 * Resolves with the time (ms since epoch, the embassy's clock) at which the embassy's log showed
 * every one of `cores` at (at least) its length. Rejects after `timeoutMs`.
 */
export function waitHeld(embassy: Proc, cores: Array<{ key: string; length: number }>, timeoutMs: number): Promise<{ at: number; firstAt: number }> {
  const want = new Map(cores.filter((c) => c.length > 0).map((c) => [c.key, c.length]))
  let last = 0
  let first = Infinity
  return new Promise((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => {
      if (done) return
      done = true
      reject(new Error(`embassy did not hold ${want.size} of ${cores.length} cores after ${timeoutMs} ms\n${embassy.text.slice(-2000)}`))
    }, timeoutMs)
    const check = () => {
      if (done || want.size > 0) return
      done = true
      clearTimeout(timer)
      resolve({ at: last, firstAt: first })
    }
    embassy.onEvent(
      (e) => e.event === 'caught-up',
      (e) => {
        const need = want.get(e.core)
        if (need === undefined || e.length < need) return
        want.delete(e.core)
        last = Math.max(last, e.time)
        first = Math.min(first, e.time)
        check()
      }
    )
    void embassy.exited.then(() => {
      if (done) return
      done = true
      clearTimeout(timer)
      reject(new Error(`embassy exited before holding everything\n${embassy.text.slice(-2000)}`))
    })
    check()
  })
}

/** Starts an embassy (`embassy run`) and resolves once it is connected to its first agency. */
export async function runEmbassy(dir: string, bootstrap: string[], opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; label?: string } = {}): Promise<Proc> {
  return startRun(dir, bootstrap, opts.label ?? 'embassy', opts)
}

export function connectedEvent(p: Proc, role = 'agency', after = 0): Promise<Json> {
  return p.waitEvent((e) => e.event === 'peer-connected' && e.role === role && e.time >= after, 60_000, `peer-connected (${role})`)
}

// ---------- the plain-Hypercore baseline ----------

export interface RawWriter {
  proc: Proc
  publicKey: string
  keys: string[]
  lengths: number[]
  byteLength: number
  appendMs: number
}

export async function rawWriter(cfg: Json, bootstrap: string[], env?: NodeJS.ProcessEnv, label = 'raw-writer'): Promise<RawWriter> {
  const dir = cfg.dir ?? tmpdir(label)
  const proc = spawnWorker(RAW_WORKER, { role: 'writer', dir, bootstrap, ...cfg }, label, env)
  const a = await proc.waitEvent((e) => e.event === 'appended' || e.event === 'error', 600_000, 'appended')
  if (a.event === 'error') throw new Error(`${label}: ${a.message}`)
  const l = await proc.waitEvent((e) => e.event === 'listening' || e.event === 'error', 60_000, 'listening')
  if (l.event === 'error') throw new Error(`${label}: ${l.message}`)
  return { proc, publicKey: l.publicKey, keys: l.keys, lengths: l.lengths, byteLength: l.byteLength, appendMs: a.ms }
}

/**
 * One raw replication: a fresh reader process pulls `w`'s cores. Resolves with connection → done
 * time, spawn → done time, and CPU ms used by the reader (whole life) and the writer (during it).
 */
export async function rawRead(
  w: RawWriter,
  bootstrap: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; inflight?: [number, number] } = {}
): Promise<{ ms: number; spawnToDone: number; connectedAt: number; readerCpu: number; writerCpu: number; readerStartCpu: number }> {
  const dir = tmpdir('raw-reader')
  const writerCpu0 = w.proc.cpu()
  const proc = spawnWorker(
    RAW_WORKER,
    { role: 'reader', dir, bootstrap, keys: w.keys, lengths: w.lengths, peer: w.publicKey, ...(opts.inflight ? { inflight: opts.inflight } : {}) },
    'raw-reader',
    opts.env
  )
  let readerStartCpu = NaN
  proc.onEvent(
    (e) => e.event === 'connected',
    () => {
      if (Number.isNaN(readerStartCpu)) readerStartCpu = proc.cpu()
    }
  )
  try {
    const d = await proc.waitEvent((e) => e.event === 'done' || e.event === 'error', opts.timeoutMs ?? 300_000, 'raw replication done')
    if (d.event === 'error') throw new Error(`raw reader: ${d.message}`)
    return { ms: d.ms, spawnToDone: d.doneAt - proc.spawnedAt, connectedAt: d.connectedAt, readerCpu: proc.cpu(), writerCpu: w.proc.cpu() - writerCpu0, readerStartCpu }
  } finally {
    await proc.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export function spawnWorker(script: string, config: Json, label: string, env?: NodeJS.ProcessEnv, nodeArgs: string[] = []): Proc {
  return spawnNode(script, [configArg(config)], { events: 'stdout', label, nodeArgs, ...(env ? { env } : {}) })
}
