/**
 * A Localdrive whose file streams yield chunks of a chosen size. Hyperblobs stores each written
 * chunk as one block, and Localdrive reads 64 KiB at a time; larger blocks replicate faster
 * (see BENCHMARKS.md), so publishing reads files in FILE_BLOCK_SIZE chunks.
 *
 * It also applies the link and name policy of ./safe-paths.ts to what is published: a link is
 * published only as a relative link that stays inside the folder (an absolute link to a place
 * inside it is rewritten as a relative one); links that leave the folder and unsafe names are
 * left out and listed in `skipped`.
 */
import fs from 'node:fs'
import path from 'node:path'
import Localdrive from 'localdrive'
import { Readable } from 'streamx'
import { linkTarget, printable, safeSegments, type SkippedEntry } from './safe-paths.js'

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
  /** Entries left out by the link and name policy (by path). */
  readonly #skipped = new Map<string, string>()

  constructor(root: string, chunkSize: number, opts?: ConstructorParameters<typeof Localdrive>[1]) {
    super(root, opts)
    this.chunkSize = chunkSize
  }

  /** What the policy left out, in the order met. */
  get skipped(): SkippedEntry[] {
    return [...this.#skipped].map(([p, reason]) => ({ path: p, reason }))
  }

  override async entry(key: string | Localdrive.Entry, opts?: { follow?: boolean }): Promise<Localdrive.Entry | null> {
    const e = await super.entry(key, opts)
    if (!e) return e
    const safe = safeSegments(e.key)
    if ('reason' in safe) return this.#skip(e.key, safe.reason)
    if (e.value.linkname === null) return e
    // Localdrive rewrites absolute links inside the root to "/x"; read the link as the file system has it.
    const file = this.toPath(e.key)
    let raw: string
    try {
      raw = fs.readlinkSync(file)
    } catch {
      return this.#skip(e.key, 'the link could not be read')
    }
    const resolved = path.resolve(path.dirname(file), raw)
    const inside = path.relative(this.root, resolved)
    if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
      return this.#skip(e.key, `link to "${printable(raw)}" leaves the published folder`)
    }
    const relative = path.relative(path.dirname(file), resolved).split(path.sep).join('/')
    const checked = linkTarget(e.key, relative)
    if ('reason' in checked) return this.#skip(e.key, checked.reason)
    e.value.linkname = relative
    return e
  }

  #skip(key: string, reason: string): null {
    this.#skipped.set(printable(key), reason)
    return null
  }

  override createReadStream(key: string | Localdrive.Entry, opts?: { start?: number; end?: number; length?: number }): Localdrive.Stream<Buffer> {
    const name = typeof key === 'object' ? key.key : key
    return new ChunkedFileStream(this.toPath(name), this.chunkSize, opts) as unknown as Localdrive.Stream<Buffer>
  }
}
