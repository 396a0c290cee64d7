/**
 * AuditRunner: continuous audits of holders by an auditor that holds the blocks (the agency, hash
 * mode). One timer: each tick, every connected holder × core that is due (never audited and past
 * `firstAuditMs`, or `intervalMs` since its last audit) is challenged with the next slice of the
 * rotating sweep plus random samples, up to the length the holder claims (its newest receipt).
 * Every result goes to the AuditBook (status), the signed AuditLog (evidence) and, when it fails,
 * an `audit-failed` alarm. `auditNow` runs one audit at once (`embassy audit`).
 *
 * Owns: scheduling audits. May import: custody/, net/ (types), node/, errors, ids, protocol/.
 */
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { keyZ32, toZ32 } from '../ids.js'
import type { Peer } from '../net/network.js'
import type { KeyPair } from '../node/node.js'
import type { AuditSettingName } from '../node/config.js'
import { MAX_CHALLENGE_INDICES, type Answer } from '../../protocol/index.js'
import { AUDIT_DEFAULTS, Challenger, auditConfidence, planAudit, type AuditExchange, type AuditResult, type AuditSettings, type StrayAnswer } from './audit.js'
import { AuditBook, AuditLog, type CoreAudit } from './audit-log.js'
import type { Alarm } from './receipts.js'

/** Audits running at once (over every holder and core). */
export const MAX_PARALLEL_AUDITS = 8
/** Longest time between two scheduler ticks (ms). */
export const AUDIT_TICK_MS = 1000
/** A failed (holder, core) is audited again this soon (bounded by intervalMs), not a whole interval later. */
export const AUDIT_RETRY_MS = 30_000
/**
 * A scheduled audit cut short because the connection closed (a restart, a network loss) is not a
 * verdict; this many in a row are (a holder must not dodge audits by hanging up).
 */
export const MAX_INTERRUPTED_AUDITS = 3

/** One core the auditor can audit, with what it belongs to. */
export interface AuditableCore {
  core: Hypercore
  /** Dataset name (or id); null for the catalog. */
  dataset: string | null
}

export interface AuditRunnerDeps {
  dir: string
  keyPair: KeyPair
  /** Configured settings (config.json `audit`), read at each tick. */
  settings: () => Partial<Record<AuditSettingName, number>> | undefined
  /** The holders to audit that are connected now. */
  holders: () => Peer[]
  /** Every core this auditor holds and can audit. */
  cores: () => Promise<AuditableCore[]>
  /** The length `holder` (z32) claims to hold of `core` (z32): its newest verified receipt; 0 if none. */
  claimed: (holder: string, core: string) => number
  alarm: (a: Alarm) => void
  /** Every audit, when done, with where (holder, core) now stands (sweep included). */
  onaudit?: (x: AuditExchange, state: CoreAudit) => void
  onstray?: (s: StrayAnswer) => void
}

/** What `embassy status` shows per holder and dataset. */
export interface AuditSummary {
  state: 'passed' | 'failed' | 'never'
  /** Newest audit of any of the cores (ms since epoch), null if never. */
  at: number | null
  /** Blocks checked in the current period, over the cores. */
  sampled: number
  /** Failed blocks in the last audits. */
  failed: number
  /** Cores whose sweep reached the claimed length in this period / cores audited. */
  swept: number
  cores: number
  confidence: string
  error?: string
}

export interface AuditNowOptions {
  /** Only this holder (z32 node key). */
  embassy?: string
  /** Only these cores (z32 keys). */
  cores?: Set<string>
  /** Random samples per core. @default settings.samples */
  blocks?: number
}

export class AuditRunner {
  readonly book: AuditBook
  readonly log: AuditLog
  readonly challenger: Challenger
  readonly #deps: AuditRunnerDeps
  #timer: NodeJS.Timeout | null = null
  #running = new Set<string>()
  /** Holder (z32) → when it was first seen with a claim (the first audit waits firstAuditMs from there). */
  #firstSeen = new Map<string, number>()
  /** (holder/core) → scheduled audits in a row cut short by a closed connection. */
  #interrupted = new Map<string, number>()
  #ticking = false
  #closed = false

  constructor(deps: AuditRunnerDeps) {
    this.#deps = deps
    this.book = new AuditBook(deps.dir)
    this.log = new AuditLog(deps.dir, deps.keyPair)
    this.challenger = new Challenger(deps.keyPair)
    this.challenger.onstray = (s) => deps.onstray?.(s)
  }

  get settings(): AuditSettings {
    return { ...AUDIT_DEFAULTS, ...(this.#deps.settings() ?? {}) }
  }

  onanswer(peer: Peer, a: Answer): void {
    this.challenger.onanswer(peer, a)
  }

  /** Starts the schedule (one timer, re-armed after each tick from the settings of the moment). */
  start(): void {
    if (this.#timer || this.#closed) return
    const arm = () => {
      if (this.#closed) return
      const every = Math.max(50, Math.min(AUDIT_TICK_MS, Math.floor(this.settings.intervalMs / 4)))
      this.#timer = setTimeout(() => {
        this.tick().finally(arm)
      }, every)
      this.#timer.unref?.()
    }
    arm()
  }

  /** One pass of the schedule: starts every due audit (bounded), returns when they are started. */
  async tick(now = Date.now()): Promise<void> {
    if (this.#ticking || this.#closed) return
    this.#ticking = true
    try {
      const s = this.settings
      const holders = this.#deps.holders()
      if (holders.length === 0) return
      const cores = await this.#deps.cores()
      for (const peer of holders) {
        const holder = keyZ32(peer)
        for (const c of cores) {
          if (this.#running.size >= MAX_PARALLEL_AUDITS) return
          const core = keyZ32(c.core)
          const id = `${holder}/${core}`
          if (this.#running.has(id)) continue
          const claimed = Math.min(this.#deps.claimed(holder, core), c.core.length)
          if (claimed <= 0) continue
          if (!this.#firstSeen.has(holder)) this.#firstSeen.set(holder, now)
          const last = this.book.get(holder, core)
          const wait = last?.state === 'failed' ? Math.min(s.intervalMs, AUDIT_RETRY_MS) : s.intervalMs
          const due = last ? now - last.at >= wait : now - this.#firstSeen.get(holder)! >= s.firstAuditMs
          if (!due) continue
          const sweep = this.book.sweep(holder, core, now)
          const indices = planAudit(sweep, claimed, s, now)
          this.#running.add(id)
          this.#run(peer, c, indices, sweep, id)
            .catch(() => {})
            .finally(() => this.#running.delete(id))
        }
      }
    } finally {
      this.#ticking = false
    }
  }

  async #run(peer: Peer, c: AuditableCore, indices: number[], sweep: ReturnType<AuditBook['sweep']>, id: string | null): Promise<AuditExchange> {
    // id: a scheduled audit's (holder/core); null for `embassy audit`, whose every verdict counts.
    const x = await this.challenger.audit(peer, c.core, indices, { dataset: c.dataset, settings: this.settings })
    if (this.#closed) return x
    if (id !== null && x.answer === null && peer.channel.closed) {
      // The connection went away mid-audit: asked again once it is back, unless it keeps happening.
      const n = (this.#interrupted.get(id) ?? 0) + 1
      this.#interrupted.set(id, n)
      if (n < MAX_INTERRUPTED_AUDITS) return x
      x.result.error = `${n} audits in a row were cut short by the connection closing; ${x.result.error ?? ''}`.trim()
    }
    if (id !== null) this.#interrupted.delete(id)
    this.#record(x, { ...sweep })
    return x
  }

  #record(x: AuditExchange, sweep: ReturnType<AuditBook['sweep']>): CoreAudit {
    const r = x.result
    const entry = this.book.record(r.embassy, r, sweep)
    this.log.append(x)
    if (entry.state === 'failed') {
      this.#deps.alarm({
        time: r.at,
        kind: 'audit-failed',
        peer: r.embassy,
        core: r.core,
        detail: `audit of ${r.dataset ?? 'catalog'} core ${r.core}: ${r.error ?? `${r.failed} block(s) failed`}; custody of this core is not counted until an audit passes`
      })
    }
    this.#deps.onaudit?.(x, { ...entry })
    return entry
  }

  /**
   * Audits now: every connected holder (or `embassy`) × every core (or `cores`) with `blocks`
   * random samples within what it claims. A core it claims nothing of is reported with sampled 0
   * and an error (no alarm). PEER_UNREACHABLE when no holder is connected.
   */
  async auditNow(opts: AuditNowOptions = {}): Promise<AuditResult[]> {
    const s = this.settings
    let holders = this.#deps.holders()
    if (opts.embassy) holders = holders.filter((p) => toZ32(p.key) === opts.embassy)
    if (holders.length === 0) throw EmbassyError.peerUnreachable(opts.embassy ? `embassy ${opts.embassy} is not connected` : 'no embassy is connected: nothing to audit')
    const blocks = Math.min(MAX_CHALLENGE_INDICES, Math.max(1, opts.blocks ?? s.samples))
    const cores = (await this.#deps.cores()).filter((c) => c.core.length > 0 && (!opts.cores || opts.cores.has(keyZ32(c.core))))
    const jobs: Array<Promise<AuditResult>> = []
    for (const peer of holders) {
      const holder = keyZ32(peer)
      for (const c of cores) {
        const core = keyZ32(c.core)
        const claimed = Math.min(this.#deps.claimed(holder, core), c.core.length)
        if (claimed <= 0) {
          jobs.push(Promise.resolve({ embassy: holder, dataset: c.dataset, core, sampled: 0, passed: 0, failed: 0, ms: 0, at: Date.now(), error: 'the embassy claims no block of this core yet (no receipt)' }))
          continue
        }
        const now = Date.now()
        const sweep = this.book.sweep(holder, core, now)
        // Random samples only: a manual audit does not move the sweep.
        const indices = planAudit({ periodStart: now, cursor: claimed, swept: true }, claimed, { ...s, periodMs: Number.MAX_SAFE_INTEGER }, now, blocks)
        jobs.push(this.#run(peer, c, indices, sweep, null).then((x) => x.result))
      }
    }
    return Promise.all(jobs)
  }

  /** The audit summary of `holder` over `cores` (z32 keys). */
  summary(holder: string, cores: string[]): AuditSummary {
    const audits = cores.map((c) => this.book.get(holder, c)).filter((a): a is CoreAudit => !!a)
    if (audits.length === 0) return { state: 'never', at: null, sampled: 0, failed: 0, swept: 0, cores: 0, confidence: auditConfidence(0).text }
    const failed = audits.filter((a) => a.state === 'failed')
    const sampled = audits.reduce((n, a) => n + a.sampled, 0)
    const out: AuditSummary = {
      state: failed.length > 0 ? 'failed' : 'passed',
      at: Math.max(...audits.map((a) => a.at)),
      sampled,
      failed: audits.reduce((n, a) => n + a.failed, 0),
      swept: audits.filter((a) => a.swept).length,
      cores: audits.length,
      confidence: failed.length > 0 ? 'failed: blocks are missing or not answered' : auditConfidence(Math.min(...audits.map((a) => a.sampled))).text
    }
    if (failed[0]?.error) out.error = failed[0].error
    return out
  }

  /** True while the last audit of (holder, core) failed. */
  failing(holder: string, core: string): boolean {
    return this.book.get(holder, core)?.state === 'failed'
  }

  close(): void {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.challenger.close()
    this.book.close()
  }
}
