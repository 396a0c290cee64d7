/**
 * `embassy repair [--dataset NAME] [--timeout S]`: verifies every held core (or those NAME
 * selects), clears each damaged block and fetches it again from the other holders (or the agency),
 * and verifies what arrived against the signed Merkle tree. The repair itself is lib/verify/repair.ts;
 * this is the command: which cores, the exit code and the text.
 *
 * Through the running node (control socket) the network is up and blocks can be fetched; without
 * one the store is opened here, damaged blocks are named and nothing is cleared (exit 3: no
 * holder can be reached until `embassy run`, which also repairs a damaged block a peer asks for).
 *
 * Exit codes: 0 nothing damaged or everything repaired; 1 REPAIR_FAILED (blocks no holder could
 * replace, or damage above single blocks — named); 3 PEER_UNREACHABLE (no holder of a damaged
 * core connected, nothing else failed).
 *
 * Owns: the repair record. May import: command, host, text, ids, data/ (types), verify/.
 */
import type { HeldCoreEntry } from '../../data/held-core.js'
import { EmbassyError, type ErrorDetails } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import type { CoreRepairReport, RepairReport } from '../../verify/index.js'
import { defineCommand, runOnHost, strOpt, usageError, type CommandInput, type CommandIO } from '../command.js'
import type { Host } from '../host.js'
import { table } from '../text.js'

/**
 * Seconds repair waits for a block by default: REPAIR_TIMEOUT_MS (verify/repair.ts), which --help
 * cannot import without loading verify/ (test/cli-startup.test.ts checks they agree).
 */
export const REPAIR_TIMEOUT_HELP_SECONDS = 30

export const repair = defineCommand({
  name: 'repair',
  spec: {
    usage: 'embassy repair [--dataset NAME] [--timeout S]',
    summary: 'verify held blocks and re-fetch each damaged one from the other holders, checked against the signed tree; exit 1 when some cannot be repaired, 3 when no holder is reachable',
    details: [
      '--dataset NAME   a dataset name (agency), a core or catalog key, or "catalog"; default: everything held',
      `--timeout S      seconds to wait for each damaged block from the connected holders (default ${REPAIR_TIMEOUT_HELP_SECONDS})`,
      'Fetching needs the running node (embassy run); without it the damaged blocks are named and nothing is changed (exit 3).'
    ],
    options: { dataset: { type: 'string' }, timeout: { type: 'string' } },
    args: [0, 0]
  },
  input(line: CommandInput) {
    const t = strOpt(line, 'timeout')
    // Absent: verify/'s REPAIR_TIMEOUT_MS, read where the handler runs.
    let timeoutMs: number | undefined
    if (t !== undefined) {
      const n = Number(t)
      if (t.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 86400) throw usageError('--timeout must be a number of seconds > 0', 'repair')
      timeoutMs = Math.round(n * 1000)
    }
    return { dataset: strOpt(line, 'dataset'), timeoutMs }
  },
  async handler(host, { dataset, timeoutMs }, io): Promise<RepairReport> {
    const { REPAIR_TIMEOUT_MS, repairCores, mergeRepairReports } = await import('../../verify/index.js')
    const started = Date.now()
    // A window of cores at a time (an embassy keeps a bounded number open).
    let count = 0
    const reports = await host.forHeldCores(
      (held) => {
        const selected = dataset ? select(host, held, dataset) : held
        count = selected.length
        io.progress('repair', 0, count)
        return selected
      },
      (refs) => repairCores(refs, { online: host.online, timeoutMs: timeoutMs ?? REPAIR_TIMEOUT_MS })
    )
    io.progress('repair', count, count)
    const report = mergeRepairReports(reports, started)
    if (report.ok) return report
    const { failed, unrepairable, unreachable } = report.totals
    const named = namedBlocks(report.cores)
    if (failed === 0 && unrepairable === 0) {
      throw EmbassyError.noSource(
        `${unreachable} damaged block(s) and no holder to fetch them from (${host.online ? 'no holder of those cores is connected' : 'the node is not running: start `embassy run`, then repeat'}): ${named}`,
        { ...report }
      )
    }
    throw EmbassyError.repairFailed(`${failed + unrepairable + unreachable} damage(s) not repaired (${report.totals.repaired} block(s) repaired): ${named}`, { ...report })
  },
  format: (r) =>
    r.totals.damaged === 0
      ? `verified ${r.before.checked} block(s) in ${r.before.cores} core(s): nothing to repair\n`
      : table([['CORE', 'BLOCK', 'OUTCOME'], ...r.cores.flatMap((c) => c.blocks.map((b) => [c.name, String(b.index), b.outcome]))]) +
        `repaired ${r.totals.repaired} damaged block(s) from other holders; each verified against the signed tree\n`,
  formatError: (err) => (err.code === 'REPAIR_FAILED' || (err.code === 'PEER_UNREACHABLE' && Array.isArray(err.details.cores)) ? formatRepairFailures(err.details) : '')
})

/** `repair` on a command line, as the control socket runs it. */
export function repairHandler(host: Host, line: CommandInput, io: CommandIO): Promise<RepairReport> {
  return runOnHost(repair, host, line, io)
}

/** "core: 3, 7 (failed); core2: tree node 5" — every block not repaired, by core. */
function namedBlocks(cores: readonly CoreRepairReport[]): string {
  const parts: string[] = []
  for (const c of cores) {
    const bad = c.blocks.filter((b) => b.outcome !== 'repaired').map((b) => `${b.index} (${b.outcome})`)
    const other = c.unrepairable.map((f) => (f.index === null ? 'core-level damage' : `blocks ${f.index}-${f.end ?? f.index}`))
    if (bad.length + other.length === 0) continue
    const list = [...bad, ...other]
    parts.push(`${c.name}: ${list.slice(0, 20).join(', ')}${list.length > 20 ? ', …' : ''}`)
  }
  return parts.join('; ')
}

/** Per core: every damaged block with its outcome and why. */
export function formatRepairFailures(details: ErrorDetails): string {
  let out = ''
  for (const c of (details.cores ?? []) as CoreRepairReport[]) {
    out += `  ${c.name} (${c.key}), ${c.peers} holder(s) connected:\n`
    for (const b of c.blocks) out += `    block ${b.index}: ${b.outcome}${b.error ? ` — ${b.error}` : ''} (damage: ${b.damage})\n`
    for (const f of c.unrepairable) out += `    ${f.index === null ? 'core' : `blocks ${f.index}-${f.end ?? f.index}`}: not repairable by fetching blocks — ${f.error}\n`
  }
  return out
}

/** The cores NAME selects: a label (dataset name, `name/…`), a core or catalog key (z32 or hex), or `catalog`. */
function select(host: Host, entries: HeldCoreEntry[], name: string): HeldCoreEntry[] {
  const text = name.trim()
  const wanted = /^[0-9a-f]{64}$/i.test(text) ? toZ32(Buffer.from(text, 'hex')) : text
  const out = entries.filter((e) => {
    const key = toZ32(e.key)
    return (text === 'catalog' && e.dataset === null) || e.name === text || e.name.startsWith(`${text}/`) || key === wanted || toZ32(e.catalog) === wanted
  })
  if (out.length === 0) {
    if (host.node.role === 'embassy') throw EmbassyError.notFound(`no held core or catalog has the key "${text.slice(0, 80)}"`, { name: text.slice(0, 80) })
    throw EmbassyError.unknownDataset(text.slice(0, 80))
  }
  return out
}
