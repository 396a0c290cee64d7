/**
 * Alarms: a bounded list with counts, rate-limited per peer, kind and core so that a peer cannot
 * flood the log (counts keep counting; repeats inside the quiet window are folded into the last
 * entry). A different offered head or fork is a different alarm. The agency keeps its list in custody.json (ledger.ts); holders keep theirs in
 * alarms.json (AlarmLog).
 */
import fs from 'node:fs'
import path from 'node:path'
import { writeJsonAtomic } from '../node/config.js'
import type { Alarm, AlarmKind } from './receipts.js'

/** Alarms kept (newest last). */
export const MAX_ALARMS = 200
/** A repeat of the same alarm (peer, kind, core) within this window is counted, not listed. */
export const ALARM_QUIET_MS = 60_000
/** Holders' alarm file. */
export const ALARMS_FILE = 'alarms.json'

/** The list and counts of one node's alarms (the arrays it is given are its storage). */
export class AlarmList {
  readonly alarms: Alarm[]
  readonly counts: Partial<Record<AlarmKind, number>>
  #last = new Map<string, Alarm>()

  constructor(alarms: Alarm[], counts: Partial<Record<AlarmKind, number>>) {
    this.alarms = alarms
    this.counts = counts
    for (const a of alarms) this.#last.set(keyOf(a), a)
  }

  /** Records `a`; true when it is listed (and worth a log line), false when folded into a repeat. */
  add(a: Alarm): boolean {
    this.counts[a.kind] = (this.counts[a.kind] ?? 0) + 1
    const key = keyOf(a)
    const last = this.#last.get(key)
    if (last && a.time - last.time < ALARM_QUIET_MS && a.time >= last.time && this.alarms.includes(last)) {
      last.repeats = (last.repeats ?? 0) + 1
      return false
    }
    this.alarms.push(a)
    this.#last.set(key, a)
    if (this.alarms.length > MAX_ALARMS) this.alarms.splice(0, this.alarms.length - MAX_ALARMS)
    return true
  }
}

/**
 * What makes two alarms the same one: peer, kind, core, the head or fork they are about, and who
 * reported it (a holder's own finding and each other holder's report stay apart).
 */
function keyOf(a: Alarm): string {
  const about = a.offered ? `${a.offered.length}/${a.offered.fork}` : a.evidence?.[0] ? `${a.evidence[0].length}/${a.evidence[0].fork}` : ''
  return `${a.peer}|${a.kind}|${a.core ?? ''}|${about}|${a.reportedBy ?? ''}`
}

interface AlarmFile {
  version: 1
  alarms: Alarm[]
  alarmCounts: Partial<Record<AlarmKind, number>>
}

/** A holder's (embassy's, mirror's) durable alarms, in DIR/alarms.json. */
export class AlarmLog {
  readonly file: string
  readonly list: AlarmList
  #data: AlarmFile
  #timer: NodeJS.Timeout | null = null

  constructor(dir: string) {
    this.file = path.join(dir, ALARMS_FILE)
    this.#data = load(this.file)
    this.list = new AlarmList(this.#data.alarms, this.#data.alarmCounts)
  }

  get alarms(): readonly Alarm[] {
    return this.#data.alarms
  }

  get counts(): Readonly<Partial<Record<AlarmKind, number>>> {
    return this.#data.alarmCounts
  }

  add(a: Alarm): boolean {
    const listed = this.list.add(a)
    this.#schedule()
    return listed
  }

  #schedule(): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.flush()
    }, 500)
    this.#timer.unref?.()
  }

  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    writeJsonAtomic(this.file, this.#data)
  }

  close(): void {
    this.flush()
  }
}

function load(file: string): AlarmFile {
  const empty: AlarmFile = { version: 1, alarms: [], alarmCounts: {} }
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return empty
  }
  try {
    const parsed = JSON.parse(text) as AlarmFile
    if (parsed.version !== 1 || !Array.isArray(parsed.alarms)) throw new Error('bad shape')
    parsed.alarmCounts ??= {}
    return parsed
  } catch {
    // A damaged file is set aside, never silently overwritten.
    try {
      fs.renameSync(file, `${file}.damaged-${Date.now()}`)
    } catch {}
    return empty
  }
}
