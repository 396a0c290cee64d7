/**
 * Benchmark harness: child processes (each in its own process group, all killed on exit),
 * temporary directories (all removed on exit), the CLI, JSON-line events, statistics.
 * Benchmarks are not tests, but they drive the product with the test helpers (test/helpers/):
 * the CLI runner, JSON-line parsing, pairing through the CLI and the `embassy run`/`bootstrap`
 * arguments are theirs; what is bench-only here is process groups, the run's temp root and stats.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bootstrapArgs, CLI, cli as runCli, jsonLines, killChild, pairDirs, runArgs, type CliOptions, type CliResult } from '../test/helpers/process.js'

export { CLI, type CliResult }

const here = path.dirname(fileURLToPath(import.meta.url))
export const RAW_WORKER = path.join(here, 'raw-worker.js')
export const NODE_WORKER = path.join(here, 'node-worker.js')
/** `--import` this into a product process to apply BENCH_* variants (see tune.ts). */
export const TUNE = path.join(here, 'tune.js')
export const TUNE_ARGS = ['--import', 'file://' + TUNE]

export type Json = Record<string, any>

/** One line of the result table. `baselineValue` is measured in the same run. */
export interface Result {
  name: string
  value: number
  unit: string
  baseline: string
  baselineValue: number | null
  /** value / baselineValue (see `better` for which way is good). */
  ratio: number | null
  /** 'higher' when a bigger value is better (throughput), 'lower' otherwise (times, memory). */
  better: 'higher' | 'lower'
  /**
   * A stated goal, as text (`≥ 0.95 ratio`, `< 100 ms`), and whether this run met it; null when
   * the machine was busy (`noisy`): the runner never claims a goal met on a noisy result.
   */
  goal?: string
  met?: boolean | null
  /** The machine was busy during this result's suite (see LoadMonitor): its goal is not judged. */
  noisy?: boolean
  /** Why `met` is null, or what made the result noisy. */
  reason?: string
  /** Quick mode: the size actually measured, when smaller than the full size the name states. */
  measured?: string
  /** Load around the suite that produced this result (see LoadMonitor). */
  load?: SuiteLoad
  /** Anything else worth keeping (spread, sizes, counts). */
  detail?: Json
}

// ---------- machine load (bench hygiene) ----------

/**
 * When the machine counts as busy. The 1-minute load average is the kernel's count of runnable
 * (and uninterruptible) threads, sampled every 5 s and decayed over a minute; the benchmark's own
 * processes are part of it, so the runner computes its own share the same way (its and its
 * children's threads in state R or D, from /proc/PID/task, every 5 s, the same decay) and
 * subtracts it: what is left is other people's work.
 * A suite is noisy when, at its start or its end, that external load exceeds
 * `EXTERNAL_LOAD_PER_CPU` × the number of CPUs, or when other processes used more than
 * `OTHERS_CPU_SHARE` of the machine's CPU during the suite (from /proc/stat minus our own CPU:
 * the load average lags by a minute, this does not).
 */
export const BUSY = { EXTERNAL_LOAD_PER_CPU: 0.5, OTHERS_CPU_SHARE: 0.25, SAMPLE_MS: 5000 } as const

/** A load snapshot: the load averages, and our estimate of how much of the 1-minute one is not ours. */
export interface LoadPoint {
  at: string
  loadavg: [number, number, number]
  /** The run's own share of the 1-minute load average (decayed like the kernel's) */
  own1: number
  /** loadavg[0] − own1, never below 0 */
  external1: number
}

export interface SuiteLoad {
  before: LoadPoint
  after: LoadPoint
  /** Other processes' CPU during the suite, in cores (machine busy time minus the run's own) */
  othersCores: number
  /** Our own CPU during the suite, in cores */
  ownCores: number
  cpus: number
  noisy: boolean
  reason: string
}

/** Busy jiffies (everything but idle and iowait) of the whole machine, and the tick, from /proc/stat. */
function machineBusyMs(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = line
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * TICK_MS
  } catch {
    return NaN
  }
}

/**
 * Threads of this run in state R (running or runnable) or D (uninterruptible): what the kernel
 * counts for the load average. The runner's main thread (taking this sample) is left out.
 */
export function ownRunnable(): number {
  let n = 0
  const pids = [process.pid, ...[...children].map((c) => c.pid ?? -1)]
  for (const pid of pids) {
    let tids: string[] = []
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`)
    } catch {
      continue
    }
    for (const tid of tids) {
      if (pid === process.pid && tid === String(pid)) continue
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
        const state = stat[stat.lastIndexOf(')') + 2]
        if (state === 'R' || state === 'D') n++
      } catch {}
    }
  }
  return n
}

/** CPU ms used by this run: the runner, its reaped children (cutime/cstime) and its live ones. */
export function ownCpuMs(): number {
  let total = 0
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS
  } catch {
    const u = process.cpuUsage()
    total += (u.user + u.system) / 1000
  }
  for (const c of children) {
    const ms = cpuMs(c.pid ?? -1)
    if (Number.isFinite(ms)) total += ms
  }
  return total
}

/**
 * Watches the machine's load for the whole run (see BUSY). `mark()` takes a snapshot (suite start
 * and end); `suite(before, after)` says whether the machine was busy in between.
 */
export class LoadMonitor {
  readonly cpus = os.cpus().length
  #own1 = 0
  #lastAt = Date.now()
  #lastOwn = ownCpuMs()
  #timer: NodeJS.Timeout
  #marks = new Map<LoadPoint, { own: number; busy: number; t: number }>()

  constructor() {
    this.#timer = setInterval(() => this.#sample(), BUSY.SAMPLE_MS)
    this.#timer.unref()
  }

  #sample(): void {
    const now = Date.now()
    const own = ownCpuMs()
    const dt = now - this.#lastAt
    if (dt <= 0) return
    const e = Math.exp(-dt / 60_000)
    this.#own1 = this.#own1 * e + ownRunnable() * (1 - e)
    this.#lastAt = now
    this.#lastOwn = own
  }

  mark(): LoadPoint {
    this.#sample()
    const l = os.loadavg()
    const p: LoadPoint = {
      at: new Date().toISOString(),
      loadavg: [round(l[0]!), round(l[1]!), round(l[2]!)],
      own1: round(this.#own1),
      external1: round(Math.max(0, l[0]! - this.#own1))
    }
    this.#marks.set(p, { own: this.#lastOwn, busy: machineBusyMs(), t: Date.now() })
    return p
  }

  suite(before: LoadPoint, after: LoadPoint): SuiteLoad {
    const a = this.#marks.get(before)
    const b = this.#marks.get(after)
    const dt = a && b ? Math.max(1, b.t - a.t) : NaN
    const ownCores = a && b ? (b.own - a.own) / dt : NaN
    const othersCores = a && b ? Math.max(0, (b.busy - a.busy - (b.own - a.own)) / dt) : NaN
    const reasons: string[] = []
    const limit = BUSY.EXTERNAL_LOAD_PER_CPU * this.cpus
    if (before.external1 > limit) reasons.push(`load from other work ${before.external1} at the start (> ${limit} on ${this.cpus} CPUs)`)
    if (after.external1 > limit) reasons.push(`load from other work ${after.external1} at the end (> ${limit} on ${this.cpus} CPUs)`)
    if (othersCores > BUSY.OTHERS_CPU_SHARE * this.cpus) reasons.push(`other processes used ${round(othersCores)} of ${this.cpus} CPUs during the suite (> ${BUSY.OTHERS_CPU_SHARE * this.cpus})`)
    return { before, after, othersCores: round(othersCores), ownCores: round(ownCores), cpus: this.cpus, noisy: reasons.length > 0, reason: reasons.join('; ') }
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}

/**
 * Marks a suite's results with its load; on a noisy suite every goal is left unjudged
 * (`met: null`, the would-be verdict in `reason`): a busy machine never claims a goal met.
 */
export function withLoad(results: Result[], load: SuiteLoad): Result[] {
  return results.map((r) => {
    const x: Result = { ...r, load }
    if (!load.noisy) return x
    x.noisy = true
    x.reason = `machine busy: ${load.reason}` + (r.goal ? `; the goal is not judged (measured: ${r.met ? 'met' : 'not met'})` : '')
    if (r.goal) x.met = null
    return x
  })
}

/** Child processes and temp dirs of this run; `cleanup()` removes all of them. */
const children = new Set<ChildProcess>()
/** Node processes this run started (workers, `embassy run`, CLI commands) and set-up commands run in process instead: the run records both per suite. */
export const processCounts = { started: 0, inProcess: 0 }
const tmpDirs = new Set<string>()
let tmpRoot: string | null = null

function runRoot(): string {
  if (!tmpRoot) {
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'embassy-bench-'))
    tmpDirs.add(tmpRoot)
  }
  return tmpRoot
}

/** A fresh directory under this run's temp root. */
export function tmpdir(name: string): string {
  const dir = fs.mkdtempSync(path.join(runRoot(), name + '-'))
  return dir
}

/** Removes one directory now (big data sets are dropped as soon as a benchmark is done). */
export function rmdir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true })
  } catch {}
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  killChild(child, signal, true)
}

/** Kills every child process group and removes every temp dir. Synchronous: safe in 'exit'. */
export function cleanup(keep = false): void {
  for (const c of children) killGroup(c, 'SIGKILL')
  children.clear()
  if (!keep) for (const d of tmpDirs) rmdir(d)
  tmpDirs.clear()
}

let installed = false
/** Cleans up on exit, on SIGINT/SIGTERM/SIGHUP, and on uncaught errors. */
export function installCleanup(keep: () => boolean): void {
  if (installed) return
  installed = true
  process.on('exit', () => cleanup(keep()))
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping every child process\n`)
      cleanup(keep())
      process.exit(130)
    })
  }
}

export interface Proc {
  child: ChildProcess
  pid: number
  /** Date.now() right before spawn. */
  spawnedAt: number
  events: Json[]
  /** Last ~64 KiB of non-JSON output, for error messages. */
  text: string
  exited: Promise<number | null>
  waitEvent(pred: (e: Json) => boolean, timeoutMs?: number, what?: string): Promise<Json>
  /** Events that match `pred`, past and future, to a callback. */
  onEvent(pred: (e: Json) => boolean, fn: (e: Json) => void): void
  /** Sends one JSON line on stdin (workers read commands there). */
  send(msg: Json): void
  /** SIGTERM, then SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<number | null>
  kill(): Promise<void>
  /** Peak resident set (VmHWM) and current RSS in bytes, from /proc; null when gone. */
  memory(): { peak: number; rss: number } | null
  /** CPU time (user + system, all threads) in ms so far, from /proc; NaN when gone. */
  cpu(): number
}

const TICK_MS = 10 // Linux USER_HZ is 100 everywhere that matters

/** CPU ms (user + system) of process `pid`, from /proc/PID/stat; NaN when gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * TICK_MS
  } catch {
    return NaN
  }
}

export interface SpawnOptions {
  /** Which stream carries JSON-line events. `embassy run` logs on stderr; workers print on stdout. */
  events: 'stdout' | 'stderr'
  env?: NodeJS.ProcessEnv
  label?: string
  /** Extra node flags (e.g. --expose-gc). */
  nodeArgs?: string[]
}

/** Spawns `node script args` in its own process group; JSON lines become events. */
export function spawnNode(script: string, args: string[], opts: SpawnOptions): Proc {
  const spawnedAt = Date.now()
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, CI: '1', ...opts.env }
  })
  children.add(child)
  processCounts.started++
  const events: Json[] = []
  const exitWaiters: Array<() => void> = []
  const listeners: Array<{ pred: (e: Json) => boolean; fn: (e: Json) => void; once: boolean }> = []
  const label = opts.label ?? path.basename(script)
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    spawnedAt,
    events,
    text: '',
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child)
        // The group may still hold grandchildren: end them too.
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL')
          } catch {}
        }
        // Events still buffered in stdout (a large last JSON line) arrive before 'close': only
        // then is the process's output complete and a waiter that has not seen its event failed.
        child.once('close', () => {
          resolve(code ?? (signal ? -1 : null))
          for (const w of exitWaiters.splice(0)) w()
        })
      })
    }),
    waitEvent(pred, timeoutMs = 60_000, what = 'event') {
      const hit = events.find(pred)
      if (hit) return Promise.resolve(hit)
      return new Promise((resolve, reject) => {
        let done = false
        const fail = (why: string) => {
          if (done) return
          done = true
          clearTimeout(timer)
          reject(new Error(`${label}: ${what}: ${why}\n--- output of ${label} (tail) ---\n${proc.text.slice(-3000)}`))
        }
        const timer = setTimeout(() => fail(`not seen in ${timeoutMs} ms`), timeoutMs)
        exitWaiters.push(() => fail(`process exited (code ${child.exitCode}, signal ${child.signalCode})`))
        listeners.push({
          pred,
          once: true,
          fn: (e) => {
            if (done) return
            done = true
            clearTimeout(timer)
            resolve(e)
          }
        })
      })
    },
    onEvent(pred, fn) {
      for (const e of events) if (pred(e)) fn(e)
      listeners.push({ pred, fn, once: false })
    },
    send(msg) {
      if (child.stdin && !child.stdin.destroyed) child.stdin.write(JSON.stringify(msg) + '\n')
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
      child.kill('SIGTERM')
      const code = await proc.exited
      clearTimeout(timer)
      return code
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      killGroup(child, 'SIGKILL')
      await proc.exited
    },
    memory() {
      try {
        const s = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8')
        const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024
        return { peak: kb('VmHWM'), rss: kb('VmRSS') }
      } catch {
        return null
      }
    },
    cpu() {
      return cpuMs(child.pid ?? -1)
    }
  }
  const onText = (line: string) => {
    proc.text += line + '\n'
    if (proc.text.length > 65536) proc.text = proc.text.slice(-32768)
  }
  const onJson = (e: Json) => {
    events.push(e)
    for (let i = 0; i < listeners.length; i++) {
      const l = listeners[i]!
      if (!l.pred(e)) continue
      l.fn(e)
      if (l.once) listeners.splice(i--, 1)
    }
  }
  jsonLines(child.stdout, opts.events === 'stdout' ? onJson : (e) => onText(JSON.stringify(e)), onText)
  jsonLines(child.stderr, opts.events === 'stderr' ? onJson : (e) => onText(JSON.stringify(e)), onText)
  // Keep memory bounded for chatty processes (10,000 'caught-up' events are fine; millions are not).
  return proc
}

export interface BenchCliOptions {
  input?: string | Buffer | NodeJS.ReadableStream
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  nodeArgs?: string[]
}

/** The test helpers' CLI runner, with each command in its own process group, killed on exit. */
function cliOptions(opts: BenchCliOptions = {}): CliOptions {
  return {
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
    timeout: opts.timeoutMs ?? 120_000,
    detached: true,
    trimStderr: true,
    onChild: (child) => {
      children.add(child)
      processCounts.started++
      child.once('close', () => children.delete(child))
    }
  }
}

/** Runs one `embassy` command to completion (bounded by `timeoutMs`). */
export function cli(args: string[], opts: BenchCliOptions = {}): Promise<CliResult> {
  return runCli(args, cliOptions(opts))
}

/** Like cli(), but throws with the command's stderr unless it exits 0. */
export async function cliOk(args: string[], opts: BenchCliOptions = {}): Promise<CliResult> {
  const r = await cli(args, opts)
  if (r.code !== 0) throw new Error(`embassy ${args.slice(0, 3).join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`)
  return r
}

/**
 * Runs one SET-UP `embassy` command (init, allow, follow, dataset create, filling a log) in this
 * process: the same parse() and runCommand() as bin/embassy.ts, without a Node process start and
 * module load per command (about a CPU-second each on this machine, the bulk of a suite's set-up).
 * Never for a command whose time is measured: those stay whole CLI processes (cli()/cliOk()).
 * The result is what `--json` prints, parsed; an error throws like cliOk() does.
 * BENCH_SETUP_PROCESSES=1 runs set-up as CLI processes again (to compare, or to rule it out).
 */
export async function setupCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  if (process.env.BENCH_SETUP_PROCESSES === '1') return cliOk(args, { ...(opts.input !== undefined ? { input: opts.input } : {}), ...(opts.env ? { env: opts.env } : {}) })
  const [{ parse }, daemon] = await Promise.all([import('../bin/parse.js'), import('../lib/daemon/index.js')])
  processCounts.inProcess++
  const started = performance.now()
  const argv = args.includes('--json') ? args : [...args, '--json']
  const p = parse(argv)
  if ('help' in p) throw new Error(`embassy ${args.slice(0, 3).join(' ')}: not a command`)
  let stdout = ''
  let stderr = ''
  const io: import('../lib/daemon/index.js').CallerIO = {
    json: true,
    tty: false,
    progress: () => {},
    line: (text) => void (stdout += text + '\n'),
    write: (text) => void (stdout += text),
    notice: (text) => void (stderr += text + '\n'),
    status: () => {}
  }
  const input = opts.input ?? ''
  const stdin = Object.assign(
    (async function* () {
      if (input) yield Buffer.from(input)
    })(),
    { isTTY: false }
  )
  const refuse = () => Promise.reject(new Error('setupCli: a set-up command does not wait for signals'))
  try {
    const value = await daemon.runCommand(p.command.name, { args: p.args, opts: { ...p.opts } }, io, {
      env: { ...process.env, CI: '1', ...opts.env },
      stdin,
      prompt: null,
      untilSignal: refuse,
      onceSignal: () => {}
    })
    const json = value === null || value === undefined ? null : JSON.parse(JSON.stringify(value))
    return { code: 0, stdout: json === null ? stdout : JSON.stringify(json, null, 2) + '\n', stderr, json, ms: performance.now() - started }
  } catch (err) {
    throw new Error(`embassy ${args.slice(0, 3).join(' ')} (set-up, in process) failed: ${(err as Error).stack ?? err}${stderr ? `\n${stderr.slice(-2000)}` : ''}`)
  }
}

/**
 * Every core of a node directory with its length and bytes, in this process (SET-UP; the node must
 * not be running): what product.ts's describe() gets from the node worker, without a process start.
 */
export async function describeInProcess(dir: string): Promise<Array<{ key: string; name: string; catalog: string; length: number; byteLength: number }>> {
  const { NodeHost, toZ32 } = await import('../lib/index.js')
  processCounts.inProcess++
  const host = new NodeHost(dir)
  await host.ready()
  try {
    const cores = await host.heldCores()
    return cores.map((c) => ({ key: toZ32(c.core.key!), name: c.name, catalog: toZ32(c.catalog), length: c.core.length, byteLength: c.core.byteLength }))
  } finally {
    await host.close()
  }
}

/** `embassy bootstrap` with a local DHT of `nodes` nodes (≥ 4: see DESIGN.md on first dials). */
export async function startBootstrap(nodes = 5): Promise<{ proc: Proc; bootstrap: string[] }> {
  const proc = spawnNode(CLI, bootstrapArgs(nodes), { events: 'stdout', label: 'bootstrap' })
  const e = await proc.waitEvent((x) => Array.isArray(x.bootstrap), 30_000, 'bootstrap address')
  return { proc, bootstrap: e.bootstrap as string[] }
}

/** `embassy run --log-format json` on `dir` (plus `extra` arguments, e.g. `--http`); resolves once it logged 'started'. */
export async function startRun(dir: string, bootstrap: string[], label = 'run', opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; extra?: string[] } = {}): Promise<Proc> {
  const { extra, ...spawnOpts } = opts
  const proc = spawnNode(CLI, runArgs(dir, bootstrap, extra ?? []), { events: 'stderr', label, ...spawnOpts })
  await proc.waitEvent((e) => e.event === 'started', 60_000, 'started')
  return proc
}

/** The worker's config argument: inline JSON, or @FILE when it is too big for a command line. */
export function configArg(config: Json): string {
  const text = JSON.stringify(config)
  if (text.length < 64 * 1024) return text
  const file = path.join(tmpdir('config'), 'config.json')
  fs.writeFileSync(file, text)
  return '@' + file
}

/** A worker script (raw-worker / node-worker) with one JSON config argument; events on stdout. */
export function startWorker(script: string, config: Json, label: string, nodeArgs: string[] = []): Proc {
  return spawnNode(script, [configArg(config)], { events: 'stdout', label, nodeArgs })
}

/** Initialises a node through the CLI; returns its identity. */
export async function initNode(dir: string, role: 'agency' | 'embassy' | 'mirror', name = ''): Promise<{ nodeKey: string; catalogKey: string | null }> {
  const r = await setupCli(['init', '--role', role, '--dir', dir, '--json', ...(name ? ['--name', name] : [])])
  return r.json
}

/** Agency allows the embassy; the embassy follows the agency (the commands pairDirs() of the test helpers runs, in process: set-up). */
export async function pair(agencyDir: string, agencyKey: string, embassyDir: string, embassyKey: string): Promise<void> {
  if (process.env.BENCH_SETUP_PROCESSES === '1') return pairDirs({ dir: agencyDir, nodeKey: agencyKey }, { dir: embassyDir, nodeKey: embassyKey }, cliOptions())
  await setupCli(['allow', embassyKey, '--dir', agencyDir, '--json'])
  await setupCli(['follow', agencyKey, '--dir', embassyDir, '--json'])
}

/** System-wide UDP datagrams dropped for a full receive buffer (RcvbufErrors in /proc/net/snmp). */
export function udpDrops(): number {
  try {
    const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
    const head = lines[0]!.split(/\s+/)
    const vals = lines[1]!.split(/\s+/)
    return Number(vals[head.indexOf('RcvbufErrors')])
  } catch {
    return NaN
  }
}

// ---------- statistics ----------

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const rank = (p / 100) * (s.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo)
}

export function median(values: number[]): number {
  return percentile(values, 50)
}

export function round(n: number, digits = 2): number {
  if (!Number.isFinite(n)) return n
  const f = 10 ** digits
  return Math.round(n * f) / f
}

export const MiB = 1024 * 1024

export function mibPerS(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Information about this machine for the JSON document. */
export function machine(): Json {
  const cpus = os.cpus()
  return {
    cpus: cpus.length,
    model: cpus[0]?.model ?? 'unknown',
    memory: os.totalmem(),
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavg: os.loadavg().map((x) => round(x, 2))
  }
}

/** One result line: ratio computed from value and baseline. */
export function result(r: Omit<Result, 'ratio'> & { ratio?: number | null }): Result {
  const ratio = r.ratio !== undefined ? r.ratio : r.baselineValue ? round(r.value / r.baselineValue, 3) : null
  return { ...r, value: round(r.value, 2), baselineValue: r.baselineValue === null ? null : round(r.baselineValue, 2), ratio }
}

/** Deterministic pseudo-random bytes (xorshift), so raw and product runs move the same kind of bytes. */
export { pseudoRandom } from '../test/helpers/files.js'
