/**
 * Process signals for the CLI: a graceful shutdown on SIGINT/SIGTERM for commands that run until
 * stopped (`run`, `bootstrap`), and a plain "stop" for `status --watch`.
 *
 * Owns: process signal handling. May import: nothing from lib.
 */

/** Longest a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 20_000

/**
 * Resolves once SIGINT or SIGTERM arrived and `close` ran: a stop asked for is a clean exit (0).
 * A second signal, or a shutdown that hangs, exits at once with 1.
 */
export function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let closing = false
    const onsignal = (name: string) => {
      if (closing) {
        process.stderr.write(`embassy: ${name} again: exiting without a clean shutdown\n`)
        process.exit(1)
      }
      closing = true
      const timer = setTimeout(() => {
        process.stderr.write('embassy: shutdown took too long: exiting\n')
        process.exit(1)
      }, SHUTDOWN_TIMEOUT_MS)
      timer.unref()
      close().then(
        () => resolve(),
        (err) => {
          process.stderr.write(`embassy: error while stopping: ${(err as Error).message}\n`)
          process.exitCode = 1
          resolve()
        }
      )
    }
    process.on('SIGINT', () => onsignal('SIGINT'))
    process.on('SIGTERM', () => onsignal('SIGTERM'))
  })
}

/** Calls `stop` on the first SIGINT or SIGTERM (a second one is handled as Node does by default). */
export function onceSignal(stop: () => void): void {
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
