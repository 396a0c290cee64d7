// Ambient types for graceful-goodbye v1 (CommonJS: `module.exports = goodbye`).
// Usage: `import goodbye from 'graceful-goodbye'`.

declare module 'graceful-goodbye' {
  /**
   * Run `fn` before the process exits (SIGINT/SIGTERM or the event loop draining — not on
   * process.exit() or uncaught errors). Handlers run grouped by ascending `position`
   * (default 0), each group awaited before the next. Returns an unregister function.
   * If graceful-goodbye is the only signal handler, the process exits with code 130 afterwards.
   */
  function goodbye(fn: () => unknown | Promise<unknown>, position?: number): () => void

  namespace goodbye {
    /** Run the handlers now and then exit the process. */
    function exit(): void
    /** True once the exit handlers started running. */
    let exiting: boolean
  }

  export = goodbye
}
