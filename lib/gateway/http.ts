/**
 * HTTP helpers for the gateway: the one mapping from an error to its HTTP answer, request targets
 * (no path escapes), byte ranges, ETags and media types. Pure functions: no I/O.
 * Imports: node:crypto and lib/errors.ts only.
 */
import crypto from 'node:crypto'
import { EmbassyError, isEmbassyError, type ErrorCode } from '../errors.js'

/** Longest request target accepted (bytes); longer ones get 414. */
export const MAX_TARGET_LENGTH = 8192
/** Longest search text (characters). */
export const MAX_QUERY_LENGTH = 256
/** Seconds a client is told to wait before asking again for data still replicating. */
export const RETRY_AFTER_S = 5

/** How an error is answered: `{ error: { code, message } }` with this status and these headers. */
export interface ErrorResponse {
  status: number
  code: ErrorCode
  message: string
  headers: Record<string, string>
}

/** HTTP status per error code; codes not listed are a 500 (their message is still shown). */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  BAD_ARGUMENT: 400,
  BAD_INPUT: 400,
  BAD_PATH: 400,
  UNKNOWN_DATASET: 404,
  UNKNOWN_AGENCY: 404,
  NOT_FOUND: 404,
  WRONG_KIND: 404,
  METHOD_NOT_ALLOWED: 405,
  AMBIGUOUS_DATASET: 409,
  URI_TOO_LONG: 414,
  RANGE_NOT_SATISFIABLE: 416,
  UNKNOWN_HOST: 421,
  TOO_MANY_REQUESTS: 429,
  // Stored bytes that do not match the signed tree: never served; asking again will not help.
  TAMPERED: 500,
  // Not held yet, or cannot be fetched now: worth asking again (Retry-After).
  NOT_REPLICATED: 503,
  NOT_READY: 503,
  BUSY: 503,
  NOT_AVAILABLE: 503,
  NOT_SYNCED: 503,
  TIMEOUT: 503,
  PEER_UNREACHABLE: 503,
  // Shutting down: asking again here will not help.
  CLOSED: 503
}

/**
 * Any thrown value as an HTTP answer. EmbassyError codes pass through unchanged (clients and
 * tests branch on them); Hypercore's "block not held" errors are 503 NOT_REPLICATED, its
 * closed-session errors 503 CLOSED; anything else is a 500 INTERNAL that reveals nothing.
 */
export function errorResponse(err: unknown): ErrorResponse {
  if (!isEmbassyError(err)) {
    const code = (err as { code?: unknown } | null)?.code
    if (code === 'REQUEST_TIMEOUT' || code === 'BLOCK_NOT_AVAILABLE' || code === 'SNAPSHOT_NOT_AVAILABLE') {
      return errorResponse(EmbassyError.notReplicated('the data is not held here yet and no peer sent it in time', err))
    }
    if (code === 'SESSION_CLOSED' || code === 'SESSION_NOT_WRITABLE') return errorResponse(EmbassyError.closed())
    return { status: 500, code: 'INTERNAL', message: 'internal error (the gateway reported it to its operator)', headers: {} }
  }
  const status = STATUS_BY_CODE[err.code] ?? 500
  if (err.code === 'CLOSED') return { status, code: err.code, message: 'the node is shutting down', headers: { ...err.headers } }
  const message = err.code === 'AMBIGUOUS_DATASET' ? `${err.text}: add ?catalog=CATALOG_KEY` : err.text
  const headers = status === 503 ? { 'Retry-After': String(RETRY_AFTER_S), ...err.headers } : { ...err.headers }
  return { status, code: err.code, message, headers }
}

export interface RequestTarget {
  /** Decoded path segments, without a trailing empty one. */
  segments: string[]
  /** True when the path ended with `/` (a folder, for files). */
  trailingSlash: boolean
  query: URLSearchParams
}

/**
 * Splits and decodes a raw request target. Anything that could name a path outside what it
 * seems to (dot segments, encoded slashes, NUL and other control characters, empty segments,
 * bad percent-encoding) is a 400 BAD_PATH, whatever route it would reach.
 */
export function parseTarget(raw: string): RequestTarget {
  if (raw.length > MAX_TARGET_LENGTH) throw EmbassyError.uriTooLong(`request target over ${MAX_TARGET_LENGTH} bytes`)
  if (!raw.startsWith('/')) throw EmbassyError.badPath('the request target must be a path starting with /')
  const q = raw.indexOf('?')
  const pathPart = q === -1 ? raw : raw.slice(0, q)
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1))
  const parts = pathPart.slice(1).split('/')
  const trailingSlash = parts.length > 1 && parts[parts.length - 1] === ''
  if (trailingSlash || parts[parts.length - 1] === '') parts.pop()
  const segments: string[] = []
  for (const part of parts) {
    if (part === '') throw EmbassyError.badPath('empty path segment (//)')
    if (/%2f/i.test(part)) throw EmbassyError.badPath('encoded slashes (%2F) are not allowed in paths')
    let seg: string
    try {
      seg = decodeURIComponent(part)
    } catch {
      throw EmbassyError.badPath('malformed percent-encoding in path')
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(seg)) throw EmbassyError.badPath('control characters (such as NUL) are not allowed in paths')
    if (seg === '.' || seg === '..') throw EmbassyError.badPath('dot segments (. and ..) are not allowed in paths')
    segments.push(seg)
  }
  return { segments, trailingSlash, query }
}

/** A non-negative integer query parameter; `fallback` when absent; 400 when malformed. */
export function intParam(query: URLSearchParams, name: string, fallback: number): number
export function intParam(query: URLSearchParams, name: string, fallback: null): number | null
export function intParam(query: URLSearchParams, name: string, fallback: number | null): number | null {
  const v = query.get(name)
  if (v === null || v === '') return fallback
  if (!/^\d{1,15}$/.test(v)) throw EmbassyError.badArgument(`${name} must be a non-negative integer, not "${v.slice(0, 40)}"`)
  return Number(v)
}

/** The search text parameter `q`, trimmed; null when absent or empty. */
export function searchParam(query: URLSearchParams): string | null {
  const q = (query.get('q') ?? '').trim()
  if (q.length > MAX_QUERY_LENGTH) throw EmbassyError.badArgument(`search text over ${MAX_QUERY_LENGTH} characters`)
  return q === '' ? null : q
}

export interface ByteRange {
  /** First byte (inclusive). */
  start: number
  /** Last byte (inclusive). */
  end: number
}

/**
 * Parses a `Range` header against a representation of `size` bytes. Returns null for "send
 * everything" (no header, another unit, or several ranges, which RFC 9110 lets a server ignore);
 * throws 416 for a malformed, inverted or out-of-bounds byte range.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null
  const m = /^\s*([A-Za-z-]+)\s*=\s*(.*)$/.exec(header)
  if (!m || (m[1] as string).toLowerCase() !== 'bytes') return null
  const spec = (m[2] as string).trim()
  if (spec.includes(',')) return null
  const r = /^(\d{0,15})-(\d{0,15})$/.exec(spec)
  if (!r || (r[1] === '' && r[2] === '')) throw EmbassyError.rangeNotSatisfiable(`malformed byte range "${header.slice(0, 60)}"`, size)
  if (r[1] === '') {
    const suffix = Number(r[2])
    if (suffix === 0 || size === 0) throw EmbassyError.rangeNotSatisfiable(`the suffix range selects no byte of a ${size}-byte file`, size)
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(r[1])
  const end = r[2] === '' ? size - 1 : Number(r[2])
  if (end < start) throw EmbassyError.rangeNotSatisfiable(`inverted byte range ${start}-${end}`, size)
  if (start >= size) throw EmbassyError.rangeNotSatisfiable(`byte ${start} is past the end of a ${size}-byte file`, size)
  return { start, end: Math.min(end, size - 1) }
}

/** A strong ETag from identifying parts (hashed: nothing internal leaks). */
export function etagOf(...parts: Array<string | number>): string {
  return '"' + crypto.createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 27) + '"'
}

/** If-None-Match (weak comparison): true when `etag` matches, so a 304 is due. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false
  if (header.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === bare)
}

const MEDIA_TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  tsv: 'text/tab-separated-values; charset=utf-8',
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  jsonl: 'application/x-ndjson',
  geojson: 'application/geo+json',
  xml: 'application/xml',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  odt: 'application/vnd.oasis.opendocument.text',
  ods: 'application/vnd.oasis.opendocument.spreadsheet',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
}

/** Media type by file extension; application/octet-stream when unknown. */
export function mediaTypeOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1)
  const dot = base.lastIndexOf('.')
  if (dot <= 0) return 'application/octet-stream'
  return MEDIA_TYPES[base.slice(dot + 1).toLowerCase()] ?? 'application/octet-stream'
}

/** Content-Disposition with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 8187). */
export function contentDisposition(type: 'inline' | 'attachment', path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1) || 'file'
  const ascii = name.replace(/[^A-Za-z0-9._-]/g, '_')
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())}`
}

/** Escapes a Prometheus label value. */
export function promLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}
