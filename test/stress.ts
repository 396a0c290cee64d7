/**
 * `npm run test:stress`: the unit suite N times in a row (STRESS_RUNS, default 3) while a CPU hog
 * keeps every core busy — a suite whose outcome depends on speed or scheduling fails here.
 * Each run is `npm test` without the compile (compile once first). Prints one line per run and
 * ends with `stress: P/N runs passed`; exits non-zero unless every run passed.
 *
 *   STRESS_RUNS=5 npm run test:stress
 *   node dist/test/stress.js          (after `npm run build`)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The compiled tree (dist/ or another out dir), a direct child of the repository root. */
const OUT = path.resolve(here, '..')
const ROOT = path.resolve(OUT, '..')
const BRITTLE = path.join(ROOT, 'node_modules', 'brittle', 'brittle-node.js')
/** Per-test timeout, as in `npm test`. */
const TEST_TIMEOUT_MS = 180_000

const runs = Number(process.env.STRESS_RUNS ?? 3)
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`stress: STRESS_RUNS must be a whole number ≥ 1 (got ${process.env.STRESS_RUNS})\n`)
  process.exit(2)
}

const files = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.test.js'))
  .sort()
  .map((f) => path.relative(ROOT, path.join(here, f)))
if (files.length === 0) {
  process.stderr.write(`stress: no compiled tests in ${here}\n`)
  process.exit(2)
}

// The hog: one spinning process per core, at normal priority, for the whole stress run.
const hogs: ChildProcess[] = []
function startHogs(): void {
  for (let i = 0; i < os.availableParallelism(); i++) {
    hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
  }
}
function stopHogs(): void {
  for (const h of hogs.splice(0)) {
    if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL')
  }
}
let suite: ChildProcess | null = null
process.on('exit', () => {
  stopHogs()
  if (suite && suite.exitCode === null) suite.kill('SIGKILL')
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nstress: ${sig}: stopping\n`)
    process.exit(130)
  })
}

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embassy-stress-'))

interface RunResult {
  ok: boolean
  code: number
  ms: number
  summary: string
  failures: string[]
  log: string
}

/** One run of the unit suite (the same command as `npm test`, without the compile). */
function runSuite(n: number): Promise<RunResult> {
  const log = path.join(logDir, `run-${n}.tap`)
  const out = fs.createWriteStream(log)
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BRITTLE, '--timeout', String(TEST_TIMEOUT_MS), ...files], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    suite = child
    let text = ''
    const take = (d: Buffer) => {
      out.write(d)
      text += d.toString('utf8')
    }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    child.on('close', (code, signal) => {
      suite = null
      out.end()
      const lines = text.split('\n')
      // Failed top-level tests, and the assertions that failed inside them.
      const failures = lines.filter((l) => /^\s*not ok /.test(l)).map((l) => l.trim())
      const tests = lines.find((l) => l.startsWith('# tests = ')) ?? '# tests = ?'
      const crashed = code !== 0 && failures.length === 0
      if (crashed) failures.push(`suite exited ${code ?? signal} without a failed assertion (a crash or an unhandled error): see the log`)
      resolve({ ok: code === 0, code: code ?? -1, ms: Date.now() - started, summary: tests.slice(2), failures, log })
    })
  })
}

process.stdout.write(`stress: ${runs} run(s) of ${files.length} test files with ${os.availableParallelism()} CPU hog(s); logs in ${logDir}\n`)
startHogs()
let passed = 0
for (let n = 1; n <= runs; n++) {
  const r = await runSuite(n)
  if (r.ok) passed++
  process.stdout.write(`stress: run ${n}/${runs}: ${r.ok ? 'pass' : 'FAIL'} in ${(r.ms / 1000).toFixed(1)} s (${r.summary})${r.ok ? '' : `; log ${r.log}`}\n`)
  for (const f of r.failures) process.stdout.write(`    ${f}\n`)
}
stopHogs()
process.stdout.write(`stress: ${passed}/${runs} runs passed\n`)
process.exit(passed === runs ? 0 : 1)
