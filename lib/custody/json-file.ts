/**
 * A small durable JSON document: loaded once, written atomically (0600) at most every `flushMs`
 * after a change, and flushed on close. A damaged file is set aside (`FILE.damaged-TIME`), never
 * silently overwritten: the caller starts from `empty()` and re-learns (receipts are re-sent).
 *
 * Background writes (after a change) keep the event loop free: the document is serialised once
 * (compact: a machine file), written and fsynced to a temp file beside it on the thread pool, then
 * renamed over the file. One is in flight at a time; a change meanwhile is written after it.
 * `flush()` and `close()` stay synchronous and durable, and win over a background write in flight:
 * that one is superseded (its temp file removed, never renamed), so the last write to land always
 * holds the latest state, and after close no background write touches the directory.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { writePrivateFile, PRIVATE_FILE_MODE } from '../node/private.js'

const POSIX = process.platform !== 'win32'

/** A background write in flight. */
interface Write {
  /** Its temp file (unique: never shared with another write, nor with a synchronous flush). */
  tmp: string
  /** The write number it got; stale (superseded) once another write starts. */
  gen: number
  /** Its temp file was removed by the write that superseded it. */
  removed: boolean
}

export class JsonFile<T> {
  readonly file: string
  readonly data: T
  readonly #flushMs: number
  #timer: NodeJS.Timeout | null = null
  #closed = false
  /** Number of the newest write started (background or synchronous). */
  #gen = 0
  #writing: Write | null = null
  /** The document changed while a background write was in flight: write again after it. */
  #again = false
  #idle: Array<() => void> = []
  /** The last failed background write (disk full, directory gone); cleared by the next good one. */
  lastError: Error | null = null

  /** @param valid checks a parsed document (and fills fields added later); false = damaged */
  constructor(file: string, empty: () => T, valid: (parsed: T) => boolean, flushMs: number) {
    this.file = file
    this.#flushMs = flushMs
    this.data = load(file, empty, valid)
    sweepTemps(file)
  }

  /** The document changed: write it soon (in the background). */
  changed(): void {
    // After close the owner is gone (its directory may be too): a late change is not written.
    if (this.#timer || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#writing) this.#again = true
      else this.#write()
    }, this.#flushMs)
    this.#timer.unref?.()
  }

  /**
   * Resolves when no write is pending: what changed before the call has landed (or failed: see
   * `lastError`). Waits for the pending timer, if any; never rejects.
   */
  flushed(): Promise<void> {
    if (this.#settled()) return Promise.resolve()
    // Someone waits for it now: the timer keeps the process alive until the write lands.
    this.#timer?.ref()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Writes the document now, synchronously and durably; a background write in flight is superseded. */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    this.#again = false
    this.#gen++
    this.#discard()
    try {
      writePrivateFile(this.file, serialize(this.data))
      this.lastError = null
    } finally {
      this.#wake()
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.flush()
  }

  /** Starts a background write of the document as it is now. Never throws. */
  #write(): void {
    const gen = ++this.#gen
    const tmp = `${this.file}.${process.pid}-${crypto.randomBytes(6).toString('hex')}.tmp`
    let fd: number
    try {
      const text = serialize(this.data)
      // Created here, not on the thread pool: a flush or close that supersedes this write can then
      // remove it at once, and nothing is created in the directory after close.
      fd = fs.openSync(tmp, 'wx', PRIVATE_FILE_MODE)
      const w: Write = { tmp, gen, removed: false }
      this.#writing = w
      void this.#finish(w, fd, text)
    } catch (err) {
      this.lastError = err as Error
      this.#wake()
    }
  }

  /** Writes, fsyncs and closes the temp file on the thread pool, then renames it unless superseded. */
  async #finish(w: Write, fd: number, text: string): Promise<void> {
    let error: Error | null = null
    try {
      if (POSIX) await call(fs.fchmod, fd, PRIVATE_FILE_MODE)
      await call(fs.writeFile, fd, text)
      await call(fs.fsync, fd)
    } catch (err) {
      error = err as Error
    }
    try {
      await call(fs.close, fd)
    } catch (err) {
      error ??= err as Error
    }
    this.#writing = null
    if (w.gen !== this.#gen) {
      // Superseded: the newer write holds a later state. Its temp file is normally gone already.
      if (!w.removed) removeQuietly(w.tmp)
    } else {
      // Renamed on the event loop (one metadata operation): a synchronous flush cannot come
      // between the check above and the rename, so it always lands after this one.
      try {
        if (error) throw error
        fs.renameSync(w.tmp, this.file)
        this.lastError = null
      } catch (err) {
        removeQuietly(w.tmp)
        this.lastError = err as Error
      }
    }
    if (this.#again && !this.#closed) {
      this.#again = false
      this.#write()
    } else {
      this.#wake()
    }
  }

  /** Removes the temp file of the background write in flight: it is superseded. */
  #discard(): void {
    const w = this.#writing
    if (!w || w.removed) return
    // An open file can be removed (POSIX); where it cannot, the write removes it when done.
    w.removed = removeQuietly(w.tmp)
  }

  #settled(): boolean {
    return !this.#timer && !this.#writing && !this.#again
  }

  /** Resolves the `flushed()` waiters once nothing is pending. */
  #wake(): void {
    if (!this.#settled()) return
    const idle = this.#idle
    this.#idle = []
    for (const resolve of idle) resolve()
  }
}

/** Compact JSON: the files are read by the node, not by hand (`JSON.stringify(x, null, 2)` to read one). */
function serialize(value: unknown): string {
  return JSON.stringify(value) + '\n'
}

function removeQuietly(file: string): boolean {
  try {
    fs.rmSync(file, { force: true })
    return true
  } catch {
    return false
  }
}

/** A callback-style fs function as a promise; looked up at each call. */
function call<A extends unknown[]>(fn: (...args: [...A, (err: NodeJS.ErrnoException | null) => void]) => void, ...args: A): Promise<void> {
  return new Promise((resolve, reject) => fn(...args, (err) => (err ? reject(err) : resolve())))
}

/**
 * Removes the temp files of writes to `file` that a process which no longer runs left behind (it
 * was killed mid-write): `FILE.PID.tmp` (a synchronous write) and `FILE.PID-RANDOM.tmp` (a
 * background one). A live process's are left alone.
 */
function sweepTemps(file: string): void {
  const dir = path.dirname(file)
  const base = path.basename(file)
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(base + '.')) continue
    const m = /^(\d+)(?:-[0-9a-f]+)?\.tmp$/.exec(name.slice(base.length + 1))
    if (!m || alive(Number(m[1]))) continue
    removeQuietly(path.join(dir, name))
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // runs, as another user
  }
}

function load<T>(file: string, empty: () => T, valid: (parsed: T) => boolean): T {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return empty()
  }
  try {
    const parsed = JSON.parse(text) as T
    if (!parsed || typeof parsed !== 'object' || !valid(parsed)) throw new Error('bad shape')
    return parsed
  } catch {
    try {
      fs.renameSync(file, `${file}.damaged-${Date.now()}`)
    } catch {}
    return empty()
  }
}
