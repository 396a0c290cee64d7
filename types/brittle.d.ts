// Ambient types for brittle v4 (CommonJS: `exports = module.exports = test; exports.solo = solo; ...`).
// Written against node_modules/brittle/index.js (4.1.x) + test-tmp.
// Usage: `import test, { solo, skip, todo, hook, configure } from 'brittle'`
// (named imports work at runtime too); types as `test.Assert`, `test.TestOptions`.

declare module 'brittle' {
  /**
   * Classic test: runs `fn(t)`; resolves with whether it passed (undefined if it was not
   * run, e.g. skipped by solo). Inverted test (no fn): returns the assert object, which is
   * itself awaitable (resolves at completion; call `t.end()` or use `t.plan()`).
   * Default timeout for top-level tests: 30000 ms (opts.timeout / configure({ timeout })).
   */
  function test(name: string | null, opts: test.TestOptions | null, fn: test.TestFn): Promise<boolean | undefined>
  function test(name: string | null, fn: test.TestFn): Promise<boolean | undefined>
  function test(fn: test.TestFn): Promise<boolean | undefined>
  function test(name?: string | null, opts?: test.TestOptions | null): test.Assert

  namespace test {
    interface TestOptions {
      /** ms (top-level default 30000; subtests: none). 0 disables. */
      timeout?: number
      solo?: boolean
      skip?: boolean
      todo?: boolean
      hook?: boolean
      /** only print the test summary */
      stealth?: boolean
      /** set false to disable deadlock detection */
      deadlock?: boolean
    }

    type TestFn = (t: Assert) => unknown

    /** RegExp (matched against the error), an Error class (instanceof), or an object pattern like `{ code: 'X' }`. */
    type ErrorMatcher = RegExp | Function | object

    interface Comparison {
      (actual: unknown, expected: unknown, message?: string): void
      /** Non-strict (==) variant. */
      coercively(actual: unknown, expected: unknown, message?: string): void
    }

    interface Exception {
      /**
       * Passes if `fn` throws / the promise rejects (matching `expected` if given).
       * Native errors (TypeError, RangeError, SyntaxError, ReferenceError, EvalError) are
       * re-thrown instead — use `.all` to accept them. Always returns a promise: await it.
       */
      (fn: (() => unknown) | PromiseLike<unknown>, expected?: ErrorMatcher, message?: string): Promise<void>
      (fn: (() => unknown) | PromiseLike<unknown>, message: string): Promise<void>
      all(fn: (() => unknown) | PromiseLike<unknown>, expected?: ErrorMatcher, message?: string): Promise<void>
      all(fn: (() => unknown) | PromiseLike<unknown>, message: string): Promise<void>
    }

    /** Call signatures shared by `test`, `t.test` and `t.stealth`. */
    interface TestFunction {
      (name: string | null, opts: TestOptions | null, fn: TestFn): Promise<boolean | undefined>
      (name: string | null, fn: TestFn): Promise<boolean | undefined>
      (fn: TestFn): Promise<boolean | undefined>
      (name?: string | null, opts?: TestOptions | null): Assert
    }

    /** The `t` object. All methods are pre-bound (destructuring is fine). Awaitable. */
    interface Assert extends PromiseLike<boolean> {
      readonly name: string | null
      passes: number
      fails: number
      assertions: number

      /** Expect exactly n assertions (subtests count as one); the test ends when reached. */
      plan(n: number): void
      pass(message?: string): void
      fail(message?: string): void
      ok(value: unknown, message?: string): void
      absent(value: unknown, message?: string): void
      /** strict === */
      is: Comparison
      not: Comparison
      /** deep equality (same-object, strict) */
      alike: Comparison
      unlike: Comparison
      exception: Exception
      /** Passes if `fn` returns / the promise resolves. Resolves to the elapsed ms. */
      execution(fn: (() => unknown) | PromiseLike<unknown>, message?: string): Promise<number>
      snapshot(actual: unknown, message?: string): void
      comment(...message: unknown[]): void
      /**
       * Run `fn` after the test ends, ascending by `order` (default 0). NOTE: unless
       * `force: true`, teardowns are SKIPPED when the test function throws/rejects.
       */
      teardown(fn: () => unknown, opts?: { order?: number; force?: boolean }): void
      /** Fail the test after `ms` (0 clears). */
      timeout(ms: number): void
      /** Fresh temp dir, removed (forced teardown, order Infinity) after the test. */
      tmp(): Promise<string>
      test: TestFunction
      stealth: TestFunction
      /** End an inverted (or plan-less) test explicitly. */
      end(): void
      unhook(): boolean

      catch<R = never>(onrejected?: ((reason: any) => R | PromiseLike<R>) | null): Promise<boolean | R>
      finally(onfinally?: (() => void) | null): Promise<boolean>
    }

    interface ConfigureOptions {
      timeout?: number
      bail?: boolean
      solo?: boolean
      unstealth?: boolean
      source?: boolean
      coverage?: boolean | string
      jobs?: number
    }

    /** Same as the default export. */
    const test: TestFunction

    function solo(name: string | null, opts: TestOptions | null, fn: TestFn): Promise<boolean | undefined>
    function solo(name: string | null, fn: TestFn): Promise<boolean | undefined>
    function solo(fn: TestFn): Promise<boolean | undefined>
    /** With no arguments: `configure({ solo: true })`. */
    function solo(): void
    function solo(name?: string | null, opts?: TestOptions | null): Assert

    function skip(name: string | null, opts: TestOptions | null, fn: TestFn): Promise<boolean | undefined>
    function skip(name: string | null, fn: TestFn): Promise<boolean | undefined>
    function skip(fn: TestFn): Promise<boolean | undefined>

    function todo(name: string | null, opts: TestOptions | null, fn?: TestFn): Promise<boolean | undefined>
    function todo(name: string | null, fn?: TestFn): Promise<boolean | undefined>

    function stealth(name: string | null, opts: TestOptions | null, fn: TestFn): Promise<boolean | undefined>
    function stealth(name: string | null, fn: TestFn): Promise<boolean | undefined>
    function stealth(name?: string | null, opts?: TestOptions | null): Assert

    /**
     * Setup/teardown test (not counted, not skipped by solo). Returns an `unhook` function
     * that must be called (optionally with a test to run as `(name, opts, fn)`) to end the hook range.
     */
    function hook(name: string | null, opts: TestOptions | null, fn?: TestFn): (name?: string | null, opts?: TestOptions | null, fn?: TestFn) => unknown
    function hook(name: string | null, fn?: TestFn): (name?: string | null, opts?: TestOptions | null, fn?: TestFn) => unknown
    function hook(fn: TestFn): (name?: string | null, opts?: TestOptions | null, fn?: TestFn) => unknown

    /** Must be called before any test is registered. */
    function configure(opts?: ConfigureOptions): void
    function pause(): void
    function resume(): void
    /** Import a test file (thread pool under Bare with jobs > 1). */
    function load(file: string): Promise<unknown> | undefined
  }

  export = test
}
