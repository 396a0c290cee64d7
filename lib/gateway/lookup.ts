/**
 * Lookups shared by the API and the pages: a dataset by name (and `?catalog=`), one record of a
 * log, and the provenance of a dataset's cores with the X-Embassy-* headers that carry it.
 * Imports: ./context.ts (types), ./library.ts, ./pages.ts (types), lib/data, lib/errors.
 */
import { EmbassyError } from '../errors.js'
import type { RecordView } from '../data/log-dataset.js'
import type { Ctx } from './context.js'
import { FilesDataset, LogDataset, coresOf, provenanceOf, readOpts, type AgencyView, type CoreProvenance, type DatasetEntry, type OpenDataset, type Resolved } from './library.js'
import type { DatasetRef } from './pages.js'

export type Found = Resolved & { ref: DatasetRef }

function catalogParam(ctx: Ctx): string | null {
  const c = ctx.target?.query.get('catalog')
  return c ? c : null
}

export async function resolve(ctx: Ctx, name: string): Promise<Found> {
  const r = await ctx.site.library.resolve(name, catalogParam(ctx))
  return { ...r, ref: { name, catalog: catalogParam(ctx) } }
}

export async function resolveLog(ctx: Ctx, name: string): Promise<Found & { log: LogDataset }> {
  const r = await resolve(ctx, name)
  if (!(r.dataset instanceof LogDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'log')
  return { ...r, log: r.dataset }
}

export async function resolveFiles(ctx: Ctx, name: string): Promise<Found & { files: FilesDataset }> {
  const r = await resolve(ctx, name)
  if (!(r.dataset instanceof FilesDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'files')
  return { ...r, files: r.dataset }
}

/** Provenance of every core of a dataset, and the X-Embassy-* headers that carry it. */
export async function provenance(entry: DatasetEntry, ds: OpenDataset): Promise<{ cores: CoreProvenance[]; headers: Record<string, string> }> {
  const cores = await Promise.all(coresOf(ds).map(provenanceOf))
  const headers: Record<string, string> = {}
  if (entry.agency.catalog) headers['X-Embassy-Catalog-Key'] = entry.agency.catalog
  const [first, content] = cores
  if (first) {
    headers['X-Embassy-Core-Key'] = first.key
    headers['X-Embassy-Length'] = String(first.length)
    headers['X-Embassy-Contiguous-Length'] = String(first.contiguousLength)
    headers['X-Embassy-Fork'] = String(first.fork)
    if (first.treeHash) headers['X-Embassy-Tree-Hash'] = first.treeHash
  }
  if (content) {
    headers['X-Embassy-Content-Key'] = content.key
    headers['X-Embassy-Content-Length'] = String(content.length)
    headers['X-Embassy-Content-Fork'] = String(content.fork)
  }
  return { cores, headers }
}

/** Record `seq` of a log: 400 malformed, 404 past the end, 503 not held (after a short wait when a peer could send it). */
export async function record(log: LogDataset, name: string, seqText: string): Promise<RecordView> {
  if (!/^\d{1,15}$/.test(seqText)) throw EmbassyError.badArgument(`record number must be a non-negative integer, not "${seqText.slice(0, 40)}"`)
  const seq = Number(seqText)
  const core = log.core
  if (seq >= core.length) throw EmbassyError.notFound(`"${name}" has ${core.length} records (verified length); there is no record ${seq}`)
  const block = await core.get(seq, readOpts(core))
  if (!block) throw EmbassyError.notReplicated(`record ${seq} of "${name}" is not replicated here yet; try again shortly`)
  return LogDataset.view(seq, block)
}

/** Dataset names that exist in more than one agency (their links carry `?catalog=`). */
export function ambiguousNames(agencies: AgencyView[]): Set<string> {
  const seen = new Set<string>()
  const twice = new Set<string>()
  for (const a of agencies) for (const d of a.datasets) (seen.has(d.summary.name) ? twice : seen).add(d.summary.name)
  return twice
}
