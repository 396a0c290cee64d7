/**
 * Log milestones instead of one line per event. An embassy's `caught-up` lines: the first for a
 * core at once, then at most one per CAUGHT_UP_LOG_MS while appends keep coming (CaughtUpLog).
 * An agency's custody milestones per embassy: it becomes fully held (`custody-held`), falls
 * behind for longer than a grace period (`custody-behind`), recovers (`custody-recovered`)
 * (CustodyMilestones).
 *
 * Owns: when these lines are due. May import: nothing but types (the roles pass their notice()).
 */

/** At most one `caught-up` line per core per this many ms while it keeps growing (the first at once). */
export const CAUGHT_UP_LOG_MS = 5000
/** How often the agency looks at custody for milestones. */
export const MILESTONE_TICK_MS = 1000
/** An embassy not fully holding everything for this long has fallen behind. @default 30 s */
export const CUSTODY_BEHIND_MS = 30_000

type Notify = (level: 'info' | 'warn', event: string, message: string, fields: Record<string, unknown>) => void

interface CoreLine {
  /** When the last line went out. */
  at: number
  pending: { catalog: string; length: number; folded: number } | null
  timer: NodeJS.Timeout | null
}

/** Debounced `caught-up` lines of an embassy: one a core at once, then one per window with the newest length. */
export class CaughtUpLog {
  readonly #notify: Notify
  readonly #window: () => number
  #cores = new Map<string, CoreLine>()
  #closed = false

  /** @param windowMs the window in ms, or a function read at each line (config can change it) */
  constructor(notify: Notify, windowMs: number | (() => number) = CAUGHT_UP_LOG_MS) {
    this.#notify = notify
    this.#window = typeof windowMs === 'function' ? windowMs : () => windowMs
  }

  /** Core `core` of `catalog` is complete at `length`. */
  caughtUp(catalog: string, core: string, length: number): void {
    if (this.#closed) return
    const now = Date.now()
    let line = this.#cores.get(core)
    if (!line) this.#cores.set(core, (line = { at: 0, pending: null, timer: null }))
    const windowMs = this.#window()
    if (!line.timer && now - line.at >= windowMs) {
      line.at = now
      this.#notify('info', 'caught-up', `core ${core} complete at length ${length}`, { catalog, core, length })
      return
    }
    line.pending = { catalog, length, folded: (line.pending?.folded ?? 0) + 1 }
    if (line.timer) return
    const l = line
    l.timer = setTimeout(() => this.#flush(core, l), Math.max(0, l.at + windowMs - now))
    l.timer.unref?.()
  }

  #flush(core: string, line: CoreLine): void {
    line.timer = null
    const p = line.pending
    line.pending = null
    if (!p || this.#closed) return
    line.at = Date.now()
    this.#notify('info', 'caught-up', `core ${core} complete at length ${p.length} (${p.folded} update${p.folded === 1 ? '' : 's'} since the last line)`, {
      catalog: p.catalog,
      core,
      length: p.length,
      folded: p.folded
    })
  }

  close(): void {
    this.#closed = true
    for (const l of this.#cores.values()) if (l.timer) clearTimeout(l.timer)
    this.#cores.clear()
  }
}

/** What the agency knows for custody milestones. */
export interface CustodyView {
  /** Node keys (z32) of the admitted embassies. */
  embassies(): string[]
  /** Every core of the agency: key (z32), length, fork. */
  cores(): Promise<Array<{ key: string; length: number; fork: number }>>
  /** The newest verified receipt of `embassy` for `core`. */
  held(embassy: string, core: string): { length: number; fork: number } | null
  /** Grace before "behind" (ms). */
  behindMs(): number
}

interface EmbassyState {
  logged: 'held' | 'behind' | null
  notHeldSince: number | null
}

/** The agency's custody milestones per embassy, looked at every MILESTONE_TICK_MS once started. */
export class CustodyMilestones {
  readonly #view: CustodyView
  readonly #notify: Notify
  #state = new Map<string, EmbassyState>()
  #timer: NodeJS.Timeout | null = null
  #busy = false
  #closed = false

  constructor(view: CustodyView, notify: Notify) {
    this.#view = view
    this.#notify = notify
  }

  /** Starts looking (idempotent): the first receipt starts it, so only a node that is online logs. */
  start(): void {
    if (this.#timer || this.#closed) return
    this.#timer = setInterval(() => void this.check(), MILESTONE_TICK_MS)
    this.#timer.unref?.()
  }

  /** One look at every embassy (also called by start's timer). */
  async check(now = Date.now()): Promise<void> {
    if (this.#busy || this.#closed) return
    this.#busy = true
    try {
      const cores = await this.#view.cores()
      if (this.#closed || cores.length === 0) return
      const total = cores.reduce((n, c) => n + c.length, 0)
      for (const e of this.#view.embassies()) {
        let missing = 0
        for (const c of cores) {
          const r = this.#view.held(e, c.key)
          missing += r && r.fork === c.fork ? Math.max(0, c.length - r.length) : c.length
        }
        const s = this.#state.get(e) ?? { logged: null, notHeldSince: null }
        this.#state.set(e, s)
        if (missing === 0) {
          if (s.logged !== 'held') {
            const again = s.logged === 'behind' && s.notHeldSince !== null
            const fields = { embassy: e, cores: cores.length, blocks: total, ...(again ? { behindMs: now - s.notHeldSince! } : {}) }
            if (again) this.#notify('info', 'custody-recovered', `embassy ${e} holds everything again (${cores.length} cores, ${total} blocks) after ${Math.round((now - s.notHeldSince!) / 1000)} s behind`, fields)
            else this.#notify('info', 'custody-held', `embassy ${e} holds everything (${cores.length} cores, ${total} blocks)`, fields)
            s.logged = 'held'
          }
          s.notHeldSince = null
          continue
        }
        s.notHeldSince ??= now
        if (s.logged === 'held' && now - s.notHeldSince >= this.#view.behindMs()) {
          s.logged = 'behind'
          this.#notify('warn', 'custody-behind', `embassy ${e} has been behind for ${Math.round((now - s.notHeldSince) / 1000)} s: ${missing} of ${total} blocks not proven held`, {
            embassy: e,
            missingBlocks: missing,
            blocks: total
          })
        }
      }
    } catch {
      // A core closing under us: the next look sees the new state.
    } finally {
      this.#busy = false
    }
  }

  close(): void {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }
}
