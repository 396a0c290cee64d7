/**
 * The JSON/NDJSON API: /api (an index of routes), /api/status, /api/datasets, one dataset with its
 * provenance, its records (NDJSON, streamed, ETag) and one record. Files are in ./files.ts.
 * Imports: ./context.ts, ./lookup.ts, ./library.ts, ./http.ts, ./pages.ts (urls), lib/data, lib/errors.
 */
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { begin, json, send, withDeadline, write, type Ctx, type RoutedCtx } from './context.js'
import { errorResponse, etagMatches, etagOf, intParam, searchParam } from './http.js'
import { BlockStream, LogDataset, coresOf, readOpts, type DatasetEntry, type OpenDataset } from './library.js'
import { ambiguousNames, provenance, record, resolve, resolveLog } from './lookup.js'
import { urls, type DatasetRef } from './pages.js'

/** NDJSON output is written in chunks of about this many bytes. */
const CHUNK_BYTES = 64 * 1024
/** How long GET /api/status waits for the node's status document. */
const STATUS_WAIT_MS = 3000
/**
 * Records one search (`q`) request scans at most. A range longer than this is answered in part,
 * with `X-Embassy-Next-Start` (and a `Link: rel="next"`) saying where to continue.
 */
export const SEARCH_SCAN_LIMIT = 10_000
/** Records fetched from holders at a time while a records response streams (a mirror that does not hold them yet). */
export const RECORD_WINDOW = 256

/** GET /api: what this gateway answers. */
export async function apiIndex(ctx: Ctx): Promise<void> {
  const status = ctx.site.publishStatus() ? { '/api/status': 'node and gateway status (JSON)' } : {}
  json(ctx, {
    name: 'Data Embassy read-only gateway',
    methods: ['GET', 'HEAD'],
    routes: {
      ...status,
      '/api/datasets': 'agencies and their datasets (JSON)',
      '/api/datasets/NAME': 'one dataset: summary and provenance of its cores (JSON)',
      '/api/datasets/NAME/records?start=&end=&q=&limit=': 'records [start, end) as NDJSON, optionally only those containing q (a search scans a bounded window; X-Embassy-Next-Start says where to continue)',
      '/api/datasets/NAME/records/SEQ': 'one record (JSON)',
      '/api/datasets/NAME/files/[FOLDER/]': 'a folder listing (JSON)',
      '/api/datasets/NAME/files/PATH': 'a file (Range, ETag; ?download=1 for an attachment)',
      '/metrics': 'Prometheus metrics'
    },
    notes: 'Add ?catalog=CATALOG_KEY where a dataset name exists in several agencies. Data responses carry X-Embassy-* provenance headers.'
  })
}

/** GET /api/status: the gateway, the agencies it reads, and the node's own status document. */
export async function apiStatus(ctx: Ctx): Promise<void> {
  const { site } = ctx
  if (!site.publishStatus()) {
    throw EmbassyError.notFound('the node status is not published on this address (it names peers, embassies and alarms); run the gateway with --http-status to publish it')
  }
  const agencies = await site.library.agencies()
  let node: unknown = null
  let nodeError: { code: string; message: string } | null = null
  if (site.status) {
    try {
      node = await withDeadline(site.status(), STATUS_WAIT_MS)
    } catch (err) {
      const e = errorResponse(err)
      nodeError = { code: e.code, message: e.message }
    }
  }
  json(ctx, {
    gateway: {
      ready: site.isReady(),
      startedAt: new Date(site.startedAt).toISOString(),
      uptime: Math.round((Date.now() - site.startedAt) / 1000),
      address: site.listening(),
      stats: site.stats
    },
    agencies: agencies.map((a) => ({
      catalog: a.catalog,
      nodeKey: a.nodeKey,
      name: a.name,
      state: a.state,
      error: a.error,
      ...freshness(node, a.catalog),
      datasets: a.datasets.map((d) => ({ name: d.summary.name, kind: d.summary.kind, length: d.summary.length, byteLength: d.summary.byteLength }))
    })),
    node,
    ...(nodeError ? { nodeError } : {})
  })
}

/**
 * Whether an agency's data here can be fresh: a source with no connected holder (its agency,
 * embassies, other mirrors) serves only what is held, however complete that looks: `stale: true`,
 * since when. From the node's status document (`sources[].peers`); nothing when it has none.
 */
function freshness(node: unknown, catalog: string | null): { peers: number; stale: boolean; staleSince: string | null } | Record<string, never> {
  const sources = (node as { sources?: unknown } | null)?.sources
  if (!catalog || !Array.isArray(sources)) return {}
  const src = sources.find((x: { catalogKey?: unknown }) => x?.catalogKey === catalog) as { peers?: unknown; noPeers?: unknown; noPeersSince?: unknown } | undefined
  if (!src || typeof src.peers !== 'number') return {}
  const since = src.noPeers === true && typeof src.noPeersSince === 'number' ? new Date(src.noPeersSince).toISOString() : null
  return { peers: src.peers, stale: src.noPeers === true, staleSince: since }
}

function summaryJson(entry: DatasetEntry, ds: OpenDataset | null, ref: DatasetRef): Record<string, unknown> {
  const cores = ds ? coresOf(ds) : []
  const first = cores[0]?.core
  return {
    ...entry.summary,
    catalog: entry.agency.catalog,
    agency: entry.agency.name,
    held: first ? first.contiguousLength : null,
    complete: cores.length > 0 ? cores.every((c) => c.core.contiguousLength >= c.core.length) : null,
    links: {
      info: urls.apiDataset(ref),
      page: urls.dataset(ref),
      ...(entry.summary.kind === 'log' ? { records: urls.apiRecords(ref) } : { files: `/api/datasets/${encodeURIComponent(ref.name)}/files/${ref.catalog ? `?catalog=${encodeURIComponent(ref.catalog)}` : ''}` })
    }
  }
}

/** GET /api/datasets: every agency and every dataset. */
export async function apiList(ctx: Ctx): Promise<void> {
  const agencies = await ctx.site.library.agencies()
  const ambiguous = ambiguousNames(agencies)
  const datasets: Array<Record<string, unknown>> = []
  for (const a of agencies) {
    for (const e of a.datasets) {
      const ds = await e.open().catch(() => null)
      datasets.push(summaryJson(e, ds, { name: e.summary.name, catalog: ambiguous.has(e.summary.name) ? a.catalog : null }))
    }
  }
  json(ctx, {
    agencies: agencies.map((a) => ({ catalog: a.catalog, nodeKey: a.nodeKey, name: a.name, state: a.state, error: a.error, datasets: a.datasets.length, problems: a.problems })),
    datasets
  })
}

/** GET /api/datasets/NAME: its summary and the provenance of its cores. */
export async function apiInfo(ctx: RoutedCtx, name: string): Promise<void> {
  const r = await resolve(ctx, name)
  const { cores, headers } = await provenance(r.entry, r.dataset)
  json(ctx, { dataset: summaryJson(r.entry, r.dataset, r.ref), provenance: { catalog: r.entry.agency.catalog, agencyNodeKey: r.entry.agency.nodeKey, cores } }, headers)
}

/** start/end of a records request against `length`: 400 when malformed, 416 when inverted or past the end. */
function recordRange(query: URLSearchParams, length: number): { start: number; end: number } {
  const start = intParam(query, 'start', 0)
  const endParam = intParam(query, 'end', null)
  if (endParam !== null && endParam < start) throw EmbassyError.rangeNotSatisfiable(`start ${start} is after end ${endParam}`)
  if (start > length) throw EmbassyError.rangeNotSatisfiable(`start ${start} is past the verified length ${length}`)
  return { start, end: Math.min(endParam ?? length, length) }
}

/**
 * GET /api/datasets/NAME/records?start=&end=&q=&limit=: records as NDJSON, streamed. A search
 * (`q`) scans at most `site.searchScan` records; when the range goes on, `X-Embassy-Next-Start`
 * and `Link: <…>; rel="next"` name where to continue (after `limit` matches, continue after the
 * last one instead). Work stops as soon as the client leaves.
 */
export async function apiRecords(ctx: RoutedCtx, name: string): Promise<void> {
  const r = await resolveLog(ctx, name)
  const core = r.log.core
  const query = ctx.target.query
  const { start, end } = recordRange(query, core.length)
  const q = searchParam(query)
  const limit = intParam(query, 'limit', null)
  // A search reads every record of its range: bound the window, name the rest as a continuation.
  const scanEnd = q !== null ? Math.min(end, start + ctx.site.searchScan) : end
  // Records not held are fetched on request from any connected holder (RECORD_WINDOW asked for ahead
  // of the stream, each waited for a bounded time); with no holder connected, only a range held in
  // full is served.
  const online = readOpts(core).wait
  const missing = (seq: number): EmbassyError =>
    EmbassyError.notReplicated(
      `records ${start}–${scanEnd - 1} of "${name}" are not all held yet${online ? ` and no holder sent record ${seq} in time` : ''} (held from the start: ${core.contiguousLength} of ${core.length}); try again shortly`
    )
  if (end > start && !online && !(await core.has(start, scanEnd))) throw missing(start)
  const blocks = new BlockStream(core, scanEnd, readAhead(ctx, core))
  try {
    await streamRecords(ctx, r, { start, end, scanEnd, q, limit, blocks, missing })
  } finally {
    blocks.close()
  }
}

/**
 * Blocks to fetch ahead of a records stream: RECORD_WINDOW, or fewer when the reader keeps only a
 * bounded cache (a sparse mirror), so that what is fetched ahead is not evicted before it is read
 * and fetched again.
 */
function readAhead(ctx: RoutedCtx, core: Hypercore): number {
  const bytes = ctx.site.library.reader.readAheadBytes?.() ?? null
  if (bytes === null || core.length === 0) return RECORD_WINDOW
  const perBlock = Math.max(1, core.byteLength / core.length)
  return Math.max(1, Math.min(RECORD_WINDOW, Math.floor(bytes / perBlock)))
}

interface RecordsPlan {
  start: number
  end: number
  scanEnd: number
  q: string | null
  limit: number | null
  blocks: BlockStream
  missing: (seq: number) => EmbassyError
}

async function streamRecords(ctx: RoutedCtx, r: Awaited<ReturnType<typeof resolveLog>>, plan: RecordsPlan): Promise<void> {
  const { start, end, scanEnd, q, limit, blocks, missing } = plan
  const core = r.log.core
  const query = ctx.target.query
  // Decode the first record before answering 200: a wrong read key, or a record no holder sends, is a clean error, not a cut stream.
  let first: Buffer | null = null
  if (end > start) {
    first = await blocks.get(start)
    if (!first) throw missing(start)
    LogDataset.view(start, first)
    ctx.site.stats.recordsScanned++
  }
  const { headers } = await provenance(r.entry, r.dataset)
  const etag = etagOf('records', headers['X-Embassy-Core-Key'] ?? '', core.fork, start, end, q ?? '', limit ?? '', scanEnd)
  const h: Record<string, string> = {
    ...headers,
    'Content-Type': 'application/x-ndjson; charset=utf-8',
    'Cache-Control': 'no-cache',
    ETag: etag,
    'X-Embassy-Start': String(start),
    'X-Embassy-End': String(end)
  }
  if (scanEnd < end) {
    h['X-Embassy-Next-Start'] = String(scanEnd)
    const params: Record<string, string> = {}
    for (const [k, v] of query) if (k !== 'catalog') params[k] = v
    h.Link = `<${urls.apiRecords(r.ref, { ...params, start: scanEnd })}>; rel="next"`
  }
  if (etagMatches(ctx.req.headers['if-none-match'], etag)) return send(ctx, 304, h)
  if (!begin(ctx, 200, h)) return
  if (ctx.head) {
    ctx.res.end()
    return
  }
  const needle = q?.toLowerCase() ?? null
  let out = ''
  let emitted = 0
  for (let seq = start; seq < scanEnd; seq++) {
    if (limit !== null && emitted >= limit) break
    if (ctx.signal.aborted) return // the client left: stop reading
    // Mid-body, a record no holder sends cuts the response (never a false complete one).
    const block = seq === start && first ? first : await blocks.get(seq)
    if (!block) {
      if (ctx.signal.aborted) return
      throw missing(seq)
    }
    const rec = LogDataset.view(seq, block)
    if (seq !== start) ctx.site.stats.recordsScanned++
    if (needle !== null && !rec.text.toLowerCase().includes(needle)) continue
    out += JSON.stringify(rec) + '\n'
    emitted++
    if (out.length >= CHUNK_BYTES) {
      if (!(await write(ctx, out))) return
      out = ''
    }
  }
  if (out && !(await write(ctx, out))) return
  ctx.res.end()
}

/** GET /api/datasets/NAME/records/SEQ: one record (JSON). */
export async function apiRecord(ctx: RoutedCtx, name: string, seqText: string): Promise<void> {
  const r = await resolveLog(ctx, name)
  const rec = await record(r.log, name, seqText)
  const { headers } = await provenance(r.entry, r.dataset)
  const etag = etagOf('record', headers['X-Embassy-Core-Key'] ?? '', r.log.core.fork, rec.seq)
  const h = { ...headers, ETag: etag, 'Cache-Control': 'no-cache' }
  if (etagMatches(ctx.req.headers['if-none-match'], etag)) return send(ctx, 304, h)
  json(ctx, rec, h)
}
