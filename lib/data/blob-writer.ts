/**
 * BlobWriter: appends files to a files dataset's content core for a publish (files-dataset.ts).
 */
import fs from 'node:fs'
import type Hypercore from 'hypercore'
import type Hyperdrive from 'hyperdrive'
import { EmbassyError } from '../errors.js'
import { sameFile, type FileIdentity } from './local-folder.js'

/** Content blocks gathered before one append (whichever limit is reached first). */
export const APPEND_GROUP_BYTES = 32 * 1024 * 1024
export const APPEND_GROUP_BLOCKS = 1024
/** Appends handed to the core at once: the next group's files are read while the previous group is written. */
const APPENDS_IN_FLIGHT = 2

/** One content block: `length` bytes of `file` from `position` (read only when the block is appended). */
interface Chunk {
  file: string
  /** The file as listed: what is opened must be it (see LocalEntry). */
  identity: FileIdentity
  position: number
  length: number
}

/**
 * The content session's value encoding: a block is a Chunk, and encoding it reads the file's
 * bytes straight into the buffer Hypercore appends (after the room it keeps for the encryption
 * header): one read per block, no intermediate buffer, no copy.
 */
const chunkEncoding = {
  preencode(state: { end: number }, c: Chunk): void {
    state.end += c.length
  },
  encode(state: { buffer: Buffer; start: number }, c: Chunk): void {
    readChunk(c, state.buffer.subarray(state.start, state.start + c.length))
    state.start += c.length
  },
  decode(): never {
    throw new Error('the publish session only appends')
  }
}

/** Reads `c` into `into` (exactly c.length bytes), opened without following links and only if it is still a regular file. */
function readChunk(c: Chunk, into: Buffer): void {
  let fd: number
  try {
    fd = fs.openSync(c.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (err) {
    throw unreadable(c.file, err)
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw EmbassyError.badInput(`${c.file} is no longer a regular file; nothing of this publish was published (publish again)`)
    if (!sameFile(st, c.identity)) throw EmbassyError.badInput(`${c.file} was replaced while it was published (it, or a folder on its path, is not the one listed); nothing of this publish was published (publish again)`)
    let got = 0
    while (got < c.length) {
      const n = fs.readSync(fd, into, got, c.length - got, c.position + got)
      if (n === 0) break
      got += n
    }
    if (got < c.length) throw EmbassyError.badInput(`${c.file} became shorter while it was published; nothing of this publish was published (publish again)`)
  } catch (err) {
    throw unreadable(c.file, err)
  } finally {
    fs.closeSync(fd)
  }
}

function unreadable(file: string, err: unknown): unknown {
  if (err instanceof EmbassyError) return err
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOSPC' || code === 'EDQUOT') return err
  return EmbassyError.badInput(`cannot read ${file}: ${code ?? (err as Error).message}`, { cause: err })
}

/**
 * Appends files to a content core in Hyperblobs' layout (each file `blockSize` chunks, ids by
 * block and byte offset) but many files per append: blocks are gathered into groups of
 * APPEND_GROUP_BYTES / APPEND_GROUP_BLOCKS. A group's files are read when it is handed to the
 * core, straight into the buffers the core appends (chunkEncoding), opened without following
 * links; the next group is read while the previous one is written.
 */
export class BlobWriter {
  readonly #session: Hypercore
  readonly #blockSize: number
  #pending: Chunk[] = []
  #pendingBytes = 0
  /** Block and byte offset of the next block (the core's length plus everything queued). */
  #nextBlock: number
  #nextByte: number
  /** Full groups not yet handed to the core. */
  readonly #groups: Array<{ blocks: Chunk[]; bytes: number }> = []
  #pump: Promise<void> | null = null
  readonly #inflight = new Set<Promise<void>>()
  #error: unknown = null
  readonly #room: ((bytes: number) => Promise<void> | void) | null
  readonly #onAppended: ((bytes: number) => void) | null

  private constructor(session: Hypercore, blockSize: number, room: ((bytes: number) => Promise<void> | void) | null, onAppended: ((bytes: number) => void) | null) {
    this.#session = session
    this.#blockSize = blockSize
    this.#room = room
    this.#onAppended = onAppended
    this.#nextBlock = session.length
    this.#nextByte = session.byteLength
  }

  /**
   * A writer appending to `core` (through its own session; close() it). `room` is asked before
   * each append with its bytes (and may refuse); `onAppended` is told the bytes of each append that landed.
   */
  static async open(
    core: Hypercore,
    blockSize: number,
    room: ((bytes: number) => Promise<void> | void) | null,
    onAppended: ((bytes: number) => void) | null = null
  ): Promise<BlobWriter> {
    const session = core.session({ valueEncoding: chunkEncoding } as unknown as Parameters<Hypercore['session']>[0])
    try {
      await session.ready()
    } catch (err) {
      await session.close().catch(() => {})
      throw err
    }
    return new BlobWriter(session, blockSize, room, onAppended)
  }

  /**
   * Queues `size` bytes of the file (its size and identity when listed); returns its blob id. Nothing is read
   * here: full groups are appended in the background (the caller goes on, e.g. with the index,
   * while the store writes), and read as they are handed to the core.
   */
  file(filename: string, size: number, identity: FileIdentity): Hyperdrive.BlobId {
    if (this.#error) throw this.#error
    const id: Hyperdrive.BlobId = { blockOffset: this.#nextBlock, blockLength: 0, byteOffset: this.#nextByte, byteLength: size }
    for (let position = 0; position < size; position += this.#blockSize) {
      const length = Math.min(this.#blockSize, size - position)
      this.#pending.push({ file: filename, identity, position, length })
      this.#pendingBytes += length
      id.blockLength++
      this.#nextBlock++
      this.#nextByte += length
      if (this.#pendingBytes >= APPEND_GROUP_BYTES || this.#pending.length >= APPEND_GROUP_BLOCKS) this.#enqueue()
    }
    return id
  }

  /** The first error of an append or a room check, if any (then flush() throws it). */
  get error(): unknown {
    return this.#error
  }

  /** Appends what is queued and waits for every append. */
  async flush(): Promise<void> {
    this.#enqueue()
    while (this.#pump) await this.#pump
    await this.settle()
    if (this.#error) throw this.#error
  }

  /** Waits for the appends in flight and stops starting new ones (their errors are kept, never left unhandled). */
  async settle(): Promise<void> {
    this.#groups.length = 0
    while (this.#pump) await this.#pump
    while (this.#inflight.size > 0) await Promise.all(this.#inflight)
  }

  /** Closes the writer's session (after settle()). */
  async close(): Promise<void> {
    await this.settle()
    await this.#session.close()
  }

  #enqueue(): void {
    if (this.#pending.length > 0) {
      this.#groups.push({ blocks: this.#pending, bytes: this.#pendingBytes })
      this.#pending = []
      this.#pendingBytes = 0
    }
    if (!this.#pump && this.#groups.length > 0 && !this.#error) {
      this.#pump = this.#run().finally(() => {
        this.#pump = null
      })
    }
  }

  /** Hands the queued groups to the core in order, at most APPENDS_IN_FLIGHT at once; never rejects. */
  async #run(): Promise<void> {
    try {
      while (this.#groups.length > 0 && !this.#error) {
        while (this.#inflight.size >= APPENDS_IN_FLIGHT) await Promise.race(this.#inflight)
        if (this.#error || this.#groups.length === 0) return
        const group = this.#groups.shift()!
        await this.#room?.(group.bytes)
        // The files are read here, synchronously, as the core encodes the blocks.
        const p = this.#session.append(group.blocks as unknown as Buffer[]).then(
          () => {
            try {
              this.#onAppended?.(group.bytes)
            } catch (err) {
              this.#error ??= err
            }
          },
          (err: unknown) => {
            this.#error ??= err
          }
        )
        const tracked: Promise<void> = p.finally(() => this.#inflight.delete(tracked))
        this.#inflight.add(tracked)
      }
    } catch (err) {
      this.#error ??= err
    }
  }
}
