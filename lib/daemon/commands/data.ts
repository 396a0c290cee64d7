/**
 * Datasets: `embassy dataset create`, `append`, `publish`, `list`, `read`, `export`.
 *
 * Owns: these records (their caller-side preparation: paths, NDJSON from stdin) and their text.
 * May import: command, host, text, data/ and roles/ (types).
 */
import { isUtf8 } from 'node:buffer'
import path from 'node:path'
import { EmbassyError } from '../../errors.js'
import type { DatasetSummary, ExportResult, PublishResult } from '../../data/index.js'
import type { DatasetKindName } from '../../../protocol/index.js'
import { arg, defineCommand, intOpt, noInput, strOpt, usageError, type CallerProcess, type CommandInput } from '../command.js'
import type { Agency, RestoreStatus } from '../../roles/agency.js'
import { toZ32 } from '../../ids.js'
import { escapeText, fmtBytes, table } from '../text.js'

export const datasetCreate = defineCommand({
  name: 'dataset create',
  spec: {
    usage: 'embassy dataset create NAME [--kind log|files] [--description TEXT] [--content-type TYPE] [--pad-records BYTES]',
    summary: 'add a dataset to the agency\'s catalog',
    details: ['--kind K          log (records, the default) or files (a versioned file tree)', '--description T   free text, sealed with the read key', '--content-type T   media type of a log\'s records (default application/json)', '--pad-records N    pad each record to a multiple of N bytes (≤ 65536): holders see size classes, not record sizes'],
    options: { kind: { type: 'string' }, description: { type: 'string' }, 'content-type': { type: 'string' }, 'pad-records': { type: 'string' } },
    args: [1, 1]
  },
  input: (line) => ({ name: arg(line, 0, 'NAME'), kind: strOpt(line, 'kind'), description: strOpt(line, 'description'), contentType: strOpt(line, 'content-type'), recordPad: intOpt(line, 'pad-records') }),
  async handler(host, input): Promise<DatasetSummary> {
    const agency = await host.agency()
    // The agency checks the kind (BAD_ARGUMENT for anything but log or files).
    const opts: { kind: DatasetKindName; description?: string; contentType?: string; recordPad?: number } = { kind: (input.kind ?? 'log') as DatasetKindName }
    if (input.recordPad !== undefined) opts.recordPad = input.recordPad
    if (input.description !== undefined) opts.description = input.description
    if (input.contentType !== undefined) opts.contentType = input.contentType
    return agency.createDataset(input.name, opts)
  },
  format: (r) => `created ${r.kind} dataset "${r.name}"\nkey: ${r.key}\n`
})

/** Decodes UTF-8 strictly: invalid bytes are an error, never U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * NDJSON from stdin: non-blank lines and their 1-based line numbers. A line that is not valid
 * UTF-8 is BAD_RECORD naming it (nothing is appended); bytes are never replaced.
 */
async function readNdjson(stdin: CallerProcess['stdin']): Promise<{ texts: string[]; lines: number[] }> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  // Whole input first: a character split across stdin chunks is whole here.
  const all = Buffer.concat(chunks)
  // Valid UTF-8 (the common case) is checked and decoded once, then split on line breaks (a 0x0a
  // byte is never inside a multi-byte character, so the lines are the byte lines). Otherwise the
  // lines are decoded one by one to name the first bad one: nothing is appended either way.
  return isUtf8(all) ? splitLines(all.toString('utf8')) : splitInvalid(all)
}

/** Non-blank lines of valid text (CRLF or LF), with their line numbers (blank lines count). */
function splitLines(text: string): { texts: string[]; lines: number[] } {
  const texts: string[] = []
  const lines: number[] = []
  let start = 0
  for (let n = 1; start <= text.length; n++) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    const raw = text.slice(start, end)
    start = end + 1
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line.trim() === '') continue
    texts.push(line)
    lines.push(n)
  }
  return { texts, lines }
}

/** Input that is not valid UTF-8: BAD_RECORD naming its first bad line. */
function splitInvalid(all: Buffer): never {
  let start = 0
  for (let n = 1; start <= all.byteLength; n++) {
    let end = all.indexOf(0x0a, start)
    if (end === -1) end = all.byteLength
    const bytes = all.subarray(start, end)
    start = end + 1
    try {
      UTF8.decode(bytes)
    } catch {
      throw EmbassyError.badRecord(n, 'not valid UTF-8 (pass text as UTF-8; binary records need the library\'s appendBytes)')
    }
  }
  // isUtf8() refused what every line decodes: not expected, still refused whole.
  throw EmbassyError.badRecord(1, 'not valid UTF-8 (pass text as UTF-8; binary records need the library\'s appendBytes)')
}

export interface AppendResult {
  dataset: string
  appended: number
  length: number
  /** With --wait-for-custody: the embassies (node keys) that proved they hold the new length. */
  custody?: { wanted: number; heldBy: string[]; waitedMs: number }
}

/** --timeout of --wait-for-custody when not given (seconds). */
export const CUSTODY_WAIT_DEFAULT_S = 60

export const append = defineCommand({
  name: 'append',
  spec: {
    usage: 'embassy append NAME [JSON …] [--wait-for-custody [N]] [--timeout S]   (or NDJSON on stdin)',
    summary: 'append JSON records to a log dataset; a bad line appends nothing',
    details: [
      'Each record is stored as one NDJSON line (a line break between JSON tokens becomes a space);',
      'a line that is not JSON or not valid UTF-8 is BAD_RECORD naming it, and nothing is appended.',
      '--wait-for-custody [N]  then wait until N embassies (default 1) proved they hold the records',
      '                        (signed receipts); needs the running node. Until then the records',
      '                        exist only at home. Exit 3 (TIMEOUT) when they do not in time:',
      '                        the records stay appended.',
      '--timeout S             seconds to wait for custody (default 60)'
    ],
    options: { 'wait-for-custody': { type: 'string' }, timeout: { type: 'string' } },
    optionalValues: { 'wait-for-custody': '1' },
    args: [1, Infinity]
  },
  /** Without JSON arguments the records come from stdin, read here (the running node has no stdin of ours). */
  async prepare(line, { stdin, io }): Promise<CommandInput> {
    if (line.args.length !== 1) {
      io.notice('embassy: warning: records on the command line can be read by every local user (ps, /proc/PID/cmdline); pipe NDJSON on stdin for anything not public')
      return line
    }
    if (stdin.isTTY) throw usageError('no records: pass JSON arguments or pipe NDJSON on stdin', 'append')
    return { ...line, records: await readNdjson(stdin) }
  },
  input(line) {
    const given = line.records ?? { texts: line.args.slice(1), lines: line.args.slice(1).map((_, i) => i + 1) }
    if (given.texts.length === 0) throw EmbassyError.badArgument('no records given: pass JSON arguments or NDJSON on stdin')
    const records = { texts: given.texts, lines: given.lines }
    const wait = line.opts['wait-for-custody']
    let waitFor: number | undefined
    if (wait !== undefined) {
      waitFor = intOpt(line, 'wait-for-custody')
      if (!waitFor) throw usageError('--wait-for-custody needs a number of embassies ≥ 1', 'append')
    } else if (line.opts.timeout !== undefined) throw usageError('--timeout goes with --wait-for-custody', 'append')
    const timeout = intOpt(line, 'timeout') ?? CUSTODY_WAIT_DEFAULT_S
    if (timeout < 1) throw usageError('--timeout must be at least 1 second', 'append')
    return { name: arg(line, 0, 'NAME'), records, waitFor, timeoutMs: timeout * 1000 }
  },
  async handler(host, { name, records, waitFor, timeoutMs }, io): Promise<AppendResult> {
    const agency = await host.agency()
    if (waitFor !== undefined) {
      // Checked before appending: a refusal here leaves nothing half done.
      if (!host.online) throw EmbassyError.notAvailable('--wait-for-custody needs the running node (`embassy run`): only it talks to the embassies; nothing was appended')
      const admitted = host.node.config.allow.length
      if (waitFor > admitted) throw EmbassyError.badArgument(`--wait-for-custody ${waitFor}: this agency admits only ${admitted} peer(s); nothing was appended`)
    }
    const result = await agency.appendJson(name, records.texts, { lines: records.lines, onProgress: (done, total) => io.progress('append', done, total) })
    if (waitFor === undefined) return { dataset: name, ...result }
    const started = Date.now()
    const heldBy = await waitForCustody(agency, name, result.length, waitFor, timeoutMs)
    const waitedMs = Date.now() - started
    if (heldBy.length < waitFor) {
      throw EmbassyError.custodyTimeout(
        `appended ${result.appended} record(s) to "${name}" (length ${result.length}), but only ${heldBy.length} of ${waitFor} embassies proved they hold them after ${Math.round(timeoutMs / 1000)} s: until then they exist only at home (they stay appended; embassies pick them up when they connect)`,
        { dataset: name, appended: result.appended, length: result.length, wanted: waitFor, heldBy, waitedMs }
      )
    }
    return { dataset: name, ...result, custody: { wanted: waitFor, heldBy, waitedMs } }
  },
  format: (r) =>
    `appended ${r.appended} record${r.appended === 1 ? '' : 's'} to "${r.dataset}" (length ${r.length})\n` +
    (r.custody ? `held by ${r.custody.heldBy.length} embass${r.custody.heldBy.length === 1 ? 'y' : 'ies'} (${r.custody.waitedMs} ms): ${r.custody.heldBy.join(', ')}\n` : '')
})

/**
 * Waits until `want` admitted embassies proved (verified receipts) that they hold `name`'s log up
 * to `length` on its current fork, or `timeoutMs` passes; the embassies that did, by node key.
 */
async function waitForCustody(agency: Agency, name: string, length: number, want: number, timeoutMs: number): Promise<string[]> {
  const core = (await agency.datasets.openLog(name)).core
  const coreKey = toZ32(core.key!)
  const holding = (): string[] =>
    agency.node.config.allow.filter((e) => {
      if (agency.ledger.role(e) !== 'embassy') return false
      const r = agency.ledger.get(e, coreKey)
      return !!r && r.fork === core.fork && r.length >= length
    })
  let held = holding()
  if (held.length >= want) return held
  return new Promise<string[]>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      agency.off('receipt', onreceipt)
      resolve(held)
    }
    const onreceipt = () => {
      held = holding()
      if (held.length >= want) done()
    }
    const timer = setTimeout(done, timeoutMs)
    agency.on('receipt', onreceipt)
  })
}

/** Argument `i` as an absolute path against the caller's working directory (a running node has another). */
function resolveArg(line: CommandInput, i: number): CommandInput {
  const v = line.args[i]
  if (!v) return line
  const args = [...line.args]
  args[i] = path.resolve(v)
  return { ...line, args }
}

export type PublishOutput = PublishResult & { dataset: string; source: string }

export const publish = defineCommand({
  name: 'publish',
  spec: {
    usage: 'embassy publish NAME PATH',
    summary: 'publish a folder (the dataset becomes it) or one file into a files dataset; only changes are appended',
    options: {},
    args: [2, 2]
  },
  prepare: async (line) => resolveArg(line, 1),
  input: (line) => ({ name: arg(line, 0, 'NAME'), source: path.resolve(arg(line, 1, 'PATH')) }),
  async handler(host, { name, source }, io): Promise<PublishOutput> {
    const agency = await host.agency()
    const result = await agency.publish(name, source, (done, total) => io.progress('publish', done, total))
    return { dataset: name, source, ...result }
  },
  format: (r) =>
    `published ${r.source} to "${r.dataset}": ${r.added} added, ${r.changed} changed, ${r.removed} removed, ${fmtBytes(r.bytesAdded)} written (version ${r.version})\n` +
    (r.skipped ?? []).map((s) => `  not published: ${s.path}: ${s.reason}\n`).join('')
})

export const list = defineCommand({
  name: 'list',
  spec: {
    usage: 'embassy list',
    summary: 'list datasets with their size',
    options: {},
    args: [0, 0]
  },
  input: noInput,
  async handler(host): Promise<ListResult> {
    const reader = await host.reader()
    const datasets = await reader.list()
    // A restoring agency lists what came back so far: say so, or an empty list reads as "no datasets".
    if (host.node.role === 'agency') {
      const agency = await host.agency()
      if (agency.restoring) {
        let restore: RestoreStatus | undefined
        try {
          restore = await agency.restoreStatus()
        } catch {
          // No restore gate here (the agency is not open for writes): say only that it restores.
        }
        return { datasets, restoring: true, ...(restore ? { restore } : {}) }
      }
    }
    return { datasets }
  },
  format: (r) => {
    const restoring = r.restoring
      ? `restoring from embassies (${r.restore ? `${escapeText(r.restore.state)}, ${r.restore.heldBlocks}/${r.restore.totalBlocks} blocks held` : 'starting'}): ` +
        (r.datasets.length === 0 ? 'no dataset is back yet' : 'more datasets may appear') +
        '; `embassy status` shows the restore\n'
      : ''
    if (r.datasets.length === 0) return restoring || 'no datasets\n'
    return table([['NAME', 'KIND', 'LENGTH', 'SIZE', 'DESCRIPTION'], ...r.datasets.map((d) => [escapeText(d.name) || '(sealed)', escapeText(d.kind), String(d.length), fmtBytes(d.byteLength), escapeText(d.description ?? '')])]) + restoring
  }
})

/** `list --json`: the datasets, and on an agency that is restoring, that it is and how far. */
export interface ListResult {
  datasets: DatasetSummary[]
  /** True while this agency restores from its embassies (the list is not complete yet). */
  restoring?: boolean
  restore?: RestoreStatus
}

/** One record in `read --json`. */
export interface ReadRecord {
  seq: number
  time: number
  type: string
  value: unknown
}

/** `read`: the records themselves with --json; else they went out as lines and only the count is left. */
export type ReadResult = { dataset: string; records: ReadRecord[] } | { dataset: string; count: number }

export const read = defineCommand({
  name: 'read',
  spec: {
    usage: 'embassy read NAME [--start N] [--end N]',
    summary: 'print a log\'s records as NDJSON (with --json: one document with seq and time)',
    options: { start: { type: 'string' }, end: { type: 'string' } },
    args: [1, 1]
  },
  input(line) {
    const name = arg(line, 0, 'NAME')
    const start = intOpt(line, 'start')
    const end = intOpt(line, 'end')
    if (start !== undefined && end !== undefined && end < start) throw EmbassyError.badArgument('--end must not be below --start')
    return { name, start, end }
  },
  async handler(host, { name, start, end }, io): Promise<ReadResult> {
    const reader = await host.reader()
    const opts: { start?: number; end?: number; wait: boolean } = { wait: host.online }
    if (start !== undefined) opts.start = start
    if (end !== undefined) opts.end = end
    const records: ReadRecord[] = []
    let count = 0
    for await (const r of reader.read(name, opts)) {
      count++
      if (io.json) records.push({ seq: r.seq, time: r.time, type: r.type, value: r.type === 'json' ? JSON.parse(r.text) : r.text })
      else io.line(r.text)
    }
    return io.json ? { dataset: name, records } : { dataset: name, count }
  },
  format: () => ''
})

export type ExportOutput = ExportResult & { dataset: string }

export const exportDataset = defineCommand({
  name: 'export',
  spec: {
    usage: 'embassy export NAME DIR',
    summary: 'write a dataset to DIR: a log as DIR/NAME.ndjson, files as the tree, byte-identical',
    options: {},
    args: [2, 2]
  },
  prepare: async (line) => resolveArg(line, 1),
  input: (line) => ({ name: arg(line, 0, 'NAME'), dir: path.resolve(arg(line, 1, 'DIR')) }),
  async handler(host, { name, dir }, io): Promise<ExportOutput> {
    const reader = await host.reader()
    return { dataset: name, ...(await reader.export(name, dir, (done, total) => io.progress('export', done, total))) }
  },
  format: (r) => (r.kind === 'log' ? `exported ${r.records} records of "${r.dataset}" to ${r.path}\n` : formatFilesExport(r))
})

/** A files export: what was written, then every entry left out and why (nothing is written outside DIR). */
function formatFilesExport(r: ExportOutput): string {
  const links = r.links ? `, ${r.links} link${r.links === 1 ? '' : 's'}` : ''
  let out = `exported ${r.files} files (${fmtBytes(r.bytes)})${links} of "${r.dataset}" to ${r.path}\n`
  const skipped = r.skipped ?? []
  const count = r.skippedCount ?? skipped.length
  if (count > 0) {
    out += `skipped ${count} entr${count === 1 ? 'y' : 'ies'} (nothing is written outside ${r.path}):\n`
    for (const s of skipped) out += `  ${s.path}: ${s.reason}\n`
    if (count > skipped.length) out += `  … and ${count - skipped.length} more\n`
  }
  return out
}
