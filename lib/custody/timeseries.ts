/**
 * The agency's custody history: a small bounded time series in the node directory
 * (custody-series.json). Every sample (once a minute by default, `custodySampleSeconds` in
 * config.json) records, per dataset × embassy, how far the embassy is behind (blocks, bytes,
 * seconds), its recovery point and its state; and every alarm raised since. Two resolutions: the
 * last 24 h at every sample (1-minute points) and the last 30 days at one point per hour (the worst
 * of that hour: most blocks, bytes and seconds behind, worst state). The dashboard (/custody) and `embassy status --since` read it.
 *
 * Bounded: at most MAX_PAIRS dataset × embassy pairs, FINE_POINTS + COARSE_POINTS points each,
 * MAX_EVENTS alarm events with details cut at MAX_DETAIL characters: a few MB at the very most
 * (MAX_FILE_BYTES is refused as damaged).
 *
 * Written cheaply: the file is a snapshot (its first line, one JSON document) followed by an
 * append-only journal, one line per sample with only that sample's points and new alarms (a few
 * KiB at most, appended and fsynced). Every COMPACT_SAMPLES samples (or COMPACT_BYTES of journal),
 * and at the first sample of a process, the whole history is rewritten atomically as a new
 * snapshot (temp file, fsync, rename; 0600). Reading replays the journal onto the snapshot; a last
 * line cut short by a crash (no line end) is ignored. A damaged file (a bad snapshot or a bad
 * journal line) is set aside (`FILE.damaged-TIME`) and reported through `ondamaged`; the history
 * starts again, it never stops the node.
 *
 * Owns: the series and its sampler. May import: node/, custody/ (alarm IDs), errors.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { Alarm } from './receipts.js'
import { alarmId } from './alarms.js'
import { writePrivateFile } from '../node/private.js'

export const SERIES_FILE = 'custody-series.json'
/** Default time between samples. */
export const SAMPLE_MS = 60_000
/** The fine resolution covers this span… */
export const FINE_SPAN_MS = 24 * 3_600_000
/** …with at most this many points (a day at one per minute). */
export const FINE_POINTS = 1440
/** The coarse resolution keeps the worst point of each bucket of this length… */
export const COARSE_BUCKET_MS = 3_600_000
/** …over this span… */
export const COARSE_SPAN_MS = 30 * 24 * 3_600_000
/** …with at most this many points (30 days of hours). */
export const COARSE_POINTS = 720
/** Dataset × embassy pairs kept (the least recently sampled goes first). */
export const MAX_PAIRS = 64
/** Alarm events kept (oldest dropped first). */
export const MAX_EVENTS = 500
/** Characters of an alarm's detail kept. */
export const MAX_DETAIL = 300
/** A file larger than this is not read (set aside as damaged). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024
/** Samples appended to the journal before the history is rewritten as one snapshot (4 h at one a minute). */
export const COMPACT_SAMPLES = 240
/** Journal bytes appended before the history is rewritten as one snapshot. */
export const COMPACT_BYTES = 2 * 1024 * 1024

/** A pair's state at a sample: up to date, behind, not held (audit failed / pre-rewrite), no receipt yet. */
export const STATES = ['ok', 'behind', 'failed', 'none'] as const
export type SeriesState = (typeof STATES)[number]

/** One sample: [time (ms), blocks behind, bytes behind, seconds behind, state index in STATES]. */
export type Point = [time: number, blocks: number, bytes: number, seconds: number, state: number]

export interface PairSeries {
  dataset: string
  embassy: string
  /** The last sample at which it held everything (its recovery point), null if never seen so. */
  upToDateAt: number | null
  /** The first sample of this pair. */
  firstAt: number
  fine: Point[]
  coarse: Point[]
}

/** An alarm as the history keeps it. */
export interface SeriesEvent {
  id: string
  time: number
  kind: string
  peer: string
  core: string | null
  detail: string
}

export interface SeriesData {
  version: 1
  /** The interval it was sampled at (ms). */
  sampleMs: number
  pairs: PairSeries[]
  events: SeriesEvent[]
}

/** What one sample reads: the custody status (structurally roles' CustodyStatus). */
export interface SampleInput {
  datasets: Array<{
    name: string
    embassies: Array<{ nodeKey: string; behindBlocks: number; behindBytes: number; held: boolean; receiptAt: number | null; preRewrite?: unknown[] }>
  }>
  alarms: readonly Alarm[]
}

/** The worst lag of one pair in a window. */
export interface WorstLag {
  dataset: string
  embassy: string
  blocks: number
  bytes: number
  seconds: number
  state: SeriesState
  /** When the worst point was sampled. */
  at: number
  samples: number
  /** The recovery point now: the last sample at which it held everything. */
  upToDateAt: number | null
  /** The newest sample in the window. */
  latest: { blocks: number; bytes: number; seconds: number; state: SeriesState; at: number }
}

export interface SeriesSummary {
  since: number
  until: number
  sampleMs: number
  worst: WorstLag[]
  alarms: SeriesEvent[]
  /** Set when the history file was damaged and set aside at this read. */
  damaged: string | null
}

/** One pair's reading at a sample: [dataset, embassy, blocks behind, bytes behind, state index]. */
export type Entry = [dataset: string, embassy: string, blocks: number, bytes: number, state: number]

/** A journal line: one sample (time, interval), its entries and the alarms it added. */
export interface JournalLine {
  t: number
  ms: number
  p: Entry[]
  e: SeriesEvent[]
}

const emptyData = (sampleMs = SAMPLE_MS): SeriesData => ({ version: 1, sampleMs, pairs: [], events: [] })

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isPoint = (p: unknown): p is Point => Array.isArray(p) && p.length === 5 && p.every(isNum) && (p[4] as number) >= 0 && (p[4] as number) < STATES.length

const isEvent = (e: unknown): e is SeriesEvent => {
  const o = e as SeriesEvent
  return !!o && typeof o === 'object' && typeof o.id === 'string' && isNum(o.time) && typeof o.kind === 'string' && typeof o.detail === 'string' && typeof o.peer === 'string' && (o.core === null || typeof o.core === 'string')
}
const isEntry = (p: unknown): p is Entry =>
  Array.isArray(p) && p.length === 5 && typeof p[0] === 'string' && typeof p[1] === 'string' && isNum(p[2]) && isNum(p[3]) && isNum(p[4]) && p[4] >= 0 && p[4] < STATES.length

function validLine(l: unknown): l is JournalLine {
  const o = l as JournalLine
  return !!o && typeof o === 'object' && isNum(o.t) && isNum(o.ms) && Array.isArray(o.p) && o.p.every(isEntry) && Array.isArray(o.e) && o.e.every(isEvent)
}

function validData(d: unknown): d is SeriesData {
  if (!d || typeof d !== 'object') return false
  const o = d as SeriesData
  if (o.version !== 1 || !isNum(o.sampleMs) || !Array.isArray(o.pairs) || !Array.isArray(o.events)) return false
  for (const p of o.pairs) {
    if (!p || typeof p.dataset !== 'string' || typeof p.embassy !== 'string' || !isNum(p.firstAt)) return false
    if (p.upToDateAt !== null && !isNum(p.upToDateAt)) return false
    if (!Array.isArray(p.fine) || !Array.isArray(p.coarse) || !p.fine.every(isPoint) || !p.coarse.every(isPoint)) return false
  }
  for (const e of o.events) if (!isEvent(e)) return false
  return true
}

/**
 * Reads DIR/custody-series.json (the snapshot, then the journal replayed onto it); a damaged one is
 * renamed aside (its new name returned). `journal` is how many journal lines were replayed.
 */
export function loadSeries(dir: string): { data: SeriesData; damaged: string | null; reason: string | null; journal: number } {
  const file = path.join(dir, SERIES_FILE)
  let text: string
  try {
    if (fs.statSync(file).size > MAX_FILE_BYTES) throw Object.assign(new Error(`larger than ${MAX_FILE_BYTES} bytes`), { code: 'TOO_BIG' })
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: emptyData(), damaged: null, reason: null, journal: 0 }
    if ((err as NodeJS.ErrnoException).code !== 'TOO_BIG') return { data: emptyData(), damaged: null, reason: (err as Error).message, journal: 0 }
    return setAside(file, (err as Error).message)
  }
  const lines = text.split('\n')
  // Every complete line ends with a line end: the last piece is '' or a line cut short by a crash mid-append.
  lines.pop()
  let parsed: unknown
  try {
    parsed = JSON.parse(lines[0] ?? '')
  } catch (err) {
    return setAside(file, `not JSON (${(err as Error).message})`)
  }
  if (!validData(parsed)) return setAside(file, 'not a custody history (bad shape)')
  const data = parsed
  for (let i = 1; i < lines.length; i++) {
    let line: unknown
    try {
      line = JSON.parse(lines[i] as string)
    } catch (err) {
      return setAside(file, `journal line ${i} is not JSON (${(err as Error).message})`)
    }
    if (!validLine(line)) return setAside(file, `journal line ${i} is not a custody sample (bad shape)`)
    apply(data, line)
    // As the writer did after that sample (the full cut, which only time and counts change, once at the end).
    if (data.pairs.length > MAX_PAIRS || data.events.length > MAX_EVENTS) bound(data, line.t)
  }
  return { data: bound(data, Date.now()), damaged: null, reason: null, journal: lines.length - 1 }
}

function setAside(file: string, reason: string): { data: SeriesData; damaged: string | null; reason: string; journal: number } {
  const aside = `${file}.damaged-${Date.now()}`
  try {
    fs.renameSync(file, aside)
    return { data: emptyData(), damaged: aside, reason, journal: 0 }
  } catch {
    return { data: emptyData(), damaged: file, reason, journal: 0 }
  }
}

/** Appends one journal line and fsyncs it (one write: a crash leaves at most a last line cut short, which reading ignores); returns its bytes. */
function appendLine(file: string, line: JournalLine): number {
  const text = JSON.stringify(line) + '\n'
  const fd = fs.openSync(file, 'a', 0o600)
  try {
    fs.writeSync(fd, text)
    fs.fdatasyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return Buffer.byteLength(text)
}

/** Writes `data` as a new snapshot with no journal, compactly and atomically (temp file, fsync, rename; 0600). */
function writeAtomic(file: string, data: SeriesData): void {
  writePrivateFile(file, JSON.stringify(data) + '\n')
}

/** Worse = more blocks behind, then more seconds, then more bytes, then the worse state. */
function worse(a: Point, b: Point): boolean {
  if (a[1] !== b[1]) return a[1] > b[1]
  if (a[3] !== b[3]) return a[3] > b[3]
  if (a[2] !== b[2]) return a[2] > b[2]
  return a[4] > b[4]
}

/** Cuts every list to its span and count, and the pairs to MAX_PAIRS. */
function bound(d: SeriesData, now: number): SeriesData {
  for (const p of d.pairs) {
    p.fine = p.fine.filter((x) => x[0] > now - FINE_SPAN_MS).slice(-FINE_POINTS)
    p.coarse = p.coarse.filter((x) => x[0] > now - COARSE_SPAN_MS).slice(-COARSE_POINTS)
  }
  d.pairs = d.pairs.filter((p) => p.fine.length > 0 || p.coarse.length > 0)
  if (d.pairs.length > MAX_PAIRS) {
    const last = (p: PairSeries): number => p.fine.at(-1)?.[0] ?? p.coarse.at(-1)?.[0] ?? 0
    d.pairs.sort((a, b) => last(b) - last(a))
    d.pairs.length = MAX_PAIRS
  }
  d.events = d.events.slice(-MAX_EVENTS)
  return d
}

/** Adds one sample (a journal line) to `d`: a point per pair (new pairs created), and its alarms. Does not bound. */
function apply(d: SeriesData, line: JournalLine): void {
  const now = line.t
  d.sampleMs = line.ms
  const byKey = new Map(d.pairs.map((p) => [`${p.dataset}\u0000${p.embassy}`, p]))
  for (const [dataset, embassy, blocks, bytes, state] of line.p) {
    const key = `${dataset}\u0000${embassy}`
    let p = byKey.get(key)
    if (!p) {
      p = { dataset, embassy, upToDateAt: null, firstAt: now, fine: [], coarse: [] }
      byKey.set(key, p)
      d.pairs.push(p)
    }
    if (state === 0) p.upToDateAt = now
    const seconds = state === 0 ? 0 : Math.max(0, Math.round((now - (p.upToDateAt ?? p.firstAt)) / 1000))
    const point: Point = [now, blocks, bytes, seconds, state]
    p.fine.push(point)
    const last = p.coarse.at(-1)
    if (last && Math.floor(last[0] / COARSE_BUCKET_MS) === Math.floor(now / COARSE_BUCKET_MS)) {
      // The hour's worst of each: blocks, bytes, seconds and state; dated at its most blocks behind.
      p.coarse[p.coarse.length - 1] = [worse(point, last) ? now : last[0], Math.max(last[1], point[1]), Math.max(last[2], point[2]), Math.max(last[3], point[3]), Math.max(last[4], point[4])]
    } else {
      p.coarse.push(point)
    }
  }
  if (line.e.length === 0) return
  const seen = new Set(d.events.map((e) => e.id))
  for (const e of line.e) if (!seen.has(e.id)) d.events.push(e)
  d.events.sort((a, b) => a.time - b.time)
}

export interface CustodySeriesOptions {
  /** Time between samples (recorded in the file). @default SAMPLE_MS */
  sampleMs?: number
  /** The file was damaged and set aside (the daemon logs it). */
  ondamaged?: (aside: string, reason: string) => void
}

/** The history in memory: sample() adds a point per pair and writes the file. */
export class CustodySeries {
  readonly file: string
  data: SeriesData
  /** Where a damaged file was set aside at load, if it was. */
  readonly damaged: string | null
  /** Samples and bytes in the file's journal since its snapshot; null until this process wrote a snapshot (its first write compacts). */
  #journalSamples: number | null = null
  #journalBytes = 0

  constructor(dir: string, opts: CustodySeriesOptions = {}) {
    this.file = path.join(dir, SERIES_FILE)
    const loaded = loadSeries(dir)
    this.data = loaded.data
    this.data.sampleMs = opts.sampleMs ?? SAMPLE_MS
    this.damaged = loaded.damaged
    if (loaded.damaged && loaded.reason) opts.ondamaged?.(loaded.damaged, loaded.reason)
  }

  /** Adds one sample of `input` taken at `now`; `write` false keeps it in memory only (tests). */
  sample(input: SampleInput, now = Date.now(), write = true): void {
    const d = this.data
    const p: Entry[] = []
    for (const ds of input.datasets) {
      for (const e of ds.embassies) {
        const state = e.receiptAt === null ? 3 : !e.held || (e.preRewrite?.length ?? 0) > 0 ? 2 : e.behindBlocks > 0 ? 1 : 0
        p.push([ds.name, e.nodeKey, Math.max(0, e.behindBlocks), Math.max(0, e.behindBytes), state])
      }
    }
    // Alarms raised since: each once (by its stable ID).
    const seen = new Set(d.events.map((e) => e.id))
    const floor = d.events.length >= MAX_EVENTS ? (d.events[0]?.time ?? 0) : -Infinity
    const events: SeriesEvent[] = []
    for (const a of input.alarms) {
      const id = alarmId(a)
      if (seen.has(id) || a.time < floor) continue
      seen.add(id)
      events.push({ id, time: a.time, kind: a.kind, peer: a.peer, core: a.core ?? null, detail: a.detail.slice(0, MAX_DETAIL) })
    }
    const line: JournalLine = { t: now, ms: d.sampleMs, p, e: events }
    apply(d, line)
    bound(d, now)
    if (!write) return
    // A file gone since the last write (set aside as damaged by a reader, or removed) gets a snapshot again, never a bare journal line.
    if (this.#journalSamples === null || this.#journalSamples >= COMPACT_SAMPLES || this.#journalBytes >= COMPACT_BYTES || !fs.existsSync(this.file)) this.compact()
    else {
      this.#journalBytes += appendLine(this.file, line)
      this.#journalSamples++
    }
  }

  /** Rewrites the whole history as one snapshot (atomically) and starts an empty journal. */
  compact(): void {
    writeAtomic(this.file, this.data)
    this.#journalSamples = 0
    this.#journalBytes = 0
  }

  /** The worst lag per pair and the alarms in [now - windowMs, now]. */
  summary(windowMs: number, now = Date.now()): SeriesSummary {
    return summarize(this.data, windowMs, now, this.damaged)
  }
}

/** Points of `p` in the window: the fine series when it covers the window, else the coarse one. */
export function pointsIn(p: PairSeries, since: number, until: number): Point[] {
  const fine = since >= until - FINE_SPAN_MS
  return (fine ? p.fine : p.coarse).filter((x) => x[0] >= since && x[0] <= until)
}

export function summarize(d: SeriesData, windowMs: number, now: number, damaged: string | null = null): SeriesSummary {
  const since = now - windowMs
  const worst: WorstLag[] = []
  for (const p of d.pairs) {
    const pts = pointsIn(p, since, now)
    if (pts.length === 0) continue
    let w = pts[0] as Point
    for (const x of pts) if (worse(x, w)) w = x
    const l = pts[pts.length - 1] as Point
    worst.push({
      dataset: p.dataset,
      embassy: p.embassy,
      blocks: w[1],
      bytes: w[2],
      seconds: w[3],
      state: STATES[w[4]] ?? 'none',
      at: w[0],
      samples: pts.length,
      upToDateAt: p.upToDateAt,
      latest: { blocks: l[1], bytes: l[2], seconds: l[3], state: STATES[l[4]] ?? 'none', at: l[0] }
    })
  }
  worst.sort((a, b) => (a.dataset === b.dataset ? a.embassy.localeCompare(b.embassy) : a.dataset.localeCompare(b.dataset)))
  return { since, until: now, sampleMs: d.sampleMs, worst, alarms: d.events.filter((e) => e.time >= since && e.time <= now), damaged }
}

/** Windows `status --since` and the dashboard accept. */
export const SINCE_RE = /^([1-9][0-9]{0,4})(m|h|d)$/
export const MAX_SINCE_MS = COARSE_SPAN_MS

/** "30m", "24h", "7d", "30d" → ms; null when not a window (at most 30 days). */
export function parseSince(text: string): number | null {
  const m = SINCE_RE.exec(text.trim())
  if (!m) return null
  const ms = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : 86_400_000)
  return ms <= MAX_SINCE_MS ? ms : null
}

export interface SamplerOptions {
  dir: string
  /** ms between samples, read before each one (config can change). */
  intervalMs: () => number
  /** The custody status now. */
  read: () => Promise<SampleInput>
  /** A sample failed (read or write); the next one is tried anyway. */
  onerror?: (err: Error) => void
  ondamaged?: (aside: string, reason: string) => void
  /** Each sample written (tests wait for it). */
  onsample?: (at: number) => void
}

/** Samples the custody status into the series: at once, then every intervalMs (never overlapping). */
export class CustodySampler {
  readonly series: CustodySeries
  readonly #opts: SamplerOptions
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #closed = false
  samples = 0

  constructor(opts: SamplerOptions) {
    this.#opts = opts
    this.series = new CustodySeries(opts.dir, { sampleMs: opts.intervalMs(), ...(opts.ondamaged ? { ondamaged: opts.ondamaged } : {}) })
  }

  start(): void {
    if (this.#closed || this.#timer || this.#running) return
    this.#tick()
  }

  #tick(): void {
    this.#timer = null
    this.#running = this.sampleNow().finally(() => {
      this.#running = null
      if (this.#closed) return
      this.#timer = setTimeout(() => this.#tick(), Math.max(50, this.#opts.intervalMs()))
      this.#timer.unref?.()
    })
  }

  /** Takes one sample now (errors go to onerror). */
  async sampleNow(): Promise<void> {
    try {
      const input = await this.#opts.read()
      if (this.#closed) return
      const now = Date.now()
      this.series.data.sampleMs = this.#opts.intervalMs()
      this.series.sample(input, now)
      this.samples++
      this.#opts.onsample?.(now)
    } catch (err) {
      if (!this.#closed) this.#opts.onerror?.(err as Error)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#running
  }
}
