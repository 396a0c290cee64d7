/**
 * Repair: damaged blocks are cleared locally and fetched again from other holders (or the agency),
 * then the whole core is verified again against its signed Merkle tree (verify.ts).
 *
 * A damaged block (its bytes do not hash to its leaf, or storage cannot read it) holds nothing
 * worth keeping: clearing it (`core.clear(i, i + 1)`) loses nothing and makes Hypercore ask its
 * peers for it again. Hypercore checks every block that arrives against the signed tree (a forged
 * replacement is refused and asked of another peer), and verifyCores re-checks what landed before
 * a block is counted `repaired`. What repair cannot mend by fetching blocks — a broken tree node
 * above a range of blocks, a bad signature — is listed as such, never cleared.
 *
 * Outcomes per block: `repaired`; `failed` (no holder that answered had a good copy in time);
 * `unreachable` (no holder of the core was connected: nothing was cleared). A core opened again
 * for this repair (it was closed while idle) meets its holders over the next round trips: it is
 * given up to the block timeout for the first one to attach before it counts as unreachable.
 *
 * Owns repairCores, repairBlock and the report types. May import: verify/verify, data/, errors, ids.
 */
import type Hypercore from 'hypercore'
import type { HeldCoreRef, WindowRef } from '../data/held-core.js'
import { toZ32 } from '../ids.js'
import { verifyCores, type CoreVerifyReport, type VerifyFailure, type VerifyReport } from './verify.js'

/** How long one damaged block is waited for from the holders that are connected. */
export const REPAIR_TIMEOUT_MS = 30_000
/** Damaged blocks of one core fetched at once. */
export const REPAIR_PARALLEL = 32

export type BlockOutcome = 'repaired' | 'failed' | 'unreachable'

export interface BlockRepair {
  index: number
  outcome: BlockOutcome
  /** Why the block was damaged (from verification). */
  damage: string
  /** Why it was not repaired. */
  error?: string
}

export interface CoreRepairReport {
  catalog: string
  dataset: string | null
  name: string
  key: string
  /** Holders of the core connected when the repair started. */
  peers: number
  blocks: BlockRepair[]
  /** Failures that fetching blocks cannot mend (a broken tree node over a range, the head, the signature). */
  unrepairable: VerifyFailure[]
}

export interface RepairReport {
  /** True when nothing was left damaged. */
  ok: boolean
  cores: CoreRepairReport[]
  totals: { cores: number; damaged: number; repaired: number; failed: number; unreachable: number; unrepairable: number }
  /** The verification before repair. */
  before: VerifyReport['totals']
  elapsed: number
}

export interface RepairOptions {
  /** Per block; @default REPAIR_TIMEOUT_MS */
  timeoutMs?: number
  /** Whether the node's network is up: offline, nothing can be fetched (every damaged block is `unreachable`, nothing cleared). */
  online?: boolean
  /** A report already made over the same refs (skips the first verification). */
  verified?: VerifyReport
}

/**
 * Clears block `index` of `core` and fetches it again from connected holders (a download range:
 * Hypercore verifies it against the signed tree on arrival, and never reads the damaged local
 * copy again); resolves ok once it landed, not ok when it did not arrive within `timeoutMs`
 * (0: wait until a holder has it, or the core closes). Never throws.
 */
export async function repairBlock(core: Hypercore, index: number, timeoutMs = REPAIR_TIMEOUT_MS): Promise<{ ok: boolean; error?: string }> {
  let timer: NodeJS.Timeout | null = null
  try {
    await core.clear(index, index + 1)
    const range = core.download({ start: index, end: index + 1 })
    const landed = range.done()
    const outcome =
      timeoutMs > 0
        ? await Promise.race([
            landed,
            new Promise<false>((resolve) => {
              timer = setTimeout(() => resolve(false), timeoutMs)
            })
          ])
        : await landed
    if (!outcome) {
      range.destroy()
      landed.catch(() => {})
      return { ok: false, error: `no connected holder sent a copy that verifies within ${Math.round(timeoutMs / 1000)} s` }
    }
    if (!(await core.has(index))) return { ok: false, error: 'the block did not land' }
    return { ok: true }
  } catch (err) {
    return { ok: false, error: (err as Error).message || String(err) }
  } finally {
    if (timer) clearTimeout(timer)
  }
}

/** Resolves true once `core` has a peer; false after `timeoutMs` or when it closes. */
function firstPeer(core: Hypercore, timeoutMs: number): Promise<boolean> {
  if (core.peers.length > 0) return Promise.resolve(true)
  if (core.closing) return Promise.resolve(false)
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      core.off('peer-add', onpeer)
      core.off('close', onclose)
      resolve(ok)
    }
    const onpeer = (): void => done(true)
    const onclose = (): void => done(false)
    const timer = setTimeout(() => done(false), timeoutMs)
    core.on('peer-add', onpeer)
    core.on('close', onclose)
  })
}

/** The single damaged blocks of a verified core, and the failures that are not single blocks. */
function split(c: CoreVerifyReport): { blocks: Array<{ index: number; damage: string }>; unrepairable: VerifyFailure[] } {
  const blocks: Array<{ index: number; damage: string }> = []
  const unrepairable: VerifyFailure[] = []
  for (const f of c.failures) {
    if (f.index !== null && f.end === undefined) blocks.push({ index: f.index, damage: f.error })
    else unrepairable.push(f)
  }
  return { blocks, unrepairable }
}

/**
 * Verifies `refs`, repairs every damaged block of every core that has a connected holder, and
 * verifies the repaired cores again. Never throws for a bad core: its outcome is in the report
 * (a core that could not be opened: its error, not repairable by fetching blocks).
 */
export async function repairCores(refs: readonly WindowRef[], opts: RepairOptions = {}): Promise<RepairReport> {
  const started = Date.now()
  const timeoutMs = opts.timeoutMs ?? REPAIR_TIMEOUT_MS
  const online = opts.online ?? true
  const before = opts.verified ?? (await verifyCores(refs))
  const out: CoreRepairReport[] = []
  const touched: Array<{ ref: HeldCoreRef; report: CoreRepairReport }> = []
  const refOf = (key: string): HeldCoreRef | undefined => refs.find((r): r is HeldCoreRef => 'core' in r && !!r.core.key && toZ32(r.core.key) === key)
  const damaged = before.cores.filter((c) => c.failures.length > 0).map((c) => ({ c, ref: refOf(c.key), ...split(c) }))
  // Cores opened again for this repair wait for their first holder all at once (one timeout at
  // most, not one per core when no holder is reachable).
  if (online) await Promise.all(damaged.filter((d) => d.ref?.reopened && d.blocks.length > 0 && !d.ref.core.closing).map((d) => firstPeer(d.ref!.core, timeoutMs)))
  for (const { c, ref, blocks, unrepairable } of damaged) {
    const peers = ref && !ref.core.closing ? ref.core.peers.length : 0
    const report: CoreRepairReport = { catalog: c.catalog, dataset: c.dataset, name: c.name, key: c.key, peers, blocks: [], unrepairable }
    out.push(report)
    if (!ref || blocks.length === 0) continue
    if (!online || peers === 0) {
      const why = online ? 'no holder of this core is connected' : 'the node is not running: no holder can be reached'
      for (const b of blocks) report.blocks.push({ index: b.index, outcome: 'unreachable', damage: b.damage, error: why })
      continue
    }
    // REPAIR_PARALLEL blocks at a time: requests overlap (and so do the timeouts of blocks no holder has).
    for (let i = 0; i < blocks.length; i += REPAIR_PARALLEL) {
      const batch = blocks.slice(i, i + REPAIR_PARALLEL)
      const results = await Promise.all(batch.map((b) => repairBlock(ref.core, b.index, timeoutMs)))
      batch.forEach((b, k) => {
        const r = results[k]!
        report.blocks.push({ index: b.index, outcome: r.ok ? 'repaired' : 'failed', damage: b.damage, ...(r.error ? { error: r.error } : {}) })
      })
    }
    touched.push({ ref, report })
  }
  // What landed is checked again up to the signature before it counts as repaired.
  if (touched.length > 0) {
    const after = await verifyCores(touched.map((t) => t.ref))
    touched.forEach(({ report }, i) => {
      const still = new Map((after.cores[i]?.failures ?? []).filter((f) => f.index !== null).map((f) => [f.index!, f.error]))
      for (const b of report.blocks) {
        if (b.outcome !== 'repaired') continue
        const error = still.get(b.index)
        if (error !== undefined) {
          b.outcome = 'failed'
          b.error = `fetched again but still does not verify: ${error}`
        }
      }
    })
  }
  const totals = { cores: out.length, damaged: 0, repaired: 0, failed: 0, unreachable: 0, unrepairable: 0 }
  for (const c of out) {
    totals.unrepairable += c.unrepairable.length
    for (const b of c.blocks) {
      totals.damaged++
      totals[b.outcome]++
    }
  }
  const ok = totals.failed === 0 && totals.unreachable === 0 && totals.unrepairable === 0
  return { ok, cores: out, totals, before: before.totals, elapsed: Date.now() - started }
}
