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
import { AlarmList } from './alarms.js'

export const CUSTODY_FILE = 'custody.json'
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
  #alarms: AlarmList
  #timer: NodeJS.Timeout | null = null

  constructor(dir: string) {
    this.file = path.join(dir, CUSTODY_FILE)
    this.#data = load(this.file)
    this.#alarms = new AlarmList(this.#data.alarms, this.#data.alarmCounts)
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

  /**
   * Keeps `r`, a verified receipt, as what (embassy, core) holds now: a newer one replaces it, and
   * so does one for less (the embassy says it lost data: custody goes down, `regressed`). The same
   * or an older statement changes nothing.
   */
  record(embassy: string, core: string, r: Receipt, receivedAt = Date.now()): 'new' | 'regressed' | 'same' {
    const byCore = (this.#data.receipts[embassy] ??= {})
    const prev = byCore[core]
    if (prev && prev.fork === r.fork && prev.length === r.length && prev.treeHash === Buffer.from(r.treeHash).toString('hex')) {
      // The same head again: only its freshness changes.
      prev.receivedAt = receivedAt
      prev.time = r.time
      prev.signature = Buffer.from(r.signature).toString('hex')
      this.#schedule()
      return 'same'
    }
    const regressed = !!prev && prev.fork === r.fork && r.length < prev.length
    byCore[core] = {
      length: r.length,
      treeHash: Buffer.from(r.treeHash).toString('hex'),
      fork: r.fork,
      time: r.time,
      receivedAt,
      signature: Buffer.from(r.signature).toString('hex')
    }
    this.#schedule()
    return regressed ? 'regressed' : 'new'
  }

  /** Records an alarm; true when it is listed (worth a log line), false when folded into a repeat. */
  alarm(a: Alarm): boolean {
    const listed = this.#alarms.add(a)
    this.#schedule()
    return listed
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

