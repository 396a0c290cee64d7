/**
 * Alarms: a bounded list with counts, rate-limited per peer, kind and core so that a peer cannot
 * flood the log (counts keep counting; repeats inside the quiet window are folded into the last
 * entry). A different offered head or fork is a different alarm. The agency keeps its list in custody.json (ledger.ts); holders keep theirs in
 * alarms.json (AlarmLog).
 *
 * Every alarm has a stable ID (alarmId: a hash of what it is and when it was first raised, so the
 * same alarm has the same ID after a restart and on every listing). The operator acknowledges
 * alarms by ID (`embassy alarms ack`); acknowledgements live apart, in alarm-acks.json
 * (AlarmAcks), so the alarm lists and their counts stay as they are: an acknowledged alarm is kept
 * in the history, it is only no longer active.
 */
import path from 'node:path'
import sodium from 'sodium-universal'
import { JsonFile } from './json-file.js'
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

  /**
   * Marks the unresolved damaged-block alarms of `core` block `block` (from `reportedBy`, or the
   * node's own when undefined) resolved at `now`; how many it marked.
   */
  resolveDamage(core: string, block: number, reportedBy: string | undefined, now = Date.now()): number {
    let n = 0
    for (const a of this.alarms) {
      if (a.kind !== 'damaged-block' || a.core !== core || a.block !== block || a.reportedBy !== reportedBy || a.resolvedAt !== undefined) continue
      a.resolvedAt = now
      n++
    }
    return n
  }
}

/**
 * What makes two alarms the same one: peer, kind, core, the head or fork they are about, and who
 * reported it (a holder's own finding and each other holder's report stay apart).
 */
function keyOf(a: Alarm): string {
  const about = a.offered ? `${a.offered.length}/${a.offered.fork}` : a.evidence?.[0] ? `${a.evidence[0].length}/${a.evidence[0].fork}` : a.block !== undefined ? `#${a.block}` : ''
  return `${a.peer}|${a.kind}|${a.core ?? ''}|${about}|${a.reportedBy ?? ''}`
}

interface AlarmFile {
  version: 1
  alarms: Alarm[]
  alarmCounts: Partial<Record<AlarmKind, number>>
}

/** A holder's (embassy's, mirror's) durable alarms, in DIR/alarms.json. */
export class AlarmLog {
  readonly list: AlarmList
  readonly #doc: JsonFile<AlarmFile>

  constructor(dir: string) {
    this.#doc = new JsonFile<AlarmFile>(
      path.join(dir, ALARMS_FILE),
      () => ({ version: 1, alarms: [], alarmCounts: {} }),
      (p) => {
        p.alarmCounts ??= {}
        return p.version === 1 && Array.isArray(p.alarms)
      },
      500
    )
    this.list = new AlarmList(this.#doc.data.alarms, this.#doc.data.alarmCounts)
  }

  get file(): string {
    return this.#doc.file
  }

  get alarms(): readonly Alarm[] {
    return this.#doc.data.alarms
  }

  get counts(): Readonly<Partial<Record<AlarmKind, number>>> {
    return this.#doc.data.alarmCounts
  }

  add(a: Alarm): boolean {
    const listed = this.list.add(a)
    this.#doc.changed()
    return listed
  }

  /** AlarmList.resolveDamage, written at once when it marked any. */
  resolveDamage(core: string, block: number, reportedBy?: string): number {
    const n = this.list.resolveDamage(core, block, reportedBy)
    if (n > 0) this.#doc.flush()
    return n
  }

  flush(): void {
    this.#doc.flush()
  }

  close(): void {
    this.#doc.close()
  }
}

/** The acknowledgement file (every role). */
export const ALARM_ACKS_FILE = 'alarm-acks.json'
/** Acknowledgements kept (oldest forgotten first; the alarm lists are bounded at MAX_ALARMS anyway). */
export const MAX_ACKS = 4 * MAX_ALARMS

const ID_NS = Buffer.from('data-embassy/alarm-id')

/**
 * An alarm's stable ID: 12 hex characters of BLAKE2b over when it was first raised and what it is
 * about (kind, peer, core, offered head, reporter, text). Repeats folded into it do not change it.
 */
export function alarmId(a: Alarm): string {
  const about = JSON.stringify([a.time, a.kind, a.peer, a.core ?? null, a.offered ?? null, a.reportedBy ?? null, a.detail])
  const out = Buffer.alloc(16)
  sodium.crypto_generichash_batch(out, [ID_NS, Buffer.from(about)])
  return out.toString('hex').slice(0, 12)
}

/** An alarm as listed to the operator: with its ID and, once acknowledged, when. */
export type ListedAlarm = Alarm & { id: string; acknowledgedAt?: number }

interface AckFile {
  version: 1
  /** alarm ID → when it was acknowledged (ms since epoch), oldest first */
  acks: Record<string, number>
}

/** Which alarms the operator acknowledged (DIR/alarm-acks.json). */
export class AlarmAcks {
  readonly #doc: JsonFile<AckFile>

  constructor(dir: string) {
    this.#doc = new JsonFile<AckFile>(
      path.join(dir, ALARM_ACKS_FILE),
      () => ({ version: 1, acks: {} }),
      (p) => p.version === 1 && typeof p.acks === 'object' && p.acks !== null && !Array.isArray(p.acks),
      0
    )
  }

  /** When alarm `id` was acknowledged, if it was. */
  at(id: string): number | undefined {
    const t = this.#doc.data.acks[id]
    return typeof t === 'number' ? t : undefined
  }

  /** `alarms` with their IDs and acknowledgement times. */
  list(alarms: readonly Alarm[]): ListedAlarm[] {
    return alarms.map((a) => {
      const id = alarmId(a)
      const at = this.at(id)
      return at === undefined ? { ...a, id } : { ...a, id, acknowledgedAt: at }
    })
  }

  /** Acknowledges `ids` (already acknowledged ones keep their time); written at once. */
  ack(ids: readonly string[], now = Date.now()): string[] {
    const acks = this.#doc.data.acks
    const added: string[] = []
    for (const id of ids) {
      if (acks[id] !== undefined) continue
      acks[id] = now
      added.push(id)
    }
    const keys = Object.keys(acks)
    for (const k of keys.slice(0, Math.max(0, keys.length - MAX_ACKS))) delete acks[k]
    if (added.length) this.#doc.flush()
    return added
  }
}
