/**
 * Scheduled continuity drills (`embassy run --schedule 24h --drill-kit FILE`): runs runDrill()
 * in-process every interval, in a scratch temp dir of its own, and keeps each signed report in
 * `<nodeDir>/drills/drill-<time>.json` (+ .html), the newest MAX_KEPT_DRILLS. The last result is
 * what /metrics exports (`embassy_drill_*`) and the custody dashboard reads from those files.
 *
 * `embassy status` (and /api/status) shows the last drill of a node directory with drillStatus():
 * the newest report in `<nodeDir>/drills/` (scheduled, or `embassy drill --out DIR/drills`), and
 * the schedule when this process runs one for that directory.
 *
 * Owns: the schedule, interval parsing, the last-drill summary and status. May import: roles/drill*, node/config (types), errors.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import type { HostPort } from '../node/config.js'
import { runDrill, type DrillSource } from './drill.js'
import { DRILLS_DIR, MAX_DRILL_REPORT_BYTES, MAX_KEPT_DRILLS, pruneDrillReports, type DrillReport } from './drill-report.js'

/** Shortest schedule accepted. */
export const MIN_DRILL_INTERVAL_MS = 1000
/** The first scheduled drill runs this long after start (or after one interval, when shorter). */
export const FIRST_DRILL_DELAY_MS = 60_000

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `24h`, `30m`, `90s`, `7d`, `500ms` (or a bare number of seconds) as milliseconds; BAD_ARGUMENT otherwise. */
export function parseInterval(text: string, what = '--schedule'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text)
  const ms = m ? Math.round(Number(m[1]) * UNITS[m[2] ?? 's']!) : NaN
  if (!Number.isFinite(ms) || ms < MIN_DRILL_INTERVAL_MS) throw EmbassyError.badArgument(`${what} must be an interval like 24h, 30m or 90s (at least 1s)`)
  return ms
}

/** What status and /metrics show of scheduled drills. */
export interface DrillScheduleStatus {
  intervalMs: number
  running: boolean
  /** When the next drill starts (ms since the epoch). */
  nextAt: number | null
  /** The newest report, summarised; null before the first. */
  last: DrillSummary | null
}

/** A drill report as status shows it. */
export interface DrillSummary {
  ok: boolean
  embassy: string | null
  startedAt: string
  finishedAt: string
  /** Seconds since the epoch of finishedAt. */
  at: number
  firstRecordMs: number | null
  fullCopyMs: number | null
  blocksBehind: number
  secondsBehind: number
  reportFile: string
  error?: string
}

/**
 * What `embassy status` shows of drills: the schedule's fields when this process runs drills for
 * the directory (`embassy run --schedule`), else `intervalMs: null`, not running, no next time.
 */
export type DrillStatus = Omit<DrillScheduleStatus, 'intervalMs'> & { intervalMs: number | null }

export interface DrillScheduleOptions {
  /** The node directory: reports go to `<dir>/drills/`. */
  dir: string
  source: DrillSource
  bootstrap: HostPort[]
  intervalMs: number
  /** @default min(FIRST_DRILL_DELAY_MS, intervalMs) */
  firstDelayMs?: number
  /** Parent of each drill's scratch directory. @default os.tmpdir() */
  scratchParent?: string
  /** Drill options for tests (timeouts). */
  connectTimeoutMs?: number
  stallMs?: number
  onReport?: (report: DrillReport) => void
  onError?: (err: Error) => void
}

/** A number ≥ 0 from a report read back, else null (a hand-edited or damaged file). */
const count = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null)

function summarise(r: DrillReport): DrillSummary {
  return {
    ok: r.ok,
    embassy: typeof r.embassy === 'string' ? r.embassy : null,
    startedAt: String(r.startedAt),
    finishedAt: r.finishedAt,
    at: Math.floor(Date.parse(r.finishedAt) / 1000),
    firstRecordMs: count(r.rto.firstRecordMs),
    fullCopyMs: count(r.rto.fullCopyMs),
    blocksBehind: count(r.rpo.blocksBehind) ?? 0,
    secondsBehind: count(r.rpo.secondsBehind) ?? 0,
    reportFile: typeof r.reportFile === 'string' ? r.reportFile : '',
    ...(typeof r.error === 'string' && r.error ? { error: r.error } : {})
  }
}

/** The newest report in `folder` that parses (a restart keeps the last result for /metrics). */
function newestReport(folder: string): DrillReport | null {
  let names: string[]
  try {
    names = fs.readdirSync(folder).filter((n) => /^drill-.*\.json$/.test(n)).sort().reverse()
  } catch {
    return null
  }
  for (const n of names) {
    try {
      const file = path.join(folder, n)
      if (fs.statSync(file).size > MAX_DRILL_REPORT_BYTES) continue
      const r = JSON.parse(fs.readFileSync(file, 'utf8')) as DrillReport
      if (r && typeof r.ok === 'boolean' && typeof r.finishedAt === 'string' && !Number.isNaN(Date.parse(r.finishedAt)) && r.rto && typeof r.rto === 'object' && r.rpo && typeof r.rpo === 'object') return r
    } catch {}
  }
  return null
}

/**
 * The drills of node directory `dir` for status: the running schedule's when one is given (a
 * running node's), else the newest report in `<dir>/drills/` that parses; null when neither.
 */
export function drillStatus(dir: string, schedule: DrillSchedule | null = null): DrillStatus | null {
  if (schedule) return schedule.status()
  const last = newestReport(path.join(dir, DRILLS_DIR))
  return last ? { intervalMs: null, running: false, nextAt: null, last: summarise(last) } : null
}

export class DrillSchedule {
  readonly opts: DrillScheduleOptions
  readonly folder: string
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #abort: AbortController | null = null
  #nextAt: number | null = null
  #last: DrillScheduleStatus['last'] = null
  #stopped = false

  constructor(opts: DrillScheduleOptions) {
    this.opts = opts
    this.folder = path.join(opts.dir, DRILLS_DIR)
  }

  /** Creates the reports folder, picks up the last result, arms the first drill. */
  start(): void {
    fs.mkdirSync(this.folder, { recursive: true, mode: 0o700 })
    const last = newestReport(this.folder)
    if (last) this.#last = summarise(last)
    this.#arm(this.opts.firstDelayMs ?? Math.min(FIRST_DRILL_DELAY_MS, this.opts.intervalMs))
  }

  #arm(ms: number): void {
    if (this.#stopped) return
    this.#nextAt = Date.now() + ms
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.runNow()
        .catch(() => {})
        .finally(() => this.#arm(this.opts.intervalMs))
    }, ms)
    this.#timer.unref?.()
  }

  /** Runs one drill now (one at a time); its report is kept in the folder and summarised for status. */
  async runNow(): Promise<DrillReport> {
    if (this.#running) throw EmbassyError.badArgument('a drill is already running')
    const abort = new AbortController()
    this.#abort = abort
    let done!: () => void
    this.#running = new Promise<void>((resolve) => (done = resolve))
    try {
      const report = await runDrill({
        source: this.opts.source,
        bootstrap: this.opts.bootstrap,
        out: this.folder,
        signal: abort.signal,
        ...(this.opts.scratchParent ? { scratchParent: this.opts.scratchParent } : {}),
        ...(this.opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: this.opts.connectTimeoutMs } : {}),
        ...(this.opts.stallMs !== undefined ? { stallMs: this.opts.stallMs } : {})
      })
      this.#last = summarise(report)
      pruneDrillReports(this.folder, MAX_KEPT_DRILLS)
      this.opts.onReport?.(report)
      return report
    } catch (err) {
      if (!this.#stopped) this.opts.onError?.(err as Error)
      throw err
    } finally {
      this.#abort = null
      this.#running = null
      done()
    }
  }

  status(): DrillScheduleStatus {
    return { intervalMs: this.opts.intervalMs, running: this.#running !== null, nextAt: this.#nextAt, last: this.#last ? { ...this.#last } : null }
  }

  /** Stops the schedule; a drill in progress is cut short (no report) and awaited. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#nextAt = null
    this.#abort?.abort()
    await this.#running
  }
}
