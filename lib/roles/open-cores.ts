/**
 * The bound of held cores open at once on one node (an embassy's `maxOpenCores`), shared by the
 * holders of every agency it follows. Each open core costs ~60 KiB (Hypercore's bitfields and
 * indexes, one Protomux channel and its peer state per connection); a closed one is a record of
 * its figures. Over the bound, cores that their holder may close (caught up, settled, nothing
 * else using them) are closed — first those reported settled, in the order they settled, else the
 * least recently used — and pick-up of new cores waits for a free slot, then opens a batch.
 *
 * Owns: the count of open held cores, who waits for a slot, and which cores may close next. The
 * holders own their cores.
 */

/** Held cores open at once at most unless configured (`maxOpenCores`). */
export const DEFAULT_MAX_OPEN_CORES = 512

/** Slots freed at once for pick-up waiting at the bound (one storage round trip opens them). */
export const FREE_BATCH = 64

/**
 * Held cores a reader of every block (a verification, a repair) opens at once under a bound of
 * `max`: half the bound, at most FREE_BATCH, at least one. It may go over the bound by that many.
 */
export function readerWindow(max: number): number {
  return Math.max(1, Math.min(FREE_BATCH, Math.floor(max / 2)))
}

/** A held core that may close (a holder's entry). */
export interface Closable {
  /** Its last use (a stamp from use()): a core used since it was reported is not closed for it. */
  readonly used: number
  /** Still closable now. */
  closable(): boolean
  /** Starts closing it; the holder calls closed() once it is. */
  close(): void
}

/** What the bound needs from a holder: its open cores that may close now. */
export interface ClosableSource {
  closable(): Closable[]
}

export class OpenCores {
  readonly max: number
  #open = 0
  #closing = 0
  #uses = 0
  #sources = new Set<ClosableSource>()
  #waiters: Array<() => void> = []
  /** Cores reported settled while over (or at) the bound, in that order, with their use stamp then. */
  #ready: Array<{ c: Closable; used: number }> = []
  #closed = false

  constructor(max: number = DEFAULT_MAX_OPEN_CORES) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`at least one core must be allowed open (got ${max})`)
    this.max = max
  }

  /** Held cores open now (over all holders; those closing included). */
  get open(): number {
    return this.#open
  }

  add(source: ClosableSource): void {
    this.#sources.add(source)
  }

  remove(source: ClosableSource): void {
    this.#sources.delete(source)
  }

  /** A use stamp: a larger one is more recent. */
  use(): number {
    return ++this.#uses
  }

  /** A held core opened. */
  opened(): void {
    this.#open++
  }

  /** A held core started closing (counted open until closed()). */
  closing(): void {
    this.#closing++
  }

  /** A held core closed (`wasClosing`: it was announced with closing()): waiters look again. */
  closed(wasClosing = false): void {
    this.#open--
    if (wasClosing) this.#closing--
    if (this.#open < this.max) this.#wake()
  }

  /** Over the bound, or at it with pick-up waiting: cores must close. */
  #need(): number {
    return this.#open - this.#closing - this.max + (this.#waiters.length > 0 ? FREE_BATCH : 0)
  }

  /**
   * True when no core may open now without closing others; then closes up to FREE_BATCH of them
   * (settled first, else the least recently used closable), so a batch can open once they are.
   */
  full(): boolean {
    if (this.#closed || this.#open < this.max) return false
    this.#relieve(this.#open - this.#closing - this.max + FREE_BATCH, true)
    return true
  }

  /** Resolves when a slot may be free (a core closed), or the bound closes. */
  slot(): Promise<void> {
    if (this.#closed || this.#open < this.max) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /**
   * A core became settled (its receipt went): under pressure it is queued to close, and cores
   * close while over the bound. Nothing happens below the bound. O(1) amortised.
   */
  settled(c: Closable): void {
    if (this.#closed || this.#open - this.#closing < this.max) return
    this.#ready.push({ c, used: c.used })
    this.#relieve(this.#need(), false)
  }

  /** Closes `need` cores: from the settled queue, and (`scan`) else the least recently used closable. */
  #relieve(need: number, scan: boolean): void {
    while (need > 0 && this.#ready.length > 0) {
      const { c, used } = this.#ready.shift()!
      if (c.used !== used || !c.closable()) continue // used since, or no longer closable
      c.close()
      need--
    }
    if (need <= 0 || !scan) return
    const candidates: Closable[] = []
    for (const s of this.#sources) candidates.push(...s.closable())
    candidates.sort((a, b) => a.used - b.used)
    for (const c of candidates.slice(0, need)) c.close()
  }

  /**
   * Over the bound (a verify's window of cores, a burst of peers) or with pick-up waiting, and
   * nothing closing: look over the open cores again (one may have become closable without a
   * receipt — unused long enough). The role's tick calls it; nothing to do costs O(1).
   */
  poke(): void {
    if (this.#closed || this.#closing > 0) return
    if (this.#waiters.length > 0 && this.#open < this.max) this.#wake()
    const need = this.#need()
    if (need > 0) this.#relieve(need, true)
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  close(): void {
    this.#closed = true
    this.#ready = []
    this.#wake()
  }
}
