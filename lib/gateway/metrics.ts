/**
 * GET /metrics: Prometheus text exposition (version 0.0.4). Requests by route and status, agency
 * readiness, dataset lengths, held blocks and bytes, peers, the gateway's own counters, and (from
 * the status document) custody lag, audits, alarms by kind, DHT nodes and restore progress.
 * Imports: ./context.ts, ./library.ts, ./http.ts (promLabel).
 */
import { send, withDeadline, type Ctx, type Site } from './context.js'
import { promLabel } from './http.js'
import { coresOf } from './library.js'

/** How long a scrape waits for the node's status document (to count peers from it). */
const PEERS_WAIT_MS = 2000

type Sample = [Record<string, string>, number]

/** Connected peers: from the `peers` callback, else the length of `status().peers`; null when unknown. */
async function peerCount(site: Site): Promise<number | null> {
  if (site.peers) return site.peers()
  if (!site.status) return null
  try {
    const s = (await withDeadline(site.status(), PEERS_WAIT_MS)) as { peers?: unknown } | null
    return Array.isArray(s?.peers) ? s.peers.length : null
  } catch {
    return null
  }
}

/** The node's status document for the custody metrics; null when the gateway has none or it fails. */
async function statusDoc(site: Site): Promise<Record<string, any> | null> {
  if (!site.status) return null
  try {
    const s = await withDeadline(site.status(), PEERS_WAIT_MS)
    return s !== null && typeof s === 'object' ? (s as Record<string, any>) : null
  } catch {
    return null
  }
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
const arr = (v: unknown): any[] => (Array.isArray(v) ? v : [])

/**
 * Custody, alarm, DHT and restore metrics from the status document (the alert rules in
 * deploy/prometheus/alerts.yml use these). The HELP/TYPE lines are written whenever a document is
 * there, so the names exist even with no samples.
 */
function statusMetrics(metric: (name: string, type: string, help: string, samples: Sample[]) => void, s: Record<string, any>): void {
  const open = new Map<string, number>()
  for (const a of arr(s.alarms)) if (typeof a?.kind === 'string') open.set(a.kind, (open.get(a.kind) ?? 0) + 1)
  metric('embassy_alarms_open', 'gauge', 'Unacknowledged alarms in the status document, by kind.', [...open].sort().map(([kind, n]): Sample => [{ kind }, n]))
  const counts = s.alarmCounts !== null && typeof s.alarmCounts === 'object' ? Object.entries(s.alarmCounts as Record<string, unknown>) : []
  metric('embassy_alarms_total', 'counter', 'Alarms raised since the ledger began, by kind (acknowledged ones included).', counts.sort().map(([kind, n]): Sample => [{ kind }, num(n)]))
  const behindBlocks: Sample[] = []
  const behindBytes: Sample[] = []
  const receiptAge: Sample[] = []
  const auditFailed: Sample[] = []
  const connected: Sample[] = []
  if (s.openCores !== null && typeof s.openCores === 'object') {
    const o = s.openCores as Record<string, unknown>
    metric('embassy_held_cores', 'gauge', 'Dataset cores this embassy holds, by state: open now, or closed while idle (embassy).', [[{ state: 'open' }, num(o.open)], [{ state: 'closed' }, Math.max(0, num(o.held) - num(o.open))]])
    metric('embassy_held_cores_open_max', 'gauge', 'The bound of held cores open at once (maxOpenCores; embassy).', [[{}, num(o.max)]])
    metric('embassy_held_core_closes_total', 'counter', 'Held cores closed while idle since start (embassy).', [[{}, num(o.closes)]])
    metric('embassy_held_core_reopens_total', 'counter', 'Closed held cores opened again since start: a notice, a peer or an audit asked (embassy).', [[{}, num(o.reopens)]])
  }
  for (const d of arr(s.datasets)) {
    for (const e of arr(d?.embassies)) {
      const labels = { dataset: String(d?.name ?? ''), embassy: String(e?.nodeKey ?? '') }
      behindBlocks.push([labels, num(e?.behindBlocks)])
      behindBytes.push([labels, num(e?.behindBytes)])
      // No receipt yet: +Inf would break sums; -1 says "never" and the rules treat it apart.
      receiptAge.push([labels, typeof e?.receiptAge === 'number' ? e.receiptAge / 1000 : -1])
      auditFailed.push([labels, e?.audit?.state === 'failed' ? 1 : 0])
      connected.push([labels, e?.connected === true ? 1 : 0])
    }
  }
  metric('embassy_custody_behind_blocks', 'gauge', 'Blocks an embassy lacks of a dataset (agency).', behindBlocks)
  metric('embassy_custody_behind_bytes', 'gauge', 'Bytes an embassy lacks of a dataset (agency).', behindBytes)
  metric('embassy_custody_receipt_age_seconds', 'gauge', 'Age of the embassy\'s newest verified receipt for a dataset; -1 when none yet (agency).', receiptAge)
  metric('embassy_custody_audit_failed', 'gauge', '1 while the embassy\'s last audit of the dataset failed (agency).', auditFailed)
  metric('embassy_custody_connected', 'gauge', '1 while the embassy is connected (agency).', connected)
  if (s.dht !== null && typeof s.dht === 'object') {
    metric('embassy_dht_nodes', 'gauge', 'DHT routing-table nodes (0: DHT unreachable).', [[{}, num(s.dht.nodes)]])
  }
  const r = s.restore
  if (r !== null && typeof r === 'object') {
    metric('embassy_restore_complete', 'gauge', '1 once a restore holds every block (or no restore ran), else 0 (agency).', [[{}, r.state === 'complete' ? 1 : 0]])
    metric('embassy_restore_held_blocks', 'gauge', 'Blocks held locally during a restore/backfill (agency).', [[{}, num(r.heldBlocks)]])
    metric('embassy_restore_total_blocks', 'gauge', 'Blocks at the newest head a restore fetches (agency).', [[{}, num(r.totalBlocks)]])
    metric('embassy_writes_accepted', 'gauge', '1 while the agency takes writes, 0 while it refuses them (NOT_SYNCED: restoring, behind its embassies, or a second live node) (agency).', [[{}, r.writable === true && r.secondLiveNode !== true ? 1 : 0]])
    metric('embassy_heads_unconfirmed', 'gauge', 'Cores whose head no connected embassy has reported at or below this node\'s since it started (agency).', [[{}, Math.max(0, num(r.cores) - num(r.confirmedCores))]])
    metric('embassy_second_live_node', 'gauge', '1 while another live node signs with this agency\'s key (agency).', [[{}, r.secondLiveNode === true ? 1 : 0]])
  }
  // Scheduled continuity drills (`embassy run --schedule`): declared whenever a document is there, sampled once a drill ran.
  const last = s.drill !== null && typeof s.drill === 'object' && s.drill.last !== null && typeof s.drill.last === 'object' ? s.drill.last : null
  const one = (v: number): Sample[] => (last ? [[{}, v]] : [])
  metric('embassy_drill_last_ok', 'gauge', '1 when the last continuity drill passed, 0 when it failed (embassy run --schedule).', one(last?.ok === true ? 1 : 0))
  metric('embassy_drill_last_timestamp_seconds', 'gauge', 'When the last continuity drill finished (Unix time).', one(num(last?.at)))
  metric('embassy_drill_rto_first_record_seconds', 'gauge', 'Last drill: seconds from its start to the first record served; -1 when none was.', one(typeof last?.firstRecordMs === 'number' ? last.firstRecordMs / 1000 : -1))
  metric('embassy_drill_rpo_blocks', 'gauge', 'Last drill: blocks the embassy it rebuilt from was behind the newest head known.', one(num(last?.blocksBehind)))
}

/** The node directory's disk (`status().disk`: free, total, low), null when the status does not say. */
async function diskOf(site: Site): Promise<{ free: number; total: number; low: boolean } | null> {
  if (!site.status) return null
  try {
    const d = ((await withDeadline(site.status(), PEERS_WAIT_MS)) as { disk?: { free?: unknown; total?: unknown; low?: unknown } } | null)?.disk
    return d && typeof d.free === 'number' && typeof d.total === 'number' ? { free: d.free, total: d.total, low: d.low === true } : null
  } catch {
    return null
  }
}

export async function metrics(ctx: Ctx): Promise<void> {
  const { site } = ctx
  const lines: string[] = []
  const metric = (name: string, type: string, help: string, samples: Sample[]): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${promLabel(v)}"`).join(',')
      lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`)
    }
  }
  // Count this scrape too, so a first scrape is never empty.
  const selfKey = `/metrics\u0000200`
  const counts = new Map(site.counts)
  counts.set(selfKey, (counts.get(selfKey) ?? 0) + 1)
  metric('embassy_http_requests_total', 'counter', 'HTTP requests answered by the gateway, by route and status code.', [...counts].sort().map(([k, n]): Sample => {
    const [route, code] = k.split('\u0000') as [string, string]
    return [{ route, code }, n]
  }))
  const agencies = await site.library.agencies()
  metric('embassy_agency_ready', 'gauge', '1 when the agency catalog is held and readable, else 0.', agencies.map((a): Sample => [{ catalog: a.catalog ?? '' }, a.state === 'ready' ? 1 : 0]))
  const length: Sample[] = []
  const held: Sample[] = []
  const total: Sample[] = []
  const bytes: Sample[] = []
  for (const a of agencies) {
    for (const e of a.datasets) {
      const labels = { catalog: a.catalog ?? '', dataset: e.summary.name, kind: e.summary.kind }
      const ds = await e.open().catch(() => null)
      const cores = ds ? coresOf(ds) : []
      length.push([labels, e.summary.length])
      held.push([labels, cores.reduce((n, c) => n + c.core.contiguousLength, 0)])
      let all = 0
      let have = 0
      for (const { core } of cores) {
        all += core.length
        have += core.length > 0 ? await core.count(0, core.length) : 0
      }
      total.push([labels, all], [{ ...labels, state: 'held' }, have])
      bytes.push([labels, e.summary.byteLength])
    }
  }
  metric('embassy_dataset_length', 'gauge', 'Verified length of the dataset\'s first core (log records, or file-index entries).', length)
  metric('embassy_dataset_held_blocks', 'gauge', 'Blocks held contiguously over all of the dataset\'s cores.', held)
  metric('embassy_dataset_blocks', 'gauge', 'Blocks of all of the dataset\'s cores: verified (no state label), and held anywhere (state="held"; an on-demand mirror holds the newest first).', total)
  metric('embassy_dataset_bytes', 'gauge', 'Bytes held in all of the dataset\'s cores.', bytes)
  const peers = await peerCount(site)
  if (peers !== null) metric('embassy_peers', 'gauge', 'Connected peers.', [[{}, peers]])
  const doc = await statusDoc(site)
  if (doc) statusMetrics(metric, doc)
  const disk = await diskOf(site)
  if (disk) {
    metric('embassy_disk_free_bytes', 'gauge', 'Free bytes on the disk of the node directory.', [[{}, disk.free]])
    metric('embassy_disk_low', 'gauge', '1 when free space is below the low-space threshold (lowSpaceBytes / lowSpaceFraction), else 0.', [[{}, disk.low ? 1 : 0]])
  }
  // The process's own memory (the gateway runs in the node's process): an embassy's grows with the cores it holds (README "Memory").
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [[{}, process.memoryUsage.rss()]])
  metric('embassy_gateway_ready', 'gauge', '1 when the gateway serves data, 0 while the node is starting.', [[{}, site.isReady() ? 1 : 0]])
  metric('embassy_gateway_streamed_bytes_total', 'counter', 'Body bytes of files and records streamed.', [[{}, site.stats.bytesStreamed]])
  metric('embassy_gateway_records_scanned_total', 'counter', 'Log records read and decoded for record lists and searches.', [[{}, site.stats.recordsScanned]])
  metric('embassy_gateway_refused_total', 'counter', 'Requests refused by the admission limits (429, 503 BUSY).', [[{}, site.stats.refused]])
  metric('embassy_gateway_queued_requests', 'gauge', 'Requests waiting for a slot.', [[{}, site.stats.queued]])
  metric('embassy_gateway_start_time_seconds', 'gauge', 'When the gateway started (Unix time).', [[{}, Math.floor(site.startedAt / 1000)]])
  send(ctx, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' }, lines.join('\n') + '\n')
}
