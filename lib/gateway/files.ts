/**
 * Files datasets over HTTP: a file's bytes (Range, If-Range, ETag/If-None-Match, Content-Type,
 * sandboxed), folder listings (JSON, paged), and the entry/listing lookups the pages share.
 * Imports: ./context.ts, ./lookup.ts, ./library.ts, ./http.ts, ./pages.ts (urls), lib/data (safe-paths), lib/errors.
 */
import { EmbassyError } from '../errors.js'
import { begin, send, json, write, type RoutedCtx } from './context.js'
import { MAX_QUERY_LENGTH, contentDisposition, etagMatches, etagOf, mediaTypeOf, parseRange } from './http.js'
import { BLOCK_WAIT_MS, readOpts, type FilesDataset } from './library.js'
import { linkTarget } from '../data/safe-paths.js'
import { provenance, resolveFiles } from './lookup.js'
import { encPath, urls, type FolderEntry } from './pages.js'

/** Folder entries listed per page / per API call. */
export const FOLDER_PAGE = 500

/** Files are untrusted: never let one run script in the gateway's origin. */
const FILE_CSP = 'sandbox; default-src \'none\'; img-src \'self\' data:; media-src \'self\'; style-src \'unsafe-inline\''

export type DriveEntry = NonNullable<Awaited<ReturnType<FilesDataset['drive']['entry']>>>

export interface Listing {
  entries: FolderEntry[]
  /** The name to list after for the next page; null on the last page. */
  next: string | null
}

/** `p`, or null after BLOCK_WAIT_MS (what a holder did not send in time is "not replicated yet", not a hang). */
async function withinWait<T>(p: Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  p.catch(() => {})
  try {
    return await Promise.race([p.catch(() => null), new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), BLOCK_WAIT_MS)))])
  } finally {
    clearTimeout(timer)
  }
}

/** Links followed in a row before giving up (a loop). */
const MAX_LINK_HOPS = 16

/**
 * The entry at `path`, links followed by the dataset link policy (lib/data/safe-paths.ts): only
 * relative links that resolve inside the dataset, as a file system resolves them (from the link's
 * folder). 404 for a link that points outside, to nothing or in a loop; 503 when not held.
 */
export async function fileEntry(files: FilesDataset, name: string, path: string): Promise<DriveEntry | null> {
  const drive = files.drive
  let at = path
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    const entry = await drive.entry(at, readOpts(drive.core))
    if (!entry || !entry.value.linkname) {
      if (!entry && hop > 0) throw EmbassyError.notFound(`${path} in "${name}" is a link to nothing`)
      return entry
    }
    const t = linkTarget(entry.key, entry.value.linkname)
    if ('reason' in t) throw EmbassyError.notFound(`${path} in "${name}" is a link that is not served: ${t.reason}`)
    at = t.target
  }
  throw EmbassyError.notFound(`${path} in "${name}" is a link in a loop`)
}

/** A strong ETag for a file's content: changes whenever its blob (or the content core's fork) does. */
export function fileEtag(files: FilesDataset, entry: DriveEntry): string {
  const blob = entry.value.blob
  const blobs = files.drive.blobs
  return blob && blobs ? etagOf('file', blobs.core.key!.toString('hex'), blobs.core.fork, blob.blockOffset, blob.blockLength, blob.byteOffset, blob.byteLength) : etagOf('empty-file')
}

/** Up to `limit` entries of `folder` (files, links and sub-folders), after the name `after`. */
export async function listFolder(files: FilesDataset, folder: string, after: string | null, limit = FOLDER_PAGE): Promise<Listing> {
  const drive = files.drive
  const prefix = folder === '/' ? '/' : folder + '/'
  const entries: FolderEntry[] = []
  let next: string | null = null
  const afterBytes = after === null ? null : Buffer.from(after)
  const stream = drive.list(folder, { recursive: false, ...readOpts(drive.core) })
  try {
    for await (const node of stream) {
      const rest = node.key.slice(prefix.length)
      const i = rest.indexOf('/')
      const name = i === -1 ? rest : rest.slice(0, i)
      if (afterBytes && Buffer.compare(Buffer.from(name), afterBytes) <= 0) continue
      if (entries.length >= limit) {
        next = entries[entries.length - 1]?.name ?? null
        break
      }
      if (i === -1) {
        const link = node.value.linkname ? linkTarget(node.key, node.value.linkname) : null
        entries.push({
          name,
          path: prefix + name,
          type: node.value.linkname ? 'link' : 'file',
          size: node.value.blob ? node.value.blob.byteLength : 0,
          ...(link ? { target: 'target' in link ? link.target : null } : {})
        })
      }
      else entries.push({ name, path: prefix + name, type: 'folder', size: null })
    }
  } finally {
    stream.destroy()
  }
  return { entries, next }
}

/** The page of `folder` the request asks for (`?after=`); 404 when the folder does not exist. */
export async function folder(ctx: RoutedCtx, files: FilesDataset, name: string, path: string): Promise<Listing> {
  const after = ctx.target.query.get('after')
  if (after !== null && after.length > MAX_QUERY_LENGTH * 4) throw EmbassyError.badArgument('"after" is too long')
  const listed = await listFolder(files, path, after)
  if (path !== '/' && listed.entries.length === 0 && after === null) throw EmbassyError.notFound(`"${name}" has no folder ${path}`)
  return listed
}

/** GET /api/datasets/NAME/files/[FOLDER/]: a folder listing (JSON). */
export async function apiFolder(ctx: RoutedCtx, name: string, path: string): Promise<void> {
  const r = await resolveFiles(ctx, name)
  const listed = await folder(ctx, r.files, name, path)
  const { headers } = await provenance(r.entry, r.dataset)
  json(
    ctx,
    {
      dataset: name,
      folder: path,
      entries: listed.entries.map((e) => ({ ...e, url: e.type === 'folder' ? `/api/datasets/${encodeURIComponent(name)}/files${encPath(e.path)}/` : urls.raw(r.ref, e.path) })),
      next: listed.next
    },
    headers
  )
}

/** GET /api/datasets/NAME/files/PATH: the file's bytes, whole or one range, streamed. */
export async function apiFile(ctx: RoutedCtx, name: string, path: string): Promise<void> {
  const r = await resolveFiles(ctx, name)
  const drive = r.files.drive
  const entry = await fileEntry(r.files, name, path)
  if (!entry) {
    const isFolder = (await listFolder(r.files, path, null, 1)).entries.length > 0
    throw EmbassyError.notFound(isFolder ? `${path} is a folder of "${name}"; list it at ${path}/` : `"${name}" has no file ${path}`)
  }
  const blob = entry.value.blob
  const size = blob ? blob.byteLength : 0
  // The content core opens from the index's header: a mirror that holds no block of it yet fetches it.
  const blobs = drive.blobs ?? (blob && readOpts(drive.core).wait ? await withinWait(drive.getBlobs()) : null)
  if (blob && !blobs) throw EmbassyError.notReplicated(`the contents of "${name}" are not replicated here yet; try again shortly`)
  const { headers } = await provenance(r.entry, r.dataset)
  const etag = fileEtag(r.files, entry)
  const h: Record<string, string> = {
    ...headers,
    'Content-Type': mediaTypeOf(entry.key),
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Cache-Control': 'no-cache',
    'Content-Disposition': contentDisposition(ctx.target.query.get('download') ? 'attachment' : 'inline', entry.key),
    'Content-Security-Policy': FILE_CSP
  }
  if (etagMatches(ctx.req.headers['if-none-match'], etag)) return send(ctx, 304, h)
  const ifRange = ctx.req.headers['if-range']
  const range = ifRange !== undefined && ifRange !== etag ? null : parseRange(ctx.req.headers.range, size)
  // Content blocks not held are fetched on request from any connected holder (the stream asks for the
  // range ahead); with none connected, only a file held in full is served.
  const online = !!blobs && readOpts(blobs.core).wait
  if (blob && blobs && !online && !(await blobs.core.has(blob.blockOffset, blob.blockOffset + blob.blockLength))) {
    throw EmbassyError.notReplicated(`${path} of "${name}" is still replicating (its content blocks are not all held yet); try again shortly`)
  }
  const start = range ? range.start : 0
  const end = range ? range.end : size - 1
  const length = size === 0 ? 0 : end - start + 1
  if (range) h['Content-Range'] = `bytes ${start}-${end}/${size}`
  h['Content-Length'] = String(length)
  if (ctx.head || length === 0 || !blob || !blobs) {
    if (begin(ctx, range ? 206 : 200, h)) ctx.res.end()
    return
  }
  const stream = blobs.createReadStream(blob, { start, end, ...(online ? { wait: true, timeout: BLOCK_WAIT_MS } : { wait: false }) })
  const onClose = (): void => stream.destroy()
  ctx.res.once('close', onClose)
  try {
    const chunks = stream[Symbol.asyncIterator]()
    // The first bytes arrive before the status goes out: a file no holder sends is a clean 503, not a cut 200.
    let next = await chunks.next().catch((err: unknown) => {
      throw (err as { code?: string }).code === 'REQUEST_TIMEOUT' ? EmbassyError.notReplicated(`${path} of "${name}" is not held here and no holder sent it in time; try again shortly`, err) : err
    })
    if (!begin(ctx, range ? 206 : 200, h)) return
    for (; !next.done; next = await chunks.next()) if (!(await write(ctx, next.value as Buffer))) return
    ctx.res.end()
  } finally {
    ctx.res.off('close', onClose)
    stream.destroy()
  }
}
