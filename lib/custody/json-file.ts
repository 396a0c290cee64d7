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

  /** @param valid checks a parsed document (and fills fields added later); false = damaged */
  constructor(file: string, empty: () => T, valid: (parsed: T) => boolean, flushMs: number) {
    this.file = file
    this.#flushMs = flushMs
    this.data = load(file, empty, valid)
  }

  /** The document changed: write it soon. */
  changed(): void {
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.flush()
    }, this.#flushMs)
    this.#timer.unref?.()
  }

  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    writeJsonAtomic(this.file, this.data)
  }

  close(): void {
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
