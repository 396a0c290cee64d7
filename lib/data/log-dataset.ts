/**
 * LogDataset: a `log` dataset — one block-encrypted Hypercore, one record per block.
 */
import fs from 'node:fs'
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { DecodeError, RecordType, decode, encode, logRecord, MAX_RECORD_BYTES, type LogRecord } from '../../protocol/index.js'

/** Records per `core.append` call: one atomic write batch each. */
export const APPEND_BATCH = 2000
/** Blocks asked for ahead of a waiting read (one download range at a time), so a long read is not one round trip per record. */
export const READ_AHEAD = 256

/** A record as it is read back. */
export interface RecordView {
  seq: number
  /** Milliseconds since the epoch when it was appended. */
  time: number
  type: 'json' | 'bytes'
  /** The record's JSON text (type json) or base64 bytes (type bytes). */
  text: string
}

export interface ReadOptions {
  start?: number
  end?: number
  /** Wait for blocks from peers (mirrors); false reads only what is held. @default false */
  wait?: boolean
  /** With wait: give up after this many ms. @default 10000 */
  timeout?: number
}

export type Progress = (done: number, total: number) => void

/** How a read treats blocks not held: wait for a peer to send them (bounded), or fail at once. */
export interface WaitOptions {
  /** @default false */
  wait?: boolean
  /** With wait: give up on a block after this many ms. @default 10000 */
  timeout?: number
}

/** One core of a dataset and its part in it: a log's one core, or a file tree's index and content. */
export interface DatasetCore {
  part: 'log' | 'index' | 'content'
  core: Hypercore
}

export class LogDataset {
  readonly core: Hypercore
  readonly kind = 'log'

  constructor(core: Hypercore) {
    this.core = core
  }

  /** The dataset's cores: the log itself. */
  async cores(): Promise<DatasetCore[]> {
    return [{ part: 'log', core: this.core }]
  }

  /** What the catalog lists. */
  async coreKeys(): Promise<Buffer[]> {
    await this.core.ready()
    return [this.core.key!]
  }

  get length(): number {
    return this.core.length
  }

  get byteLength(): number {
    return this.core.byteLength
  }

  /**
   * A record as it is stored: one NDJSON line. A raw line break can only be whitespace between
   * JSON tokens (inside a string it is invalid JSON), so each CR or LF becomes a space: the value is
   * unchanged, every other byte is kept, and `export` → `append` round-trips exactly.
   */
  static oneLine(text: string): string {
    // indexOf is several times faster than a regex test on the common line without a break (import profile).
    return text.indexOf('\n') === -1 && text.indexOf('\r') === -1 ? text : text.replace(/[\r\n]/g, ' ')
  }

  /**
   * Validates JSON texts (each stored as one line, LogDataset.oneLine); throws BAD_RECORD naming the first bad one (1-based `line`)
   * before anything is appended.
   */
  static encodeJsonTexts(texts: readonly string[], firstLine = 1, lines?: readonly number[], padTo = 0): Buffer[] {
    const time = Date.now()
    const stored: string[] = new Array(texts.length)
    const sizes: number[] = new Array(texts.length)
    let total = 0
    for (let i = 0; i < texts.length; i++) {
      const text = texts[i] as string
      const line = lines ? (lines[i] as number) : firstLine + i
      try {
        JSON.parse(text)
      } catch (err) {
        throw EmbassyError.badRecord(line, `not JSON (${(err as Error).message})`)
      }
      const one = LogDataset.oneLine(text)
      const bytes = Buffer.byteLength(one, 'utf8')
      if (bytes > MAX_RECORD_BYTES) throw EmbassyError.badRecord(line, `record of ${bytes} bytes is over the ${MAX_RECORD_BYTES}-byte limit`)
      stored[i] = one
      sizes[i] = bytes
      total += bytes
    }
    if (padTo) return stored.map((one) => encode(logRecord, { type: RecordType.JSON, time, value: Buffer.from(one, 'utf8'), padTo }))
    // Unpadded records share one header (same type and time): each block is that header and the
    // text, written straight into one buffer for the whole call (no per-record copies).
    const header = encode(logRecord, { type: RecordType.JSON, time, value: Buffer.alloc(0), padTo: 0 })
    const slab = Buffer.allocUnsafe(total + header.byteLength * texts.length)
    const out: Buffer[] = new Array(texts.length)
    let at = 0
    for (let i = 0; i < texts.length; i++) {
      const start = at
      header.copy(slab, at)
      at += header.byteLength
      at += slab.write(stored[i] as string, at, 'utf8')
      out[i] = slab.subarray(start, at)
    }
    return out
  }

  /** @param padTo pad each block to a multiple of this many bytes (the dataset's recordPad) */
  static encodeBytes(values: readonly Uint8Array[], padTo = 0): Buffer[] {
    const time = Date.now()
    return values.map((value, i) => {
      if (value.byteLength > MAX_RECORD_BYTES) throw EmbassyError.badRecord(i + 1, 'record over the size limit')
      return encode(logRecord, { type: RecordType.BYTES, time, value, padTo })
    })
  }

  /** Appends encoded records in atomic batches; returns the new length. */
  async appendEncoded(blocks: readonly Buffer[], onProgress?: Progress): Promise<number> {
    if (!this.core.writable) throw EmbassyError.wrongRole('appending', 'read-only holder', 'writable agency')
    for (let i = 0; i < blocks.length; i += APPEND_BATCH) {
      await this.core.append(blocks.slice(i, i + APPEND_BATCH))
      onProgress?.(Math.min(i + APPEND_BATCH, blocks.length), blocks.length)
    }
    return this.core.length
  }

  /**
   * Reads records [start, end); a missing block throws NOT_AVAILABLE, or, waiting, is fetched from
   * any peer (READ_AHEAD blocks asked for at a time) and throws TIMEOUT when none sends it in time.
   */
  async *read(opts: ReadOptions = {}): AsyncGenerator<RecordView> {
    const length = this.core.length
    const start = opts.start ?? 0
    const end = Math.min(opts.end ?? length, length)
    const wait = opts.wait ?? false
    let ahead: { end: number; range: { destroy(): void } } | null = null
    try {
      for (let seq = start; seq < end; seq++) {
        if (wait && (ahead === null || seq >= ahead.end)) {
          ahead?.range.destroy()
          ahead = null
          const to = Math.min(end, seq + READ_AHEAD)
          if (!(await this.core.has(seq, to))) ahead = { end: to, range: this.core.download({ start: seq, end: to }) }
        }
        let block: Buffer | null
        try {
          block = await this.core.get(seq, { wait, timeout: wait ? (opts.timeout ?? 10_000) : 0 })
        } catch (err) {
          if ((err as { code?: string }).code === 'REQUEST_TIMEOUT') throw EmbassyError.timeout(`record ${seq} did not arrive in time (no peer sent it)`)
          throw err
        }
        if (!block) throw EmbassyError.notAvailable(`record ${seq} is not held here yet`)
        yield LogDataset.view(seq, block)
      }
    } finally {
      ahead?.range.destroy()
    }
  }

  static view(seq: number, block: Uint8Array): RecordView {
    let r: LogRecord
    try {
      r = decode(logRecord, block)
    } catch (err) {
      if (err instanceof DecodeError && /header/.test(err.message)) {
        throw EmbassyError.wrongReadKey(`record ${seq} does not decrypt to a Data Embassy record: wrong read key`)
      }
      throw EmbassyError.badMessage(`record ${seq}: ${(err as Error).message}`, err)
    }
    const buf = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength)
    return r.type === RecordType.JSON
      ? { seq, time: r.time, type: 'json', text: buf.toString('utf8') }
      : { seq, time: r.time, type: 'bytes', text: buf.toString('base64') }
  }

  /** Writes the records as NDJSON (one record's text per line) to `file`; `opts.wait` fetches blocks not held. */
  async exportTo(file: string, onProgress?: Progress, opts: WaitOptions = {}): Promise<{ records: number; bytes: number }> {
    const out = fs.createWriteStream(file)
    let records = 0
    let bytes = 0
    const total = this.core.length
    try {
      for await (const r of this.read(opts)) {
        const line = r.text + '\n'
        bytes += Buffer.byteLength(line)
        records++
        if (!out.write(line)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
        if (onProgress && records % 1000 === 0) onProgress(records, total)
      }
    } finally {
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
    }
    onProgress?.(records, total)
    return { records, bytes }
  }

  async close(): Promise<void> {
    await this.core.close()
  }
}
