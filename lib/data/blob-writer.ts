/**
 * BlobWriter: appends files to a files dataset's content core for a publish (files-dataset.ts).
 */
import fs from 'node:fs'
import type Hypercore from 'hypercore'
import type Hyperdrive from 'hyperdrive'
import { EmbassyError } from '../errors.js'

/** Content blocks gathered before one append (whichever limit is reached first). */
export const APPEND_GROUP_BYTES = 32 * 1024 * 1024
export const APPEND_GROUP_BLOCKS = 1024

/**
 * Appends files to a content core in Hyperblobs' layout (each file `blockSize` chunks, ids by
 * block and byte offset) but many files per append: blocks are gathered into groups of
 * APPEND_GROUP_BYTES / APPEND_GROUP_BLOCKS, and one group is appended while the next is read.
 * Files are read with plain synchronous reads into the buffers that are appended (no stream, no
 * copy), opened without following links.
 */
export class BlobWriter {
  readonly #core: Hypercore
  readonly #blockSize: number
  #pending: Buffer[] = []
  #pendingBytes = 0
  /** Block and byte offset of the next block (the core's length plus everything queued). */
  #nextBlock: number
  #nextByte: number
  #inflight: Promise<void> | null = null
  #error: unknown = null
  readonly #room: ((bytes: number) => Promise<void> | void) | null

  constructor(core: Hypercore, blockSize: number, room: ((bytes: number) => Promise<void> | void) | null) {
    this.#core = core
    this.#blockSize = blockSize
    this.#room = room
    this.#nextBlock = core.length
    this.#nextByte = core.byteLength
  }

  /** Queues the file's bytes (what it holds when opened); returns its blob id. */
  async file(filename: string): Promise<Hyperdrive.BlobId> {
    const id: Hyperdrive.BlobId = { blockOffset: this.#nextBlock, blockLength: 0, byteOffset: this.#nextByte, byteLength: 0 }
    const fd = fs.openSync(filename, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      const st = fs.fstatSync(fd)
      const size = st.size
      if (!st.isFile()) throw EmbassyError.badInput(`${filename} is not a file`)
      let offset = 0
      while (offset < size) {
        const buf = Buffer.allocUnsafe(Math.min(this.#blockSize, size - offset))
        const n = readFull(fd, buf, offset)
        if (n === 0) break // the file shrank since it was listed: publish what it holds
        const block = n === buf.byteLength ? buf : buf.subarray(0, n)
        offset += n
        id.blockLength++
        id.byteLength += n
        this.#pending.push(block)
        this.#pendingBytes += n
        this.#nextBlock++
        this.#nextByte += n
        if (this.#pendingBytes >= APPEND_GROUP_BYTES || this.#pending.length >= APPEND_GROUP_BLOCKS) await this.#send()
        if (n < buf.byteLength) break
      }
    } finally {
      fs.closeSync(fd)
    }
    return id
  }

  /** Appends what is queued and waits for every append. */
  async flush(): Promise<void> {
    await this.#send()
    await this.settle()
    if (this.#error) throw this.#error
  }

  /** Waits for the append in flight (its error is kept, never left unhandled). */
  async settle(): Promise<void> {
    while (this.#inflight) await this.#inflight
  }

  /** Starts appending the queued group once the previous append landed. */
  async #send(): Promise<void> {
    await this.settle()
    if (this.#error) throw this.#error
    if (this.#pending.length === 0) return
    await this.#room?.(this.#pendingBytes)
    const blocks = this.#pending
    this.#pending = []
    this.#pendingBytes = 0
    const p: Promise<void> = this.#core.append(blocks).then(
      () => {},
      (err: unknown) => {
        this.#error = err
      }
    ).finally(() => {
      if (this.#inflight === p) this.#inflight = null
    })
    this.#inflight = p
  }
}

/** Reads into `buf` at file `position` until it is full or the file ends; bytes read. */
function readFull(fd: number, buf: Buffer, position: number): number {
  let got = 0
  while (got < buf.byteLength) {
    const n = fs.readSync(fd, buf, got, buf.byteLength - got, position + got)
    if (n === 0) break
    got += n
  }
  return got
}
