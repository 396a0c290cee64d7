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

formatters.demo = (r) =>
  `demo complete: ${r.records} records and ${r.files} files replicated to two blind embassies in ${(r.replicationMs / 1000).toFixed(1)} s, ` +
  `live append held in ${r.liveAppendMs} ms, read back through the embassies by a mirror in ${(r.mirrorReadMs / 1000).toFixed(1)} s; ` +
  `plaintext in embassy storage: ${r.plaintextHits}\n`

function age(ms: number | null): string {
  if (ms === null) return 'never'
  if (ms < 1000) return `${ms} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(0)} s`
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(0)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

/** A small progress bar for status tables on a terminal (bytes or blocks held of the total). */
function bar(done: number, total: number): string {
  if (!process.stdout.isTTY) return ''
  const frac = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(frac * 12)
  return `${'█'.repeat(filled)}${'░'.repeat(12 - filled)} ${(frac * 100).toFixed(0).padStart(3)}%`
}

function short(key: string): string {
  return key.length > 16 ? `${key.slice(0, 8)}…${key.slice(-4)}` : key
}

formatters.status = (s) => {
  const head = `${s.role}${s.name ? ` "${s.name}"` : ''} ${s.nodeKey}\n${s.running ? 'running' : 'not running (read from storage)'}, ${s.peers.length} peer(s) connected${s.peers.length ? ': ' + s.peers.map((p: { role: string; nodeKey: string }) => `${p.role} ${short(p.nodeKey)}`).join(', ') : ''}\n`
  if (s.role === 'agency') {
    const rows: string[][] = [['DATASET', 'KIND', 'LENGTH', 'SIZE', 'EMBASSY', 'HELD', 'BEHIND', 'RECEIPT AGE', 'LINK', process.stdout.isTTY ? 'PROVEN' : '']]
    for (const d of s.datasets) {
      if (d.embassies.length === 0) rows.push([d.name, d.kind, String(d.length), fmtBytes(d.byteLength), '(none)', '', '', '', '', ''])
      for (const e of d.embassies) {
        rows.push([
          d.name,
          d.kind,
          String(d.length),
          fmtBytes(d.byteLength),
          short(e.nodeKey),
          String(e.heldLength),
          e.behindBlocks ? `${e.behindBlocks} blk / ${fmtBytes(e.behindBytes)}` : 'up to date',
          age(e.receiptAge),
          e.connected ? 'connected' : 'offline',
          bar(d.byteLength - e.behindBytes, d.byteLength)
        ])
      }
    }
    const alarms = s.alarms.length ? `\n${s.alarms.length} custody alarm(s), newest:\n` + s.alarms.slice(-5).map((a: { time: number; kind: string; peer: string; detail: string }) => `  ${new Date(a.time).toISOString()} ${a.kind} from ${short(a.peer)}: ${a.detail}`).join('\n') + '\n' : '\nno custody alarms\n'
    return head + '\n' + table(rows) + alarms
  }
  if (s.role === 'embassy') {
    if (s.agencies.length === 0) return head + '\nfollowing no agency yet: embassy follow AGENCY_NODE_KEY\n'
    let out = head
    for (const a of s.agencies) {
      out += `\nagency ${a.nodeKey} (${a.connected ? 'connected' : 'offline'}), catalog ${a.catalogKey ?? '(not learnt yet)'}\n`
      out += `  ${a.complete ? 'complete' : 'catching up'}; last receipt sent ${a.lastReceiptAt ? new Date(a.lastReceiptAt).toISOString() : 'never'} (${a.receiptsSent} sent)\n`
      out += table([['  CORE', 'LENGTH', 'HELD', 'SIZE', 'PEERS', ''], ...a.cores.map((c: { key: string; dataset: string; length: number; contiguousLength: number; byteLength: number; peers: number }) => [`  ${c.dataset === 'catalog' ? 'catalog' : short(c.key)}`, String(c.length), String(c.contiguousLength), fmtBytes(c.byteLength), String(c.peers), bar(c.contiguousLength, c.length)])])
      for (const p of a.problems) out += `  problem: ${p}\n`
    }
    return out
  }
  let out = head
  if (s.sources.length === 0) return head + '\nreading no agency yet: embassy mirror READ_CAPABILITY\n'
  for (const src of s.sources) {
    out += `\nagency ${src.agencyNodeKey}, catalog ${src.catalogKey}: ${src.complete ? 'complete' : 'catching up'}\n`
    out += table([['  CORE', 'LENGTH', 'HELD', 'SIZE', 'PEERS'], ...src.cores.map((c: { key: string; dataset: string; length: number; contiguousLength: number; byteLength: number; peers: number }) => [`  ${c.dataset === 'catalog' ? 'catalog' : short(c.key)}`, String(c.length), String(c.contiguousLength), fmtBytes(c.byteLength), String(c.peers)])])
  }
  return out
}

const simple = (verb: string) => (r: { nodeKey: string }) => `${verb} ${r.nodeKey}\n`
formatters.allow = simple('allowed')
formatters.deny = simple('no longer allowed:')
formatters.follow = (r) => `following agency ${r.nodeKey}${r.catalogKey ? ` (catalog ${r.catalogKey})` : '; its catalog key is learnt when `embassy run` first reaches it'}\n`
formatters.mirror = (r) => `mirroring agency ${r.agencyNodeKey} (catalog ${r.catalogKey})${r.added ? '' : ', already known: read key updated'}\n`

formatters.verify = (r) =>
  table([
    ['CORE', 'LENGTH', 'CHECKED', 'FAILED', 'SIGNED'],
    ...r.cores.map((c: { name: string; length: number; checked: number; failed: number; signed: boolean }) => [c.name, String(c.length), String(c.checked), String(c.failed), c.signed ? 'yes' : 'no'])
  ]) + `verified ${r.totals.checked} block(s) in ${r.cores.length} core(s): all good\n`

/** The per-core failures of a VERIFY_FAILED error (stderr, human mode). */
export function formatVerifyFailures(details: Record<string, unknown>): string {
  const cores = (details.cores ?? []) as Array<{ name: string; key: string; failures: Array<{ index: number | null; end?: number; error: string }>; failed: number }>
  let out = ''
  for (const c of cores) {
    if (c.failures.length === 0) continue
    out += `  ${c.name} (${c.key}): ${c.failed} failure(s)\n`
    for (const f of c.failures.slice(0, 20)) out += `    ${f.index === null ? 'core' : `block ${f.index}${f.end !== undefined ? `-${f.end}` : ''}`}: ${f.error}\n`
  }
  return out
}

formatters['kit export'] = (r) =>
  r.protection === 'shares'
    ? `wrote ${r.shares} shares (any ${r.threshold} restore the agency):\n${r.files.map((f: string) => `  ${f}`).join('\n')}\nkeep them in different places; each alone reveals nothing\n`
    : `wrote the recovery kit ${r.files[0]} (sealed with your passphrase)\nit restores agency ${r.nodeKey}; keep it offline\n`
formatters['kit import'] = (r) =>
  `restored agency ${r.nodeKey} (catalog ${r.catalogKey}) in ${r.dir ?? 'the node directory'}\nnext: embassy run — it syncs every dataset from the embassies before accepting writes\n`
