/**
 * CustodyLedger: the agency's durable record of verified custody — the newest valid receipt per
 * (embassy, core) — and of alarms, in custody.json (written atomically, at most every
 * LEDGER_FLUSH_MS). A damaged file is set aside, never silently overwritten.
 */
import path from 'node:path'
import { JsonFile } from './json-file.js'
import type { Receipt } from '../../protocol/index.js'
import { verifyReceiptSignature, type Alarm, type AlarmKind, type StoredReceipt } from './receipts.js'
import { parseKey, toZ32 } from '../ids.js'
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
  readonly #doc: JsonFile<LedgerFile>
  readonly #data: LedgerFile
  readonly #alarms: AlarmList

  constructor(dir: string) {
    this.#doc = new JsonFile<LedgerFile>(
      path.join(dir, CUSTODY_FILE),
      () => ({ version: 1, receipts: {}, alarms: [], alarmCounts: {}, roles: {} }),
      (p) => {
        p.alarmCounts ??= {}
        p.roles ??= {}
        return p.version === 1 && typeof p.receipts === 'object' && p.receipts !== null && Array.isArray(p.alarms)
      },
      LEDGER_FLUSH_MS
    )
    this.#data = this.#doc.data
    this.#alarms = new AlarmList(this.#data.alarms, this.#data.alarmCounts)
  }

  get file(): string {
    return this.#doc.file
  }

  get(embassy: string, core: string): StoredReceipt | null {
    return this.#data.receipts[embassy]?.[core] ?? null
  }

  /**
   * The newest head of `core` beyond `head` that one of `embassies` (node keys, z32) proved it
   * holds: the highest stored receipt ahead of `head` whose signature still verifies (a hand-edited
   * entry counts for nothing). Null when none is ahead (the common case: no signature is checked).
   */
  provenBeyond(core: Uint8Array, head: { length: number; fork: number }, embassies: readonly string[]): { embassy: string; length: number; fork: number } | null {
    const key = toZ32(core)
    let best: { embassy: string; length: number; fork: number } = { embassy: '', ...head }
    for (const embassy of embassies) {
      const r = this.get(embassy, key)
      if (!r || !(r.fork > best.fork || (r.fork === best.fork && r.length > best.length))) continue
      let ok = false
      try {
        const receipt = { core, length: r.length, treeHash: Buffer.from(r.treeHash, 'hex'), fork: r.fork, time: r.time, signature: Buffer.from(r.signature, 'hex') }
        ok = verifyReceiptSignature(receipt, parseKey(embassy))
      } catch {
        ok = false
      }
      if (ok) best = { embassy, length: r.length, fork: r.fork }
    }
    return best.embassy ? best : null
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

  /** Marks a holder's damaged-block alarms of `core` block `block` resolved (AlarmList.resolveDamage). */
  resolveDamage(core: string, block: number, reportedBy: string): number {
    const n = this.#alarms.resolveDamage(core, block, reportedBy)
    if (n > 0) this.#schedule()
    return n
  }

  #schedule(): void {
    this.#doc.changed()
  }

  flush(): void {
    this.#doc.flush()
  }

  close(): void {
    this.#doc.close()
  }
}
