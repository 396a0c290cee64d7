/**
 * GET /metrics: Prometheus text exposition (version 0.0.4). Requests by route and status, agency
 * readiness, dataset lengths, held blocks and bytes, peers, and the gateway's own counters.
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
  metric('embassy_gateway_ready', 'gauge', '1 when the gateway serves data, 0 while the node is starting.', [[{}, site.isReady() ? 1 : 0]])
  metric('embassy_gateway_streamed_bytes_total', 'counter', 'Body bytes of files and records streamed.', [[{}, site.stats.bytesStreamed]])
  metric('embassy_gateway_records_scanned_total', 'counter', 'Log records read and decoded for record lists and searches.', [[{}, site.stats.recordsScanned]])
  metric('embassy_gateway_refused_total', 'counter', 'Requests refused by the admission limits (429, 503 BUSY).', [[{}, site.stats.refused]])
  metric('embassy_gateway_queued_requests', 'gauge', 'Requests waiting for a slot.', [[{}, site.stats.queued]])
  metric('embassy_gateway_start_time_seconds', 'gauge', 'When the gateway started (Unix time).', [[{}, Math.floor(site.startedAt / 1000)]])
  send(ctx, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' }, lines.join('\n') + '\n')
}
