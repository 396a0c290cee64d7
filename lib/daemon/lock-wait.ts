/**
 * The one wait for a node directory another process holds (DIR_LOCKED) for a moment: a command
 * racing a node that is starting waits for its control socket (runCommand), and `embassy run`
 * waits for a one-shot command to let go of the directory (Daemon).
 *
 * Owns: the lock-wait timings. May import: errors, daemon/host.
 */
import { EmbassyError } from '../errors.js'
import { NodeHost } from './host.js'

/** How long a command waits for a node that holds the directory but is still starting. */
export const STARTING_NODE_WAIT_MS = 15_000
/** How long `embassy run` waits for a directory another command holds for a moment. */
export const LOCK_WAIT_MS = 10_000
/** Between two tries. */
export const LOCK_POLL_MS = 200

export interface LockWaitOptions<T> {
  /** Give up after this long (then the DIR_LOCKED error is thrown). */
  waitMs: number
  /** Called once, when the first try finds the directory locked. */
  onWait?: () => void
  /** What to try again every LOCK_POLL_MS (default: the first try again); undefined: not yet. */
  retry?: () => Promise<T | undefined>
}

function isLocked(err: unknown): boolean {
  return err instanceof EmbassyError && err.code === 'DIR_LOCKED'
}

/**
 * Runs `attempt`; while the directory is locked, tries again (`retry`, or `attempt` itself) every
 * LOCK_POLL_MS for `waitMs`. Any other error is thrown at once.
 */
export async function waitForDirectory<T>(attempt: () => Promise<T>, opts: LockWaitOptions<T>): Promise<T> {
  let locked: unknown
  try {
    return await attempt()
  } catch (err) {
    if (!isLocked(err)) throw err
    locked = err
  }
  opts.onWait?.()
  const retry =
    opts.retry ??
    (async () => {
      try {
        return await attempt()
      } catch (err) {
        if (!isLocked(err)) throw err
        locked = err
        return undefined
      }
    })
  const deadline = Date.now() + opts.waitMs
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS))
    const value = await retry()
    if (value !== undefined) return value
  }
  throw locked
}

/** Opens `host` (closing it again when that fails). */
export async function openHost(host: NodeHost): Promise<NodeHost> {
  try {
    await host.ready()
    return host
  } catch (err) {
    await host.close().catch(() => {})
    throw err
  }
}
