/**
 * `embassy drill --kit FILE | --share FILE… | --capability-file FILE [--embassy NODE_KEY]
 * [--bootstrap H:P,…] [--out DIR] [--timeout S]`: a continuity drill (lib/roles/drill.ts) —
 * rebuild the agency's data from one embassy in a scratch directory, measure RTO and RPO, write a
 * signed report. Also the status text of the last drill (formatDrillStatus).
 * `embassy drill --verify FILE` checks a report offline; `--show-key` prints the drill key each
 * embassy admits. Exit 0 passed, 1 failed (per dataset, why), 2 usage, 3 no embassy reachable.
 *
 * Owns: the drill record and its text. May import: command, text, roles/drill*, node/config, errors, ids.
 * The drill itself (roles/drill, the node) is imported when a drill runs, not when the CLI starts
 * (every command's record is loaded for the command table and --help).
 */
import path from 'node:path'
import { EmbassyError, ExitCode } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import { parseHostPort, readConfig } from '../../node/config.js'
import type { DrillSource } from '../../roles/drill.js'
import type { DrillReport, DrillVerdict } from '../../roles/drill-report.js'
import type { DrillStatus } from '../../roles/drill-schedule.js'
import { defineLocalCommand, keyArg, parseBootstrap, strOpt, usageError, type CallerProcess, type CommandInput } from '../command.js'
import { escapeText, fmtDuration, short, table } from '../text.js'

export interface DrillKeyInfo {
  /** The drill's node key: `embassy allow KEY --agency AGENCY` on each embassy. */
  drillKey: string
  agency: string
  /** The report signing key (kit: stable; capability: a fresh one per drill, so null here). */
  signer: string | null
  allowCommand: string
}

type DrillOutput = DrillReport | DrillVerdict | DrillKeyInfo

const isReport = (r: DrillOutput): r is DrillReport => 'datasets' in r
const isVerdict = (r: DrillOutput): r is DrillVerdict => 'file' in r && 'drillOk' in r

/** The kit's passphrase: $EMBASSY_PASSPHRASE, else asked on the terminal. */
export async function drillPassphrase(caller: Pick<CallerProcess, 'env' | 'prompt'>): Promise<string> {
  const env = caller.env.EMBASSY_PASSPHRASE
  if (env !== undefined && env !== '') return env
  if (!caller.prompt) throw usageError('set EMBASSY_PASSPHRASE or run on a terminal to be asked for the kit\'s passphrase', 'drill')
  return caller.prompt('kit passphrase: ')
}

/** The files of a repeatable option (`--share A --share B`), in order; [] when absent. */
function listOpt(line: CommandInput, name: string): string[] {
  const v = (line.opts as Record<string, unknown>)[name]
  if (v === undefined) return []
  const list = Array.isArray(v) ? v : [v]
  if (!list.every((x): x is string => typeof x === 'string' && x !== '')) throw usageError(`--${name} needs a file`, 'drill')
  return list
}

/**
 * Seconds a drill looks for an embassy by default: DRILL_CONNECT_TIMEOUT_MS (roles/drill.ts), which
 * --help cannot import without loading the drill (test/cli-startup.test.ts checks they agree).
 */
export const DRILL_TIMEOUT_HELP_SECONDS = 60

const ONE_SOURCE = 'give exactly one of --kit FILE, --share FILE (once per share) and --capability-file FILE'

/** Opens the drill source named by --kit, --share (shares of a kit) or --capability-file (exactly one). */
export async function loadDrillSource(kit: string | undefined, capabilityFile: string | undefined, caller: Pick<CallerProcess, 'env' | 'prompt'>, shares: readonly string[] = []): Promise<DrillSource> {
  if ([kit !== undefined, capabilityFile !== undefined, shares.length > 0].filter(Boolean).length !== 1) throw usageError(ONE_SOURCE, 'drill')
  const { drillSourceFromCapability, drillSourceFromKit, drillSourceFromShares, kitIsSealed, readSourceFile } = await import('../../roles/drill.js')
  if (shares.length > 0) return drillSourceFromShares(shares.map((f) => readSourceFile(f, 'share')), shares)
  if (kit !== undefined) {
    const text = readSourceFile(kit, 'kit')
    kitIsSealed(text, kit)
    return drillSourceFromKit(text, await drillPassphrase(caller), kit)
  }
  return drillSourceFromCapability(readSourceFile(capabilityFile!, 'capability file'))
}

export const drill = defineLocalCommand({
  name: 'drill',
  spec: {
    usage: 'embassy drill --kit FILE | --share FILE… | --capability-file FILE [--embassy NODE_KEY] [--bootstrap HOST:PORT,…] [--out DIR] [--timeout S] | --verify FILE',
    summary: 'continuity drill: rebuild the agency\'s data from one embassy in a scratch directory, measure RTO/RPO, write a signed report',
    details: [
      '--kit FILE              a passphrase recovery kit (passphrase from $EMBASSY_PASSPHRASE or a prompt); the report is signed with the kit\'s drill key',
      '--share FILE            one share of a kit split with `kit export --shares M/N`; repeat it for each share (at least M),',
      '                        as `kit import` takes them: a damaged or altered share is named and left out; the drill',
      '                        key and the report\'s signing key are the same as from the agency\'s passphrase kit',
      '--capability-file FILE  a read capability instead (the report is signed with a fresh key, named in it)',
      '--embassy NODE_KEY      rebuild from this embassy (default: one at random among those that answer)',
      '--bootstrap LIST        DHT bootstrap nodes (default: the kit\'s, else config.json of --dir)',
      '--out DIR               where drill-<time>.json and .html go (default: the current directory)',
      `--timeout S             seconds to look for an embassy (default ${DRILL_TIMEOUT_HELP_SECONDS})`,
      '--show-key              print the drill key each embassy must admit (embassy allow KEY --agency AGENCY) and exit',
      '--verify FILE           check a drill report\'s signature offline (exit 0 and the signer, 1 bad or altered)',
      'Nothing is written to any node directory; the drill never appends and never announces as the agency.',
      'Exit codes: 0 drill passed, 1 failed (each failing dataset says why), 2 usage, 3 no embassy reachable.'
    ],
    options: {
      kit: { type: 'string' },
      share: { type: 'string', multiple: true },
      'capability-file': { type: 'string' },
      embassy: { type: 'string' },
      bootstrap: { type: 'string' },
      out: { type: 'string' },
      timeout: { type: 'string' },
      'show-key': { type: 'boolean' },
      verify: { type: 'string' }
    },
    args: [0, 0]
  },
  input(line) {
    const verify = strOpt(line, 'verify')
    const kit = strOpt(line, 'kit')
    const capabilityFile = strOpt(line, 'capability-file')
    const shares = listOpt(line, 'share').map((f) => path.resolve(f))
    if (verify !== undefined) {
      if (kit !== undefined || capabilityFile !== undefined || shares.length > 0) throw usageError('--verify FILE takes no --kit, --share or --capability-file', 'drill')
      return { mode: 'verify' as const, verify: path.resolve(verify) }
    }
    if (kit === undefined && capabilityFile === undefined && shares.length === 0) throw usageError('give --kit FILE, --share FILE (once per share) or --capability-file FILE (or --verify REPORT)', 'drill')
    if ([kit !== undefined, capabilityFile !== undefined, shares.length > 0].filter(Boolean).length > 1) throw usageError(ONE_SOURCE, 'drill')
    const embassyText = strOpt(line, 'embassy')
    const embassy = embassyText === undefined ? undefined : keyArg(embassyText, 'embassy node key')
    const timeoutText = strOpt(line, 'timeout')
    let timeoutMs: number | undefined
    if (timeoutText !== undefined) {
      const n = Number(timeoutText)
      if (!/^\d+(\.\d+)?$/.test(timeoutText) || !(n > 0) || n > 86400) throw usageError('--timeout must be a number of seconds (0 < S ≤ 86400)', 'drill')
      timeoutMs = Math.round(n * 1000)
    }
    return {
      mode: 'drill' as const,
      kit: kit === undefined ? undefined : path.resolve(kit),
      capabilityFile: capabilityFile === undefined ? undefined : path.resolve(capabilityFile),
      shares,
      embassy,
      bootstrap: parseBootstrap(strOpt(line, 'bootstrap'), 'drill'),
      out: path.resolve(strOpt(line, 'out') ?? '.'),
      timeoutMs,
      showKey: line.opts['show-key'] === true
    }
  },
  async run(input, caller): Promise<DrillOutput> {
    if (input.mode === 'verify') return (await import('../../roles/drill-report.js')).verifyDrillReport(input.verify)
    const source = await loadDrillSource(input.kit, input.capabilityFile, caller, input.shares)
    if (source.damagedShares && source.damagedShares.length > 0) {
      caller.io.notice(`warning: damaged or altered share${source.damagedShares.length === 1 ? '' : 's'}, not used: ${source.damagedShares.join(', ')} (make a new kit: embassy kit export)`)
    }
    const agency = toZ32(source.agencyNodeKey)
    if (input.showKey) {
      const drillKey = toZ32(source.identity.publicKey)
      return { drillKey, agency, signer: source.signerKind === 'kit' ? toZ32(source.signer.publicKey) : null, allowCommand: `embassy allow ${drillKey} --agency ${agency}` }
    }
    if (input.embassy && source.kind !== 'capability' && !source.known.some((k) => k.equals(input.embassy!))) {
      throw EmbassyError.badArgument(`${toZ32(input.embassy)} is not one of the embassies this kit's agency admits (its allow list and peers); drill one of: ${source.known.map((k) => toZ32(k)).join(', ') || 'none listed'}`)
    }
    let bootstrap = input.bootstrap ?? (source.bootstrap.length > 0 ? source.bootstrap : undefined)
    if (!bootstrap && (await import('../../node/node.js')).EmbassyNode.exists(caller.dir)) {
      const config = readConfig(caller.dir)
      if (config.bootstrap.length > 0) bootstrap = config.bootstrap
    }
    if (!bootstrap) throw EmbassyError.noBootstrap()
    const { runDrill } = await import('../../roles/drill.js')
    return runDrill({
      source,
      bootstrap: bootstrap.map((hp) => parseHostPort(hp)),
      ...(input.embassy ? { embassy: input.embassy } : {}),
      out: input.out,
      ...(input.timeoutMs !== undefined ? { connectTimeoutMs: input.timeoutMs } : {}),
      onProgress: (text) => caller.io.status(text)
    })
  },
  exitCode: (r: DrillOutput) => {
    if (isVerdict(r)) return r.ok ? ExitCode.OK : ExitCode.FAILED
    if (isReport(r)) return r.ok ? ExitCode.OK : r.embassy === null ? ExitCode.UNREACHABLE : ExitCode.FAILED
    return ExitCode.OK
  },
  format: (r: DrillOutput) => {
    if (isVerdict(r)) {
      return r.ok
        ? `drill report ${escapeText(r.file)}: signature OK\nsigned by ${escapeText(r.signer ?? '')} (${escapeText(r.signerKind ?? '')}); the drill ${r.drillOk ? 'passed' : 'FAILED'} (embassy ${escapeText(r.embassy ?? 'none')}, ${escapeText(r.startedAt ?? '')})\n`
        : `drill report ${escapeText(r.file)}: NOT VALID — ${escapeText(r.error ?? '')}\n`
    }
    if (!isReport(r)) return `drill key ${r.drillKey}\nadmit it on each embassy of agency ${r.agency}:\n  ${r.allowCommand}\n${r.signer ? `reports are signed by ${r.signer}\n` : ''}`
    const ms = (v: number | null): string => (v === null ? '—' : `${v} ms`)
    const rows = r.datasets.map((d) => [escapeText(d.name), d.ok ? 'ok' : 'FAILED', `${d.fetched}/${d.length}`, String(d.bytes), escapeText(d.error ?? '')])
    return (
      (r.datasets.length > 0 ? table([['DATASET', 'STATE', 'BLOCKS', 'BYTES', 'WHY'], ...rows]) : '') +
      (r.error ? `${escapeText(r.error)}\n` : '') +
      `embassy ${r.embassy ?? 'none reachable'}: first record ${ms(r.rto.firstRecordMs)}, full copy ${ms(r.rto.fullCopyMs)}, ${r.bytes} bytes; recovery point ${r.rpo.blocksBehind} block(s) / ${r.rpo.secondsBehind} s behind\n` +
      `drill ${r.ok ? 'PASSED' : 'FAILED'}; signed report ${r.reportFile} (signer ${r.signer})\n`
    )
  }
})

/** A duration for people: ms, s, min or h. */
/** `embassy status` text of the last continuity drill (and the schedule, when one runs): a line or four. */
export function formatDrillStatus(d: DrillStatus | undefined, now: number): string {
  if (!d) return ''
  const every = d.intervalMs !== null ? `drills every ${fmtDuration(d.intervalMs)}${d.running ? ', one running now' : d.nextAt !== null ? `, next in ${fmtDuration(Math.max(0, d.nextAt - now))}` : ''}\n` : ''
  const l = d.last
  if (!l) return every + 'last drill: none yet\n'
  const ms = (v: number | null): string => (v === null ? '—' : `${v} ms`)
  return (
    every +
    `last drill: ${l.ok ? 'PASSED' : 'FAILED'} ${escapeText(l.finishedAt)} (${fmtDuration(Math.max(0, now - l.at * 1000))} ago), embassy ${l.embassy === null ? 'none reachable' : short(escapeText(l.embassy))}\n` +
    `  RTO first record ${ms(l.firstRecordMs)}, full copy ${ms(l.fullCopyMs)}; RPO ${l.blocksBehind} block(s) / ${l.secondsBehind} s behind\n` +
    (l.error ? `  why: ${escapeText(l.error)}\n` : '') +
    `  report ${escapeText(l.reportFile)}\n`
  )
}
