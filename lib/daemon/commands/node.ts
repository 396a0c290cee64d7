/**
 * The node itself: `embassy init`, `embassy id`, `embassy status` (and `status --watch`).
 *
 * Owns: these records, what `status` shows (nodeStatus, also the gateway's /api/status) and its
 * text. May import: command, host, text, node/, roles/ (types, initNode, drillStatus), net/ (types).
 * The node, the roles and custody are imported when a command runs (import()), not when the CLI
 * loads the command table.
 */
import path from 'node:path'
import type { NodeIdentity } from '../../node/node.js'
import { ROLES, type RoleName } from '../../node/config.js'
import type { DhtStatus, Network } from '../../net/network.js'
import type { CustodyStatus, DatasetCustody, EmbassyCustody, RestoreStatus } from '../../roles/agency.js'
import type { FetchStatus } from '../../roles/mirror-fetch.js'
import type { QuotaLimits, QuotaStatus, UnlimitedStatus } from '../../roles/quota.js'
import type { Alarm } from '../../custody/index.js'
import type { ListedAlarm } from '../../custody/alarms.js'
import type { SeriesSummary } from '../../custody/timeseries.js'
import { EmbassyError } from '../../errors.js'
import type { AgencyHolding, OpenCoresStatus } from '../../roles/embassy.js'
import type { SourceStatus } from '../../roles/mirror.js'
import type { HeldCore } from '../../roles/holder.js'
import type { DrillStatus } from '../../roles/drill-schedule.js'
import { formatDrillStatus } from './drill.js'
import { defineCommand, defineLocalCommand, noInput, parseBootstrap, strOpt, usageError, type CommandInput, type FormatView } from '../command.js'
import type { Host } from '../host.js'
import { escapeText, fmtBytes, fmtDuration, short, table } from '../text.js'
import { parseKey } from '../../ids.js'

export type InitResult = NodeIdentity & { dir: string }

export const init = defineLocalCommand({
  name: 'init',
  spec: {
    usage: 'embassy init --role agency|embassy|mirror|auditor [--name NAME] [--bootstrap HOST:PORT,…]',
    summary: 'create a node in the data directory',
    details: [
      '--role R              agency (publishes), embassy (holds blind copies) or mirror (reads in a crisis)',
      '--name NAME           a human name (an agency\'s name is sealed into its catalog)',
      '--bootstrap LIST      DHT bootstrap nodes saved in config.json (the public DHT is never used)'
    ],
    options: { role: { type: 'string' }, name: { type: 'string' }, bootstrap: { type: 'string' } },
    args: [0, 0]
  },
  input(line): { role: RoleName; name: string | undefined; bootstrap: string[] | undefined } {
    const role = line.opts.role
    if (typeof role !== 'string' || !ROLES.includes(role as RoleName)) throw usageError('--role must be agency, embassy, mirror or auditor', 'init')
    return { role: role as RoleName, name: strOpt(line, 'name'), bootstrap: parseBootstrap(strOpt(line, 'bootstrap'), 'init') }
  },
  async run(input, { dir }): Promise<InitResult> {
    const [{ initNode }, { EmbassyNode }] = await Promise.all([import('../../roles/index.js'), import('../../node/node.js')])
    const id = await initNode(dir, { role: input.role, ...(input.name !== undefined ? { name: input.name } : {}) })
    if (input.bootstrap) {
      const bootstrap = input.bootstrap
      const node = new EmbassyNode(dir)
      await node.ready()
      try {
        node.updateConfig((c) => (c.bootstrap = bootstrap))
      } finally {
        await node.close()
      }
    }
    return { ...id, dir: path.resolve(dir) }
  },
  format: (r) => `initialised ${r.role} node\nnode key:    ${r.nodeKey}\n${r.catalogKey ? `catalog key: ${r.catalogKey}\n` : ''}`
})

export const id = defineCommand({
  name: 'id',
  spec: {
    usage: 'embassy id',
    summary: 'print this node\'s role, node key and catalog key',
    options: {},
    args: [0, 0]
  },
  input: noInput,
  handler: (host): Promise<NodeIdentity> => host.node.identity(),
  format: (r) => `role:        ${r.role}\n${r.name ? `name:        ${escapeText(r.name)}\n` : ''}node key:    ${r.nodeKey}\n${r.catalogKey ? `catalog key: ${r.catalogKey}\n` : ''}`
})

/** A connected peer, as status lists it. */
export type PeerSummary = ReturnType<Network['describePeers']>[number]

interface StatusBase extends Omit<NodeIdentity, 'role'> {
  /** True inside a running node; false when read from storage. */
  running: boolean
  peers: PeerSummary[]
  /** Our DHT socket and how many DHT nodes answer (running nodes only). */
  dht?: DhtStatus
  /** The last continuity drill (newest report in DIR/drills/) and the schedule when one runs; absent when neither. */
  drill?: DrillStatus
}

/** When a peer was last heard from (any message or keep-alive; ms since epoch), null if never since start. */
interface Contact {
  lastContact: number | null
}

/**
 * How many connected peers hold a source's catalog (its agency, embassies, other mirrors), on a
 * running node (null when read from storage). With none, what is held here may be stale: `noPeers`
 * and since when (the last holder went away, or the node started).
 */
export interface SourcePeers {
  peers: number | null
  noPeers: boolean
  noPeersSince: number | null
}

/** An embassy's custody of a dataset, with its last contact (apart from the receipt's age). */
export type EmbassyCustodyView = EmbassyCustody & Contact
export type DatasetCustodyView = Omit<DatasetCustody, 'embassies'> & { embassies: EmbassyCustodyView[] }

/** A holder's own alarms (refused rewrites, equivocations, bad heads). */
interface HolderAlarms {
  alarms: Alarm[]
  alarmCounts: Record<string, number>
}

/** Active alarms only (each with its ID, for `embassy alarms ack`), and how many were acknowledged. */
interface AlarmView {
  alarms: ListedAlarm[]
  alarmsAcknowledged: number
}

/** A followed agency as status shows it: whether it was ever reached, and since when it is followed. */
export type AgencyView = AgencyHolding & {
  /** False until the agency was first reached (its catalog key learnt). */
  reached: boolean
  /** When `embassy follow` added it (ms since epoch); null for entries made before this was kept. */
  followedAt: number | null
  /** Not reached yet: ms since it was followed (null when unknown or reached). */
  unreachedFor: number | null
} & Contact &
  SourcePeers

/** What `embassy status` shows: the node, its peers and, per role, what it holds. */
export type NodeStatus =
  | (StatusBase & { role: 'agency'; datasets: DatasetCustodyView[]; restore?: RestoreStatus } & Omit<CustodyStatus, 'alarms' | 'datasets'> & AlarmView)
  | (StatusBase & { role: 'embassy'; agencies: AgencyView[]; openCores?: OpenCoresStatus } & Omit<HolderAlarms, 'alarms'> & AlarmView)
  | (StatusBase & { role: 'mirror'; sources: Array<SourceStatus & Contact & SourcePeers>; fetch?: FetchStatus } & Omit<HolderAlarms, 'alarms'> & AlarmView)
  | (StatusBase & { role: 'auditor'; sources: Array<{ agencyNodeKey: string; catalogKey: string }>; embassies: AuditedEmbassy[] } & Omit<HolderAlarms, 'alarms'> & AlarmView)

/** An embassy a blind auditor audits (roles/auditor.ts status). */
interface AuditedEmbassy {
  nodeKey: string
  connected: boolean
  audit: { state: string; at: number | null; sampled: number; failed: number; cores: number; confidence?: string }
}

/** What `embassy status` shows, per role. */
export async function nodeStatus(host: Host): Promise<NodeStatus> {
  const id = await host.node.identity()
  const peers = host.network ? host.network.describePeers() : []
  // Role.status() is the role's part of this document (Agency: CustodyStatus; Embassy: agencies; Mirror: sources).
  const s = { ...id, running: host.online, peers, ...(await (await host.role()).status()) } as Record<string, unknown>
  const network = host.network
  if (network) s.dht = network.dhtStatus()
  const [{ drillStatus }, { AlarmAcks }] = await Promise.all([import('../../roles/drill-schedule.js'), import('../../custody/alarms.js')])
  const drill = drillStatus(host.node.dir, host.drills)
  if (drill) s.drill = drill
  // Last contact (a message or keep-alive seen), apart from a receipt's age: a receipt can be old
  // while the peer is alive (nothing changed), and recent while it is gone.
  const contact = (nodeKey: string): number | null => {
    if (!network) return null
    try {
      return network.lastContact(parseKey(nodeKey))
    } catch {
      return null
    }
  }
  if (Array.isArray(s.datasets)) {
    s.datasets = (s.datasets as DatasetCustody[]).map((d): DatasetCustodyView => ({ ...d, embassies: d.embassies.map((e) => ({ ...e, lastContact: contact(e.nodeKey) })) }))
  }
  const holders = (catalogKey: string | null): SourcePeers => {
    if (!network || catalogKey === null) return { peers: null, noPeers: false, noPeersSince: null }
    try {
      const h = network.holdersOf(parseKey(catalogKey))
      return { peers: h.peers, noPeers: h.peers === 0, noPeersSince: h.noPeersSince }
    } catch {
      return { peers: null, noPeers: false, noPeersSince: null }
    }
  }
  if (Array.isArray(s.sources) && host.node.role === 'mirror') {
    s.sources = (s.sources as SourceStatus[]).map((src) => ({ ...src, lastContact: contact(src.agencyNodeKey), ...holders(src.catalogKey) }))
  }
  // Acknowledged alarms (`embassy alarms ack`) stay in the history and the counts, not in status.
  const listed = new AlarmAcks(host.node.dir).list((s.alarms as Alarm[] | undefined) ?? [])
  s.alarms = listed.filter((a) => a.acknowledgedAt === undefined)
  s.alarmsAcknowledged = listed.length - (s.alarms as ListedAlarm[]).length
  if (Array.isArray(s.agencies)) {
    const now = Date.now()
    s.agencies = (s.agencies as AgencyHolding[]).map((a): AgencyView => {
      const followedAt = host.node.config.follow.find((f) => f.nodeKey === a.nodeKey)?.followedAt ?? null
      const reached = a.catalogKey !== null
      return { ...a, reached, followedAt, unreachedFor: !reached && followedAt !== null ? Math.max(0, now - followedAt) : null, lastContact: contact(a.nodeKey), ...holders(a.catalogKey) }
    })
  }
  return s as unknown as NodeStatus
}

export const status = defineCommand({
  name: 'status',
  spec: {
    usage: 'embassy status [--watch] [--interval SECONDS] [--since 30m|24h|7d|30d]',
    summary: 'what this node holds, who it is connected to; on an agency, custody per dataset and embassy',
    details: [
      '--watch           redraw until Ctrl-C (with --json: one JSON document per line)',
      '--interval S       seconds between redraws (default 1)',
      '--since WINDOW     agency: the worst lag per dataset and embassy and every alarm in the last',
      '                   WINDOW (N followed by m, h or d; at most 30d), from the custody history'
    ],
    options: { watch: { type: 'boolean' }, interval: { type: 'string' }, since: { type: 'string' } },
    args: [0, 0]
  },
  /** Caller side: a bad --since is a usage error before anything else (the handler reads it again). */
  async prepare(line): Promise<CommandInput> {
    if (line.opts.since !== undefined) await sinceWindow(String(line.opts.since))
    return line
  },
  input(line): { watch: boolean; intervalSeconds: number; since?: string } {
    if (line.opts.since !== undefined) {
      const text = String(line.opts.since)
      if (line.opts.watch) throw usageError('--since and --watch do not go together', 'status')
      return { watch: false, intervalSeconds: 1, since: text }
    }
    if (!line.opts.watch) return { watch: false, intervalSeconds: 1 }
    const seconds = line.opts.interval === undefined ? 1 : Number(line.opts.interval)
    if (!(seconds >= 0.1 && seconds <= 3600)) throw usageError('--interval must be 0.1 to 3600 seconds', 'status')
    return { watch: true, intervalSeconds: seconds }
  },
  handler: (host, input): Promise<NodeStatus | StatusHistory> => (input.since !== undefined ? statusHistory(host, input.since) : nodeStatus(host)),
  /** --watch: the status again and again until SIGINT/SIGTERM, each as a screen (or a JSON line). */
  async around(input, { io, onceSignal }, once) {
    if (!input.watch) return once()
    let stop = false
    onceSignal(() => (stop = true))
    while (!stop) {
      const s = await once()
      io.write(io.json ? JSON.stringify(s) + '\n' : (io.tty ? '\x1b[2J\x1b[H' : '\n') + `${new Date().toISOString()}\n` + ('history' in s ? formatHistory(s) : formatStatus(s, io)))
      const until = Date.now() + input.intervalSeconds * 1000
      while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    }
    return null
  },
  format: (s, view) => ('history' in s ? formatHistory(s) : formatStatus(s, view))
})

/** `status --since`: the custody history's summary of a window (lib/custody/timeseries.ts). */
export interface StatusHistory {
  history: SeriesSummary & { window: string }
}

/**
 * `--since WINDOW` in ms (custody/timeseries.ts reads it; imported here, when --since is given,
 * not with the command table); BAD_ARGUMENT when it is not a window.
 */
async function sinceWindow(text: string): Promise<number> {
  const ms = (await import('../../custody/timeseries.js')).parseSince(text)
  if (ms === null) throw usageError(`--since must be a window such as 30m, 24h, 7d or 30d (at most 30d), not "${text}"`, 'status')
  return ms
}

async function statusHistory(host: Host, since: string): Promise<StatusHistory> {
  const ms = await sinceWindow(since)
  if (host.node.role !== 'agency') throw EmbassyError.wrongRole('status --since', host.node.role, 'agency')
  const { loadSeries, summarize } = await import('../../custody/timeseries.js')
  const { data, damaged } = loadSeries(host.node.dir)
  return { history: { ...summarize(data, ms, Date.now(), damaged), window: since } }
}

function formatHistory(s: StatusHistory): string {
  const h = s.history
  let out = `custody history, last ${escapeText(h.window)} (${new Date(h.since).toISOString()} to ${new Date(h.until).toISOString()}; sampled every ${h.sampleMs / 1000} s)\n`
  if (h.damaged) out += `WARNING: the history file was unreadable and was set aside as ${h.damaged}\n`
  if (h.worst.length === 0) out += '\nno samples in this window (the history is kept by `embassy run`)\n'
  else {
    out += '\nworst lag per dataset and embassy:\n'
    out += table([
      ['  DATASET', 'EMBASSY', 'WORST BEHIND', 'FOR', 'WHEN', 'NOW', 'SAMPLES'],
      ...h.worst.map((w) => [
        `  ${escapeText(w.dataset)}`,
        short(w.embassy),
        w.blocks ? `${w.blocks} blk / ${fmtBytes(w.bytes)}` : 'never behind',
        w.blocks || w.seconds ? `${w.seconds} s` : '-',
        w.blocks || w.seconds ? new Date(w.at).toISOString() : '-',
        w.latest.state === 'ok' ? 'up to date' : w.latest.state === 'behind' ? `${w.latest.blocks} blk behind for ${w.latest.seconds} s` : w.latest.state === 'failed' ? 'NOT HELD (audit failed or pre-rewrite)' : 'no receipt yet',
        String(w.samples)
      ])
    ])
  }
  if (h.alarms.length === 0) return out + '\nno alarms in this window\n'
  return out + `\n${h.alarms.length} alarm(s) in this window:\n` + h.alarms.map((a) => `  ${a.id} ${new Date(a.time).toISOString()} ${escapeText(a.kind)}${a.peer ? ` from ${escapeText(short(a.peer))}` : ''}: ${escapeText(a.detail)}`).join('\n') + '\n'
}

function age(ms: number | null): string {
  return ms === null ? 'never' : fmtDuration(ms)
}

/** A small progress bar for status tables on a terminal (bytes or blocks held of the total). */
function bar(view: FormatView, done: number, total: number): string {
  if (!view.tty) return ''
  const frac = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(frac * 12)
  return `${'█'.repeat(filled)}${'░'.repeat(12 - filled)} ${(frac * 100).toFixed(0).padStart(3)}%`
}

export function formatStatus(s: NodeStatus, view: FormatView): string {
  // Names, kinds, alarm details and problems come from catalogs and peers: escaped (text.ts).
  const now = Date.now()
  const head = `${s.role}${s.name ? ` "${escapeText(s.name)}"` : ''} ${s.nodeKey}\n${s.running ? 'running' : 'not running (read from storage)'}, ${s.peers.length} peer(s) connected${s.peers.length ? ': ' + s.peers.map((p) => `${escapeText(p.role)} ${short(p.nodeKey)}${p.lane?.up ? ` (bulk lane up, ${fmtBytes(p.lane.bytesIn + p.lane.bytesOut)})` : ''}`).join(', ') : ''}\n` + formatDht(s.dht) + formatDrillStatus(s.drill, now)
  if (s.role === 'agency') {
    let out = head + formatRestore(s.restore)
    if (s.datasets.length === 0) out += s.restore && s.restore.state !== 'complete' ? '\nno datasets back yet (restoring)\n' : '\nno datasets yet: embassy dataset create NAME\n'
    for (const d of s.datasets) {
      out += `\ndataset ${escapeText(d.name)} (${escapeText(d.kind)}, ${d.length} blocks, ${fmtBytes(d.byteLength)})\n`
      if (d.embassies.length === 0) {
        out += '  (none): no embassy holds it yet\n'
        continue
      }
      out += table([
        ['  EMBASSY', 'HELD', 'BEHIND', 'RECEIPT AGE', 'LAST CONTACT', 'AUDIT', 'LINK', ...(view.tty ? ['PROVEN'] : [])],
        ...d.embassies.map((e) => [
          `  ${short(e.nodeKey)}`,
          String(e.heldLength),
          e.preRewrite.length
            ? `keeps pre-rewrite history (${e.preRewrite.map((p) => `${p.length} blk, fork ${p.fork}`).join('; ')})`
            : e.behindBlocks
              ? `${e.behindBlocks} blk / ${fmtBytes(e.behindBytes)}`
              : 'up to date',
          age(e.receiptAge),
          contactText(e.lastContact, now),
          e.audit ? (e.audit.state === 'failed' ? `FAILED (${e.audit.failed} blk)` : e.audit.state === 'passed' ? `passed (${e.audit.sampled} blk)` : 'never') : '',
          e.connected ? 'connected' : 'offline',
          ...(view.tty ? [bar(view, d.byteLength - e.behindBytes, d.byteLength)] : [])
        ])
      ])
    }
    return out + formatAlarms(s.alarms, 'custody alarm')
  }
  if (s.role === 'embassy') {
    if (s.agencies.length === 0) return head + '\nfollowing no agency yet: embassy follow AGENCY_NODE_KEY\n'
    let out = head
    if (s.openCores && s.openCores.held > 0) {
      const o = s.openCores
      out += `\nheld cores open: ${o.open} of at most ${o.max} (${o.held} held; closed while idle ${o.closes} times, opened again ${o.reopens} times since start)\n`
    }
    for (const a of s.agencies) {
      out += `\nagency ${a.nodeKey} (${a.connected ? 'connected' : 'offline'}, last contact ${contactText(a.lastContact, now)})\n  catalog ${a.catalogKey ?? '(not learnt yet)'}\n`
      if (a.reached) out += noPeersText(a, now)
      if (!a.reached) {
        // Not "catching up": nothing was ever heard from it (a wrong key, or it is not running or not admitting us).
        out += `  never reached${a.unreachedFor !== null ? ` (followed ${age(a.unreachedFor)} ago)` : ''}: check the key (\`embassy id\` on the agency)\n    and that the agency allows this embassy\n`
        out += formatQuota(a.quota)
        for (const p of a.problems) out += `  problem: ${escapeText(p)}\n`
        continue
      }
      out += `  ${a.complete ? 'complete' : 'catching up'}; last receipt sent ${a.lastReceiptAt ? new Date(a.lastReceiptAt).toISOString() : 'never'} (${a.receiptsSent} sent)\n`
      out += formatQuota(a.quota)
      out += table([
        ['  CORE', 'LENGTH', 'HELD', 'SIZE', 'PEERS', 'HISTORY', ...(view.tty ? [''] : [])],
        ...a.cores.map((c) => [`  ${c.dataset === 'catalog' ? 'catalog' : short(c.key)}`, String(c.length), String(c.contiguousLength), fmtBytes(c.byteLength), c.open === false ? 'closed' : String(c.peers), history(c), ...(view.tty ? [bar(view, c.contiguousLength, c.length)] : [])])
      ])
      for (const p of a.problems) out += `  problem: ${escapeText(p)}\n`
    }
    return out + formatAlarms(s.alarms, 'alarm')
  }
  if (s.role === 'auditor') {
    if (s.sources.length === 0) return head + '\nauditing no agency yet: embassy follow VERIFY_CAPABILITY\n'
    let out = head + s.sources.map((src) => `\nauditing the embassies of agency ${src.agencyNodeKey}\n  catalog ${src.catalogKey}\n`).join('')
    out += table([
      ['EMBASSY', 'LINK', 'AUDIT', 'CORES', 'SAMPLED', 'FAILED', 'LAST'],
      ...s.embassies.map((e) => [short(e.nodeKey), e.connected ? 'connected' : 'offline', escapeText(e.audit.state), String(e.audit.cores), String(e.audit.sampled), String(e.audit.failed), e.audit.at ? new Date(e.audit.at).toISOString() : 'never'])
    ])
    return out + formatAlarms(s.alarms, 'alarm')
  }
  let out = head
  if (s.sources.length === 0) return head + '\nreading no agency yet: embassy mirror READ_CAPABILITY\n'
  for (const src of s.sources) {
    const held = src.held ? `; held ${src.held.heldBlocks}/${src.held.totalBlocks} blocks (${src.held.state})` : ''
    out += `\nagency ${src.agencyNodeKey} (last contact ${contactText(src.lastContact ?? null, now)})\n  catalog ${src.catalogKey}\n  ${src.complete ? 'complete' : 'catching up'}${held}\n`
    out += noPeersText(src, now)
    out += table([
      ['  CORE', 'LENGTH', 'HELD', 'SIZE', 'PEERS', 'HISTORY'],
      ...src.cores.map((c) => [`  ${c.dataset === 'catalog' ? 'catalog' : short(c.key)}`, String(c.length), String(c.contiguousLength), fmtBytes(c.byteLength), String(c.peers), history(c)])
    ])
  }
  return out + formatFetch(s.fetch) + formatAlarms(s.alarms, 'alarm')
}

/** Holders of a source connected now; with none, a warning that what is held may be stale. */
function noPeersText(p: SourcePeers, now: number): string {
  if (p.peers === null) return ''
  if (!p.noPeers) return `  ${p.peers} holder${p.peers === 1 ? '' : 's'} connected\n`
  return `  NO PEERS: no holder of this catalog connected${p.noPeersSince !== null ? ` for ${age(Math.max(0, now - p.noPeersSince))}` : ''}; what is held here may be stale\n`
}

/** "5 s ago", or "never" (not heard from since this node started). */
function contactText(at: number | null, now: number): string {
  return at === null ? 'never' : `${age(Math.max(0, now - at))} ago`
}

/** Our DHT socket, and a warning when too few DHT nodes answered at start. */
function formatDht(dht: DhtStatus | undefined): string {
  if (!dht) return ''
  let out = `DHT ${dht.address ?? '(not bound)'}, ${dht.nodes} DHT node(s) answer\n`
  if (dht.few) {
    out += `WARNING: only ${dht.nodesAtStart} DHT node(s) answered at start: connections and reconnections can\n` + '  take minutes; run four or more DHT nodes in all (README, "Running it for real")\n'
  }
  return out
}

/** An agency's restore, while it runs (or while writes wait), in one or two lines. */
function formatRestore(r: RestoreStatus | undefined): string {
  if (!r || (r.state === 'complete' && r.writable && !r.secondLiveNode)) return ''
  const rate = r.backfillRate === 0 ? ', backfill paused' : r.backfillRate !== null ? `, backfill at most ${r.backfillRate} blk/s` : ''
  let out = `\nrestore: ${escapeText(r.state)}, ${r.heldBlocks}/${r.totalBlocks} blocks held${rate}; ${r.reported.length} of ${r.quorum} embassies reported\n`
  out += r.writable ? '  writes accepted\n' : `  writes wait for ${escapeText(r.waitingFor ?? 'the restore')}\n`
  if (r.secondLiveNode) out += "  ANOTHER LIVE NODE signs with this agency's key: writes refused until the operator decides\n"
  return out
}

/** An embassy's quota for one agency: limits, use once its catalog is held, and state. */
function formatQuota(q: QuotaStatus | UnlimitedStatus | QuotaLimits): string {
  const bytes = q.maxBytes === null ? 'no byte limit' : `limit ${fmtBytes(q.maxBytes)}`
  const cores = q.maxCores === null ? 'no core limit' : `limit ${q.maxCores} cores`
  if ('bytes' in q) {
    const state = q.state === 'ok' ? 'ok' : q.state.toUpperCase()
    return `  quota: ${state}; ${fmtBytes(q.heldBytes)} held of ${fmtBytes(q.bytes)} published (${bytes}); ${q.heldCores}/${q.cores} cores (${cores})\n` + (q.reason ? `    ${escapeText(q.reason)}\n` : '')
  }
  if (q.maxBytes === null && q.maxCores === null) return '  quota: none (no limits)\n'
  return `  quota: ${bytes}, ${cores} (use shown once its catalog is held)\n`
}

/** How a mirror fetches: its prefetch order and, when sparse, its cache. */
function formatFetch(f: FetchStatus | undefined): string {
  if (!f) return ''
  const cache = f.sparse ? `; sparse: ${fmtBytes(f.cachedBytes)} in ${f.cachedBlocks} blocks cached of ${f.cacheBytes === null ? 'no limit' : fmtBytes(f.cacheBytes)}, ${f.evicted} evicted` : ''
  return `\nfetch: prefetch ${escapeText(f.prefetch)}${cache}\n`
}

/** A held core's history column: its fork, cosigners, and a rewrite it refused. */
function history(c: HeldCore): string {
  const parts = [`fork ${c.fork}`]
  if (c.head && c.head.length === c.length && c.head.fork === c.fork) parts.push(`${c.head.cosigners} witness(es)`)
  if (c.offered) parts.push(`REFUSED rewrite to ${c.offered.length} blk, fork ${c.offered.fork}`)
  return parts.join(', ')
}

function formatAlarms(alarms: readonly ListedAlarm[], what: string): string {
  if (alarms.length === 0) return `\nno ${what}s\n`
  return (
    `\n${alarms.length} ${what}(s), newest (acknowledge with \`embassy alarms ack ID\`):\n` +
    alarms
      .slice(-5)
      .map((a) => `  ${a.id} ${new Date(a.time).toISOString()} ${escapeText(a.kind)}${a.peer ? ` from ${escapeText(short(a.peer))}` : ''}: ${escapeText(a.detail)}${a.repeats ? ` (and ${a.repeats} more)` : ''}`)
      .join('\n') +
    '\n'
  )
}
