/**
 * Custody receipts: embassies sign what they hold; the agency verifies each receipt against its
 * own Merkle tree and keeps the newest valid one per (embassy, core), durably, in custody.json.
 * A receipt that does not verify is never stored as custody: it raises an alarm.
 */
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { writeJsonAtomic } from '../node/config.js'
import { toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import { receiptSignable, type Receipt } from '../../protocol/index.js'

export const CUSTODY_FILE = 'custody.json'
/** Alarms kept in custody.json (newest last). */
export const MAX_ALARMS = 200
/** custody.json is written at most this often (ms); receipts are re-sent on reconnect anyway. */
export const LEDGER_FLUSH_MS = 500

export type AlarmKind = 'bad-signature' | 'tree-mismatch' | 'length-beyond' | 'unknown-core' | 'fork-mismatch' | 'malformed'

export interface Alarm {
  time: number
  kind: AlarmKind
  /** Node key (z32) of the peer that sent it. */
  peer: string
  /** Core key (z32), when known. */
  core: string | null
  detail: string
}

export interface StoredReceipt {
  length: number
  treeHash: string
  fork: number
  /** Sender's clock. */
  time: number
  /** When the agency verified it. */
  receivedAt: number
  signature: string
}

interface LedgerFile {
  version: 1
  /** embassy node key (z32) → core key (z32) → newest valid receipt */
  receipts: Record<string, Record<string, StoredReceipt>>
  alarms: Alarm[]
  alarmCounts: Partial<Record<AlarmKind, number>>
  /** node key (z32) → role it announced in its handshake */
  roles: Record<string, string>
}

export function signReceipt(keyPair: KeyPair, r: Omit<Receipt, 'signature'>): Receipt {
  return { ...r, signature: crypto.sign(receiptSignable(r), keyPair.secretKey) }
}

export function verifyReceiptSignature(r: Receipt, publicKey: Uint8Array): boolean {
  try {
    return crypto.verify(receiptSignable(r), r.signature, publicKey)
  } catch {
    return false
  }
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

export type ReceiptVerdict = { ok: true } | { ok: false; kind: AlarmKind; detail: string }

/** Checks a receipt against the agency's own core: signature, length, fork and tree hash. */
export async function checkReceipt(r: Receipt, sender: Uint8Array, core: Hypercore | null): Promise<ReceiptVerdict> {
  if (!verifyReceiptSignature(r, sender)) return { ok: false, kind: 'bad-signature', detail: 'signature does not verify with the sender\'s node key' }
  if (!core) return { ok: false, kind: 'unknown-core', detail: `core ${toZ32(r.core)} is not one of this agency's` }
  if (r.length > core.length) return { ok: false, kind: 'length-beyond', detail: `claims length ${r.length}; the agency's own length is ${core.length}` }
  if (r.fork !== core.fork) return { ok: false, kind: 'fork-mismatch', detail: `claims fork ${r.fork}; the agency is on fork ${core.fork}` }
  if (r.length === 0) return { ok: true }
  const own = await core.treeHash(r.length)
  if (!Buffer.from(own).equals(Buffer.from(r.treeHash))) {
    return { ok: false, kind: 'tree-mismatch', detail: `tree hash at length ${r.length} differs from the agency's (a lie or a fork)` }
  }
  return { ok: true }
}
