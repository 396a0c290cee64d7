/**
 * CustodyLedger: the agency's durable record of verified custody — the newest valid receipt per
 * (embassy, core) — and of alarms, in custody.json (written atomically, at most every
 * LEDGER_FLUSH_MS). A damaged file is set aside, never silently overwritten.
 */
import fs from 'node:fs'
import path from 'node:path'
import { writeJsonAtomic } from '../node/config.js'
import { toZ32 } from '../ids.js'
import type { Receipt } from '../../protocol/index.js'
import type { Alarm, AlarmKind, StoredReceipt } from './receipts.js'

export const CUSTODY_FILE = 'custody.json'
/** Alarms kept in custody.json (newest last). */
export const MAX_ALARMS = 200
/** custody.json is written at most this often (ms); receipts are re-sent on reconnect anyway. */
export const LEDGER_FLUSH_MS = 500

interface LedgerFile {
  version: 1
  /** embassy node key (z32) → core key (z32) → newest valid receipt */
  receipts: Record<string, Record<string, StoredReceipt>>
  alarms: Alarm[]
  alarmCounts: Partial<Record<AlarmKind, number>>
  /** node key (z32) → role it announced in its handshake */
  roles: Record<string, string>
}

/** The agency's durable record of verified custody and of alarms. */
export class CustodyLedger {
  readonly file: string
  #data: LedgerFile
  #timer: NodeJS.Timeout | null = null

  constructor(dir: string) {
    this.file = path.join(dir, CUSTODY_FILE)
    this.#data = load(this.file)
  }

  get(embassy: string, core: string): StoredReceipt | null {
    return this.#data.receipts[embassy]?.[core] ?? null
  }

  /** Peers that ever sent a valid receipt. */
  embassies(): string[] {
    return Object.keys(this.#data.receipts)
  }

  /** The role a peer announced, if it ever connected. */
  role(peer: string): string | null {
    return this.#data.roles[peer] ?? null
  }

  setRole(peer: string, role: string): void {
    if (this.#data.roles[peer] === role) return
    this.#data.roles[peer] = role
    this.#schedule()
  }

  get alarms(): readonly Alarm[] {
    return this.#data.alarms
  }

  get alarmCounts(): Readonly<Partial<Record<AlarmKind, number>>> {
    return this.#data.alarmCounts
  }

  /** Keeps `r` when it is newer than what is stored for (embassy, core). */
  record(embassy: string, core: string, r: Receipt, receivedAt = Date.now()): boolean {
    const byCore = (this.#data.receipts[embassy] ??= {})
    const prev = byCore[core]
    if (prev && (prev.length > r.length || (prev.length === r.length && prev.time >= r.time))) return false
    byCore[core] = {
      length: r.length,
      treeHash: Buffer.from(r.treeHash).toString('hex'),
      fork: r.fork,
      time: r.time,
      receivedAt,
      signature: Buffer.from(r.signature).toString('hex')
    }
    this.#schedule()
    return true
  }

  alarm(a: Alarm): void {
    this.#data.alarms.push(a)
    if (this.#data.alarms.length > MAX_ALARMS) this.#data.alarms.splice(0, this.#data.alarms.length - MAX_ALARMS)
    this.#data.alarmCounts[a.kind] = (this.#data.alarmCounts[a.kind] ?? 0) + 1
    this.#schedule()
  }

  #schedule(): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.flush()
    }, LEDGER_FLUSH_MS)
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

function load(file: string): LedgerFile {
  const empty: LedgerFile = { version: 1, receipts: {}, alarms: [], alarmCounts: {}, roles: {} }
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return empty
  }
  try {
    const parsed = JSON.parse(text) as LedgerFile
    if (parsed.version !== 1 || typeof parsed.receipts !== 'object' || !Array.isArray(parsed.alarms)) throw new Error('bad shape')
    parsed.alarmCounts ??= {}
    parsed.roles ??= {}
    return parsed
  } catch {
    // A damaged ledger is set aside, never silently overwritten: receipts are re-sent on reconnect.
    try {
      fs.renameSync(file, `${file}.damaged-${Date.now()}`)
    } catch {}
    return empty
  }
}

