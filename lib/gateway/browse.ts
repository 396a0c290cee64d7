/**
 * The web pages' handlers: what the home, dataset (records, search), record, folder and file
 * pages show, and the stylesheet. The HTML itself is rendered in ./pages.ts.
 * Imports: ./context.ts, ./lookup.ts, ./files.ts, ./library.ts, ./http.ts, ./pages.ts, lib/errors.
 */
import { EmbassyError } from '../errors.js'
import type { DatasetSummary } from '../data/datasets.js'
import { JSON_TYPE, html, send, type Ctx, type RoutedCtx } from './context.js'
import { fileEntry, fileEtag, folder, listFolder } from './files.js'
import { etagMatches, etagOf, intParam, mediaTypeOf, searchParam } from './http.js'
import { FilesDataset, LogDataset, coresOf, fetchBlocks, readOpts } from './library.js'
import { ambiguousNames, provenance, record, resolve, resolveFiles, resolveLog, type Found } from './lookup.js'
import { PAGE_SIZE, STYLESHEET, filePage, folderPage, homePage, logPage, recordPage, urls, type RecordRow } from './pages.js'

/** Records a search page scans at most before offering to continue. */
export const SEARCH_SCAN = 5000

/** GET /assets/style.css: the one stylesheet (cacheable, ETag). */
export async function stylesheet(ctx: Ctx): Promise<void> {
  const etag = etagOf('css', STYLESHEET)
  const h = { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=3600', ETag: etag }
  if (etagMatches(ctx.req.headers['if-none-match'], etag)) return send(ctx, 304, h)
  send(ctx, 200, h, STYLESHEET)
}

/** GET /: every agency and its datasets. */
export async function home(ctx: Ctx): Promise<void> {
  const agencies = await ctx.site.library.agencies()
  const held = new Map<DatasetSummary, number>()
  for (const a of agencies) {
    for (const e of a.datasets) {
      const ds = await e.open().catch(() => null)
      const first = ds ? coresOf(ds)[0] : undefined
      if (first) held.set(e.summary, first.core.contiguousLength)
    }
  }
  html(ctx, homePage({ agencies, ambiguous: ambiguousNames(agencies), ready: ctx.site.isReady(), held, custody: !!ctx.site.custody && ctx.site.publishStatus() }))
}

/** GET /datasets/NAME: a log's records, paged or searched; a files dataset's root folder. */
export async function datasetPage(ctx: RoutedCtx, name: string): Promise<void> {
  const r = await resolve(ctx, name)
  if (r.dataset instanceof FilesDataset) return folderView(ctx, name, '/', r)
  const log = r.dataset
  const core = log.core
  const { cores, headers } = await provenance(r.entry, r.dataset)
  const query = ctx.target.query
  const q = searchParam(query)
  const length = core.length
  const rows: RecordRow[] = []
  let search = null
  if (q !== null) {
    const needle = q.toLowerCase()
    const from = Math.min(intParam(query, 'start', 0), length)
    let seq = from
    let missing = 0
    for (; seq < length && seq < from + SEARCH_SCAN && rows.length < PAGE_SIZE; seq++) {
      if (ctx.signal.aborted) return // the client left: stop reading
      const block = await core.get(seq, { wait: false })
      if (!block) {
        missing++
        continue
      }
      ctx.site.stats.recordsScanned++
      const rec = LogDataset.view(seq, block)
      if (rec.text.toLowerCase().includes(needle)) rows.push({ seq, record: rec })
    }
    search = { q, from, to: seq, next: seq < length ? seq : null, missing }
  } else {
    const lastPage = Math.max(0, Math.floor((length - 1) / PAGE_SIZE) * PAGE_SIZE)
    const start = Math.min(intParam(query, 'start', 0), lastPage)
    await fetchBlocks(core, start, Math.min(length, start + PAGE_SIZE), ctx.signal) // what is not held, from a holder (bounded)
    for (let seq = start; seq < Math.min(length, start + PAGE_SIZE); seq++) {
      const block = await core.get(seq, { wait: false })
      rows.push({ seq, record: block ? LogDataset.view(seq, block) : null })
    }
    html(ctx, logPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, rows, start, length, search: null }), 200, headers)
    return
  }
  html(ctx, logPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, rows, start: search.from, length, search }), 200, headers)
}

/** GET /datasets/NAME/records/SEQ: one record. */
export async function recordView(ctx: RoutedCtx, name: string, seqText: string): Promise<void> {
  const r = await resolveLog(ctx, name)
  const rec = await record(r.log, name, seqText)
  const { cores, headers } = await provenance(r.entry, r.dataset)
  html(ctx, recordPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, record: rec, length: r.log.core.length }), 200, headers)
}

/** GET /datasets/NAME/files/[FOLDER/]: a folder of a files dataset. */
export async function folderView(ctx: RoutedCtx, name: string, path: string, resolved?: Found): Promise<void> {
  const r = resolved ?? (await resolve(ctx, name))
  if (!(r.dataset instanceof FilesDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'files')
  const listed = await folder(ctx, r.dataset, name, path)
  const { cores, headers } = await provenance(r.entry, r.dataset)
  html(ctx, folderPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, folder: path, entries: listed.entries, next: listed.next }), 200, headers)
}

/** GET /datasets/NAME/files/PATH: a file's page (size, type, whether held, links to its bytes); a folder redirects. */
export async function fileView(ctx: RoutedCtx, name: string, path: string): Promise<void> {
  const r = await resolveFiles(ctx, name)
  const entry = await fileEntry(r.files, name, path)
  if (!entry) {
    if ((await listFolder(r.files, path, null, 1)).entries.length > 0) {
      return send(ctx, 302, { Location: urls.folder(r.ref, path), 'Content-Type': JSON_TYPE }, JSON.stringify({ location: urls.folder(r.ref, path) }))
    }
    throw EmbassyError.notFound(`"${name}" has no file ${path}`)
  }
  const blob = entry.value.blob
  const blobs = r.files.drive.blobs
  // With a holder connected, what is not held is fetched when the file is asked for: only say "replicating" when none is.
  const held = !blob || (!!blobs && (readOpts(blobs.core).wait || (await blobs.core.has(blob.blockOffset, blob.blockOffset + blob.blockLength))))
  const etag = fileEtag(r.files, entry)
  const { cores, headers } = await provenance(r.entry, r.dataset)
  html(ctx, filePage({ ref: r.ref, agency: r.entry.agency, provenance: cores, path: entry.key, size: blob ? blob.byteLength : 0, type: mediaTypeOf(entry.key), etag, held }), 200, headers)
}
