/**
 * compact-encoding codecs for everything Data Embassy writes into a Hypercore
 * or hands to a person. protocol/SPEC.md describes every byte.
 */
import c from 'compact-encoding'
import {
  CATALOG_PROTOCOL,
  CatalogType,
  DATASET_ID_BYTES,
  FORMAT_VERSION,
  KEY_CHECK_BYTES,
  MAX_RECORD_BYTES,
  MAX_SEALED_META_BYTES,
  RECORD_MAGIC,
  RecordType,
  type RecordTypeCode
} from './constants.js'

export type State = ReturnType<typeof c.state>

/** The shape every codec here has (compact-encoding's). */
export interface Codec<T> {
  preencode(state: State, value: T): void
  encode(state: State, value: T): void
  decode(state: State): T
}

/** A codec or wire decode failed: the bytes are not what the format says. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DecodeError'
  }
}

/** Encodes `value` into a fresh buffer. */
export function encode<T>(codec: Codec<T>, value: T): Buffer {
  const state = c.state()
  codec.preencode(state, value)
  state.buffer = Buffer.allocUnsafe(state.end)
  codec.encode(state, value)
  return state.buffer as Buffer
}

/** Decodes `buffer` completely; trailing bytes or a short buffer throw DecodeError. */
export function decode<T>(codec: Codec<T>, buffer: Uint8Array): T {
  const state = c.state(0, buffer.byteLength, buffer)
  let value: T
  try {
    value = codec.decode(state)
  } catch (err) {
    throw new DecodeError((err as Error).message || 'malformed message')
  }
  if (state.start !== state.end) throw new DecodeError(`${state.end - state.start} trailing bytes`)
  return value
}

function fail(message: string): never {
  throw new DecodeError(message)
}

// ---------------------------------------------------------------- catalog

/** Block 0 of every catalog core. Not encrypted: blind embassies read it. */
export interface CatalogHeader {
  type: typeof CatalogType.HEADER
  /** Always CATALOG_PROTOCOL. */
  protocol: string
  /** Major format version of the catalog. */
  version: number
  /** The agency's node (swarm) public key: where the catalog's writer can be dialled. */
  agencyNodeKey: Uint8Array
  /** BLAKE2b of the read key under its own namespace: detects a wrong read key. */
  keyCheck: Uint8Array
  /** Agency metadata (its name), sealed with the read key. */
  meta: Uint8Array
}

/** A dataset entry: add, update or retire. */
export interface CatalogEntry {
  type: typeof CatalogType.ADD | typeof CatalogType.UPDATE | typeof CatalogType.RETIRE
  /** Random dataset id: stable across renames, input to the dataset's key derivation. */
  id: Uint8Array
  /** Dataset kind code (DatasetKind). Zero on RETIRE. */
  kind: number
  /** Every Hypercore key of the dataset; embassies hold them all. */
  cores: Uint8Array[]
  /** Name, description and content type, sealed with the read key. Empty on RETIRE. */
  meta: Uint8Array
}

export type CatalogBlock = CatalogHeader | CatalogEntry

const coreKeys = c.array(c.fixed32)

export const catalogBlock: Codec<CatalogBlock> = {
  preencode(state, m) {
    c.uint.preencode(state, m.type)
    c.uint.preencode(state, 0) // flags
    if (m.type === CatalogType.HEADER) {
      c.string.preencode(state, m.protocol)
      c.uint.preencode(state, m.version)
      c.fixed32.preencode(state, m.agencyNodeKey)
      c.fixed(KEY_CHECK_BYTES).preencode(state, m.keyCheck)
      c.buffer.preencode(state, m.meta)
      return
    }
    c.fixed(DATASET_ID_BYTES).preencode(state, m.id)
    c.uint.preencode(state, m.kind)
    coreKeys.preencode(state, m.cores)
    c.buffer.preencode(state, m.meta)
  },
  encode(state, m) {
    c.uint.encode(state, m.type)
    c.uint.encode(state, 0)
    if (m.type === CatalogType.HEADER) {
      c.string.encode(state, m.protocol)
      c.uint.encode(state, m.version)
      c.fixed32.encode(state, m.agencyNodeKey)
      c.fixed(KEY_CHECK_BYTES).encode(state, m.keyCheck)
      c.buffer.encode(state, m.meta)
      return
    }
    c.fixed(DATASET_ID_BYTES).encode(state, m.id)
    c.uint.encode(state, m.kind)
    coreKeys.encode(state, m.cores)
    c.buffer.encode(state, m.meta)
  },
  decode(state) {
    const type = c.uint.decode(state)
    c.uint.decode(state) // flags: no optional fields in version 1
    if (type === CatalogType.HEADER) {
      const protocol = c.string.decode(state)
      if (protocol !== CATALOG_PROTOCOL) fail(`not a Data Embassy catalog (protocol "${protocol.slice(0, 64)}")`)
      const version = c.uint.decode(state)
      if (version !== FORMAT_VERSION) fail(`unsupported catalog version ${version}`)
      return {
        type,
        protocol,
        version,
        agencyNodeKey: c.fixed32.decode(state),
        keyCheck: c.fixed(KEY_CHECK_BYTES).decode(state),
        meta: bounded(c.buffer.decode(state), MAX_SEALED_META_BYTES, 'catalog metadata')
      }
    }
    if (type !== CatalogType.ADD && type !== CatalogType.UPDATE && type !== CatalogType.RETIRE) {
      fail(`unknown catalog block type ${type}`)
    }
    return {
      type,
      id: c.fixed(DATASET_ID_BYTES).decode(state),
      kind: c.uint.decode(state),
      cores: coreKeys.decode(state),
      meta: bounded(c.buffer.decode(state), MAX_SEALED_META_BYTES, 'dataset metadata')
    }
  }
}

function bounded(buf: Uint8Array | null, max: number, what: string): Uint8Array {
  const b = buf ?? new Uint8Array(0)
  if (b.byteLength > max) fail(`${what} is ${b.byteLength} bytes, over ${max}`)
  return b
}

// ---------------------------------------------------------------- log records

/** One block of a log dataset, as plaintext (the core encrypts it). */
export interface LogRecord {
  /** RecordType.JSON (value is UTF-8 JSON text) or RecordType.BYTES. */
  type: RecordTypeCode
  /** Milliseconds since the epoch when the agency appended it. */
  time: number
  /** The record's bytes. */
  value: Uint8Array
  /**
   * Pad the block with zero bytes to a multiple of this many bytes (a dataset's `recordPad`), so
   * that a blind holder sees size classes, not record sizes. Written as record version 2 (the
   * value's length before it): readers before it refuse the block ("unsupported record version"),
   * they never misread it. Absent or 0: version 1, unpadded.
   */
  padTo?: number
}

/** Record version with an explicit value length and zero padding after the value. */
export const RECORD_VERSION_PADDED = 2

function recordHeaderBytes(m: LogRecord, version: number): number {
  const state = { start: 0, end: RECORD_MAGIC.byteLength, buffer: null }
  c.uint.preencode(state, version)
  c.uint.preencode(state, m.type)
  c.uint.preencode(state, 0)
  c.uint.preencode(state, m.time)
  if (version === RECORD_VERSION_PADDED) c.uint.preencode(state, m.value.byteLength)
  return state.end
}

/** Zero bytes after the value so the whole block is a multiple of `padTo`. */
function recordPadding(m: LogRecord): number {
  if (!m.padTo) return 0
  const bare = recordHeaderBytes(m, RECORD_VERSION_PADDED) + m.value.byteLength
  return (m.padTo - (bare % m.padTo)) % m.padTo
}

export const logRecord: Codec<LogRecord> = {
  preencode(state, m) {
    if (m.padTo) {
      state.end += recordHeaderBytes(m, RECORD_VERSION_PADDED) + m.value.byteLength + recordPadding(m)
      return
    }
    state.end += RECORD_MAGIC.byteLength
    c.uint.preencode(state, FORMAT_VERSION)
    c.uint.preencode(state, m.type)
    c.uint.preencode(state, 0) // flags
    c.uint.preencode(state, m.time)
    state.end += m.value.byteLength
  },
  encode(state, m) {
    const buf = state.buffer as Uint8Array
    buf.set(RECORD_MAGIC, state.start)
    state.start += RECORD_MAGIC.byteLength
    c.uint.encode(state, m.padTo ? RECORD_VERSION_PADDED : FORMAT_VERSION)
    c.uint.encode(state, m.type)
    c.uint.encode(state, 0)
    c.uint.encode(state, m.time)
    if (m.padTo) c.uint.encode(state, m.value.byteLength)
    buf.set(m.value, state.start)
    state.start += m.value.byteLength
    if (m.padTo) {
      const n = recordPadding(m)
      buf.fill(0, state.start, state.start + n)
      state.start += n
    }
  },
  decode(state) {
    const buf = state.buffer as Uint8Array
    if (state.end - state.start < RECORD_MAGIC.byteLength) fail('record too short')
    for (let i = 0; i < RECORD_MAGIC.byteLength; i++) {
      if (buf[state.start + i] !== RECORD_MAGIC[i]) fail('record has no Data Embassy header')
    }
    state.start += RECORD_MAGIC.byteLength
    const version = c.uint.decode(state)
    if (version !== FORMAT_VERSION && version !== RECORD_VERSION_PADDED) fail(`unsupported record version ${version}`)
    const type = c.uint.decode(state)
    if (type !== RecordType.JSON && type !== RecordType.BYTES) fail(`unknown record type ${type}`)
    c.uint.decode(state) // flags
    const time = c.uint.decode(state)
    if (version === RECORD_VERSION_PADDED) {
      const length = c.uint.decode(state)
      if (length > state.end - state.start) fail('padded record shorter than its value')
      const value = buf.subarray(state.start, state.start + length)
      for (let i = state.start + length; i < state.end; i++) if (buf[i] !== 0) fail('record padding is not zero bytes')
      state.start = state.end
      return { type, time, value, padTo: 0 }
    }
    const value = buf.subarray(state.start, state.end)
    if (value.byteLength > MAX_RECORD_BYTES) fail('record over the size limit')
    state.start = state.end
    return { type, time, value }
  }
}

// ---------------------------------------------------------------- sealed metadata

/**
 * Flag bit of sealed metadata (datasetMeta, agencyMeta): zero bytes follow the fields up to the
 * end, so that the sealed length shows only a size class (seal.ts). Writers before it always
 * wrote flags 0, so old entries never carry it; readers before it refuse a padded entry (its
 * trailing bytes), they never misread one.
 */
export const META_PADDED = 1

/** What a catalog entry's sealed metadata holds, once opened. */
export interface DatasetMeta {
  name: string
  description: string
  contentType: string
  /** Log datasets: records are padded to a multiple of this many bytes (flag META_RECORD_PAD). */
  recordPad?: number
  /** Zero bytes after the fields (flag META_PADDED); absent on unpadded (older) entries. */
  padding?: number
}

/** Flag bit of datasetMeta: a `recordPad` uint follows the content type. */
export const META_RECORD_PAD = 2

function datasetMetaFlags(m: DatasetMeta): number {
  return (m.padding === undefined ? 0 : META_PADDED) | (m.recordPad ? META_RECORD_PAD : 0)
}

function preencodePadding(state: State, padding: number | undefined): void {
  if (padding !== undefined) state.end += padding
}

function encodePadding(state: State, padding: number | undefined): void {
  if (padding === undefined) return
  ;(state.buffer as Uint8Array).fill(0, state.start, state.start + padding)
  state.start += padding
}

/** The rest of a padded blob: zero bytes only (anything else is not padding). */
function decodePadding(state: State): number {
  const buf = state.buffer as Uint8Array
  for (let i = state.start; i < state.end; i++) if (buf[i] !== 0) fail('padding of sealed metadata is not zero bytes')
  const n = state.end - state.start
  state.start = state.end
  return n
}

export const datasetMeta: Codec<DatasetMeta> = {
  preencode(state, m) {
    c.uint.preencode(state, datasetMetaFlags(m)) // flags
    c.string.preencode(state, m.name)
    c.string.preencode(state, m.description)
    c.string.preencode(state, m.contentType)
    if (m.recordPad) c.uint.preencode(state, m.recordPad)
    preencodePadding(state, m.padding)
  },
  encode(state, m) {
    c.uint.encode(state, datasetMetaFlags(m))
    c.string.encode(state, m.name)
    c.string.encode(state, m.description)
    c.string.encode(state, m.contentType)
    if (m.recordPad) c.uint.encode(state, m.recordPad)
    encodePadding(state, m.padding)
  },
  decode(state) {
    const flags = c.uint.decode(state)
    const m: DatasetMeta = { name: c.string.decode(state), description: c.string.decode(state), contentType: c.string.decode(state) }
    if (flags & META_RECORD_PAD) m.recordPad = c.uint.decode(state)
    if (flags & META_PADDED) m.padding = decodePadding(state)
    return m
  }
}

/** What a catalog header's sealed metadata holds. */
export interface AgencyMeta {
  name: string
  /** Zero bytes after the fields (flag META_PADDED); absent on unpadded (older) headers. */
  padding?: number
}

export const agencyMeta: Codec<AgencyMeta> = {
  preencode(state, m) {
    c.uint.preencode(state, m.padding === undefined ? 0 : META_PADDED)
    c.string.preencode(state, m.name)
    preencodePadding(state, m.padding)
  },
  encode(state, m) {
    c.uint.encode(state, m.padding === undefined ? 0 : META_PADDED)
    c.string.encode(state, m.name)
    encodePadding(state, m.padding)
  },
  decode(state) {
    const flags = c.uint.decode(state)
    const m: AgencyMeta = { name: c.string.decode(state) }
    if (flags & META_PADDED) m.padding = decodePadding(state)
    return m
  }
}

// ---------------------------------------------------------------- read capability

/** What a mirror needs to find, verify and decrypt an agency's data. */
export interface ReadCapability {
  catalogKey: Uint8Array
  readKey: Uint8Array
  agencyNodeKey: Uint8Array
}

export const readCapability: Codec<ReadCapability> = {
  preencode(state, m) {
    c.uint.preencode(state, FORMAT_VERSION)
    c.uint.preencode(state, 0)
    c.fixed32.preencode(state, m.catalogKey)
    c.fixed32.preencode(state, m.readKey)
    c.fixed32.preencode(state, m.agencyNodeKey)
  },
  encode(state, m) {
    c.uint.encode(state, FORMAT_VERSION)
    c.uint.encode(state, 0)
    c.fixed32.encode(state, m.catalogKey)
    c.fixed32.encode(state, m.readKey)
    c.fixed32.encode(state, m.agencyNodeKey)
  },
  decode(state) {
    const version = c.uint.decode(state)
    if (version !== FORMAT_VERSION) fail(`unsupported capability version ${version}`)
    c.uint.decode(state)
    return { catalogKey: c.fixed32.decode(state), readKey: c.fixed32.decode(state), agencyNodeKey: c.fixed32.decode(state) }
  }
}
