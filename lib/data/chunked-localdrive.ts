/**
 * A Localdrive whose file streams yield chunks of a chosen size. Hyperblobs stores each written
 * chunk as one block, and Localdrive reads 64 KiB at a time; larger blocks replicate faster
 * (see BENCHMARKS.md), so publishing reads files in FILE_BLOCK_SIZE chunks.
 */
import fs from 'node:fs'
import Localdrive from 'localdrive'
import { Readable } from 'streamx'

class ChunkedFileStream extends Readable {
  readonly #filename: string
  readonly #chunk: number
  #fd = 0
  #offset: number
  #missing: number

  constructor(filename: string, chunk: number, opts: { start?: number; end?: number; length?: number } = {}) {
    super()
    this.#filename = filename
    this.#chunk = chunk
    this.#offset = opts.start ?? 0
    this.#missing = opts.length ?? (typeof opts.end === 'number' ? opts.end - this.#offset + 1 : -1)
  }

  override _open(cb: (err: Error | null) => void): void {
    fs.open(this.#filename, 'r', (err, fd) => {
      if (err) return cb(err)
      fs.fstat(fd, (err2, st) => {
        if (err2 || !st.isFile()) {
          fs.close(fd, () => cb(err2 ?? new Error(`${this.#filename} is not a file`)))
          return
        }
        this.#fd = fd
        const available = Math.max(0, st.size - this.#offset)
        this.#missing = this.#missing === -1 ? available : Math.min(this.#missing, available)
        cb(null)
      })
    })
  }

  override _read(cb: (err: Error | null) => void): void {
    if (this.#missing <= 0) {
      this.push(null)
      return cb(null)
    }
    const data = Buffer.allocUnsafe(Math.min(this.#missing, this.#chunk))
    readFull(this.#fd, data, this.#offset, (err, read) => {
      if (err) return cb(err)
      if (read === 0) {
        this.push(null)
        return cb(null)
      }
      this.push(data.subarray(0, read))
      this.#missing -= read
      this.#offset += read
      if (this.#missing <= 0) this.push(null)
      cb(null)
    })
  }

  override _destroy(cb: (err: Error | null) => void): void {
    if (!this.#fd) return cb(null)
    fs.close(this.#fd, () => cb(null))
  }
}

/** Reads until `buf` is full or the file ends (fs.read may return less than asked). */
function readFull(fd: number, buf: Buffer, position: number, cb: (err: Error | null, read: number) => void, got = 0): void {
  fs.read(fd, buf, got, buf.byteLength - got, position + got, (err, n) => {
    if (err) return cb(err, got)
    if (n === 0 || got + n === buf.byteLength) return cb(null, got + n)
    readFull(fd, buf, position, cb, got + n)
  })
}

export class ChunkedLocaldrive extends Localdrive {
  readonly chunkSize: number

  constructor(root: string, chunkSize: number, opts?: ConstructorParameters<typeof Localdrive>[1]) {
    super(root, opts)
    this.chunkSize = chunkSize
  }

  override createReadStream(key: string | Localdrive.Entry, opts?: { start?: number; end?: number; length?: number }): Localdrive.Stream<Buffer> {
    const name = typeof key === 'object' ? key.key : key
    return new ChunkedFileStream(this.toPath(name), this.chunkSize, opts) as unknown as Localdrive.Stream<Buffer>
  }
}
