/**
 * Datasets: `embassy dataset create`, `append`, `publish`, `list`, `read`, `export`.
 *
 * Owns: these records (their caller-side preparation: paths, NDJSON from stdin) and their text.
 * May import: command, host, text, data/ and roles/ (types).
 */
import path from 'node:path'
import { EmbassyError } from '../../errors.js'
import type { DatasetSummary, ExportResult, PublishResult } from '../../data/index.js'
import type { DatasetKindName } from '../../../protocol/index.js'
import { arg, defineCommand, intOpt, noInput, strOpt, usageError, type CallerProcess, type CommandInput } from '../command.js'
import { escapeText, fmtBytes, table } from '../text.js'

export const datasetCreate = defineCommand({
  name: 'dataset create',
  spec: {
    usage: 'embassy dataset create NAME [--kind log|files] [--description TEXT] [--content-type TYPE]',
    summary: 'add a dataset to the agency\'s catalog',
    details: ['--kind K          log (records, the default) or files (a versioned file tree)', '--description T   free text, sealed with the read key', '--content-type T   media type of a log\'s records (default application/json)'],
    options: { kind: { type: 'string' }, description: { type: 'string' }, 'content-type': { type: 'string' } },
    args: [1, 1]
  },
  input: (line) => ({ name: arg(line, 0, 'NAME'), kind: strOpt(line, 'kind'), description: strOpt(line, 'description'), contentType: strOpt(line, 'content-type') }),
  async handler(host, input): Promise<DatasetSummary> {
    const agency = await host.agency()
    // The agency checks the kind (BAD_ARGUMENT for anything but log or files).
    const opts: { kind: DatasetKindName; description?: string; contentType?: string } = { kind: (input.kind ?? 'log') as DatasetKindName }
    if (input.description !== undefined) opts.description = input.description
    if (input.contentType !== undefined) opts.contentType = input.contentType
    return agency.createDataset(input.name, opts)
  },
  format: (r) => `created ${r.kind} dataset "${r.name}"\nkey: ${r.key}\n`
})

/** NDJSON from stdin: non-blank lines and their 1-based line numbers. */
async function readNdjson(stdin: CallerProcess['stdin']): Promise<{ texts: string[]; lines: number[] }> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  const all = Buffer.concat(chunks).toString('utf8').split('\n')
  const texts: string[] = []
  const lines: number[] = []
  all.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line.trim() === '') return
    texts.push(line)
    lines.push(i + 1)
  })
  return { texts, lines }
}

export interface AppendResult {
  dataset: string
  appended: number
  length: number
}

export const append = defineCommand({
  name: 'append',
  spec: {
    usage: 'embassy append NAME [JSON …]   (or NDJSON on stdin)',
    summary: 'append JSON records to a log dataset; a bad line appends nothing',
    options: {},
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
    const records = line.records ?? { texts: line.args.slice(1), lines: line.args.slice(1).map((_, i) => i + 1) }
    if (records.texts.length === 0) throw EmbassyError.badArgument('no records given: pass JSON arguments or NDJSON on stdin')
    return { name: arg(line, 0, 'NAME'), records }
  },
  async handler(host, { name, records }, io): Promise<AppendResult> {
    const agency = await host.agency()
    const result = await agency.appendJson(name, records.texts, { lines: records.lines, onProgress: (done, total) => io.progress('append', done, total) })
    return { dataset: name, ...result }
  },
  format: (r) => `appended ${r.appended} record${r.appended === 1 ? '' : 's'} to "${r.dataset}" (length ${r.length})\n`
})

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
  async handler(host): Promise<{ datasets: DatasetSummary[] }> {
    const reader = await host.reader()
    return { datasets: await reader.list() }
  },
  format: (r) =>
    r.datasets.length === 0
      ? 'no datasets\n'
      : table([['NAME', 'KIND', 'LENGTH', 'SIZE', 'DESCRIPTION'], ...r.datasets.map((d) => [escapeText(d.name) || '(sealed)', escapeText(d.kind), String(d.length), fmtBytes(d.byteLength), escapeText(d.description ?? '')])])
})

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
