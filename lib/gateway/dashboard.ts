/**
 * The custody dashboard (GET /custody, on an agency's gateway): server-rendered, no script, no
 * external asset. A matrix of datasets × embassies (held, behind, receipt and audit age; each state
 * in colour AND words), the open alarms, the last drills (DIR/drills/drill-*.json, written by
 * `embassy drill`; a malformed one is shown as an unreadable report), and history charts (inline
 * SVG, ./svg-chart.ts) of lag behind and recovery point per embassy over 24 h and 30 days, from
 * the custody history (lib/custody/timeseries.ts). Served where /api/status is (loopback by
 * default); 404 otherwise. Every name, key and alarm text is escaped (the `html` tag).
 * Imports: ./context.ts, ./http.ts, ./pages.ts, ./svg-chart.ts, lib/custody (series types), lib/errors.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import { COARSE_SPAN_MS, FINE_SPAN_MS, pointsIn, type SeriesData } from '../custody/timeseries.js'
import { html as sendPage, send, withDeadline, type CellNow, type CustodyNow, type Ctx } from './context.js'

export type { CellNow, CustodyNow, CustodySource } from './context.js'
import { etagMatches, etagOf } from './http.js'
import { formatBytes, html, layout, type Html } from './pages.js'
import { SECOND_STEPS, lineChart, type ChartSeries } from './svg-chart.js'

/** Drill reports shown (newest first). */
export const DRILLS_SHOWN = 5
/** A drill report larger than this is not read (shown as unreadable). */
export const MAX_DRILL_BYTES = 1024 * 1024
/** The dashboard waits this long for the node's status. */
const STATUS_DEADLINE_MS = 5000

export interface DrillView {
  file: string
  /** Null when the report is unreadable. */
  report: {
    ok: boolean
    /** Null when no embassy was reached. */
    embassy: string | null
    /** Why the whole drill failed, when it did before any dataset. */
    error: string | null
    startedAt: number
    finishedAt: number
    firstRecordMs: number | null
    fullCopyMs: number | null
    blocksBehind: number | null
    secondsBehind: number | null
    failed: Array<{ name: string; error: string }>
    datasets: number
    signer: string
  } | null
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const time = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? Date.parse(v) : null)

/** The newest drill reports in DIR/drills/ (by file name, which carries the time). */
export function readDrills(dir: string, limit = DRILLS_SHOWN): DrillView[] {
  const folder = path.join(dir, 'drills')
  let names: string[]
  try {
    names = fs.readdirSync(folder).filter((n) => /^drill-.*\.json$/.test(n))
  } catch {
    return []
  }
  names.sort().reverse()
  return names.slice(0, limit).map((file) => ({ file, report: readDrill(path.join(folder, file)) }))
}

function readDrill(file: string): DrillView['report'] {
  try {
    if (fs.statSync(file).size > MAX_DRILL_BYTES) return null
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>
    // A drill that reached no embassy has `embassy: null` and says why in `error`.
    if (!r || typeof r !== 'object' || typeof r.ok !== 'boolean' || (typeof r.embassy !== 'string' && r.embassy !== null)) return null
    const startedAt = time(r.startedAt)
    const finishedAt = time(r.finishedAt)
    const rto = (r.rto ?? {}) as Record<string, unknown>
    const rpo = (r.rpo ?? {}) as Record<string, unknown>
    if (startedAt === null || finishedAt === null || typeof rto !== 'object' || typeof rpo !== 'object' || !Array.isArray(r.datasets)) return null
    const datasets = r.datasets as Array<Record<string, unknown>>
    if (!datasets.every((d) => d && typeof d === 'object' && typeof d.name === 'string' && typeof d.ok === 'boolean')) return null
    return {
      ok: r.ok,
      embassy: r.embassy,
      error: typeof r.error === 'string' ? r.error : null,
      startedAt,
      finishedAt,
      firstRecordMs: num(rto.firstRecordMs),
      fullCopyMs: num(rto.fullCopyMs),
      blocksBehind: num(rpo.blocksBehind),
      secondsBehind: num(rpo.secondsBehind),
      failed: datasets.filter((d) => !d.ok).map((d) => ({ name: d.name as string, error: typeof d.error === 'string' ? d.error : 'failed' })),
      datasets: datasets.length,
      signer: typeof r.signer === 'string' ? r.signer : ''
    }
  } catch {
    return null
  }
}

export const DASHBOARD_CSS = `
.dash-summary { color: var(--muted); }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll:focus-visible { outline: 3px solid var(--accent); }
table.matrix td, table.matrix th { min-width: 11rem; }
table.matrix th[scope=row] { min-width: 8rem; overflow-wrap: anywhere; }
.state { display: inline-block; font-weight: 600; padding: 0 .4rem; border-radius: 3px; border: 1px solid currentColor; }
.state-ok { color: #0f5f2a; background: #e3f4e8; } .state-behind { color: #7a4100; background: #fff1d6; }
.state-failed { color: #9b1c1c; background: #fde4e4; } .state-none { color: #444; background: #eee; }
@media (prefers-color-scheme: dark) {
  .state-ok { color: #8be0a4; background: #12331d; } .state-behind { color: #ffc970; background: #3a2a0c; }
  .state-failed { color: #ffaaaa; background: #401414; } .state-none { color: #ddd; background: #333; }
}
.cell-facts { font-size: .875rem; margin: .25rem 0 0; padding: 0; list-style: none; }
.charts { display: grid; grid-template-columns: 1fr; gap: 1rem; }
@media (min-width: 60rem) { .charts { grid-template-columns: 1fr 1fr; } }
.chart-box { margin: 0; }
.chart-box h4 { margin: .25rem 0; font-size: 1rem; }
svg.chart { width: 100%; height: auto; display: block; color: var(--fg); }
@media (max-width: 40rem) { svg.chart text { font-size: 22px; } svg.chart .minor { display: none; } }
ul.legend { list-style: none; padding: 0; margin: .25rem 0; display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: .875rem; }
ul.legend li { overflow-wrap: anywhere; }
svg.swatch { width: 28px; height: 10px; margin-right: .35rem; vertical-align: middle; }
@media (min-width: 100rem) { header, main, footer { max-width: 110rem; } body { font-size: 18px; } }
`

/** GET /assets/dashboard.css */
export async function dashboardStylesheet(ctx: Ctx): Promise<void> {
  const etag = etagOf('css', DASHBOARD_CSS)
  const h = { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=3600', ETag: etag }
  if (etagMatches(ctx.req.headers['if-none-match'], etag)) return send(ctx, 304, h)
  send(ctx, 200, h, DASHBOARD_CSS)
}

/** GET /custody: 404 where the node has no custody (not an agency) or status is not published here. */
export async function dashboard(ctx: Ctx): Promise<void> {
  const source = ctx.site.custody
  if (!source || !ctx.site.publishStatus()) throw EmbassyError.notFound('no custody dashboard here (an agency\'s gateway on loopback, or `embassy run --http-status`)')
  const now = Date.now()
  const custody = await withDeadline(source.now(), STATUS_DEADLINE_MS)
  sendPage(ctx, dashboardPage({ now, custody, series: source.series(), drills: readDrills(source.dir) }))
}

export interface DashboardView {
  now: number
  custody: CustodyNow
  series: SeriesData
  drills: DrillView[]
}

function short(key: string): string {
  return key.length > 12 ? `${key.slice(0, 8)}…` : key
}

function age(ms: number | null): string {
  if (ms === null) return 'never'
  if (ms < 1000) return 'just now'
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min ago`
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h ago`
  return `${(ms / 86_400_000).toFixed(1)} d ago`
}

function duration(s: number): string {
  if (s > 0 && s < 10) return `${Number(s.toFixed(2))} s`
  if (s < 120) return `${Math.round(s)} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`
  return `${(s / 86_400).toFixed(1)} d`
}

function stamp(ms: number): Html {
  const d = new Date(ms)
  if (Number.isNaN(d.getTime())) return html`?`
  const iso = d.toISOString()
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`
}

/** A cell's state: its class and its words (colour is never the only signal). */
export function cellState(c: CellNow): { cls: 'ok' | 'behind' | 'failed' | 'none'; label: string } {
  if (c.receiptAge === null) return { cls: 'none', label: 'No receipt yet' }
  if (!c.held || c.audit?.state === 'failed') return { cls: 'failed', label: 'Audit failed: not held' }
  if ((c.preRewrite?.length ?? 0) > 0) return { cls: 'failed', label: 'Keeps pre-rewrite history' }
  if (c.behindBlocks > 0) return { cls: 'behind', label: 'Behind' }
  return { cls: 'ok', label: 'Up to date' }
}

function matrix(v: DashboardView, embassies: string[]): Html {
  if (v.custody.datasets.length === 0) return html`<p>No datasets yet.</p>`
  if (embassies.length === 0) return html`<p class="warn">No embassy holds anything yet: <code>embassy allow NODE_KEY</code> admits one.</p>`
  return html`<div class="scroll" role="region" aria-labelledby="matrix-caption" tabindex="0"><table class="matrix">
<caption id="matrix-caption">Custody of ${v.custody.datasets.length} dataset${v.custody.datasets.length === 1 ? '' : 's'} by ${embassies.length} embass${embassies.length === 1 ? 'y' : 'ies'}</caption>
<thead><tr><th scope="col">Dataset</th>${embassies.map((k) => html`<th scope="col"><span class="key" title="${k}">Embassy ${short(k)}</span></th>`)}</tr></thead>
<tbody>${v.custody.datasets.map(
    (d) => html`<tr><th scope="row">${d.name}<br><span class="muted">${d.length} blocks, ${formatBytes(d.byteLength)}</span></th>${embassies.map((k) => {
      const c = d.embassies.find((e) => e.nodeKey === k)
      if (!c) return html`<td><span class="state state-none">Not listed</span></td>`
      const s = cellState(c)
      return html`<td data-state="${s.cls}"><span class="state state-${s.cls}">${s.label}</span>
<ul class="cell-facts"><li>held ${c.heldLength} of ${d.length} blocks</li><li>behind ${c.behindBlocks} blocks / ${formatBytes(c.behindBytes)}</li><li>receipt ${age(c.receiptAge)}</li><li>audit ${c.audit ? (c.audit.state === 'never' || c.audit.at === null ? 'never' : `${c.audit.state} ${age(v.now - c.audit.at)}`) : 'never'}</li><li>${c.connected ? 'connected' : 'offline'}</li></ul></td>`
    })}</tr>`
  )}</tbody>
</table></div>`
}

function alarms(v: DashboardView): Html {
  const list = [...v.custody.alarms].sort((a, b) => b.time - a.time)
  if (list.length === 0) return html`<p><span class="state state-ok">No open alarms</span></p>`
  return html`<div class="scroll" role="region" aria-labelledby="alarms-caption" tabindex="0"><table>
<caption id="alarms-caption">${list.length} open alarm${list.length === 1 ? '' : 's'}, newest first (acknowledge with <code>embassy alarms ack ID</code>)</caption>
<thead><tr><th scope="col">Raised</th><th scope="col">Kind</th><th scope="col">From</th><th scope="col">What happened</th><th scope="col">ID</th></tr></thead>
<tbody>${list.map((a) => html`<tr><td>${stamp(a.time)}</td><td><span class="state state-failed">${a.kind}</span></td><td class="key" title="${a.peer}">${short(a.peer)}</td><td>${a.detail}${a.repeats ? html` <span class="muted">(and ${a.repeats} more)</span>` : ''}</td><td class="key">${a.id ?? ''}</td></tr>`)}</tbody>
</table></div>`
}

function drills(v: DashboardView): Html {
  if (v.drills.length === 0) return html`<p class="muted">No drill yet: <code>embassy drill --kit FILE --out ${'<node dir>'}/drills</code> rehearses a recovery from one embassy.</p>`
  return html`<div class="scroll" role="region" aria-labelledby="drills-caption" tabindex="0"><table>
<caption id="drills-caption">The last ${v.drills.length} drill report${v.drills.length === 1 ? '' : 's'}, newest first</caption>
<thead><tr><th scope="col">Started</th><th scope="col">Result</th><th scope="col">Embassy</th><th scope="col" class="num">First record</th><th scope="col" class="num">Full copy</th><th scope="col" class="num">Recovery point</th><th scope="col">Report</th></tr></thead>
<tbody>${v.drills.map((d) => {
    const r = d.report
    if (!r) return html`<tr><td colspan="6"><span class="state state-failed">Unreadable report</span></td><td class="key">${d.file}</td></tr>`
    const ms = (x: number | null): string => (x === null ? '–' : x < 10_000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`)
    return html`<tr><td>${stamp(r.startedAt)}</td><td><span class="state state-${r.ok ? 'ok' : 'failed'}">${r.ok ? 'Passed' : 'Failed'}</span>${r.failed.length || r.error ? html`<ul class="cell-facts">${r.error ? html`<li>${r.error}</li>` : ''}${r.failed.map((f) => html`<li>${f.name}: ${f.error}</li>`)}</ul>` : html` <span class="muted">${r.datasets} dataset${r.datasets === 1 ? '' : 's'}</span>`}</td>${r.embassy === null ? html`<td class="muted">none reached</td>` : html`<td class="key" title="${r.embassy}">${short(r.embassy)}</td>`}<td class="num">${ms(r.firstRecordMs)}</td><td class="num">${ms(r.fullCopyMs)}</td><td class="num">${r.blocksBehind === null ? '–' : `${r.blocksBehind} blocks`}${r.secondsBehind === null ? '' : `, ${duration(r.secondsBehind)}`}</td><td class="key">${d.file}</td></tr>`
  })}</tbody>
</table></div>`
}

/** Per embassy: blocks behind summed over datasets, and seconds behind (worst dataset), per time step. */
export function perEmbassy(series: SeriesData, since: number, until: number): { lag: ChartSeries[]; rpo: ChartSeries[] } {
  const fine = since >= until - FINE_SPAN_MS
  const step = fine ? Math.max(1, series.sampleMs) : 3_600_000
  const by = new Map<string, { lag: Map<number, number>; rpo: Map<number, number> }>()
  for (const p of series.pairs) {
    let e = by.get(p.embassy)
    if (!e) by.set(p.embassy, (e = { lag: new Map(), rpo: new Map() }))
    for (const [t, blocks, , seconds] of pointsIn(p, since, until)) {
      // Samples of one round share their time; coarse points are grouped by their hour.
      const key = fine ? t : Math.floor(t / step) * step + step / 2
      e.lag.set(key, (e.lag.get(key) ?? 0) + blocks)
      e.rpo.set(key, Math.max(e.rpo.get(key) ?? 0, seconds))
    }
  }
  const toSeries = (k: string, m: Map<number, number>): ChartSeries => ({ label: `Embassy ${short(k)}`, points: [...m.entries()].sort((a, b) => a[0] - b[0]) })
  const keys = [...by.keys()].sort()
  return { lag: keys.map((k) => toSeries(k, by.get(k)!.lag)), rpo: keys.map((k) => toSeries(k, by.get(k)!.rpo)) }
}

/** A young history is drawn from its first sample (at least the last few minutes), not across an empty window. */
const MIN_CHART_SPAN_MS = 5 * 60_000

function charts(v: DashboardView, id: string, label: string, span: number): Html {
  const first = Math.min(...v.series.pairs.map((p) => Math.min(p.fine[0]?.[0] ?? Infinity, p.coarse[0]?.[0] ?? Infinity)))
  const clipped = first > v.now - span
  const since = clipped ? Math.min(first, v.now - MIN_CHART_SPAN_MS) : v.now - span
  const { lag, rpo } = perEmbassy(v.series, since, v.now)
  return html`<section aria-labelledby="h-${id}">
<h3 id="h-${id}">${label}</h3>
${clipped && Number.isFinite(first) ? html`<p class="muted">The history began ${stamp(first)}: nothing was sampled before.</p>` : ''}
<div class="charts">
<div><h4>Lag behind per embassy</h4>${lineChart({ id: `${id}-lag`, title: `Blocks behind per embassy, ${label.toLowerCase()}`, description: `Blocks each embassy lacked at each sample (summed over datasets; ${span > FINE_SPAN_MS ? 'the worst of each hour' : 'one point per sample'}).`, since, until: v.now, unit: 'blocks behind', series: lag })}</div>
<div><h4>Recovery point per embassy</h4>${lineChart({ id: `${id}-rpo`, title: `Recovery point per embassy, ${label.toLowerCase()}`, description: 'How old the newest complete copy at each embassy was (seconds since it last held everything; the worst dataset).', since, until: v.now, unit: 'behind by', series: rpo, format: duration, steps: SECOND_STEPS })}</div>
</div>
</section>`
}

export function dashboardPage(v: DashboardView): Html {
  const embassies = [...new Set(v.custody.datasets.flatMap((d) => d.embassies.map((e) => e.nodeKey)))].sort()
  const cells = v.custody.datasets.flatMap((d) => d.embassies.map(cellState))
  const bad = cells.filter((c) => c.cls !== 'ok').length
  const body = html`<h1>Custody</h1>
<p class="dash-summary" role="status">${cells.length === 0 ? 'Nothing held yet.' : bad === 0 ? `All ${cells.length} dataset copies are up to date.` : `${bad} of ${cells.length} dataset copies need attention.`} ${v.custody.alarms.length} open alarm${v.custody.alarms.length === 1 ? '' : 's'}. As of ${stamp(v.now)}; history sampled every ${duration(v.series.sampleMs / 1000)}.</p>
<section aria-labelledby="h-matrix"><h2 id="h-matrix">Custody now</h2>${matrix(v, embassies)}</section>
<section aria-labelledby="h-alarms"><h2 id="h-alarms">Open alarms</h2>${alarms(v)}</section>
<section aria-labelledby="h-drills"><h2 id="h-drills">Last drills</h2>${drills(v)}</section>
<section aria-labelledby="h-history"><h2 id="h-history">History</h2>
${charts(v, 'day', 'Last 24 hours', FINE_SPAN_MS)}
${charts(v, 'month', 'Last 30 days', COARSE_SPAN_MS)}
</section>`
  return layout('Custody', [['Datasets', '/'], ['Custody', null]], body, ['/assets/dashboard.css'])
}
