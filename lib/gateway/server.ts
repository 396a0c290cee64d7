/**
 * Gateway: the read-only HTTP face of a node during a crisis (`embassy run --http HOST:PORT`).
 * A web page to browse agencies, datasets, records and files; JSON/NDJSON APIs; files with Range
 * and ETag; Prometheus metrics; provenance headers on every data response. GET and HEAD only.
 * Never waits on the network for long: data not held yet is a 503 with a clear body.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'
import ReadyResource from 'ready-resource'
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import {
  HttpError,
  MAX_QUERY_LENGTH,
  RETRY_AFTER_S,
  contentDisposition,
  etagMatches,
  etagOf,
  intParam,
  mediaTypeOf,
  parseRange,
  parseTarget,
  promLabel,
  searchParam,
  type RequestTarget
} from './http.js'
import {
  FilesDataset,
  Library,
  LogDataset,
  coresOf,
  provenanceOf,
  readOpts,
  type AgencyView,
  type CoreProvenance,
  type DatasetEntry,
  type OpenDataset,
  type Resolved
} from './library.js'
import {
  PAGE_SIZE,
  STYLESHEET,
  errorPage,
  filePage,
  folderPage,
  homePage,
  logPage,
  recordPage,
  urls,
  type DatasetRef,
  type FolderEntry,
  type Html,
  type RecordRow
} from './pages.js'
import type { RecordView } from '../data/log-dataset.js'
import type { DatasetReader } from '../data/reader.js'

/** A response whose headers are not sent within this many ms gets a 503 (nothing hangs). */
export const RESPONSE_DEADLINE_MS = 10_000
/** Records a search page scans at most before offering to continue. */
export const SEARCH_SCAN = 5000
/** Folder entries listed per page / per API call. */
export const FOLDER_PAGE = 500
/** A connection with no traffic either way for this long is closed. */
export const SOCKET_IDLE_MS = 120_000
/** NDJSON output is written in chunks of about this many bytes. */
const CHUNK_BYTES = 64 * 1024

export interface GatewayOptions {
  /** What to serve: a Mirror, an agency's Datasets (`agency.datasets`), or any DatasetReader. */
  reader: DatasetReader
  /** The node's status document, embedded in GET /api/status (e.g. `() => nodeStatus(host)`). */
  status?: () => Promise<unknown>
  /** Connected peers, for the `embassy_peers` metric. @default from `status().peers` when it is an array */
  peers?: () => number
  /** Address to bind. @default '127.0.0.1' */
  host?: string
  /** TCP port. @default 0 (any free port; see address()) */
  port?: number
  /** False while the node cannot serve data yet: data routes answer 503 NOT_READY. @default always ready */
  ready?: () => boolean
  /**
   * Host names accepted in the Host header (a guard against DNS rebinding), or null for any.
   * @default localhost, 127.0.0.1 and ::1 when bound to a loopback address; any otherwise
   */
  allowedHosts?: string[] | null
}

export interface GatewayStats {
  requests: number
  /** Responses with a 5xx status. */
  serverErrors: number
  /** Body bytes of files and records streamed. */
  bytesStreamed: number
}

/** What the `request` event reports for each answered request (an access log line). */
export interface RequestInfo {
  method: string
  path: string
  route: string
  status: number
  ms: number
}

interface Ctx {
  req: http.IncomingMessage
  res: http.ServerResponse
  head: boolean
  route: string
  /** A page route: errors are HTML when the client accepts it. */
  page: boolean
  target: RequestTarget | null
}

const BASE_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin'
}
const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
const JSON_TYPE = 'application/json; charset=utf-8'
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1']

export class Gateway extends ReadyResource {
  readonly opts: GatewayOptions
  readonly library: Library
  readonly stats: GatewayStats = { requests: 0, serverErrors: 0, bytesStreamed: 0 }
  readonly startedAt = Date.now()
  #server: http.Server | null = null
  #address: { host: string; port: number } | null = null
  #allowedHosts: Set<string> | null = null
  #counts = new Map<string, number>()
  #sockets = new Set<Socket>()

  constructor(opts: GatewayOptions) {
    super()
    if (!opts || !opts.reader) throw EmbassyError.badArgument('Gateway needs a reader')
    this.opts = opts
    this.library = new Library(opts.reader)
  }

  override async _open(): Promise<void> {
    const host = this.opts.host ?? '127.0.0.1'
    const port = this.opts.port ?? 0
    const server = http.createServer({ requestTimeout: 60_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, (req, res) => this.#onRequest(req, res))
    // A client that stops reading (or a stalled upload) holds a socket at most this long.
    server.setTimeout(SOCKET_IDLE_MS)
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Body bytes after a `Connection: close` answer (e.g. a 405 to a chunked DELETE): that answer closes the socket.
      if (err.code === 'HPE_CLOSED_CONNECTION') return
      const pending = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage
      if (pending?.headersSent) {
        socket.destroy()
        return
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
      const body = JSON.stringify({ error: { code: status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST', message: 'malformed or incomplete HTTP request' } })
      if (socket.writable) {
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      } else socket.destroy()
    })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(EmbassyError.badArgument(`cannot serve HTTP on ${host}:${port}: ${err.code ?? err.message}`, err))
      }
      server.once('error', onError)
      server.listen(port, host, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', (err) => this.emit('internal-error', err, null))
    this.#server = server
    const addr = server.address() as AddressInfo
    this.#address = { host: addr.address, port: addr.port }
    const allowed = this.opts.allowedHosts === undefined ? (isLoopback(addr.address) ? [...LOOPBACK_NAMES, addr.address] : null) : this.opts.allowedHosts
    this.#allowedHosts = allowed === null ? null : new Set(allowed.map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')))
  }

  override async _close(): Promise<void> {
    const server = this.#server
    this.#server = null
    if (!server) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    for (const s of this.#sockets) s.destroy()
    await closed
  }

  /** Where it listens (after ready()). */
  address(): { host: string; port: number } {
    if (!this.#address) throw EmbassyError.closed()
    return { ...this.#address }
  }

  /** Base URL, e.g. http://127.0.0.1:8080 (no trailing slash). */
  get url(): string {
    const { host, port } = this.address()
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now()
    const ctx: Ctx = { req, res, head: req.method === 'HEAD', route: 'other', page: false, target: null }
    this.stats.requests++
    const deadline = setTimeout(() => {
      if (!res.headersSent) this.#fail(ctx, new HttpError(503, 'TIMEOUT', `no answer within ${RESPONSE_DEADLINE_MS / 1000} s; try again`, { 'Retry-After': String(RETRY_AFTER_S) }))
    }, RESPONSE_DEADLINE_MS)
    res.once('close', () => {
      clearTimeout(deadline)
      const status = res.statusCode
      const key = `${ctx.route}\u0000${status}`
      this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
      if (status >= 500) this.stats.serverErrors++
      const info: RequestInfo = { method: req.method ?? '', path: (req.url ?? '').slice(0, 300), route: ctx.route, status, ms: Math.round(performance.now() - started) }
      this.emit('request', info)
    })
    this.#handle(ctx).catch((err) => this.#fail(ctx, err))
  }

  async #handle(ctx: Ctx): Promise<void> {
    const { req } = ctx
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${String(req.method).slice(0, 20)} is not allowed: this gateway is read-only (GET and HEAD only)`, { Allow: 'GET, HEAD', Connection: 'close' })
    }
    if (this.#allowedHosts && req.headers.host !== undefined && !this.#allowedHosts.has(hostName(req.headers.host))) {
      throw new HttpError(421, 'UNKNOWN_HOST', 'this gateway does not answer for that host name')
    }
    const target = parseTarget(req.url ?? '/')
    ctx.target = target
    const s = target.segments
    const [a, b, c, d] = s

    if (s.length === 0) return this.#route(ctx, '/', true, () => this.#homePage(ctx))
    if (a === 'assets' && b === 'style.css' && s.length === 2) return this.#route(ctx, '/assets/style.css', false, () => this.#stylesheet(ctx))
    if (a === 'metrics' && s.length === 1) return this.#route(ctx, '/metrics', false, () => this.#metrics(ctx))
    if (a === 'datasets' && b !== undefined) {
      if (s.length === 2) return this.#data(ctx, '/datasets/:name', true, () => this.#datasetPage(ctx, b))
      if (c === 'records' && s.length === 4) return this.#data(ctx, '/datasets/:name/records/:seq', true, () => this.#recordPage(ctx, b, d as string))
      if (c === 'files') {
        const path = '/' + s.slice(3).join('/')
        if (s.length === 3 || target.trailingSlash) return this.#data(ctx, '/datasets/:name/files/', true, () => this.#folderPage(ctx, b, path))
        return this.#data(ctx, '/datasets/:name/files/*', true, () => this.#filePage(ctx, b, path))
      }
    }
    if (a === 'api') {
      if (s.length === 1) return this.#route(ctx, '/api', false, () => this.#apiIndex(ctx))
      if (b === 'status' && s.length === 2) return this.#route(ctx, '/api/status', false, () => this.#status(ctx))
      if (b === 'datasets') {
        if (s.length === 2) return this.#data(ctx, '/api/datasets', false, () => this.#apiList(ctx))
        const name = c as string
        if (s.length === 3) return this.#data(ctx, '/api/datasets/:name', false, () => this.#apiInfo(ctx, name))
        if (d === 'records' && s.length === 4) return this.#data(ctx, '/api/datasets/:name/records', false, () => this.#apiRecords(ctx, name))
        if (d === 'records' && s.length === 5) return this.#data(ctx, '/api/datasets/:name/records/:seq', false, () => this.#apiRecord(ctx, name, s[4] as string))
        if (d === 'files') {
          const path = '/' + s.slice(4).join('/')
          if (s.length === 4 || target.trailingSlash) return this.#data(ctx, '/api/datasets/:name/files/', false, () => this.#apiFolder(ctx, name, path))
          return this.#data(ctx, '/api/datasets/:name/files/*', false, () => this.#apiFile(ctx, name, path))
        }
      }
    }
    throw HttpError.notFound('no page or API route here (see /api for the routes)')
  }

  async #route(ctx: Ctx, route: string, page: boolean, fn: () => Promise<void>): Promise<void> {
    ctx.route = route
    ctx.page = page
    await fn()
  }

  /** A route serving data: 503 NOT_READY while the node says it is not ready. */
  async #data(ctx: Ctx, route: string, page: boolean, fn: () => Promise<void>): Promise<void> {
    ctx.route = route
    ctx.page = page
    if (this.opts.ready && !this.opts.ready()) {
      throw new HttpError(503, 'NOT_READY', 'the node is still starting; try again shortly', { 'Retry-After': String(RETRY_AFTER_S) })
    }
    await fn()
  }

  // ---------------------------------------------------------------- responses

  #send(ctx: Ctx, status: number, headers: Record<string, string>, body?: string | Buffer): void {
    const { res } = ctx
    if (res.headersSent || res.destroyed) return
    const buf = body === undefined ? null : typeof body === 'string' ? Buffer.from(body, 'utf8') : body
    const h: Record<string, string> = { ...BASE_HEADERS, ...headers }
    if (buf && status !== 304) h['Content-Length'] = String(buf.byteLength)
    res.writeHead(status, h)
    res.end(ctx.head || status === 304 || !buf ? undefined : buf)
  }

  #json(ctx: Ctx, body: unknown, headers: Record<string, string> = {}, status = 200): void {
    this.#send(ctx, status, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store', ...headers }, JSON.stringify(body, null, 2) + '\n')
  }

  #html(ctx: Ctx, page: Html, status = 200, headers: Record<string, string> = {}): void {
    this.#send(ctx, status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Security-Policy': PAGE_CSP, ...headers }, page.value)
  }

  #fail(ctx: Ctx, err: unknown): void {
    const e = HttpError.from(err)
    if (e.status >= 500 && e.code !== 'NOT_REPLICATED' && e.code !== 'NOT_READY' && e.code !== 'TIMEOUT' && e.code !== 'NOT_AVAILABLE') {
      this.emit('internal-error', err instanceof Error ? err : new Error(String(err)), ctx.route)
    }
    const { res } = ctx
    if (res.headersSent) {
      res.destroy() // mid-body: the client sees a truncated response, never a false complete one
      return
    }
    const headers = { ...e.headers }
    if (ctx.page && /text\/html/.test(ctx.req.headers.accept ?? '')) this.#html(ctx, errorPage(e.status, e.code, e.text), e.status, headers)
    else this.#json(ctx, e.toJSON(), headers, e.status)
  }

  /** Sends the headers of a streamed body; false when a response already went out (deadline) or the client left. */
  #begin(ctx: Ctx, status: number, headers: Record<string, string>): boolean {
    if (ctx.res.headersSent || ctx.res.destroyed) return false
    ctx.res.writeHead(status, { ...BASE_HEADERS, ...headers })
    return true
  }

  async #write(ctx: Ctx, chunk: Buffer | string): Promise<boolean> {
    const { res } = ctx
    if (res.destroyed) return false
    this.stats.bytesStreamed += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength
    if (res.write(chunk)) return true
    await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done)
        res.off('close', done)
        resolve()
      }
      res.on('drain', done)
      res.on('close', done)
    })
    return !res.destroyed
  }

  // ---------------------------------------------------------------- lookups

  #catalogParam(ctx: Ctx): string | null {
    const c = ctx.target?.query.get('catalog')
    return c ? c : null
  }

  async #resolve(ctx: Ctx, name: string): Promise<Resolved & { ref: DatasetRef }> {
    const r = await this.library.resolve(name, this.#catalogParam(ctx))
    return { ...r, ref: { name, catalog: this.#catalogParam(ctx) } }
  }

  async #resolveLog(ctx: Ctx, name: string): Promise<Resolved & { ref: DatasetRef; log: LogDataset }> {
    const r = await this.#resolve(ctx, name)
    if (!(r.dataset instanceof LogDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'log')
    return { ...r, log: r.dataset }
  }

  async #resolveFiles(ctx: Ctx, name: string): Promise<Resolved & { ref: DatasetRef; files: FilesDataset }> {
    const r = await this.#resolve(ctx, name)
    if (!(r.dataset instanceof FilesDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'files')
    return { ...r, files: r.dataset }
  }

  /** Provenance of every core of a dataset, and the X-Embassy-* headers that carry it. */
  async #provenance(entry: DatasetEntry, ds: OpenDataset): Promise<{ cores: CoreProvenance[]; headers: Record<string, string> }> {
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

  #summaryJson(entry: DatasetEntry, ds: OpenDataset | null, ref: DatasetRef): Record<string, unknown> {
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

  // ---------------------------------------------------------------- API

  async #apiIndex(ctx: Ctx): Promise<void> {
    this.#json(ctx, {
      name: 'Data Embassy read-only gateway',
      methods: ['GET', 'HEAD'],
      routes: {
        '/api/status': 'node and gateway status (JSON)',
        '/api/datasets': 'agencies and their datasets (JSON)',
        '/api/datasets/NAME': 'one dataset: summary and provenance of its cores (JSON)',
        '/api/datasets/NAME/records?start=&end=&q=&limit=': 'records [start, end) as NDJSON, optionally only those containing q',
        '/api/datasets/NAME/records/SEQ': 'one record (JSON)',
        '/api/datasets/NAME/files/[FOLDER/]': 'a folder listing (JSON)',
        '/api/datasets/NAME/files/PATH': 'a file (Range, ETag; ?download=1 for an attachment)',
        '/metrics': 'Prometheus metrics'
      },
      notes: 'Add ?catalog=CATALOG_KEY where a dataset name exists in several agencies. Data responses carry X-Embassy-* provenance headers.'
    })
  }

  async #apiList(ctx: Ctx): Promise<void> {
    const agencies = await this.library.agencies()
    const ambiguous = ambiguousNames(agencies)
    const datasets: Array<Record<string, unknown>> = []
    for (const a of agencies) {
      for (const e of a.datasets) {
        const ds = await e.open().catch(() => null)
        datasets.push(this.#summaryJson(e, ds, { name: e.summary.name, catalog: ambiguous.has(e.summary.name) ? a.catalog : null }))
      }
    }
    this.#json(ctx, {
      agencies: agencies.map((a) => ({ catalog: a.catalog, nodeKey: a.nodeKey, name: a.name, state: a.state, error: a.error, datasets: a.datasets.length, problems: a.problems })),
      datasets
    })
  }

  async #apiInfo(ctx: Ctx, name: string): Promise<void> {
    const r = await this.#resolve(ctx, name)
    const { cores, headers } = await this.#provenance(r.entry, r.dataset)
    this.#json(ctx, { dataset: this.#summaryJson(r.entry, r.dataset, r.ref), provenance: { catalog: r.entry.agency.catalog, agencyNodeKey: r.entry.agency.nodeKey, cores } }, headers)
  }

  /** start/end of a records request against `length`: 400 when malformed, 416 when inverted or past the end. */
  #recordRange(ctx: Ctx, length: number): { start: number; end: number } {
    const q = (ctx.target as RequestTarget).query
    const start = intParam(q, 'start', 0)
    const endParam = intParam(q, 'end', null)
    if (endParam !== null && endParam < start) throw HttpError.rangeNotSatisfiable(`start ${start} is after end ${endParam}`)
    if (start > length) throw HttpError.rangeNotSatisfiable(`start ${start} is past the verified length ${length}`)
    return { start, end: Math.min(endParam ?? length, length) }
  }

  async #apiRecords(ctx: Ctx, name: string): Promise<void> {
    const r = await this.#resolveLog(ctx, name)
    const core = r.log.core
    const query = (ctx.target as RequestTarget).query
    const { start, end } = this.#recordRange(ctx, core.length)
    const q = searchParam(query)
    const limit = intParam(query, 'limit', null)
    if (end > start && !(await core.has(start, end))) {
      throw HttpError.notReplicated(`records ${start}–${end - 1} of "${name}" are not all held yet (held from the start: ${core.contiguousLength} of ${core.length}); try again shortly`)
    }
    // Decode the first record before answering 200: a wrong read key is a clean error, not a cut stream.
    if (end > start) LogDataset.view(start, await getHeld(core, start))
    const { headers } = await this.#provenance(r.entry, r.dataset)
    const etag = etagOf('records', headers['X-Embassy-Core-Key'] ?? '', core.fork, start, end, q ?? '', limit ?? '')
    const h = {
      ...headers,
      'Content-Type': 'application/x-ndjson; charset=utf-8',
      'Cache-Control': 'no-cache',
      ETag: etag,
      'X-Embassy-Start': String(start),
      'X-Embassy-End': String(end)
    }
    if (etagMatches(ctx.req.headers['if-none-match'], etag)) return this.#send(ctx, 304, h)
    if (!this.#begin(ctx, 200, h)) return
    if (ctx.head) {
      ctx.res.end()
      return
    }
    const needle = q?.toLowerCase() ?? null
    let out = ''
    let emitted = 0
    for (let seq = start; seq < end; seq++) {
      if (limit !== null && emitted >= limit) break
      const rec = LogDataset.view(seq, await getHeld(core, seq))
      if (needle !== null && !rec.text.toLowerCase().includes(needle)) continue
      out += JSON.stringify(rec) + '\n'
      emitted++
      if (out.length >= CHUNK_BYTES) {
        if (!(await this.#write(ctx, out))) return
        out = ''
      }
    }
    if (out && !(await this.#write(ctx, out))) return
    ctx.res.end()
  }

  /** Record `seq` of a log: 400 malformed, 404 past the end, 503 not held (after a short wait when a peer could send it). */
  async #record(log: LogDataset, name: string, seqText: string): Promise<RecordView> {
    if (!/^\d{1,15}$/.test(seqText)) throw HttpError.badRequest('BAD_ARGUMENT', `record number must be a non-negative integer, not "${seqText.slice(0, 40)}"`)
    const seq = Number(seqText)
    const core = log.core
    if (seq >= core.length) throw HttpError.notFound(`"${name}" has ${core.length} records (verified length); there is no record ${seq}`)
    const block = await core.get(seq, readOpts(core))
    if (!block) throw HttpError.notReplicated(`record ${seq} of "${name}" is not replicated here yet; try again shortly`)
    return LogDataset.view(seq, block)
  }

  async #apiRecord(ctx: Ctx, name: string, seqText: string): Promise<void> {
    const r = await this.#resolveLog(ctx, name)
    const record = await this.#record(r.log, name, seqText)
    const { headers } = await this.#provenance(r.entry, r.dataset)
    const etag = etagOf('record', headers['X-Embassy-Core-Key'] ?? '', r.log.core.fork, record.seq)
    const h = { ...headers, ETag: etag, 'Cache-Control': 'no-cache' }
    if (etagMatches(ctx.req.headers['if-none-match'], etag)) return this.#send(ctx, 304, h)
    this.#json(ctx, record, h)
  }

  async #listFolder(files: FilesDataset, folder: string, after: string | null, limit = FOLDER_PAGE): Promise<{ entries: FolderEntry[]; next: string | null }> {
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
        if (i === -1) entries.push({ name, path: prefix + name, type: node.value.linkname ? 'link' : 'file', size: node.value.blob ? node.value.blob.byteLength : 0 })
        else entries.push({ name, path: prefix + name, type: 'folder', size: null })
      }
    } finally {
      stream.destroy()
    }
    return { entries, next }
  }

  async #folder(ctx: Ctx, files: FilesDataset, name: string, folder: string): Promise<{ entries: FolderEntry[]; next: string | null }> {
    const after = (ctx.target as RequestTarget).query.get('after')
    if (after !== null && after.length > MAX_QUERY_LENGTH * 4) throw HttpError.badRequest('BAD_ARGUMENT', '"after" is too long')
    const listed = await this.#listFolder(files, folder, after)
    if (folder !== '/' && listed.entries.length === 0 && after === null) throw HttpError.notFound(`"${name}" has no folder ${folder}`)
    return listed
  }

  async #apiFolder(ctx: Ctx, name: string, folder: string): Promise<void> {
    const r = await this.#resolveFiles(ctx, name)
    const listed = await this.#folder(ctx, r.files, name, folder)
    const { headers } = await this.#provenance(r.entry, r.dataset)
    this.#json(
      ctx,
      {
        dataset: name,
        folder,
        entries: listed.entries.map((e) => ({ ...e, url: e.type === 'folder' ? `/api/datasets/${encodeURIComponent(name)}/files${encodePath(e.path)}/` : urls.raw(r.ref, e.path) })),
        next: listed.next
      },
      headers
    )
  }

  /** The entry at `path` (symlinks followed inside the dataset); 404 when none, 503 when not held. */
  async #fileEntry(files: FilesDataset, name: string, path: string): Promise<NonNullable<Awaited<ReturnType<FilesDataset['drive']['entry']>>> | null> {
    const drive = files.drive
    const entry = await drive.entry(path, { follow: true, ...readOpts(drive.core) })
    if (entry && !entry.value.blob && entry.value.linkname) throw HttpError.notFound(`${path} in "${name}" is a link to nothing`)
    return entry
  }

  async #apiFile(ctx: Ctx, name: string, path: string): Promise<void> {
    const r = await this.#resolveFiles(ctx, name)
    const drive = r.files.drive
    const entry = await this.#fileEntry(r.files, name, path)
    if (!entry) {
      const isFolder = (await this.#listFolder(r.files, path, null, 1)).entries.length > 0
      throw HttpError.notFound(isFolder ? `${path} is a folder of "${name}"; list it at ${path}/` : `"${name}" has no file ${path}`)
    }
    const blob = entry.value.blob
    const size = blob ? blob.byteLength : 0
    const blobs = drive.blobs
    if (blob && !blobs) throw HttpError.notReplicated(`the contents of "${name}" are not replicated here yet; try again shortly`)
    const { headers } = await this.#provenance(r.entry, r.dataset)
    const etag = blob && blobs ? etagOf('file', blobs.core.key!.toString('hex'), blobs.core.fork, blob.blockOffset, blob.blockLength, blob.byteOffset, blob.byteLength) : etagOf('empty-file')
    const query = (ctx.target as RequestTarget).query
    const h: Record<string, string> = {
      ...headers,
      'Content-Type': mediaTypeOf(entry.key),
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Cache-Control': 'no-cache',
      'Content-Disposition': contentDisposition(query.get('download') ? 'attachment' : 'inline', entry.key),
      // Files are untrusted: never let one run script in the gateway's origin.
      'Content-Security-Policy': 'sandbox; default-src \'none\'; img-src \'self\' data:; media-src \'self\'; style-src \'unsafe-inline\''
    }
    if (etagMatches(ctx.req.headers['if-none-match'], etag)) return this.#send(ctx, 304, h)
    const ifRange = ctx.req.headers['if-range']
    const range = ifRange !== undefined && ifRange !== etag ? null : parseRange(ctx.req.headers.range, size)
    if (blob && blobs && !(await blobs.core.has(blob.blockOffset, blob.blockOffset + blob.blockLength))) {
      throw HttpError.notReplicated(`${path} of "${name}" is still replicating (its content blocks are not all held yet); try again shortly`)
    }
    const start = range ? range.start : 0
    const end = range ? range.end : size - 1
    const length = size === 0 ? 0 : end - start + 1
    if (range) h['Content-Range'] = `bytes ${start}-${end}/${size}`
    h['Content-Length'] = String(length)
    if (!this.#begin(ctx, range ? 206 : 200, h)) return
    if (ctx.head || length === 0 || !blob || !blobs) {
      ctx.res.end()
      return
    }
    const stream = blobs.createReadStream(blob, { start, end, wait: false })
    const onClose = (): void => stream.destroy()
    ctx.res.once('close', onClose)
    try {
      for await (const chunk of stream) if (!(await this.#write(ctx, chunk))) return
      ctx.res.end()
    } finally {
      ctx.res.off('close', onClose)
      stream.destroy()
    }
  }

  async #status(ctx: Ctx): Promise<void> {
    const agencies = await this.library.agencies()
    let node: unknown = null
    let nodeError: { code: string; message: string } | null = null
    if (this.opts.status) {
      try {
        node = await withDeadline(this.opts.status(), 3000)
      } catch (err) {
        nodeError = HttpError.from(err).toJSON().error
      }
    }
    this.#json(ctx, {
      gateway: {
        ready: this.opts.ready ? this.opts.ready() : true,
        startedAt: new Date(this.startedAt).toISOString(),
        uptime: Math.round((Date.now() - this.startedAt) / 1000),
        address: this.#address,
        stats: this.stats
      },
      agencies: agencies.map((a) => ({
        catalog: a.catalog,
        nodeKey: a.nodeKey,
        name: a.name,
        state: a.state,
        error: a.error,
        datasets: a.datasets.map((d) => ({ name: d.summary.name, kind: d.summary.kind, length: d.summary.length, byteLength: d.summary.byteLength }))
      })),
      node,
      ...(nodeError ? { nodeError } : {})
    })
  }

  async #peers(): Promise<number | null> {
    if (this.opts.peers) return this.opts.peers()
    if (!this.opts.status) return null
    try {
      const s = (await withDeadline(this.opts.status(), 2000)) as { peers?: unknown } | null
      return Array.isArray(s?.peers) ? s.peers.length : null
    } catch {
      return null
    }
  }

  async #metrics(ctx: Ctx): Promise<void> {
    const lines: string[] = []
    const metric = (name: string, type: string, help: string, samples: Array<[Record<string, string>, number]>): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const [labels, value] of samples) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${promLabel(v)}"`).join(',')
        lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`)
      }
    }
    // Count this scrape too, so a first scrape is never empty.
    const selfKey = `/metrics\u0000200`
    const counts = new Map(this.#counts)
    counts.set(selfKey, (counts.get(selfKey) ?? 0) + 1)
    metric('embassy_http_requests_total', 'counter', 'HTTP requests answered by the gateway, by route and status code.', [...counts].sort().map(([k, n]) => {
      const [route, code] = k.split('\u0000') as [string, string]
      return [{ route, code }, n]
    }))
    const agencies = await this.library.agencies()
    metric('embassy_agency_ready', 'gauge', '1 when the agency catalog is held and readable, else 0.', agencies.map((a) => [{ catalog: a.catalog ?? '' }, a.state === 'ready' ? 1 : 0]))
    const length: Array<[Record<string, string>, number]> = []
    const held: Array<[Record<string, string>, number]> = []
    const bytes: Array<[Record<string, string>, number]> = []
    for (const a of agencies) {
      for (const e of a.datasets) {
        const labels = { catalog: a.catalog ?? '', dataset: e.summary.name, kind: e.summary.kind }
        const ds = await e.open().catch(() => null)
        const cores = ds ? coresOf(ds) : []
        length.push([labels, e.summary.length])
        held.push([labels, cores.reduce((n, c) => n + c.core.contiguousLength, 0)])
        bytes.push([labels, e.summary.byteLength])
      }
    }
    metric('embassy_dataset_length', 'gauge', 'Verified length of the dataset\'s first core (log records, or file-index entries).', length)
    metric('embassy_dataset_held_blocks', 'gauge', 'Blocks held contiguously over all of the dataset\'s cores.', held)
    metric('embassy_dataset_bytes', 'gauge', 'Bytes held in all of the dataset\'s cores.', bytes)
    const peers = await this.#peers()
    if (peers !== null) metric('embassy_peers', 'gauge', 'Connected peers.', [[{}, peers]])
    metric('embassy_gateway_ready', 'gauge', '1 when the gateway serves data, 0 while the node is starting.', [[{}, this.opts.ready && !this.opts.ready() ? 0 : 1]])
    metric('embassy_gateway_streamed_bytes_total', 'counter', 'Body bytes of files and records streamed.', [[{}, this.stats.bytesStreamed]])
    metric('embassy_gateway_start_time_seconds', 'gauge', 'When the gateway started (Unix time).', [[{}, Math.floor(this.startedAt / 1000)]])
    this.#send(ctx, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' }, lines.join('\n') + '\n')
  }

  // ---------------------------------------------------------------- pages

  async #stylesheet(ctx: Ctx): Promise<void> {
    const etag = etagOf('css', STYLESHEET)
    const h = { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=3600', ETag: etag }
    if (etagMatches(ctx.req.headers['if-none-match'], etag)) return this.#send(ctx, 304, h)
    this.#send(ctx, 200, h, STYLESHEET)
  }

  async #homePage(ctx: Ctx): Promise<void> {
    const agencies = await this.library.agencies()
    const held = new Map<AgencyView['datasets'][number]['summary'], number>()
    for (const a of agencies) {
      for (const e of a.datasets) {
        const ds = await e.open().catch(() => null)
        const first = ds ? coresOf(ds)[0] : undefined
        if (first) held.set(e.summary, first.core.contiguousLength)
      }
    }
    this.#html(ctx, homePage({ agencies, ambiguous: ambiguousNames(agencies), ready: this.opts.ready ? this.opts.ready() : true, held }))
  }

  async #datasetPage(ctx: Ctx, name: string): Promise<void> {
    const r = await this.#resolve(ctx, name)
    if (r.dataset instanceof FilesDataset) return this.#folderPage(ctx, name, '/', r)
    const log = r.dataset
    const core = log.core
    const { cores, headers } = await this.#provenance(r.entry, r.dataset)
    const query = (ctx.target as RequestTarget).query
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
        const block = await core.get(seq, { wait: false })
        if (!block) {
          missing++
          continue
        }
        const record = LogDataset.view(seq, block)
        if (record.text.toLowerCase().includes(needle)) rows.push({ seq, record })
      }
      search = { q, from, to: seq, next: seq < length ? seq : null, missing }
    } else {
      const lastPage = Math.max(0, Math.floor((length - 1) / PAGE_SIZE) * PAGE_SIZE)
      const start = Math.min(intParam(query, 'start', 0), lastPage)
      for (let seq = start; seq < Math.min(length, start + PAGE_SIZE); seq++) {
        const block = await core.get(seq, { wait: false })
        rows.push({ seq, record: block ? LogDataset.view(seq, block) : null })
      }
      this.#html(ctx, logPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, rows, start, length, search: null }), 200, headers)
      return
    }
    this.#html(ctx, logPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, rows, start: search.from, length, search }), 200, headers)
  }

  async #recordPage(ctx: Ctx, name: string, seqText: string): Promise<void> {
    const r = await this.#resolveLog(ctx, name)
    const record = await this.#record(r.log, name, seqText)
    const { cores, headers } = await this.#provenance(r.entry, r.dataset)
    this.#html(ctx, recordPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, record, length: r.log.core.length }), 200, headers)
  }

  async #folderPage(ctx: Ctx, name: string, folder: string, resolved?: Resolved & { ref: DatasetRef }): Promise<void> {
    const r = resolved ?? (await this.#resolve(ctx, name))
    if (!(r.dataset instanceof FilesDataset)) throw EmbassyError.wrongKind(name, r.entry.summary.kind, 'files')
    const listed = await this.#folder(ctx, r.dataset, name, folder)
    const { cores, headers } = await this.#provenance(r.entry, r.dataset)
    this.#html(ctx, folderPage({ ref: r.ref, summary: r.entry.summary, agency: r.entry.agency, provenance: cores, folder, entries: listed.entries, next: listed.next }), 200, headers)
  }

  async #filePage(ctx: Ctx, name: string, path: string): Promise<void> {
    const r = await this.#resolveFiles(ctx, name)
    const entry = await this.#fileEntry(r.files, name, path)
    if (!entry) {
      if ((await this.#listFolder(r.files, path, null, 1)).entries.length > 0) {
        return this.#send(ctx, 302, { Location: urls.folder(r.ref, path), 'Content-Type': JSON_TYPE }, JSON.stringify({ location: urls.folder(r.ref, path) }))
      }
      throw HttpError.notFound(`"${name}" has no file ${path}`)
    }
    const blob = entry.value.blob
    const blobs = r.files.drive.blobs
    const held = !blob || (!!blobs && (await blobs.core.has(blob.blockOffset, blob.blockOffset + blob.blockLength)))
    const etag = blob && blobs ? etagOf('file', blobs.core.key!.toString('hex'), blobs.core.fork, blob.blockOffset, blob.blockLength, blob.byteOffset, blob.byteLength) : etagOf('empty-file')
    const { cores, headers } = await this.#provenance(r.entry, r.dataset)
    this.#html(ctx, filePage({ ref: r.ref, agency: r.entry.agency, provenance: cores, path: entry.key, size: blob ? blob.byteLength : 0, type: mediaTypeOf(entry.key), etag, held }), 200, headers)
  }
}

/** Block `seq`, which the caller checked is held. */
async function getHeld(core: Hypercore, seq: number): Promise<Buffer> {
  const block = await core.get(seq, { wait: false })
  if (!block) throw HttpError.notReplicated(`record ${seq} is not held here yet`)
  return block
}

function ambiguousNames(agencies: AgencyView[]): Set<string> {
  const seen = new Set<string>()
  const twice = new Set<string>()
  for (const a of agencies) for (const d of a.datasets) (seen.has(d.summary.name) ? twice : seen).add(d.summary.name)
  return twice
}

function encodePath(p: string): string {
  return p
    .split('/')
    .filter((s) => s !== '')
    .map((s) => '/' + encodeURIComponent(s))
    .join('')
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === 'localhost' || address === '::ffff:127.0.0.1'
}

/** The host name of a Host header value, lower-cased, without port or IPv6 brackets. */
function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'))
  const colon = h.indexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  p.catch(() => {})
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HttpError(503, 'TIMEOUT', `no answer within ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}
