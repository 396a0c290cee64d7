/**
 * The request context every gateway handler gets (`Ctx`), what it may see of the gateway
 * (`Site`), and the ways to answer: a whole body (send/json/html) or a streamed one (begin/write).
 * Imports: node:http, lib/errors, and types from ./library.ts, ./pages.ts, ./http.ts and lib/custody (the custody history); never ./server.ts.
 */
import type http from 'node:http'
import { EmbassyError } from '../errors.js'
import type { RequestTarget } from './http.js'
import type { Library } from './library.js'
import type { Html } from './pages.js'
import type { SeriesData } from '../custody/timeseries.js'

export interface GatewayStats {
  requests: number
  /** Responses with a 5xx status. */
  serverErrors: number
  /** Body bytes of files and records streamed. */
  bytesStreamed: number
  /** Log records read and decoded to answer record lists and searches. */
  recordsScanned: number
  /** Requests refused by the admission limits (429 TOO_MANY_REQUESTS, 503 BUSY). */
  refused: number
  /** Requests being worked on now. */
  active: number
  /** Requests waiting for a slot now. */
  queued: number
}

/** What handlers see of the Gateway (an interface, so no handler imports the server). */
export interface Site {
  readonly library: Library
  readonly stats: GatewayStats
  /** When the gateway started (ms since the epoch). */
  readonly startedAt: number
  /** Where it listens; null before ready(). */
  listening(): { host: string; port: number } | null
  /** Requests answered so far, by `route\u0000status`. */
  readonly counts: ReadonlyMap<string, number>
  /** False while the node cannot serve data yet. */
  isReady(): boolean
  /** The node's status document, when the gateway was given one. */
  readonly status: (() => Promise<unknown>) | undefined
  /** Connected peers, when the gateway was told how to count them. */
  readonly peers: (() => number) | undefined
  /** Whether GET /api/status publishes the node's status here. */
  publishStatus(): boolean
  /** Records a search request scans at most. */
  readonly searchScan: number
  /** An agency's custody (the /custody dashboard), when the gateway was given it. */
  readonly custody: CustodySource | undefined
}

/** One embassy's custody of one dataset now (structurally the agency's status). */
export interface CellNow {
  nodeKey: string
  heldLength: number
  behindBlocks: number
  behindBytes: number
  receiptAge: number | null
  connected: boolean
  held: boolean
  preRewrite?: unknown[]
  audit?: { state: string; at: number | null; failed?: number }
}

export interface CustodyNow {
  datasets: Array<{ name: string; length: number; byteLength: number; embassies: CellNow[] }>
  alarms: Array<{ id?: string; time: number; kind: string; peer: string; detail: string; repeats?: number }>
}

/** What the gateway is given on an agency (daemon.ts). */
export interface CustodySource {
  /** The node directory (drill reports in DIR/drills/). */
  dir: string
  /** Custody now: the agency's status document. */
  now(): Promise<CustodyNow>
  /** The custody history. */
  series(): SeriesData
}

export interface Ctx {
  site: Site
  req: http.IncomingMessage
  res: http.ServerResponse
  head: boolean
  route: string
  /** A page route: errors are HTML when the client accepts it. */
  page: boolean
  target: RequestTarget | null
  /** Aborted once the response is closed (answered, or the client left): long work stops. */
  signal: AbortSignal
}

/** A context whose target was parsed (every routed handler gets one). */
export type RoutedCtx = Ctx & { target: RequestTarget }

export const BASE_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin'
}
const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
export const JSON_TYPE = 'application/json; charset=utf-8'

export function send(ctx: Ctx, status: number, headers: Record<string, string>, body?: string | Buffer): void {
  const { res } = ctx
  if (res.headersSent || res.destroyed) return
  const buf = body === undefined ? null : typeof body === 'string' ? Buffer.from(body, 'utf8') : body
  const h: Record<string, string> = { ...BASE_HEADERS, ...headers }
  if (buf && status !== 304) h['Content-Length'] = String(buf.byteLength)
  res.writeHead(status, h)
  res.end(ctx.head || status === 304 || !buf ? undefined : buf)
}

export function json(ctx: Ctx, body: unknown, headers: Record<string, string> = {}, status = 200): void {
  send(ctx, status, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store', ...headers }, JSON.stringify(body, null, 2) + '\n')
}

export function html(ctx: Ctx, page: Html, status = 200, headers: Record<string, string> = {}): void {
  send(ctx, status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Security-Policy': PAGE_CSP, ...headers }, page.value)
}

/** Sends the headers of a streamed body; false when a response already went out (deadline) or the client left. */
export function begin(ctx: Ctx, status: number, headers: Record<string, string>): boolean {
  if (ctx.res.headersSent || ctx.res.destroyed) return false
  ctx.res.writeHead(status, { ...BASE_HEADERS, ...headers })
  return true
}

/** Writes a chunk of a streamed body, waiting for the client to read; false once it left. */
export async function write(ctx: Ctx, chunk: Buffer | string): Promise<boolean> {
  const { res } = ctx
  if (res.destroyed) return false
  ctx.site.stats.bytesStreamed += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength
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

/** `p`, or a TIMEOUT error after `ms` (for callbacks of the host, such as the node status). */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  p.catch(() => {})
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(EmbassyError.timeout(`no answer within ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}
