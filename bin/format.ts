/** Human-readable output of command results (stdout). --json bypasses all of this. */
import type { DatasetSummary } from '../lib/index.js'
import { fmtBytes } from './progress.js'

type Formatter = (result: any) => string

function table(rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n'
}

export const formatters: Record<string, Formatter> = {
  init: (r) => `initialised ${r.role} node\nnode key:    ${r.nodeKey}\n${r.catalogKey ? `catalog key: ${r.catalogKey}\n` : ''}`,
  id: (r) => `role:        ${r.role}\n${r.name ? `name:        ${r.name}\n` : ''}node key:    ${r.nodeKey}\n${r.catalogKey ? `catalog key: ${r.catalogKey}\n` : ''}`,
  'dataset create': (r: DatasetSummary) => `created ${r.kind} dataset "${r.name}"\nkey: ${r.key}\n`,
  append: (r) => `appended ${r.appended} record${r.appended === 1 ? '' : 's'} to "${r.dataset}" (length ${r.length})\n`,
  publish: (r) =>
    `published ${r.source} to "${r.dataset}": ${r.added} added, ${r.changed} changed, ${r.removed} removed, ${fmtBytes(r.bytesAdded)} written (version ${r.version})\n`,
  list: (r: { datasets: DatasetSummary[] }) =>
    r.datasets.length === 0
      ? 'no datasets\n'
      : table([
          ['NAME', 'KIND', 'LENGTH', 'SIZE', 'DESCRIPTION'],
          ...r.datasets.map((d) => [d.name || '(sealed)', d.kind, String(d.length), fmtBytes(d.byteLength), d.description])
        ]),
  read: () => '',
  export: (r) =>
    r.kind === 'log'
      ? `exported ${r.records} records of "${r.dataset}" to ${r.path}\n`
      : `exported ${r.files} files (${fmtBytes(r.bytes)}) of "${r.dataset}" to ${r.path}\n`,
  capability: (r) => `${r.readCapability}\n`
}
