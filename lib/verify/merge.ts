/**
 * One report out of several: a verification or a repair made a window of cores at a time (an
 * embassy keeps a bounded number open) reads as one made over all of them.
 *
 * Owns mergeVerifyReports and mergeRepairReports. May import: verify/verify, verify/repair.
 */
import type { RepairReport } from './repair.js'
import type { VerifyReport } from './verify.js'

/** Field by field, the sums of the counts `keys` of `parts`. */
function sum<K extends string>(keys: readonly K[], parts: ReadonlyArray<Record<K, number>>): Record<K, number> {
  const out = {} as Record<K, number>
  for (const k of keys) {
    let n = 0
    for (const p of parts) n += p[k]
    out[k] = n
  }
  return out
}

const VERIFY_TOTALS = ['cores', 'coresFailed', 'length', 'held', 'checked', 'failed'] as const
const REPAIR_TOTALS = ['cores', 'damaged', 'repaired', 'failed', 'unreachable', 'unrepairable'] as const

/** The whole span of reports made one after another (each ends with its `elapsed`, now). */
function span(reports: ReadonlyArray<{ elapsed: number }>, started: number): number {
  return Math.max(Date.now() - started, reports.reduce((n, r) => n + r.elapsed, 0))
}

/**
 * Verification reports of consecutive windows as one: cores in order, totals summed, ok when
 * every one is, elapsed over the whole span (`started`: when the first began; default: the sum).
 */
export function mergeVerifyReports(reports: readonly VerifyReport[], started = Date.now()): VerifyReport {
  return {
    ok: reports.every((r) => r.ok),
    cores: reports.flatMap((r) => r.cores),
    totals: sum(VERIFY_TOTALS, reports.map((r) => r.totals)),
    elapsed: span(reports, started)
  }
}

/** Repair reports of consecutive windows as one, as mergeVerifyReports does (`before` summed too). */
export function mergeRepairReports(reports: readonly RepairReport[], started = Date.now()): RepairReport {
  return {
    ok: reports.every((r) => r.ok),
    cores: reports.flatMap((r) => r.cores),
    totals: sum(REPAIR_TOTALS, reports.map((r) => r.totals)),
    before: sum(VERIFY_TOTALS, reports.map((r) => r.before)),
    elapsed: span(reports, started)
  }
}
