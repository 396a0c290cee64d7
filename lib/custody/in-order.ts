/**
 * Jobs run one after another per key, in the order they were begun; jobs of different keys run
 * side by side. Receipts go through it twice: an embassy signs a core's receipts in order, and an
 * agency judges each holder's receipts of a core in order. Both need the core's tree hash at the
 * length a receipt names — from the roots in memory at the signed length (at once), from storage
 * below it (a read later) — so a receipt begun first could be done last, and an older receipt
 * kept after a newer one reads as custody that went back (`custody-regressed`, kept as the
 * holder's latest word). In order, a receipt for less still counts when the holder really holds
 * less (a cleared block): only the order is kept. Nothing is dropped unless a bound is set (the
 * agency's, against a holder flooding one core), and then only what is over it, counted.
 *
 * Owns: the chain of jobs in flight per key; nothing is kept for a key with none.
 */
export class InOrder {
  readonly #max: number
  #tails = new Map<string, Promise<void>>()
  /** Jobs of each key not ended yet (running or waiting). */
  #counts = new Map<string, number>()
  /** Jobs refused because `max` were already queued for their key. */
  refused = 0

  /** @param max jobs queued at most per key (a peer flooding one key waits on itself, bounded); more are refused */
  constructor(max = Infinity) {
    this.#max = max
  }

  /**
   * Runs `job` once every job begun before it for `key` has ended (at once when none is in
   * flight, its synchronous part in this turn). Resolves or rejects as `job` does; a job that
   * fails does not stop the next. With `max` jobs of the key not ended yet, `job` does not run: it
   * resolves at once, counted in `refused`.
   */
  run(key: string, job: () => Promise<void>): Promise<void> {
    const queued = this.#counts.get(key) ?? 0
    if (queued >= this.#max) {
      this.refused++
      return Promise.resolve()
    }
    this.#counts.set(key, queued + 1)
    const before = this.#tails.get(key)
    // Forgotten as the key's last job ends, before its caller goes on.
    const done = (before ? before.then(job) : job()).finally(() => {
      const left = (this.#counts.get(key) ?? 1) - 1
      if (left > 0) {
        this.#counts.set(key, left)
      } else {
        this.#counts.delete(key)
        this.#tails.delete(key)
      }
    })
    this.#tails.set(key, done.then(ignore, ignore))
    return done
  }

  /** Keys with a job in flight. */
  get pending(): number {
    return this.#tails.size
  }
}

function ignore(): void {}
