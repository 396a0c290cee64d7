/**
 * The auditor's records: AuditBook (where each holder and core stands: last result, sweep state;
 * DIR/audits.json) and AuditLog (every audit, signed by the auditor's node key, with the holder's
 * signed answer; DIR/audit.log, one JSON document a line). `exportAuditLog` writes the log as one
 * file that anyone with the public keys checks offline (`verifyAuditExport`): the auditor's
 * signature over each entry, and each holder's signature over its answer to that challenge.
 *
 * Owns: audit records. May import: node/, errors, ids, protocol/.
 */
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'hypercore-crypto'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import { writeJsonAtomic } from '../node/config.js'
import { answerSignable } from '../../protocol/index.js'
import { JsonFile } from './json-file.js'
import type { AuditExchange, AuditResult, SweepState } from './audit.js'

export const AUDITS_FILE = 'audits.json'
export const AUDIT_LOG_FILE = 'audit.log'
/** Format name of an exported audit log. */
export const AUDIT_EXPORT_FORMAT = 'data-embassy/audit-log/1'
/** Namespace of the bytes an auditor signs for a log entry. */
export const AUDIT_ENTRY_NAMESPACE = 'data-embassy/audit-entry/1\n'

/** The last audit of one holder's copy of one core, and its sweep. */
export interface CoreAudit extends SweepState {
  state: 'passed' | 'failed'
  at: number
  /** Blocks checked in the current period (sweep and samples). */
  sampled: number
  /** Failed blocks in the last audit. */
  failed: number
  error?: string
}

interface BookFile {
  version: 1
  /** holder node key (z32) → core key (z32) → its last audit */
  cores: Record<string, Record<string, CoreAudit>>
}

export class AuditBook {
  readonly #doc: JsonFile<BookFile>
  #closed = false

  constructor(dir: string) {
    this.#doc = new JsonFile<BookFile>(path.join(dir, AUDITS_FILE), () => ({ version: 1, cores: {} }), (p) => p.version === 1 && typeof p.cores === 'object' && p.cores !== null, 500)
  }

  get(holder: string, core: string): CoreAudit | null {
    return this.#doc.data.cores[holder]?.[core] ?? null
  }

  /** Every core audited at `holder`, by core key (z32). */
  cores(holder: string): Record<string, CoreAudit> {
    return { ...(this.#doc.data.cores[holder] ?? {}) }
  }

  /** The sweep state of (holder, core), created on first use. */
  sweep(holder: string, core: string, now: number): SweepState {
    const have = this.get(holder, core)
    if (have) return have
    return { periodStart: now, cursor: 0, swept: false }
  }

  record(holder: string, result: AuditResult, sweep: SweepState): CoreAudit {
    const prev = this.get(holder, result.core)
    const samePeriod = prev && prev.periodStart === sweep.periodStart
    const entry: CoreAudit = {
      state: result.failed > 0 || result.error !== undefined ? 'failed' : 'passed',
      at: result.at,
      sampled: (samePeriod ? prev.sampled : 0) + result.sampled,
      failed: result.failed,
      periodStart: sweep.periodStart,
      cursor: sweep.cursor,
      swept: sweep.swept
    }
    if (result.error) entry.error = result.error
    ;(this.#doc.data.cores[holder] ??= {})[result.core] = entry
    if (!this.#closed) this.#doc.changed()
    return entry
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#doc.close()
  }
}

/** One line of the audit log: what happened, signed by the auditor. */
export interface AuditLogEntry {
  body: AuditExchange & { auditor: string }
  /** The auditor's Ed25519 signature over AUDIT_ENTRY_NAMESPACE ‖ JSON.stringify(body). */
  signature: string
}

export class AuditLog {
  readonly file: string
  readonly #keyPair: KeyPair

  constructor(dir: string, keyPair: KeyPair) {
    this.file = path.join(dir, AUDIT_LOG_FILE)
    this.#keyPair = keyPair
  }

  append(x: AuditExchange): AuditLogEntry {
    const body = { auditor: toZ32(this.#keyPair.publicKey), ...x }
    const entry = { body, signature: crypto.sign(entryBytes(body), this.#keyPair.secretKey).toString('hex') }
    fs.appendFileSync(this.file, JSON.stringify(entry) + '\n', { mode: 0o600 })
    return entry
  }

  /** Every entry (a damaged line is skipped and counted). */
  entries(): { entries: AuditLogEntry[]; damaged: number } {
    let text = ''
    try {
      text = fs.readFileSync(this.file, 'utf8')
    } catch {
      return { entries: [], damaged: 0 }
    }
    const entries: AuditLogEntry[] = []
    let damaged = 0
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      try {
        entries.push(JSON.parse(line) as AuditLogEntry)
      } catch {
        damaged++
      }
    }
    return { entries, damaged }
  }

  /** Writes the whole log as one self-contained document to `file` (0600). */
  export(file: string): { file: string; entries: number } {
    const { entries } = this.entries()
    writeJsonAtomic(file, { format: AUDIT_EXPORT_FORMAT, auditor: toZ32(this.#keyPair.publicKey), exportedAt: Date.now(), entries })
    return { file, entries: entries.length }
  }
}

function entryBytes(body: unknown): Buffer {
  return Buffer.from(AUDIT_ENTRY_NAMESPACE + JSON.stringify(body))
}

export interface ExportVerdict {
  ok: boolean
  entries: number
  /** Entries whose auditor signature verifies. */
  signed: number
  /** Entries with a holder's answer whose signature verifies. */
  answersSigned: number
  failures: Array<{ entry: number; error: string }>
}

/**
 * Checks an exported audit log offline: every entry signed by the auditor it names (which must be
 * `auditor` when given, e.g. the agency's node key), every holder answer signed by the holder over
 * exactly that challenge. Needs no network and no data.
 */
export function verifyAuditExport(doc: unknown, opts: { auditor?: string } = {}): ExportVerdict {
  const d = doc as { format?: string; auditor?: string; entries?: AuditLogEntry[] }
  if (!d || d.format !== AUDIT_EXPORT_FORMAT || !Array.isArray(d.entries)) throw EmbassyError.badInput(`not an exported audit log (format ${AUDIT_EXPORT_FORMAT})`)
  const failures: ExportVerdict['failures'] = []
  let signed = 0
  let answersSigned = 0
  d.entries.forEach((e, i) => {
    try {
      const auditor = parseKey(e.body.auditor, 'auditor key')
      if (opts.auditor && toZ32(auditor) !== opts.auditor) throw new Error(`signed by ${e.body.auditor}, not the expected auditor`)
      if (!crypto.verify(entryBytes(e.body), Buffer.from(e.signature, 'hex'), auditor)) throw new Error('the auditor\'s signature does not verify')
      signed++
      const { challenge, answer } = e.body
      if (challenge && answer) {
        const ch = { core: parseKey(challenge.core), nonce: Buffer.from(challenge.nonce, 'hex'), indices: challenge.indices }
        const body = { status: answer.status, time: answer.time, values: answer.values.map((v) => Buffer.from(v, 'hex')) }
        const holder = parseKey(e.body.result.embassy)
        if (!crypto.verify(answerSignable(auditor, ch, body), Buffer.from(answer.signature, 'hex'), holder)) throw new Error('the holder\'s answer signature does not verify')
        answersSigned++
      }
    } catch (err) {
      failures.push({ entry: i, error: (err as EmbassyError).text ?? (err as Error).message })
    }
  })
  return { ok: failures.length === 0, entries: d.entries.length, signed, answersSigned, failures }
}
