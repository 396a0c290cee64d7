/**
 * `embassy audit [--embassy NODE_KEY] [--dataset NAME] [--blocks N] [--json] [--export FILE]`:
 * one audit now, through the running node — every connected embassy × every core (or those the
 * options select), N random samples each, answered from the embassy's own copy within the
 * deadline. Exit 0 when every audited embassy passes (each with sampled > 0), 1 when any fails,
 * 3 when no embassy is reachable. `--export FILE` writes the signed audit log instead.
 *
 * Owns: the audit record. May import: command, host, ids, errors, custody/ (types).
 */
import path from 'node:path'
import { EmbassyError, ExitCode } from '../../errors.js'
import { parseKey, toZ32 } from '../../ids.js'
import type { AuditResult } from '../../custody/index.js'
import { defineCommand, intOpt, strOpt } from '../command.js'
import { table } from '../text.js'

export interface AuditOutput {
  ok: boolean
  results: AuditResult[]
}

export interface AuditExportOutput {
  export: string
  entries: number
}

/** ok: every audited embassy passed every core, each with at least one block sampled. */
function outcome(results: AuditResult[]): AuditOutput {
  const byEmbassy = new Map<string, AuditResult[]>()
  for (const r of results) byEmbassy.set(r.embassy, [...(byEmbassy.get(r.embassy) ?? []), r])
  const ok = results.length > 0 && [...byEmbassy.values()].every((rs) => rs.every((r) => r.failed === 0 && !r.error) && rs.some((r) => r.sampled > 0))
  return { ok, results }
}

export const audit = defineCommand({
  name: 'audit',
  spec: {
    usage: 'embassy audit [--embassy NODE_KEY] [--dataset NAME] [--blocks N] [--export FILE]',
    summary: 'challenge embassies now to show they hold the blocks (agency or auditor, through the running node); exit 1 on any failure',
    details: [
      '--embassy NODE_KEY  audit only this embassy (default: every connected one)',
      '--dataset NAME      audit only this dataset\'s cores ("catalog" for the catalog)',
      '--blocks N          random blocks challenged per core (default: config audit.samples, 4)',
      '--export FILE       write the signed audit log (with the embassies\' signed answers) to FILE',
      'Exit codes: 0 every embassy passed, 1 any failed, 3 no embassy reachable.'
    ],
    options: { embassy: { type: 'string' }, dataset: { type: 'string' }, blocks: { type: 'string' }, export: { type: 'string' } },
    args: [0, 0]
  },
  prepare: async (line) => {
    const file = strOpt(line, 'export')
    return file ? { ...line, opts: { ...line.opts, export: path.resolve(file) } } : line
  },
  input: (line) => {
    const blocks = intOpt(line, 'blocks')
    if (blocks === 0) throw EmbassyError.badArgument('--blocks must be at least 1')
    const embassy = strOpt(line, 'embassy')
    return { embassy: embassy === undefined ? undefined : toZ32(parseKey(embassy, 'embassy node key')), dataset: strOpt(line, 'dataset'), blocks, export: strOpt(line, 'export') }
  },
  async handler(host, input): Promise<AuditOutput | AuditExportOutput> {
    if (host.node.role === 'auditor') {
      const auditor = await host.auditor()
      if (input.export) return { export: input.export, entries: auditor.log.export(input.export).entries }
      if (!host.online) throw EmbassyError.peerUnreachable('embassy audit reaches the embassies through the running node: start it with `embassy run`')
      if (input.dataset !== undefined) throw EmbassyError.badArgument('--dataset needs the read key (dataset names are sealed): a blind auditor audits every core')
      return outcome(await auditor.auditNow({ embassy: input.embassy, blocks: input.blocks }))
    }
    const agency = await host.agency()
    const runner = agency.desk.audits
    if (input.export) {
      const r = runner.log.export(input.export)
      return { export: r.file, entries: r.entries }
    }
    if (!host.online) throw EmbassyError.peerUnreachable('embassy audit challenges the embassies through the running node: start it with `embassy run`')
    let cores: Set<string> | undefined
    if (input.dataset !== undefined) {
      if (input.dataset === 'catalog') cores = new Set([toZ32(agency.catalog.key)])
      else {
        const info = (await agency.datasets.infos()).find((i) => i.name === input.dataset)
        if (!info) throw EmbassyError.unknownDataset(input.dataset)
        cores = new Set(info.cores.map((k) => toZ32(k)))
      }
    }
    return outcome(await runner.auditNow({ embassy: input.embassy, cores, blocks: input.blocks }))
  },
  exitCode: (r: AuditOutput | AuditExportOutput) => ('ok' in r && !r.ok ? ExitCode.FAILED : ExitCode.OK),
  format: (r) => {
    if ('export' in r) return `wrote ${r.entries} audit(s) with the embassies' signed answers to ${r.export}\n`
    const rows = r.results.map((x) => [x.embassy.slice(0, 12), x.dataset ?? 'catalog', x.core.slice(0, 12), String(x.sampled), String(x.passed), String(x.failed), `${x.ms} ms`, x.error ?? ''])
    return table([['EMBASSY', 'DATASET', 'CORE', 'SAMPLED', 'PASSED', 'FAILED', 'TIME', 'ERROR'], ...rows]) + (r.ok ? 'audit passed: every embassy answered every challenge from its own copy\n' : 'audit FAILED: see the rows with failures\n')
  }
})
