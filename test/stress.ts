/**
 * `npm run test:stress`: the unit suite N times in a row (STRESS_RUNS, default 3) while a CPU hog
 * keeps every core busy — a suite whose outcome depends on speed or scheduling fails here.
 * Each run is `npm test` without the compile (compile once first). Prints one line per run and
 * ends with `stress: P/N runs passed`; exits non-zero unless every run passed.
 * A test that throws can end brittle's process before the files after it ran: the run then goes on
 * with the files after the one that held the interrupted test (found by its name), so one crash
 * does not hide the rest of the suite; the run still counts as failed.
 *
 *   STRESS_RUNS=5 npm run test:stress
 *   node dist/test/stress.js          (after `npm run build`)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { fileOfTest, interruptedTest } from './helpers/tap.js'

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

/**
 * One run of the unit suite (the same command as `npm test`, without the compile); after a crash,
 * again with the files after the one it happened in.
 */
async function runSuite(n: number): Promise<RunResult> {
  const started = Date.now()
  let list = files
  const failures: string[] = []
  const summaries: string[] = []
  let ok = true
  let code = 0
  let part = 0
  let log = ''
  while (list.length > 0) {
    const r = await runFiles(n, ++part, list)
    log = log ? `${log}, ${r.log}` : r.log
    summaries.push(r.summary)
    failures.push(...r.failures)
    if (!r.ok) {
      ok = false
      code = r.code
    }
    if (!r.crashed) break
    const name = interruptedTest(r.text)
    const at = name ? fileOfTest(list, name, (f) => fs.readFileSync(path.join(ROOT, f), 'utf8')) : -1
    if (at < 0) {
      failures.push(`cannot tell which file the crash was in${name ? ` (test "${name}")` : ''}: the files after it did not run`)
      break
    }
    failures.push(`crashed in ${list[at]}${name ? ` (test "${name}")` : ''}: going on with the ${list.length - at - 1} file(s) after it`)
    list = list.slice(at + 1)
  }
  return { ok, code, ms: Date.now() - started, summary: summaries.join(' + '), failures, log }
}

function runFiles(n: number, part: number, list: string[]): Promise<RunResult & { crashed: boolean; text: string }> {
  const log = path.join(logDir, part === 1 ? `run-${n}.tap` : `run-${n}.part-${part}.tap`)
  const out = fs.createWriteStream(log)
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BRITTLE, '--timeout', String(TEST_TIMEOUT_MS), ...list], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
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
      const tests = lines.find((l) => l.startsWith('# tests = ')) ?? '# tests = ? (ended early)'
      // Brittle prints its totals at the end of a complete run; without them the process died early.
      const crashed = code !== 0 && !lines.some((l) => l.startsWith('# tests = '))
      if (crashed) failures.push(`brittle exited ${code ?? signal} before the end of its files (a crash or an unhandled error): see ${log}`)
      resolve({ ok: code === 0, code: code ?? -1, ms: Date.now() - started, summary: tests.slice(2), failures, log, crashed, text })
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
