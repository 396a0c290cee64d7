/**
 * Gateway: the read-only HTTP face of a node during a crisis (`embassy run --http HOST:PORT`).
 * This file owns the server: the ReadyResource lifecycle, the http.Server and its hardening
 * (socket idle time, header/request timeouts, malformed requests, the response deadline, the Host
 * guard, GET/HEAD only), the request context, dispatch through the route table, and turning any
 * error into its answer. What each route answers lives in ./api.ts, ./files.ts, ./browse.ts and
 * ./metrics.ts; the route table in ./routes.ts. Never waits on the network for long: data not held
 * yet is a 503 with a clear body.
 * Imports: everything in lib/gateway/ (nothing there imports this file), lib/data (types), lib/errors.
 */
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import ReadyResource from 'ready-resource'
import { EmbassyError } from '../errors.js'
import type { DatasetReader } from '../data/datasets.js'
import { JSON_TYPE, html, json, type Ctx, type CustodySource, type GatewayStats, type Site } from './context.js'
import { Admission, type AdmissionLimits } from './admission.js'
import { errorResponse, parseTarget } from './http.js'
import { Library } from './library.js'
import { errorPage } from './pages.js'
import { match } from './routes.js'
import { SEARCH_SCAN_LIMIT } from './api.js'

export type { GatewayStats } from './context.js'
export type { AdmissionLimits } from './admission.js'
export type { CustodySource, CustodyNow } from './context.js'
export { MAX_ACTIVE, MAX_ACTIVE_PER_CLIENT, MAX_QUEUED, MAX_QUEUED_PER_CLIENT } from './admission.js'
export { SEARCH_SCAN_LIMIT } from './api.js'

/** A response whose headers are not sent within this many ms gets a 503 (nothing hangs). */
export const RESPONSE_DEADLINE_MS = 10_000
/** A connection with no traffic either way for this long is closed. */
export const SOCKET_IDLE_MS = 120_000

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
   * The default guards loopback binds only: a gateway bound beyond loopback should be given the
   * names it is reached by.
   * @default localhost, 127.0.0.1 and ::1 when bound to a loopback address; any otherwise
   */
  allowedHosts?: string[] | null
  /**
   * Publish GET /api/status (the node's status document: peers, custody per embassy, alarms).
   * Off beyond loopback unless asked for (`embassy run --http-status`): 404 then.
   * @default true when bound to a loopback address, else false
   */
  publishStatus?: boolean
  /** Requests worked on at once, per client and in all, and how many may wait (see ./admission.ts). */
  limits?: AdmissionLimits
  /** Records one records request scans at most when searching (`q`); the rest is a continuation. @default SEARCH_SCAN_LIMIT */
  searchScan?: number
  /** An agency's custody now, its history and its drill reports: serves the /custody dashboard (where /api/status is published). */
  custody?: CustodySource
}

/** What the `request` event reports for each answered request (an access log line). */
export interface RequestInfo {
  method: string
  path: string
  route: string
  status: number
  ms: number
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1']
/** Error codes at 5xx that are expected (data not held yet, starting, slow): not reported as internal errors. */
const EXPECTED_5XX = new Set(['NOT_REPLICATED', 'NOT_READY', 'TIMEOUT', 'NOT_AVAILABLE', 'BUSY'])

export class Gateway extends ReadyResource {
  readonly opts: GatewayOptions
  readonly library: Library
  readonly stats: GatewayStats = { requests: 0, serverErrors: 0, bytesStreamed: 0, recordsScanned: 0, refused: 0, active: 0, queued: 0 }
  readonly admission: Admission
  readonly startedAt = Date.now()
  #server: http.Server | null = null
  #address: { host: string; port: number } | null = null
  #allowedHosts: Set<string> | null = null
  /** Whether /api/status publishes the node's status (decided when bound). */
  #publishStatus = false
  #counts = new Map<string, number>()
  #sockets = new Set<Socket>()
  /** What the handlers see of this gateway. */
  #site: Site

  constructor(opts: GatewayOptions) {
    super()
    if (!opts || !opts.reader) throw EmbassyError.badArgument('Gateway needs a reader')
    this.opts = opts
    this.library = new Library(opts.reader)
    this.admission = new Admission(opts.limits)
    this.#site = {
      library: this.library,
      stats: this.stats,
      startedAt: this.startedAt,
      listening: () => this.#address,
      counts: this.#counts,
      isReady: () => this.#isReady(),
      status: opts.status,
      peers: opts.peers,
      publishStatus: () => this.#publishStatus,
      searchScan: opts.searchScan ?? SEARCH_SCAN_LIMIT,
      custody: opts.custody
    }
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
        // A busy port is refused, never swapped for another one (--port 0 asks for any free port).
        if (err.code === 'EADDRINUSE' && port !== 0) reject(EmbassyError.portInUse(host, port, err))
        else reject(EmbassyError.badArgument(`cannot serve HTTP on ${host}:${port}: ${err.code ?? err.message}`, err))
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
    this.#publishStatus = this.opts.publishStatus ?? isLoopback(addr.address)
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
    const gone = new AbortController()
    const ctx: Ctx = { site: this.#site, req, res, head: req.method === 'HEAD', route: 'other', page: false, target: null, signal: gone.signal }
    this.stats.requests++
    const deadline = setTimeout(() => {
      if (!res.headersSent) this.#fail(ctx, EmbassyError.timeout(`no answer within ${RESPONSE_DEADLINE_MS / 1000} s; try again`))
    }, RESPONSE_DEADLINE_MS)
    res.once('close', () => {
      // First: work for this response stops (scans check the signal; a queued request is dropped).
      gone.abort()
      clearTimeout(deadline)
      const status = res.statusCode
      const key = `${ctx.route}\u0000${status}`
      this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
      if (status >= 500) this.stats.serverErrors++
      const info: RequestInfo = { method: req.method ?? '', path: (req.url ?? '').slice(0, 300), route: ctx.route, status, ms: Math.round(performance.now() - started) }
      this.emit('request', info)
    })
    this.#admit(ctx).catch((err) => this.#fail(ctx, err))
  }

  /** Runs the request once admission gives it a slot (per client and in all); gives the slot back when the handler is done. */
  async #admit(ctx: Ctx): Promise<void> {
    const client = ctx.req.socket.remoteAddress ?? ''
    let release: (() => void) | null
    try {
      const waiting = this.admission.enter(client, ctx.signal)
      this.#syncStats()
      release = await waiting
    } catch (err) {
      this.#syncStats()
      throw err
    }
    this.#syncStats()
    if (!release) return // the client left while waiting
    try {
      await this.#handle(ctx)
    } finally {
      release()
      this.#syncStats()
    }
  }

  #syncStats(): void {
    this.stats.active = this.admission.active
    this.stats.queued = this.admission.queued
    this.stats.refused = this.admission.refused
  }

  #isReady(): boolean {
    return this.opts.ready ? this.opts.ready() : true
  }

  async #handle(ctx: Ctx): Promise<void> {
    const { req } = ctx
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw EmbassyError.methodNotAllowed(`${String(req.method).slice(0, 20)} is not allowed: this gateway is read-only (GET and HEAD only)`, { Allow: 'GET, HEAD', Connection: 'close' })
    }
    if (this.#allowedHosts && req.headers.host !== undefined && !this.#allowedHosts.has(hostName(req.headers.host))) {
      throw EmbassyError.unknownHost('this gateway does not answer for that host name')
    }
    const routed = Object.assign(ctx, { target: parseTarget(req.url ?? '/') })
    const route = match(routed.target)
    if (!route) throw EmbassyError.notFound('no page or API route here (see /api for the routes)')
    ctx.route = route.route
    ctx.page = route.page
    if (route.data && !this.#isReady()) throw EmbassyError.notReady('the node is still starting; try again shortly')
    await route.handle(routed)
  }

  /** Answers `err` (JSON, or an HTML page to a browser on a page route); mid-body, cuts the response. */
  #fail(ctx: Ctx, err: unknown): void {
    const e = errorResponse(err)
    if (e.status >= 500 && !EXPECTED_5XX.has(e.code)) {
      this.emit('internal-error', err instanceof Error ? err : new Error(String(err)), ctx.route)
    }
    const { res } = ctx
    if (res.headersSent) {
      res.destroy() // mid-body: the client sees a truncated response, never a false complete one
      return
    }
    if (ctx.page && /text\/html/.test(ctx.req.headers.accept ?? '')) html(ctx, errorPage(e.status, e.code, e.message), e.status, e.headers)
    else json(ctx, { error: { code: e.code, message: e.message } }, e.headers, e.status)
  }
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
