/**
 * `embassy verify [NAME]`: re-checks every held block (or those NAME selects) against the signed
 * Merkle trees. The checking itself is lib/verify/; this is the command: which cores, how they
 * are labelled, VERIFY_FAILED when anything fails, and the text of the report.
 *
 * Owns: the verify record. May import: command, host, text, ids, data/ (types), verify/.
 */
import type { HeldCoreEntry } from '../../data/held-core.js'
import { EmbassyError, type ErrorDetails } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import type { CoreVerifyReport, VerifyReport } from '../../verify/index.js'
import { defineCommand, runOnHost, type CommandInput, type CommandIO } from '../command.js'
import type { Host } from '../host.js'
import { table } from '../text.js'

/**
 * Verifies every held core (or those NAME selects: a dataset name on an agency or mirror; a core
 * key or catalog key (z32 or hex) anywhere; `catalog` for the catalog cores). Returns the report
 * when everything verifies; throws VERIFY_FAILED (exit 1) with the report as details otherwise.
 */
export const verify = defineCommand({
  name: 'verify',
  spec: {
    usage: 'embassy verify [NAME]',
    summary: 're-check every held block against the signed Merkle tree (works blind on an embassy); exit 1 on any failure',
    details: ['NAME   a dataset name (agency, mirror), a core or catalog key, or "catalog"; default: everything held'],
    options: {},
    args: [0, 1]
  },
  input: (line) => ({ name: line.args[0] || undefined }),
  async handler(host, { name }, io): Promise<VerifyReport> {
    const { verifyCores, mergeVerifyReports } = await import('../../verify/index.js')
    const started = Date.now()
    const names = name || host.node.role === 'mirror' ? await coreNames(host) : new Map<string, string>()
    // A window of cores at a time (an embassy keeps a bounded number open); progress over all.
    let total = 0
    let before = 0
    const reports = await host.forHeldCores(
      (held) => {
        const entries = labelled(host, held, names)
        const selected = name ? select(host, entries, names, name) : entries
        total = selected.reduce((n, e) => n + e.length, 0)
        return selected
      },
      async (refs) => {
        let done = 0
        const r = await verifyCores(refs, {
          onProgress: (blocks) => {
            done = blocks
            io.progress('verify', before + done, Math.max(total, before + done))
          }
        })
        before += done
        return r
      }
    )
    const report = mergeVerifyReports(reports, started)
    if (!report.ok) {
      const bad = report.cores.filter((c) => c.failures.length > 0)
      const first = bad[0]!.failures[0]!
      const named = bad
        .map((c) => ({ c, indices: badBlocks(c) }))
        .filter((x) => x.indices.length > 0)
        .map(({ c, indices }) => `${c.name}: ${indices.slice(0, 10).join(', ')}${indices.length > 10 || c.failuresTruncated ? ', …' : ''}`)
      throw EmbassyError.verifyFailed(
        `${report.totals.failed} block(s) in ${bad.length} core(s) do not verify; ` +
          (named.length > 0 ? `bad blocks: ${named.join('; ')}` : `first: ${bad[0]!.name}${first.index === null ? '' : ` block ${first.index}`}: ${first.error}`),
        { ...report }
      )
    }
    return report
  },
  format: (r) =>
    table([['CORE', 'LENGTH', 'CHECKED', 'FAILED', 'SIGNED'], ...r.cores.map((c) => [c.name, String(c.length), String(c.checked), String(c.failed), c.signed ? 'yes' : 'no'])]) +
    `verified ${r.totals.checked} block(s) in ${r.cores.length} core(s): all good\n`,
  formatError: (err) => (err.code === 'VERIFY_FAILED' ? formatVerifyFailures(err.details) : '')
})

/** `verify` on a command line, as the control socket runs it. */
export function verifyHandler(host: Host, line: CommandInput, io: CommandIO): Promise<VerifyReport> {
  return runOnHost(verify, host, line, io)
}

/** The indices of the single bad blocks of a core (ranges and core-level failures left out), as listed. */
export function badBlocks(c: CoreVerifyReport): number[] {
  return c.failures.filter((f) => f.index !== null && f.end === undefined).map((f) => f.index!)
}

/**
 * The per-core failures of a VERIFY_FAILED error (its details are the report): every bad block
 * index listed (up to MAX_LISTED_FAILURES per core, then a count), then the first failures in full.
 */
export function formatVerifyFailures(details: ErrorDetails): string {
  const cores = (details.cores ?? []) as CoreVerifyReport[]
  let out = ''
  for (const c of cores) {
    if (c.failures.length === 0) continue
    out += `  ${c.name} (${c.key}): ${c.failed} failure(s)\n`
    const indices = badBlocks(c)
    if (indices.length > 0) {
      const unlisted = c.failuresTruncated ? ` (and more: ${c.failures.length} failure(s) listed, ${c.failed} block(s) failed in all)` : ''
      out += `    bad block(s) (${indices.length}): ${indices.join(', ')}${unlisted}\n`
    }
    for (const f of c.failures.slice(0, 20)) out += `    ${f.index === null ? 'core' : `block ${f.index}${f.end !== undefined ? `-${f.end}` : ''}`}: ${f.error}\n`
    if (c.failures.length > 20) out += `    … ${c.failures.length - 20} more listed in --json\n`
  }
  return out
}

/** Dataset names for a mirror's cores (its holders label them by key); agencies are labelled already. */
function labelled(host: Host, entries: HeldCoreEntry[], names: Map<string, string>): HeldCoreEntry[] {
  if (host.node.role !== 'mirror') return entries
  return entries.map((e) => ({ ...e, name: names.get(toZ32(e.key)) ?? e.name }))
}

/** Core key (z32) → dataset label, from the catalog(s) this node can read (local only, never waits). */
async function coreNames(host: Host): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const role = host.node.role
  if (role === 'embassy') return out
  try {
    const readers = role === 'agency' ? [(await host.agency()).datasets] : [...(await host.mirror()).sources.values()].map((s) => s.datasets)
    for (const datasets of readers) {
      for (const info of await datasets.infos()) {
        if (info.name === null) continue // a wrong read key: labelled by key
        const [first, second] = info.cores.map(toZ32)
        if (info.kind === 'files') {
          if (first) out.set(first, `${info.name}/index`)
          if (second) out.set(second, `${info.name}/content`)
        } else if (first) out.set(first, info.name)
      }
    }
  } catch {
    // names are a convenience: without them cores are labelled by key
  }
  return out
}

function select(host: Host, entries: HeldCoreEntry[], names: Map<string, string>, name: string): HeldCoreEntry[] {
  const byName = new Set([...names].filter(([, label]) => label === name || label.startsWith(`${name}/`)).map(([key]) => key))
  const text = name.trim()
  const wanted = /^[0-9a-f]{64}$/i.test(text) ? toZ32(Buffer.from(text, 'hex')) : text
  const out = entries.filter((e) => {
    const key = toZ32(e.key)
    return (name === 'catalog' && e.dataset === null) || byName.has(key) || e.name === name || key === wanted || toZ32(e.catalog) === wanted
  })
  if (out.length === 0) {
    if (host.node.role === 'embassy') throw EmbassyError.notFound(`no held core or catalog has the key "${name.slice(0, 80)}"`, { name })
    throw EmbassyError.unknownDataset(name)
  }
  return out
}
