/**
 * HTTP helpers for the gateway: error responses, request targets (no path escapes), byte ranges,
 * ETags and media types. Pure functions: no I/O.
 */
import crypto from 'node:crypto'
import { isEmbassyError } from '../errors.js'

/** Longest request target accepted (bytes); longer ones get 414. */
export const MAX_TARGET_LENGTH = 8192
/** Longest search text (characters). */
export const MAX_QUERY_LENGTH = 256
/** Seconds a client is told to wait before asking again for data still replicating. */
export const RETRY_AFTER_S = 5

/**
 * An error answered as `{ error: { code, message } }` with an HTTP status. Codes are stable
 * (clients and tests branch on them); EmbassyError codes pass through unchanged.
 */
export class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly text: string
  readonly headers: Record<string, string>

  constructor(status: number, code: string, text: string, headers: Record<string, string> = {}, cause?: unknown) {
    super(`${code}: ${text}`, cause === undefined ? undefined : { cause })
    this.name = 'HttpError'
    this.status = status
    this.code = code
    this.text = text
    this.headers = headers
  }

  static badRequest(code: string, text: string): HttpError {
    return new HttpError(400, code, text)
  }

  static notFound(text: string, code = 'NOT_FOUND'): HttpError {
    return new HttpError(404, code, text)
  }

  /** Data this node does not hold yet (or cannot fetch now): 503 with Retry-After. */
  static notReplicated(text: string, cause?: unknown): HttpError {
    return new HttpError(503, 'NOT_REPLICATED', text, { 'Retry-After': String(RETRY_AFTER_S) }, cause)
  }

  static rangeNotSatisfiable(text: string, size?: number): HttpError {
    return new HttpError(416, 'RANGE_NOT_SATISFIABLE', text, size === undefined ? {} : { 'Content-Range': `bytes */${size}` })
  }

  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.text } }
  }

  /** Any thrown value as an HttpError; unknown errors become a 500 that reveals nothing. */
  static from(err: unknown): HttpError {
    if (err instanceof HttpError) return err
    if (isEmbassyError(err)) {
      switch (err.code) {
        case 'UNKNOWN_DATASET':
        case 'NOT_FOUND':
        case 'WRONG_KIND':
          return new HttpError(404, err.code, err.text)
        case 'AMBIGUOUS_DATASET':
          return new HttpError(409, err.code, `${err.text}: add ?catalog=CATALOG_KEY`)
        case 'BAD_ARGUMENT':
        case 'BAD_INPUT':
          return new HttpError(400, err.code, err.text)
        case 'NOT_AVAILABLE':
        case 'NOT_SYNCED':
        case 'TIMEOUT':
        case 'PEER_UNREACHABLE':
          return new HttpError(503, err.code, err.text, { 'Retry-After': String(RETRY_AFTER_S) }, err)
        case 'CLOSED':
          return new HttpError(503, err.code, 'the node is shutting down', {}, err)
        default:
          return new HttpError(500, err.code, err.text, {}, err)
      }
    }
    const code = (err as { code?: unknown } | null)?.code
    if (code === 'REQUEST_TIMEOUT' || code === 'BLOCK_NOT_AVAILABLE' || code === 'SNAPSHOT_NOT_AVAILABLE') {
      return HttpError.notReplicated('the data is not held here yet and no peer sent it in time', err)
    }
    if (code === 'SESSION_CLOSED' || code === 'SESSION_NOT_WRITABLE') return new HttpError(503, 'CLOSED', 'the node is shutting down', {}, err)
    return new HttpError(500, 'INTERNAL', 'internal error (the gateway reported it to its operator)', {}, err)
  }
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
  if (raw.length > MAX_TARGET_LENGTH) throw new HttpError(414, 'URI_TOO_LONG', `request target over ${MAX_TARGET_LENGTH} bytes`)
  if (!raw.startsWith('/')) throw HttpError.badRequest('BAD_PATH', 'the request target must be a path starting with /')
  const q = raw.indexOf('?')
  const pathPart = q === -1 ? raw : raw.slice(0, q)
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1))
  const parts = pathPart.slice(1).split('/')
  const trailingSlash = parts.length > 1 && parts[parts.length - 1] === ''
  if (trailingSlash || parts[parts.length - 1] === '') parts.pop()
  const segments: string[] = []
  for (const part of parts) {
    if (part === '') throw HttpError.badRequest('BAD_PATH', 'empty path segment (//)')
    if (/%2f/i.test(part)) throw HttpError.badRequest('BAD_PATH', 'encoded slashes (%2F) are not allowed in paths')
    let seg: string
    try {
      seg = decodeURIComponent(part)
    } catch {
      throw HttpError.badRequest('BAD_PATH', 'malformed percent-encoding in path')
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(seg)) throw HttpError.badRequest('BAD_PATH', 'control characters (such as NUL) are not allowed in paths')
    if (seg === '.' || seg === '..') throw HttpError.badRequest('BAD_PATH', 'dot segments (. and ..) are not allowed in paths')
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
  if (!/^\d{1,15}$/.test(v)) throw HttpError.badRequest('BAD_ARGUMENT', `${name} must be a non-negative integer, not "${v.slice(0, 40)}"`)
  return Number(v)
}

/** The search text parameter `q`, trimmed; null when absent or empty. */
export function searchParam(query: URLSearchParams): string | null {
  const q = (query.get('q') ?? '').trim()
  if (q.length > MAX_QUERY_LENGTH) throw HttpError.badRequest('BAD_ARGUMENT', `search text over ${MAX_QUERY_LENGTH} characters`)
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
  if (!r || (r[1] === '' && r[2] === '')) throw HttpError.rangeNotSatisfiable(`malformed byte range "${header.slice(0, 60)}"`, size)
  if (r[1] === '') {
    const suffix = Number(r[2])
    if (suffix === 0 || size === 0) throw HttpError.rangeNotSatisfiable(`the suffix range selects no byte of a ${size}-byte file`, size)
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(r[1])
  const end = r[2] === '' ? size - 1 : Number(r[2])
  if (end < start) throw HttpError.rangeNotSatisfiable(`inverted byte range ${start}-${end}`, size)
  if (start >= size) throw HttpError.rangeNotSatisfiable(`byte ${start} is past the end of a ${size}-byte file`, size)
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
