/**
 * Jobs run one after another per key, in the order they were begun; jobs of different keys run
 * side by side. Receipts go through it twice: an embassy signs a core's receipts in order, and an
 * agency judges each holder's receipts of a core in order. Both need the core's tree hash at the
 * length a receipt names — from the roots in memory at the signed length (at once), from storage
 * below it (a read later) — so a receipt begun first could be done last, and an older receipt
 * kept after a newer one reads as custody that went back (`custody-regressed`, kept as the
 * holder's latest word). In order, a receipt for less still counts when the holder really holds
 * less (a cleared block): only the order is kept, nothing is dropped.
 *
 * Owns: the chain of jobs in flight per key; nothing is kept for a key with none.
 */
export class InOrder {
  #tails = new Map<string, Promise<void>>()

  /**
   * Runs `job` once every job begun before it for `key` has ended (at once when none is in
   * flight, its synchronous part in this turn). Resolves or rejects as `job` does; a job that
   * fails does not stop the next.
   */
  run(key: string, job: () => Promise<void>): Promise<void> {
    const before = this.#tails.get(key)
    // Forgotten as it ends, before its caller goes on, unless another job of the key came after.
    const done = (before ? before.then(job) : job()).finally(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    const tail: Promise<void> = done.then(ignore, ignore)
    this.#tails.set(key, tail)
    return done
  }

  /** Keys with a job in flight. */
  get pending(): number {
    return this.#tails.size
  }
}

function ignore(): void {}
