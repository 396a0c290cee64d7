/** What every benchmark suite gets from the runner. */
import type { Result } from './harness.js'

export interface Ctx {
  quick: boolean
  /** Also measure the optimisation variants (slower). */
  variants: boolean
  /** The run's local DHT (an `embassy bootstrap` process with ≥ 4 nodes). */
  bootstrap: string[]
  /** One progress line on stderr. */
  say(msg: string): void
  /** Pick by mode. */
  pick<T>(full: T, quick: T): T
}

export type Suite = (ctx: Ctx) => Promise<Result[]>
