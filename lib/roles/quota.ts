/**
 * Quotas: an embassy's limits per followed agency (`embassy follow AGENCY --max-bytes N
 * --max-cores N [--quota-warn F]`, kept in config.json's follow entry), enforced on that agency's
 * Holder, and never silent.
 *
 * What counts: `bytes` is what the agency publishes in the cores this embassy holds (the catalog
 * and every held dataset core, by their signed lengths); `heldBytes` what is stored here (each
 * core's contiguous blocks); `cores` the dataset cores the catalog lists.
 *
 * At the limit the embassy keeps everything it holds (it never deletes, and keeps serving and
 * vouching for it), opens no dataset core beyond `maxCores` (catalog order), and fetches blocks
 * only while they fit in `maxBytes`: a core whose missing blocks fit is fetched whole, cores in
 * catalog order; the first one that does not fit is fetched in windows estimated (from its average
 * block size) to fill half the room left, while the room left is at least one average block, so
 * it stops just under the quota (blocks larger than the average, or blocks in flight when a quota
 * is lowered, can take it a little beyond). The catalog itself is always held (it says what to hold) and counts. Its receipts then
 * show the embassy behind, at the agency.
 *
 * Alarms: `quota-near` when `bytes` or `cores` reach `quotaWarn` (default 90 %) of a limit,
 * `quota-exceeded` when the agency publishes more than a limit; raised once per change of state
 * (and again at every start while it lasts), on the embassy and as an `alarm` report to the
 * agency (codes QuotaAlarmCode below, fields in quotaReport()).
 *
 * Owns: quota evaluation and the download ranges of a quota-limited holder; turning a quota
 * report into the agency's alarm. May import: data/, custody/, net/ (types), node/config (types), ids, protocol/.
 */
import type Hypercore from 'hypercore'
import { byteLengthAt } from '../data/tree.js'
import type { DatasetInfo } from '../data/catalog.js'
import { toZ32 } from '../ids.js'
import type { FollowEntry } from '../node/config.js'
import type { Alarm } from '../custody/index.js'
import type { AlarmReport } from '../../protocol/index.js'
import type { Holder, HolderOptions } from './holder.js'
import type { AlarmLog } from '../custody/alarms.js'
import type { Peer } from '../net/network.js'
import type { Notice } from './role.js'

/** Fraction of a limit at which `quota-near` is raised, unless the follow entry says otherwise. */
export const DEFAULT_QUOTA_WARN = 0.9

/**
 * Codes of the custody `alarm` report for quotas, after protocol/custody.ts AlarmCode's
 * HISTORY_REWRITE (1) and EQUIVOCATION (2). An agency that does not know them ignores the report.
 */
export const QuotaAlarmCode = {
  NEAR: 3,
  EXCEEDED: 4
} as const

export interface QuotaLimits {
  /** Bytes of the agency's data held at most; null: no limit. */
  maxBytes: number | null
  /** Dataset cores held at most; null: no limit. */
  maxCores: number | null
  /** Fraction of a limit that raises `quota-near`. */
  warn: number
}

export type QuotaState = 'ok' | 'near' | 'exceeded'

/** What status shows for an agency without limits. */
export interface UnlimitedStatus extends QuotaLimits {
  state: 'ok'
}

export interface QuotaStatus extends QuotaLimits {
  state: QuotaState
  /** Bytes the agency publishes in the cores held here (catalog included), by their signed lengths. */
  bytes: number
  /** Bytes stored here (contiguous blocks of the same cores). */
  heldBytes: number
  /** Dataset cores the catalog lists. */
  cores: number
  /** Dataset cores held (opened and fetched). */
  heldCores: number
  /** Why, in words, when not ok. */
  reason: string | null
}

/** The limits a follow entry sets. */
export function limitsOf(f: Pick<FollowEntry, 'maxBytes' | 'maxCores' | 'quotaWarn'>): QuotaLimits {
  return { maxBytes: f.maxBytes ?? null, maxCores: f.maxCores ?? null, warn: f.quotaWarn ?? DEFAULT_QUOTA_WARN }
}

export function hasLimits(l: QuotaLimits): boolean {
  return l.maxBytes !== null || l.maxCores !== null
}

interface Fetching {
  range: Hypercore.Download | null
  /** null: live (every block, present and future). */
  end: number | null
}

/**
 * One followed agency's quota, as the policy of its Holder (holderOptions()). `onchange` is
 * called when the state changes (and on the first evaluation that is not ok).
 */
export class AgencyQuota {
  #limits: QuotaLimits
  #holder: Holder | null = null
  #fetching = new Map<Hypercore, Fetching>()
  #status: QuotaStatus
  #reported: QuotaState = 'ok'
  #running: Promise<void> | null = null
  #again = false
  #closed = false
  readonly onchange: (status: QuotaStatus, previous: QuotaState) => void
  readonly onerror: (err: Error) => void

  constructor(limits: QuotaLimits, onchange: AgencyQuota['onchange'], onerror: AgencyQuota['onerror'] = () => {}) {
    this.#limits = limits
    this.onchange = onchange
    this.onerror = onerror
    this.#status = { ...limits, state: 'ok', bytes: 0, heldBytes: 0, cores: 0, heldCores: 0, reason: null }
  }

  /** The Holder's policy hooks: which cores it may open, how each is fetched, when to look again. */
  holderOptions(): HolderOptions {
    return {
      admit: () => this.#limits.maxCores === null || !this.#holder || this.#holder.cores.size < this.#limits.maxCores,
      download: (core: Hypercore, _dataset: DatasetInfo) => this.#track(core),
      refreshed: () => void this.evaluate()
    }
  }

  attach(holder: Holder): void {
    this.#holder = holder
    // A core closed while idle (the bound of open cores) is tracked again when it opens again.
    holder.on('core-closing', (_key, core) => {
      this.#fetching.get(core)?.range?.destroy()
      this.#fetching.delete(core)
    })
  }

  /** True while a byte or core limit is set (usage is measured over open cores: none is closed). */
  get limited(): boolean {
    return hasLimits(this.#limits)
  }

  get limits(): QuotaLimits {
    return { ...this.#limits }
  }

  /** The newest evaluation; without limits only the limits and `ok` (usage is not measured). */
  get status(): QuotaStatus | UnlimitedStatus {
    return hasLimits(this.#limits) ? { ...this.#status } : { ...this.#limits, state: 'ok' }
  }

  /** New limits (`embassy follow` again): cores now admitted are picked up, ranges recomputed. */
  async update(limits: QuotaLimits): Promise<QuotaStatus | UnlimitedStatus> {
    this.#limits = limits
    if (this.#holder) await this.#holder.refresh()
    await this.evaluate()
    return this.status
  }

  /** Re-evaluates (coalesced: one run at a time, one more after it when asked meanwhile). */
  evaluate(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#evaluate()
      .catch((err) => {
        if (!this.#closed) this.onerror(err as Error)
      })
      .finally(() => {
        this.#running = null
        if (this.#again && !this.#closed) {
          this.#again = false
          void this.evaluate()
        }
      })
    return this.#running
  }

  close(): void {
    this.#closed = true
    for (const f of this.#fetching.values()) f.range?.destroy()
    this.#fetching.clear()
  }

  #track(core: Hypercore): void {
    this.#fetching.set(core, { range: null, end: -1 })
    core.on('append', () => {
      if (hasLimits(this.#limits)) void this.evaluate()
    })
    core.on('download', () => {
      // Only a bounded range needs widening when its blocks are in.
      const f = this.#fetching.get(core)
      if (f && f.end !== null && core.contiguousLength >= f.end) void this.evaluate()
    })
    if (this.#limits.maxBytes === null) this.#fetch(core, null)
    else void this.evaluate()
  }

  /** Fetches `core`'s blocks up to `end` (exclusive), or every block live when null. */
  #fetch(core: Hypercore, end: number | null): void {
    const f = this.#fetching.get(core)
    if (!f || (f.end === end && (f.range || end !== null))) return
    f.range?.destroy()
    f.range = null
    f.end = end
    if (end === null) f.range = core.download({ start: 0, end: -1 })
    else if (end > core.contiguousLength) f.range = core.download({ start: core.contiguousLength, end })
  }

  async #evaluate(): Promise<void> {
    const holder = this.#holder
    if (!holder || this.#closed) return
    const { maxBytes, maxCores, warn } = this.#limits
    if (!hasLimits(this.#limits)) {
      // No quota: every block, live; nothing to measure (no per-append work for unlimited agencies).
      for (const core of this.#fetching.keys()) if (!core.closing && !core.closed) this.#fetch(core, null)
      this.#status = { maxBytes, maxCores, warn, state: 'ok', bytes: 0, heldBytes: 0, cores: 0, heldCores: 0, reason: null }
      this.#transition('ok')
      return
    }
    const listed = (await holder.catalog.datasets(null, { includeRetired: true })).reduce((n, d) => n + d.cores.length, 0)
    const catalog = holder.catalog.core
    let bytes = catalog.byteLength
    let heldBytes = await byteLengthAt(catalog, catalog.contiguousLength)
    const cores = [...this.#fetching.keys()].filter((c) => !c.closing && !c.closed)
    const held: number[] = []
    for (const core of cores) {
      const h = await byteLengthAt(core, core.contiguousLength)
      held.push(h)
      bytes += core.byteLength
      heldBytes += h
    }
    if (this.#closed) return
    if (maxBytes === null) {
      for (const core of cores) this.#fetch(core, null)
    } else {
      let room = maxBytes - heldBytes
      for (let i = 0; i < cores.length; i++) {
        const core = cores[i]!
        const start = core.contiguousLength
        const missing = core.byteLength - held[i]!
        if (core.length <= start) this.#fetch(core, start)
        else if (missing <= room) {
          this.#fetch(core, core.length)
          room -= missing
        } else {
          // Does not fit whole: while an average block fits, a window estimated to fill half the
          // room left (at least one block); later cores get nothing.
          const average = Math.max(1, core.byteLength / Math.max(1, core.length))
          const window = room >= average ? Math.max(1, Math.floor(room / 2 / average)) : 0
          this.#fetch(core, Math.min(core.length, start + window))
          room = 0
        }
      }
    }
    const reasons: string[] = []
    let state = 'ok' as QuotaState
    const judge = (value: number, limit: number | null, what: string) => {
      if (limit === null) return
      if (value > limit) {
        state = 'exceeded'
        reasons.push(`the agency publishes ${value} ${what}, over the quota of ${limit}`)
      } else if (value >= warn * limit) {
        if (state === 'ok') state = 'near'
        reasons.push(`the agency publishes ${value} ${what}, ${Math.round((value / limit) * 100)} % of the quota of ${limit}`)
      }
    }
    judge(bytes, maxBytes, 'bytes')
    judge(listed, maxCores, 'dataset cores')
    this.#status = { maxBytes, maxCores, warn, state, bytes, heldBytes, cores: listed, heldCores: cores.length, reason: reasons.length ? reasons.join('; ') : null }
    this.#transition(state)
  }

  #transition(state: QuotaState): void {
    const previous = this.#reported
    if (state === previous) return
    this.#reported = state
    this.onchange({ ...this.#status }, previous)
  }
}

/** The `alarm` report an embassy sends its agency about its quota (fields reused, see SPEC). */
export function quotaReport(catalogKey: Buffer, s: QuotaStatus): AlarmReport {
  return {
    code: s.state === 'exceeded' ? QuotaAlarmCode.EXCEEDED : QuotaAlarmCode.NEAR,
    core: catalogKey,
    // length/fork: what the agency publishes (bytes, dataset cores); offered*: the limits (0: none).
    length: s.bytes,
    fork: s.cores,
    offeredLength: s.maxBytes ?? 0,
    offeredFork: s.maxCores ?? 0,
    offeredBy: Buffer.alloc(32),
    time: Date.now(),
    heads: []
  }
}

/** The embassy's own alarm for a quota state. */
export function quotaAlarm(agencyNodeKey: string, catalogKey: Buffer, s: QuotaStatus): Alarm {
  return {
    time: Date.now(),
    kind: s.state === 'exceeded' ? 'quota-exceeded' : 'quota-near',
    peer: agencyNodeKey,
    core: toZ32(catalogKey),
    detail: `${quotaWords(s)}: ${s.reason ?? ''}; holding ${s.heldBytes} bytes in ${s.heldCores} dataset core(s)${s.state === 'exceeded' ? ', keeping all of it and taking nothing beyond the quota' : ''}`
  }
}

/**
 * The agency's alarm for a quota report from an embassy, or null when `report` is not a quota
 * report about `catalogKey` from an embassy.
 */
export function alarmFromQuotaReport(report: AlarmReport, sender: string, catalogKey: Buffer, senderRole: Peer['role']): Alarm | null {
  if (report.code !== QuotaAlarmCode.NEAR && report.code !== QuotaAlarmCode.EXCEEDED) return null
  // Only an embassy holds under a quota; anything else (or another agency's catalog) is dropped.
  if (senderRole !== 'embassy' || !catalogKey.equals(Buffer.from(report.core))) return null
  const exceeded = report.code === QuotaAlarmCode.EXCEEDED
  const limits = [report.offeredLength ? `${report.offeredLength} bytes` : null, report.offeredFork ? `${report.offeredFork} dataset cores` : null].filter(Boolean).join(', ')
  return {
    time: Date.now(),
    kind: exceeded ? 'quota-exceeded' : 'quota-near',
    peer: sender,
    core: toZ32(catalogKey),
    detail: exceeded
      ? `embassy ${sender} holds this agency's data under a quota (${limits}) that it publishes more than (${report.length} bytes, ${report.fork} dataset cores): it keeps what it holds and takes nothing beyond the quota, so its custody falls behind`
      : `embassy ${sender} is near its quota for this agency (${limits}): this agency publishes ${report.length} bytes in ${report.fork} dataset cores`,
    reportedBy: sender
  }
}

function quotaWords(s: QuotaStatus): string {
  return s.state === 'exceeded' ? 'over the quota for this agency' : 'near the quota for this agency'
}

export interface QuotaDeskHost {
  /** The embassy's follow entries (config.json). */
  follow(): readonly FollowEntry[]
  /** The embassy's durable alarms. */
  alarms: AlarmLog
  notice(level: Notice['level'], event: string, message: string, fields?: Record<string, unknown>): void
  /** The connected agency peer with this node key, if any. */
  agencyPeer(agencyNodeKey: string): Peer | null
}

/**
 * An embassy's quotas, one per followed agency with a catalog held: the hooks its Holders take,
 * the alarms and reports when a state changes, and what status shows.
 */
export class QuotaDesk {
  readonly #host: QuotaDeskHost
  /** Agency node key (z32) → its quota and catalog key. */
  #quotas = new Map<string, { quota: AgencyQuota; catalogKey: Buffer }>()

  constructor(host: QuotaDeskHost) {
    this.#host = host
  }

  #limits(agencyNodeKey: string): QuotaLimits {
    const f = this.#host.follow().find((x) => x.nodeKey === agencyNodeKey)
    return f ? limitsOf(f) : limitsOf({})
  }

  /** The hooks for the Holder of `agencyNodeKey`'s catalog; call attach() once it is built. */
  holderOptions(agencyNodeKey: string, catalogKey: Buffer): HolderOptions {
    const quota = new AgencyQuota(
      this.#limits(agencyNodeKey),
      (s, previous) => this.#changed(agencyNodeKey, catalogKey, s, previous),
      (err) => this.#host.notice('error', 'error', `quota of agency ${agencyNodeKey}: ${err.message}`)
    )
    this.#quotas.get(agencyNodeKey)?.quota.close()
    this.#quotas.set(agencyNodeKey, { quota, catalogKey })
    return quota.holderOptions()
  }

  attach(agencyNodeKey: string, holder: Holder): void {
    this.#quotas.get(agencyNodeKey)?.quota.attach(holder)
  }

  /** The follow entry's limits changed: apply them now (null when its catalog is not held yet). */
  async update(agencyNodeKey: string): Promise<QuotaStatus | UnlimitedStatus | null> {
    const q = this.#quotas.get(agencyNodeKey)
    return q ? q.quota.update(this.#limits(agencyNodeKey)) : null
  }

  /** True while the agency has a byte or core limit (its cores stay open: usage is measured on them). */
  limited(agencyNodeKey: string): boolean {
    return this.#quotas.get(agencyNodeKey)?.quota.limited ?? hasLimits(this.#limits(agencyNodeKey))
  }

  /** What status shows for one agency: its limits, and the newest evaluation once its catalog is held. */
  status(agencyNodeKey: string): QuotaStatus | UnlimitedStatus | QuotaLimits {
    return this.#quotas.get(agencyNodeKey)?.quota.status ?? this.#limits(agencyNodeKey)
  }

  /** The agency (re)connected: tell it again when the quota is not ok. */
  greet(agencyNodeKey: string): void {
    const q = this.#quotas.get(agencyNodeKey)
    if (!q) return
    const s = q.quota.status
    if (s.state !== 'ok') this.#report(agencyNodeKey, q.catalogKey, s)
  }

  close(): void {
    for (const { quota } of this.#quotas.values()) quota.close()
    this.#quotas.clear()
  }

  #changed(agencyNodeKey: string, catalogKey: Buffer, s: QuotaStatus, previous: QuotaState): void {
    const fields = { agency: agencyNodeKey, catalog: toZ32(catalogKey), ...s }
    if (s.state === 'ok') {
      this.#host.notice('info', 'quota-ok', `agency ${agencyNodeKey}: within its quota again (was ${previous}); fetching everything it publishes`, fields)
      return
    }
    const alarm = quotaAlarm(agencyNodeKey, catalogKey, s)
    if (this.#host.alarms.add(alarm)) this.#host.notice(s.state === 'exceeded' ? 'error' : 'warn', alarm.kind, `${alarm.kind}: agency ${agencyNodeKey}: ${alarm.detail}`, fields)
    this.#report(agencyNodeKey, catalogKey, s)
  }

  #report(agencyNodeKey: string, catalogKey: Buffer, s: QuotaStatus): void {
    this.#host.agencyPeer(agencyNodeKey)?.channel.send('alarm', quotaReport(catalogKey, s))
  }
}
