/**
 * The gateway's web page: server-rendered HTML, no script, no external asset, one stylesheet
 * served by the gateway itself. Every interpolated value is escaped by the `html` template tag
 * (record texts, file names and descriptions are untrusted). Rendering only: no I/O, no errors thrown.
 * Imports: types from ./library.ts and lib/data, and escapeHtml from lib/html.ts only.
 */
import { escapeHtml } from '../html.js'
import type { DatasetSummary } from '../data/datasets.js'
import type { RecordView } from '../data/log-dataset.js'
import type { AgencyInfo, AgencyView, CoreProvenance } from './library.js'

/** Records per page, and search matches per page. */
export const PAGE_SIZE = 50
/** Characters of a record shown in a list. */
export const PREVIEW_CHARS = 160

/** HTML that is already safe (built by `html`). */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value
  if (Array.isArray(v)) return v.map(render).join('')
  if (v === null || v === undefined || v === false) return ''
  return escapeHtml(String(v))
}

/** Template tag: interpolations are escaped unless they are Html (or arrays of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] as string
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] as string)
  return new Html(out)
}

/** A dataset as linked to: `catalog` is set only where the name alone is ambiguous. */
export interface DatasetRef {
  name: string
  catalog: string | null
}

/** A path with each segment percent-encoded (slashes kept). */
export function encPath(p: string): string {
  return p
    .split('/')
    .filter((s) => s !== '')
    .map((s) => '/' + encodeURIComponent(s))
    .join('')
}

export function qs(params: Record<string, string | number | null | undefined | false>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== false && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? '?' + s : ''
}

export const urls = {
  home: (): string => '/',
  dataset: (r: DatasetRef, extra: Record<string, string | number | null> = {}): string => `/datasets/${encodeURIComponent(r.name)}${qs({ catalog: r.catalog, ...extra })}`,
  record: (r: DatasetRef, seq: number): string => `/datasets/${encodeURIComponent(r.name)}/records/${seq}${qs({ catalog: r.catalog })}`,
  folder: (r: DatasetRef, folder: string, extra: Record<string, string | null> = {}): string =>
    `/datasets/${encodeURIComponent(r.name)}/files${encPath(folder)}/${qs({ catalog: r.catalog, ...extra })}`,
  file: (r: DatasetRef, path: string): string => `/datasets/${encodeURIComponent(r.name)}/files${encPath(path)}${qs({ catalog: r.catalog })}`,
  raw: (r: DatasetRef, path: string, download = false): string =>
    `/api/datasets/${encodeURIComponent(r.name)}/files${encPath(path)}${qs({ catalog: r.catalog, download: download ? 1 : null })}`,
  apiDataset: (r: DatasetRef): string => `/api/datasets/${encodeURIComponent(r.name)}${qs({ catalog: r.catalog })}`,
  apiRecords: (r: DatasetRef, extra: Record<string, string | number | null> = {}): string =>
    `/api/datasets/${encodeURIComponent(r.name)}/records${qs({ catalog: r.catalog, ...extra })}`,
  apiRecord: (r: DatasetRef, seq: number): string => `/api/datasets/${encodeURIComponent(r.name)}/records/${seq}${qs({ catalog: r.catalog })}`
}

export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #5c5c5c; --line: #d8d8d8; --accent: #0b57d0; --warn: #8a4b00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8e8; --bg: #141414; --muted: #a8a8a8; --line: #3a3a3a; --accent: #8ab4f8; --warn: #f0b35a; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: baseline; border-bottom: 1px solid var(--line); padding-top: .75rem; padding-bottom: .75rem; }
header .brand { font-weight: 700; text-decoration: none; color: var(--fg); }
header nav a { margin-right: 1rem; }
footer { color: var(--muted); font-size: .875rem; border-top: 1px solid var(--line); margin-top: 2rem; padding-top: .75rem; padding-bottom: 2rem; }
h1 { font-size: 1.6rem; margin: 1rem 0 .25rem; overflow-wrap: anywhere; } h2 { font-size: 1.25rem; margin-top: 1.75rem; }
.muted { color: var(--muted); } .warn { color: var(--warn); }
.crumbs ol { list-style: none; padding: 0; margin: .75rem 0 0; display: flex; flex-wrap: wrap; gap: .25rem; }
.crumbs li + li::before { content: "/"; margin-right: .25rem; color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
code, pre, .key { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .875rem; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; border: 1px solid var(--line); padding: .75rem; border-radius: 4px; max-height: 70vh; overflow: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .5rem 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
form.search { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 1rem 0; }
input[type=search] { font: inherit; padding: .35rem .5rem; min-width: 18rem; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); }
button, .button { font: inherit; padding: .35rem .9rem; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: var(--bg); text-decoration: none; cursor: pointer; display: inline-block; }
nav.pages { display: flex; flex-wrap: wrap; gap: 1rem; margin: .75rem 0; }
.preview { overflow-wrap: anywhere; }
`

/** The page around `body`; `stylesheets`: more of the gateway's own stylesheets (the dashboard's). */
export function layout(title: string, crumbs: Array<[string, string | null]>, body: Html, stylesheets: string[] = []): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} · Data Embassy mirror</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
${stylesheets.map((href) => html`<link rel="stylesheet" href="${href}">\n`)}</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<a class="brand" href="/">Data Embassy</a>
<span class="muted">read-only copy</span>
<nav aria-label="Site"><a href="/">Datasets</a><a href="/api/status">Status (JSON)</a><a href="/metrics">Metrics</a></nav>
</header>
<main id="main">
${crumbs.length > 0 ? html`<nav class="crumbs" aria-label="Breadcrumb"><ol>${crumbs.map(([label, href]) => (href ? html`<li><a href="${href}">${label}</a></li>` : html`<li aria-current="page">${label}</li>`))}</ol></nav>` : ''}
${body}
</main>
<footer>Read-only gateway. Data responses carry their provenance in <code>X-Embassy-*</code> headers: core key, verified length, fork, signed tree hash.</footer>
</body>
</html>
`
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  do {
    v /= 1024
    u++
  } while (v >= 1024 && u < units.length - 1)
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

function time(ms: number): Html {
  const d = new Date(ms)
  if (Number.isNaN(d.getTime())) return html`<span class="muted">?</span>`
  const iso = d.toISOString()
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`
}

function agencyLabel(a: AgencyInfo): string {
  return a.name ?? (a.catalog ? `Agency ${a.catalog.slice(0, 8)}…` : 'Agency')
}

export function preview(r: RecordView): string {
  if (r.type === 'bytes') return `(${Math.floor((r.text.length * 3) / 4)} bytes, base64) ${r.text.slice(0, PREVIEW_CHARS)}`
  return r.text.length > PREVIEW_CHARS ? r.text.slice(0, PREVIEW_CHARS) + '…' : r.text
}

/** Re-indents JSON text without parsing its values (numbers keep every digit); null if not JSON. */
export function prettyJson(text: string): string | null {
  try {
    JSON.parse(text)
  } catch {
    return null
  }
  let out = ''
  let depth = 0
  let inString = false
  const nl = (): string => '\n' + '  '.repeat(depth)
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (inString) {
      out += c
      if (c === '\\') out += text[++i] ?? ''
      else if (c === '"') inString = false
      continue
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue
    if (c === '"') {
      inString = true
      out += c
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']'
      let j = i + 1
      while (j < text.length && /\s/.test(text[j] as string)) j++
      if (text[j] === close) {
        out += c + close
        i = j
      } else {
        depth++
        out += c + nl()
      }
    } else if (c === '}' || c === ']') {
      depth--
      out += nl() + c
    } else if (c === ',') out += ',' + nl()
    else if (c === ':') out += ': '
    else out += c
  }
  return out
}

function state(s: DatasetSummary, held: number | null): Html {
  if (held === null || held >= s.length) return html``
  return html` <span class="warn">(replicating: ${held} of ${s.length} held)</span>`
}

export interface HomeView {
  agencies: AgencyView[]
  /** Names present in more than one agency (linked with their catalog). */
  ambiguous: Set<string>
  ready: boolean
  held: Map<DatasetSummary, number>
  /** Link the custody dashboard (an agency's gateway where status is published). */
  custody?: boolean
}

export function homePage(v: HomeView): Html {
  const body = html`<h1>Datasets</h1>
${v.custody ? html`<p><a href="/custody">Custody dashboard</a>: who holds which dataset, alarms, drills and history.</p>` : ''}
${v.ready ? '' : html`<p class="warn" role="status">This node is still starting: data may be incomplete.</p>`}
${v.agencies.length === 0 ? html`<p>This node reads no agency yet.</p>` : ''}
${v.agencies.map(
  (a) => html`<section aria-labelledby="agency-${a.catalog ?? 'local'}">
<h2 id="agency-${a.catalog ?? 'local'}">${agencyLabel(a)}</h2>
<dl class="facts">${a.catalog ? html`<dt>Catalog key</dt><dd class="key">${a.catalog}</dd>` : ''}${a.nodeKey ? html`<dt>Agency node</dt><dd class="key">${a.nodeKey}</dd>` : ''}</dl>
${a.error ? html`<p class="warn" role="status">${a.state === 'replicating' ? 'Not replicated yet: ' : 'Cannot read this agency: '}${a.error.message}</p>` : ''}
${a.datasets.length > 0
    ? html`<table>
<caption>${a.datasets.length} dataset${a.datasets.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Description</th><th scope="col" class="num">Records / entries</th><th scope="col" class="num">Size</th></tr></thead>
<tbody>${a.datasets.map((d) => {
        const ref = { name: d.summary.name, catalog: v.ambiguous.has(d.summary.name) ? a.catalog : null }
        return html`<tr><td><a href="${urls.dataset(ref)}">${d.summary.name}</a>${state(d.summary, v.held.get(d.summary) ?? null)}</td><td>${d.summary.kind}</td><td>${d.summary.description}</td><td class="num">${d.summary.length}</td><td class="num" title="${d.summary.byteLength} bytes">${formatBytes(d.summary.byteLength)}</td></tr>`
      })}</tbody>
</table>`
    : a.state === 'ready'
      ? html`<p class="muted">No datasets.</p>`
      : ''}
${a.problems.length > 0 ? html`<ul class="warn">${a.problems.map((p) => html`<li>${p.name}: ${p.message}</li>`)}</ul>` : ''}
</section>`
)}`
  return layout('Datasets', [], body)
}

function provenanceFacts(agency: AgencyInfo, cores: CoreProvenance[]): Html {
  return html`<h2>Provenance</h2>
<dl class="facts">
${agency.catalog ? html`<dt>Catalog key</dt><dd class="key">${agency.catalog}</dd>` : ''}
${cores.map(
  (c) => html`<dt>${c.role} core</dt><dd><span class="key">${c.key}</span><br>verified length ${c.length}, held ${c.contiguousLength}, fork ${c.fork}, ${c.peers} peer${c.peers === 1 ? '' : 's'}${c.treeHash ? html`<br>signed tree hash <span class="key">${c.treeHash}</span>` : ''}</dd>`
)}
</dl>`
}

function datasetHeader(ref: DatasetRef, s: DatasetSummary, agency: AgencyInfo): Html {
  return html`<h1>${s.name}</h1>
<p>${s.description || html`<span class="muted">No description.</span>`}</p>
<dl class="facts"><dt>Agency</dt><dd>${agencyLabel(agency)}</dd><dt>Kind</dt><dd>${s.kind}${s.contentType ? ` (${s.contentType})` : ''}</dd><dt>${s.kind === 'log' ? 'Records' : 'Index entries'}</dt><dd>${s.length}</dd><dt>Size</dt><dd title="${s.byteLength} bytes">${formatBytes(s.byteLength)}</dd>${s.version !== undefined ? html`<dt>Version</dt><dd>${s.version}</dd>` : ''}<dt>API</dt><dd><a href="${urls.apiDataset(ref)}">info (JSON)</a>${s.kind === 'log' ? html` · <a href="${urls.apiRecords(ref)}">all records (NDJSON)</a>` : ''}</dd></dl>`
}

/** One row of a record list; `record` null when that block is not held yet. */
export interface RecordRow {
  seq: number
  record: RecordView | null
}

export interface LogPageView {
  ref: DatasetRef
  summary: DatasetSummary
  agency: AgencyInfo
  provenance: CoreProvenance[]
  rows: RecordRow[]
  start: number
  length: number
  /** Set when searching: the text, the records scanned [from, to) and where to continue. */
  search: { q: string; from: number; to: number; next: number | null; missing: number } | null
}

function recordTable(v: LogPageView, caption: string): Html {
  return html`<table>
<caption>${caption}</caption>
<thead><tr><th scope="col" class="num">#</th><th scope="col">Appended</th><th scope="col">Record</th></tr></thead>
<tbody>${v.rows.map((r) =>
    r.record
      ? html`<tr><td class="num"><a href="${urls.record(v.ref, r.seq)}" aria-label="Record ${r.seq}">${r.seq}</a></td><td>${time(r.record.time)}</td><td class="preview"><code>${preview(r.record)}</code></td></tr>`
      : html`<tr><td class="num">${r.seq}</td><td colspan="2" class="warn">not replicated yet</td></tr>`
  )}</tbody>
</table>`
}

export function logPage(v: LogPageView): Html {
  const { ref, search } = v
  const searchForm = html`<form class="search" method="get" action="${`/datasets/${encodeURIComponent(ref.name)}`}" role="search">
${ref.catalog ? html`<input type="hidden" name="catalog" value="${ref.catalog}">` : ''}
<label for="q">Search records</label>
<input type="search" id="q" name="q" value="${search?.q ?? ''}" maxlength="256" placeholder="text in a record">
<button type="submit">Search</button>
${search ? html`<a href="${urls.dataset(ref)}">Clear</a>` : ''}
</form>`
  let list: Html
  if (search) {
    const more = search.next !== null ? html`<nav class="pages" aria-label="Search pages"><a href="${urls.dataset(ref, { q: search.q, start: search.next })}">Continue searching from record ${search.next}</a></nav>` : ''
    list = html`<h2>Search results</h2>
<p role="status">${v.rows.length} match${v.rows.length === 1 ? '' : 'es'} for “${search.q}” in records ${search.from}–${Math.max(search.from, search.to - 1)} of ${v.length}.${search.missing > 0 ? html` <span class="warn">${search.missing} records there are not replicated yet.</span>` : ''}</p>
${v.rows.length > 0 ? recordTable(v, `Records matching “${search.q}”`) : ''}
${more}`
  } else {
    const last = Math.max(0, Math.floor((v.length - 1) / PAGE_SIZE) * PAGE_SIZE)
    const prev = v.start > 0 ? Math.max(0, v.start - PAGE_SIZE) : null
    const next = v.start + PAGE_SIZE < v.length ? v.start + PAGE_SIZE : null
    const pager = html`<nav class="pages" aria-label="Record pages">
${prev !== null ? html`<a href="${urls.dataset(ref, { start: 0 })}">First</a><a href="${urls.dataset(ref, { start: prev })}" rel="prev">Previous</a>` : ''}
${next !== null ? html`<a href="${urls.dataset(ref, { start: next })}" rel="next">Next</a><a href="${urls.dataset(ref, { start: last })}">Last</a>` : ''}
</nav>`
    list = html`<h2>Records</h2>
${v.length === 0 ? html`<p class="muted">No records.</p>` : recordTable(v, `Records ${v.start}–${v.start + v.rows.length - 1} of ${v.length}`)}
${pager}`
  }
  const body = html`${datasetHeader(ref, v.summary, v.agency)}
${searchForm}
${list}
${provenanceFacts(v.agency, v.provenance)}`
  return layout(v.summary.name, [['Datasets', '/'], [v.summary.name, null]], body)
}

export interface RecordPageView {
  ref: DatasetRef
  summary: DatasetSummary
  agency: AgencyInfo
  provenance: CoreProvenance[]
  record: RecordView
  length: number
}

export function recordPage(v: RecordPageView): Html {
  const { ref, record } = v
  const pretty = record.type === 'json' ? prettyJson(record.text) : null
  const body = html`<h1>Record ${record.seq}</h1>
<dl class="facts"><dt>Dataset</dt><dd><a href="${urls.dataset(ref, { start: Math.floor(record.seq / PAGE_SIZE) * PAGE_SIZE })}">${ref.name}</a></dd><dt>Appended</dt><dd>${time(record.time)}</dd><dt>Type</dt><dd>${record.type === 'json' ? 'JSON' : 'bytes (shown as base64)'}</dd><dt>Raw</dt><dd><a href="${urls.apiRecord(ref, record.seq)}">JSON</a></dd></dl>
<h2>Content</h2>
<pre id="record-text">${pretty ?? record.text}</pre>
<nav class="pages" aria-label="Neighbouring records">
${record.seq > 0 ? html`<a href="${urls.record(ref, record.seq - 1)}" rel="prev">Previous record</a>` : ''}
${record.seq + 1 < v.length ? html`<a href="${urls.record(ref, record.seq + 1)}" rel="next">Next record</a>` : ''}
</nav>
${provenanceFacts(v.agency, v.provenance)}`
  return layout(`${ref.name} #${record.seq}`, [['Datasets', '/'], [ref.name, urls.dataset(ref)], [`Record ${record.seq}`, null]], body)
}

export interface FolderEntry {
  name: string
  /** Full path in the dataset ('/a/b.txt'). */
  path: string
  type: 'file' | 'folder' | 'link'
  /** Bytes (files); null for folders. */
  size: number | null
  /** Links: the dataset path it points to, or null when the link is not served (absolute, or leaves the dataset). */
  target?: string | null
}

export interface FolderPageView {
  ref: DatasetRef
  summary: DatasetSummary
  agency: AgencyInfo
  provenance: CoreProvenance[]
  /** '/' or '/a/b'. */
  folder: string
  entries: FolderEntry[]
  /** Name to continue after when the listing was cut. */
  next: string | null
}

function folderCrumbs(ref: DatasetRef, folder: string, last: boolean): Array<[string, string | null]> {
  const parts = folder.split('/').filter((s) => s !== '')
  const crumbs: Array<[string, string | null]> = [['Datasets', '/'], [ref.name, parts.length === 0 && last ? null : urls.dataset(ref)]]
  parts.forEach((p, i) => crumbs.push([p, i === parts.length - 1 && last ? null : urls.folder(ref, '/' + parts.slice(0, i + 1).join('/'))]))
  return crumbs
}

export function folderPage(v: FolderPageView): Html {
  const { ref } = v
  const root = v.folder === '/'
  const body = html`${root ? datasetHeader(ref, v.summary, v.agency) : html`<h1>${v.folder}</h1>`}
<h2>${root ? 'Files' : 'Contents'}</h2>
${v.entries.length === 0
    ? html`<p class="muted">No files${root ? '' : ' in this folder'}.</p>`
    : html`<table>
<caption>${v.entries.length}${v.next ? '+' : ''} item${v.entries.length === 1 ? '' : 's'} in ${v.folder}</caption>
<thead><tr><th scope="col">Name</th><th scope="col" class="num">Size</th><th scope="col"><span class="muted">Download</span></th></tr></thead>
<tbody>${v.entries.map((e) =>
        e.type === 'folder'
          ? html`<tr><td><a href="${urls.folder(ref, e.path)}">${e.name}/</a></td><td class="num muted">folder</td><td></td></tr>`
          : html`<tr><td><a href="${urls.file(ref, e.path)}">${e.name}</a></td><td class="num" title="${e.size ?? 0} bytes">${formatBytes(e.size ?? 0)}</td><td><a href="${urls.raw(ref, e.path, true)}" download="${e.name}" aria-label="Download ${e.name}">Download</a></td></tr>`
      )}</tbody>
</table>`}
${v.next ? html`<nav class="pages" aria-label="Folder pages"><a href="${urls.folder(ref, v.folder, { after: v.next })}">More</a></nav>` : ''}
${root ? provenanceFacts(v.agency, v.provenance) : ''}`
  return layout(root ? v.summary.name : `${ref.name}${v.folder}`, folderCrumbs(ref, v.folder, true), body)
}

export interface FilePageView {
  ref: DatasetRef
  agency: AgencyInfo
  provenance: CoreProvenance[]
  path: string
  size: number
  type: string
  etag: string
  /** False while the file's content blocks are not all held. */
  held: boolean
}

export function filePage(v: FilePageView): Html {
  const { ref } = v
  const name = v.path.slice(v.path.lastIndexOf('/') + 1)
  const folder = v.path.slice(0, v.path.lastIndexOf('/')) || '/'
  const crumbs = folderCrumbs(ref, folder, false)
  crumbs.push([name, null])
  const body = html`<h1>${name}</h1>
<dl class="facts"><dt>Path</dt><dd class="key">${v.path}</dd><dt>Size</dt><dd>${formatBytes(v.size)} (${v.size} bytes)</dd><dt>Type</dt><dd>${v.type}</dd><dt>ETag</dt><dd class="key">${v.etag}</dd></dl>
${v.held ? '' : html`<p class="warn" role="status">This file is still replicating: try again shortly.</p>`}
<p><a class="button" href="${urls.raw(ref, v.path, true)}" download="${name}">Download</a> <a href="${urls.raw(ref, v.path)}">Open</a></p>
${provenanceFacts(v.agency, v.provenance)}`
  return layout(`${ref.name}${v.path}`, crumbs, body)
}

export function errorPage(status: number, code: string, message: string): Html {
  const body = html`<h1>${status === 404 ? 'Not found' : status === 503 ? 'Not available yet' : 'Error'}</h1>
<p role="alert">${message}</p>
<p class="muted">Error code <code>${code}</code> (HTTP ${status}).${status === 503 ? ' This node may still be replicating: try again in a few seconds.' : ''}</p>
<p><a href="/">All datasets</a></p>`
  return layout(`Error ${status}`, [], body)
}
