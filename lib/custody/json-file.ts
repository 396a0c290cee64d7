/**
 * A small durable JSON document: loaded once, written atomically (0600) at most every `flushMs`
 * after a change, and flushed on close. A damaged file is set aside (`FILE.damaged-TIME`), never
 * silently overwritten: the caller starts from `empty()` and re-learns (receipts are re-sent).
 */
import fs from 'node:fs'
import { writeJsonAtomic } from '../node/config.js'

export class JsonFile<T> {
  readonly file: string
  readonly data: T
  readonly #flushMs: number
  #timer: NodeJS.Timeout | null = null
  #closed = false
  /** The last failed background write (disk full, directory gone); cleared by the next good one. */
  lastError: Error | null = null

  /** @param valid checks a parsed document (and fills fields added later); false = damaged */
  constructor(file: string, empty: () => T, valid: (parsed: T) => boolean, flushMs: number) {
    this.file = file
    this.#flushMs = flushMs
    this.data = load(file, empty, valid)
  }

  /** The document changed: write it soon. */
  changed(): void {
    // After close the owner is gone (its directory may be too): a late change is not written.
    if (this.#timer || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      // A timer must never throw into the process: keep the error for the owner to report.
      try {
        this.flush()
      } catch (err) {
        this.lastError = err as Error
      }
    }, this.#flushMs)
    this.#timer.unref?.()
  }

  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    writeJsonAtomic(this.file, this.data)
    this.lastError = null
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.flush()
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
