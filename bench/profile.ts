/**
 * `node dist/bench/profile.js [--kind log|files] [--mib 256] [--no-raw] [--keep-profiles DIR]`
 *
 * Where the CPU goes in one replication, on both sides. One agency (`embassy run`) holding a
 * dataset of `--mib` MiB and one fresh embassy following it, both started with `node --cpu-prof`;
 * then (unless --no-raw) the plain-Hypercore baseline the same way (raw-worker writer and reader).
 * Each process's profile is cut to the transfer (the receiver's connection → every core held) and
 * its self time aggregated by function and by module (ours: lib/…; hypercore, hypercore-storage,
 * rocksdb-native, udx-native, @hyperswarm/secret-stream, sodium-native, compact-encoding, …),
 * in CPU-s per GiB moved. `--cpu-prof` samples the JavaScript (main) thread only, including the
 * native calls made from it; the other threads (RocksDB's, libuv's pool, V8's GC helpers) are read
 * per thread from /proc/PID/task over the same window.
 *
 * Prints one JSON document on stdout and the tables (markdown) on stderr.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { cleanup, installCleanup, MiB, RAW_WORKER, rmdir, round, startBootstrap, startRun, tmpdir, type Json, type Proc } from './harness.js'
import { connectedEvent, newEmbassy, runEmbassy, spawnWorker, waitHeld } from './product.js'
import { prepare, rawConfigFor, type Kind, type Prepared } from './suites/replication.js'
import type { Ctx } from './context.js'

const GiB = 1024 * MiB

/** One node of a V8 .cpuprofile. */
interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }
  children?: number[]
}
export interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** CPU ms per thread name (comm) of a process, from /proc/PID/task/TID/stat. */
export function threadCpu(pid: number): Record<string, number> {
  const outp: Record<string, number> = {}
  let tids: string[] = []
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return outp
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ms = (Number(f[11]) + Number(f[12])) * 10
      const name = tid === String(pid) ? MAIN_THREAD : threadGroup(comm)
      outp[name] = (outp[name] ?? 0) + ms
    } catch {}
  }
  return outp
}

const MAIN_THREAD = 'main (JavaScript)'
/** The profiler's own thread: its CPU is the measurement's overhead, left out of every total. */
const PROFILER_THREAD = 'v8:ProfEvntProc'

/** Thread names folded into groups (numbered worker threads into one). */
function threadGroup(comm: string): string {
  if (/^rocksdb:high/i.test(comm)) return 'RocksDB flush (rocksdb:high)'
  if (/^rocksdb:low/i.test(comm)) return 'RocksDB compaction (rocksdb:low)'
  // Node 20 leaves its libuv pool (fs, RocksDB's reads and write batches, crypto jobs) and V8's
  // platform workers (concurrent GC, compilation) named after the process.
  if (comm === 'node') return 'unnamed (libuv pool: RocksDB batches, fs; V8 GC/compile helpers)'
  return comm.replace(/\d+$/, '')
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {}
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) d[k] = (b[k] ?? 0) - (a[k] ?? 0)
  return d
}

/** The module a profile frame belongs to. */
export function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : `native: ${fn || '(anonymous)'}`
  if (url.startsWith('node:')) return 'node internals'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const lib = /\/dist[^/]*\/lib\/([^/]+)(\/|\.js)/.exec(url)
  if (lib) return `ours: lib/${lib[1]!.replace(/\.js$/, '')}`
  if (/\/dist[^/]*\/bench\//.test(url)) return 'bench harness'
  if (/\/dist[^/]*\/(bin|protocol)\//.test(url)) return 'ours: ' + /\/dist[^/]*\/(bin|protocol)\//.exec(url)![1]
  return url
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) return url.slice(nm + '/node_modules/'.length)
  const d = /\/(dist[^/]*\/.*)$/.exec(url)
  return d ? d[1]! : url
}

export interface Aggregate {
  /** ms of JavaScript-thread samples inside the window */
  sampledMs: number
  byModule: Record<string, number>
  byFunction: Record<string, number>
}

/** `--cpu-prof-interval`, µs. */
const PROFILE_INTERVAL_US = 500

/**
 * Self time by module and by function, of the samples whose time falls in [fromMs, toMs]
 * (epoch ms). `endEpochMs` is when the profile ended (the process's exit), to map V8's clock.
 */
export function aggregate(profile: CpuProfile, fromMs: number, toMs: number, endEpochMs: number, intervalUs = PROFILE_INTERVAL_US): Aggregate {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const byModule: Record<string, number> = {}
  const byFunction: Record<string, number> = {}
  let sampledMs = 0
  // sample i happens at startTime + Σ timeDeltas[0..i]; its self time is the gap to the next one
  const times: number[] = []
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    times.push(t)
  }
  const offset = endEpochMs - profile.endTime / 1000 // epoch ms = V8 µs / 1000 + offset
  for (let i = 0; i < profile.samples.length; i++) {
    const at = times[i]! / 1000 + offset
    if (at < fromMs || at > toMs) continue
    const next = i + 1 < times.length ? times[i + 1]! : profile.endTime
    // A gap far above the sampling interval is the thread (or the profiler) descheduled on a busy
    // machine, not CPU spent in that function: cap it, then scale to /proc's CPU (see side()).
    const ms = Math.min(Math.max(0, (next - times[i]!) / 1000), (2 * intervalUs) / 1000)
    const node = nodes.get(profile.samples[i]!)
    if (!node) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') continue
    sampledMs += ms
    const mod = moduleOf(url, functionName)
    byModule[mod] = (byModule[mod] ?? 0) + ms
    const fn = url ? `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}` : functionName || '(anonymous)'
    byFunction[fn] = (byFunction[fn] ?? 0) + ms
  }
  return { sampledMs, byModule, byFunction }
}

/** Reads the one .cpuprofile a process wrote into `dir`. */
function readProfile(dir: string): CpuProfile {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${dir}, found ${files.length}`)
  return JSON.parse(fs.readFileSync(path.join(dir, files[0]!), 'utf8')) as CpuProfile
}

interface Side {
  role: string
  /** CPU ms per thread group in the window (the profiler's own thread left out) */
  threads: Record<string, number>
  totalMs: number
  /** CPU ms of the profiler's own thread (overhead, not in totalMs) */
  profilerMs: number
  /** ms the profile sampled on the JavaScript thread in the window (wall clock, gaps capped) */
  sampledMs: number
  /** by module and function, scaled to the JavaScript thread's CPU from /proc */
  agg: Aggregate
}

interface Measured {
  arm: 'product' | 'plain'
  bytes: number
  windowMs: number
  sides: Side[]
}

/** Stops a profiled process and returns its profile, with the epoch time it exited. */
async function stopProfiled(proc: Proc, dir: string): Promise<{ profile: CpuProfile; exitAt: number }> {
  const code = await proc.stop(30_000)
  const exitAt = Date.now()
  if (code === -1) throw new Error(`profiled process was killed (no profile written)`)
  return { profile: readProfile(dir), exitAt }
}

function profArgs(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true })
  return ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', String(PROFILE_INTERVAL_US)]
}

/**
 * One process's figures. The profile gives the shares of the JavaScript thread's time; /proc gives
 * how much CPU that thread used: the module and function figures are the shares × that CPU.
 */
function side(role: string, before: Record<string, number>, after: Record<string, number>, prof: { profile: CpuProfile; exitAt: number }, from: number, to: number): Side {
  const threads = diff(before, after)
  const profilerMs = threads[PROFILER_THREAD] ?? 0
  delete threads[PROFILER_THREAD]
  const raw = aggregate(prof.profile, from, to, prof.exitAt)
  const mainMs = threads[MAIN_THREAD] ?? 0
  const k = raw.sampledMs > 0 ? mainMs / raw.sampledMs : 0
  const scale = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([n, v]) => [n, v * k]))
  return {
    role,
    threads,
    totalMs: Object.values(threads).reduce((a, b) => a + b, 0),
    profilerMs,
    sampledMs: raw.sampledMs,
    agg: { sampledMs: mainMs, byModule: scale(raw.byModule), byFunction: scale(raw.byFunction) }
  }
}

async function profileProduct(ctx: Ctx, p: Prepared, root: string): Promise<Measured> {
  const aDir = path.join(root, 'agency')
  const eDir = path.join(root, 'embassy')
  const agency = await startRun(p.agency.dir, ctx.bootstrap, 'agency', { nodeArgs: profArgs(aDir) })
  const emb = await newEmbassy('embassy', [p.agency])
  const proc = await runEmbassy(emb.dir, ctx.bootstrap, { nodeArgs: profArgs(eDir) })
  const conn = await connectedEvent(proc)
  const a0 = threadCpu(agency.pid)
  const e0 = threadCpu(proc.pid)
  const from = Date.now()
  const held = await waitHeld(proc, p.cores, 600_000)
  const a1 = threadCpu(agency.pid)
  const e1 = threadCpu(proc.pid)
  const to = Math.max(held.at, from)
  const eProf = await stopProfiled(proc, eDir)
  const aProf = await stopProfiled(agency, aDir)
  rmdir(path.dirname(emb.dir))
  ctx.say(`  product: connected → held ${held.at - conn.time} ms`)
  return {
    arm: 'product',
    bytes: p.payload,
    windowMs: to - from,
    sides: [side('sender (agency)', a0, a1, aProf, from, to), side('receiver (embassy)', e0, e1, eProf, from, to)]
  }
}

async function profilePlain(ctx: Ctx, p: Prepared, root: string): Promise<Measured> {
  const wDir = path.join(root, 'plain-writer')
  const rDir = path.join(root, 'plain-reader')
  const writer = spawnWorker(RAW_WORKER, { role: 'writer', dir: tmpdir('raw-writer'), bootstrap: ctx.bootstrap, ...rawConfigFor(p) }, 'raw-writer', undefined, profArgs(wDir))
  const l = await writer.waitEvent((e) => e.event === 'listening' || e.event === 'error', 600_000, 'listening')
  if (l.event === 'error') throw new Error(`raw writer: ${l.message}`)
  const reader = spawnWorker(RAW_WORKER, { role: 'reader', dir: tmpdir('raw-reader'), bootstrap: ctx.bootstrap, keys: l.keys, lengths: l.lengths, peer: l.publicKey }, 'raw-reader', undefined, profArgs(rDir))
  let w0: Record<string, number> = {}
  let r0: Record<string, number> = {}
  let from = 0
  reader.onEvent(
    (e) => e.event === 'connected',
    () => {
      if (from) return
      w0 = threadCpu(writer.pid)
      r0 = threadCpu(reader.pid)
      from = Date.now()
    }
  )
  const d = await reader.waitEvent((e) => e.event === 'done' || e.event === 'error', 600_000, 'raw replication done')
  if (d.event === 'error') throw new Error(`raw reader: ${d.message}`)
  const w1 = threadCpu(writer.pid)
  const r1 = threadCpu(reader.pid)
  const to = Math.max(d.doneAt as number, from)
  const rProf = await stopProfiled(reader, rDir)
  const wProf = await stopProfiled(writer, wDir)
  ctx.say(`  plain: connected → done ${d.ms} ms`)
  return {
    arm: 'plain',
    bytes: l.byteLength as number,
    windowMs: to - from,
    sides: [side('sender (plain writer)', w0, w1, wProf, from, to), side('receiver (plain reader)', r0, r1, rProf, from, to)]
  }
}

const perGiB = (ms: number, bytes: number) => round(ms / 1000 / (bytes / GiB), 2)

function top(rec: Record<string, number>, n: number): Array<[string, number]> {
  return Object.entries(rec)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
}

/** The JSON form of one measurement: every figure in CPU-s per GiB moved. */
function summary(m: Measured, topN: number): Json {
  return {
    arm: m.arm,
    bytes: m.bytes,
    windowMs: m.windowMs,
    mibPerS: round(m.bytes / MiB / (m.windowMs / 1000), 1),
    sides: m.sides.map((s) => ({
      role: s.role,
      cpuPerGiB: perGiB(s.totalMs, m.bytes),
      threadsPerGiB: Object.fromEntries(top(s.threads, 20).map(([k, v]) => [k, perGiB(v, m.bytes)])),
      jsThreadPerGiB: perGiB(s.agg.sampledMs, m.bytes),
      sampledJsThreadPerGiB: perGiB(s.sampledMs, m.bytes),
      profilerOverheadPerGiB: perGiB(s.profilerMs, m.bytes),
      oursPerGiB: perGiB(
        Object.entries(s.agg.byModule)
          .filter(([k]) => k.startsWith('ours:'))
          .reduce((a, [, v]) => a + v, 0),
        m.bytes
      ),
      modulesPerGiB: Object.fromEntries(top(s.agg.byModule, 40).map(([k, v]) => [k, perGiB(v, m.bytes)])),
      functionsPerGiB: Object.fromEntries(top(s.agg.byFunction, topN).map(([k, v]) => [k, perGiB(v, m.bytes)]))
    }))
  }
}

/** Markdown tables: modules (and threads) side by side for every process, then top functions per process. */
function tables(ms: Json[], topN: number): string {
  const out: string[] = []
  const sides: Array<{ label: string; s: Json }> = []
  for (const m of ms) for (const s of m.sides) sides.push({ label: s.role, s })
  const rowsFor = (key: 'modulesPerGiB' | 'threadsPerGiB') => {
    const keys = new Map<string, number>()
    for (const { s } of sides) for (const [k, v] of Object.entries(s[key] as Record<string, number>)) keys.set(k, Math.max(keys.get(k) ?? 0, v))
    return [...keys.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k)
  }
  const head = `| CPU-s per GiB | ${sides.map((x) => x.label).join(' | ')} |\n|---|${sides.map(() => '---:').join('|')}|`
  const cell = (v: number | undefined) => (v === undefined ? '—' : v < 0.01 ? '<0.01' : v.toFixed(2))
  out.push(head)
  out.push(`| **all threads (/proc)** | ${sides.map(({ s }) => `**${cell(s.cpuPerGiB)}**`).join(' | ')} |`)
  for (const k of rowsFor('threadsPerGiB')) out.push(`| thread: ${k} | ${sides.map(({ s }) => cell(s.threadsPerGiB[k])).join(' | ')} |`)
  out.push(`| **JS thread, by module** (profile shares × its /proc CPU) | ${sides.map(({ s }) => `**${cell(s.jsThreadPerGiB)}**`).join(' | ')} |`)
  for (const k of rowsFor('modulesPerGiB').filter((k) => sides.some(({ s }) => (s.modulesPerGiB[k] ?? 0) >= 0.05))) {
    out.push(`| ${k} | ${sides.map(({ s }) => cell(s.modulesPerGiB[k])).join(' | ')} |`)
  }
  out.push(`| **ours (lib/, protocol/, bin/), all modules** | ${sides.map(({ s }) => `**${cell(s.oursPerGiB)}**`).join(' | ')} |`)
  out.push(`| (profiler's own thread, overhead, not counted) | ${sides.map(({ s }) => cell(s.profilerOverheadPerGiB)).join(' | ')} |`)
  for (const { label, s } of sides) {
    out.push('', `Top ${topN} functions (self time), ${label}, CPU-s per GiB:`, '', '| function | CPU-s/GiB |', '|---|---:|')
    for (const [k, v] of Object.entries(s.functionsPerGiB as Record<string, number>)) out.push(`| \`${k.replace(/\|/g, '\\|')}\` | ${cell(v)} |`)
  }
  return out.join('\n') + '\n'
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { kind: { type: 'string', default: 'log' }, mib: { type: 'string', default: '256' }, 'no-raw': { type: 'boolean' }, top: { type: 'string', default: '15' }, 'keep-profiles': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true
  })
  if (values.help) {
    process.stdout.write('usage: node dist/bench/profile.js [--kind log|files] [--mib 256] [--no-raw] [--top 15] [--keep-profiles DIR]\n')
    return 0
  }
  const kind = values.kind as Kind
  if (kind !== 'log' && kind !== 'files') throw new Error('--kind must be log or files')
  const bytes = Number(values.mib) * MiB
  const topN = Number(values.top)
  installCleanup(() => false)
  const started = Date.now()
  const say = (msg: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`)
  const loadStart = os.loadavg().map((x) => round(x, 2))
  const { proc: dht, bootstrap } = await startBootstrap(5)
  const ctx: Ctx = { quick: false, variants: false, bootstrap, say, pick: (full) => full }
  const root = values['keep-profiles'] ? path.resolve(values['keep-profiles']) : tmpdir('profiles')
  say(`profiling one ${kind} replication of ${values.mib} MiB (profiles in ${root})`)
  const p = await prepare(ctx, kind, bytes)
  const measured: Measured[] = [await profileProduct(ctx, p, path.join(root, 'product'))]
  if (!values['no-raw']) measured.push(await profilePlain(ctx, p, path.join(root, 'plain')))
  await dht.stop()
  const doc = { date: new Date(started).toISOString(), kind, bytes: p.payload, blocks: p.blocks, blockSize: p.blockSize, cpus: os.cpus().length, loadavg: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) }, measurements: measured.map((m) => summary(m, topN)) }
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  process.stderr.write(`\nload average (1, 5, 15 min) at the start ${loadStart.join(', ')}, at the end ${doc.loadavg.end.join(', ')} on ${doc.cpus} CPUs\n\n` + tables(doc.measurements, topN))
  return 0
}

// Run as a script (not when a test imports moduleOf/aggregate).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    (code) => {
      cleanup()
      process.stdout.write('', () => process.exit(code))
    },
    (err) => {
      process.stderr.write(`profile: ${(err as Error).stack ?? err}\n`)
      cleanup()
      process.exit(2)
    }
  )
}
