/**
 * `npm run bench [-- --quick] [--only a,b] [--variants] [--keep]`
 *
 * Runs the benchmarks in separate processes on loopback with a local DHT, prints a human table
 * on stderr and one JSON document on stdout: { machine, mode, results: [ { name, value, unit,
 * baseline, baselineValue, ratio, … } ] }. Every child process and temp dir is removed on exit.
 */
import { parseArgs } from 'node:util'
import { BUSY, cleanup, installCleanup, LoadMonitor, machine, processCounts, round, startBootstrap, withLoad, type LoadPoint, type Result, type SuiteLoad } from './harness.js'
import type { Ctx, Suite } from './context.js'
import { replication } from './suites/replication.js'
import { publish } from './suites/publish.js'
import { liveLag } from './suites/live-lag.js'
import { scale } from './suites/scale.js'
import { outage } from './suites/outage.js'
import { connect } from './suites/connect.js'
import { recovery } from './suites/recovery.js'
import { continuity } from './suites/continuity.js'
import { audit } from './suites/audit.js'
import { lane } from './suites/lane.js'

const SUITES: Record<string, Suite> = { replication, publish, 'live-lag': liveLag, scale, outage, connect, recovery, continuity, audit, lane }

/** Hard limits on the whole run (the issue's budget: quick under 3 minutes, full under 20). */
const BUDGET_MS = { quick: 3 * 60_000, full: 20 * 60_000 }

function help(): string {
  return [
    'usage: npm run -s bench -- [--quick] [--only NAME,…] [--variants] [--keep]',
    '',
    `  --quick       small sizes (under 3 minutes on 2 cores)`,
    `  --only LIST   run only these: ${Object.keys(SUITES).join(', ')}`,
    '  --variants    also measure optimisation variants (block size, UDP buffers, inflight window)',
    '  --keep        keep the temporary node directories',
    '',
    'Human table on stderr, one JSON document on stdout.',
    ''
  ].join('\n')
}

/** min–max of the per-trial values, when there are several. */
function spread(r: Result): string {
  const t = r.detail?.trials
  if (!Array.isArray(t) || t.length < 2 || typeof t[0] !== 'number') return ''
  return `${fmt(Math.min(...t))}–${fmt(Math.max(...t))}`
}

function table(results: Result[]): string {
  const rows = results.map((r) => [
    r.name + (r.measured ? ` [measured: ${r.measured}]` : ''),
    `${fmt(r.value)} ${r.unit}`,
    spread(r),
    r.baselineValue === null ? '—' : `${fmt(r.baselineValue)} ${r.unit}`,
    r.ratio === null ? '—' : r.ratio.toFixed(2),
    (r.goal ? `${r.met === null ? 'not judged (noisy)' : r.met ? 'met' : 'NOT met'}: ${r.goal}` : '') + (r.noisy && !r.goal ? 'noisy' : '')
  ])
  const head = ['benchmark', 'value', 'spread', 'baseline', 'ratio', 'goal']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)]
  const baselines = results.map((r, i) => `  [${i + 1}] ${r.name}: baseline = ${r.baseline}`)
  return out.join('\n') + '\n\nbaselines (measured in this run):\n' + baselines.join('\n') + '\n'
}

/** One line per suite: its time and the machine's load around it. */
function loadTable(loads: Record<string, SuiteLoad>, seconds: Record<string, number>): string {
  const lines = Object.entries(loads).map(
    ([name, l]) =>
      `  ${name.padEnd(12)} ${String(seconds[name] ?? '?').padStart(6)} s  load ${l.before.loadavg[0].toFixed(2)} → ${l.after.loadavg[0].toFixed(2)} (others ${l.before.external1.toFixed(2)} → ${l.after.external1.toFixed(2)}), others' CPU ${l.othersCores.toFixed(2)} cores${l.noisy ? `  NOISY: ${l.reason}` : ''}`
  )
  return 'suites (seconds, 1-minute load average before → after, the part of it not ours, others\' CPU during the suite):\n' + lines.join('\n') + '\n'
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  if (Math.abs(n) >= 100) return n.toFixed(0)
  if (Math.abs(n) >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { quick: { type: 'boolean' }, only: { type: 'string' }, variants: { type: 'boolean' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true
  })
  if (values.help) {
    process.stdout.write(help())
    return 0
  }
  const quick = !!values.quick
  const keep = !!values.keep
  installCleanup(() => keep)
  const names = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(SUITES)
  for (const n of names) if (!SUITES[n]) throw new Error(`unknown benchmark "${n}" (${Object.keys(SUITES).join(', ')})`)

  const started = Date.now()
  const budget = quick ? BUDGET_MS.quick : BUDGET_MS.full
  const say = (msg: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`)
  const m = machine()
  const results: Result[] = []
  const failures: Array<{ name: string; error: string }> = []
  const timings: Record<string, number> = {}
  /** Per suite: Node processes started, and set-up commands run in the runner instead (setupCli). */
  const processes: Record<string, { started: number; setupInProcess: number }> = {}
  const loads: Record<string, SuiteLoad> = {}
  const monitor = new LoadMonitor()
  let running: { name: string; t0: number; before: LoadPoint } | null = null
  let cut = false // the time limit fired: its handler prints the one JSON document
  const doc = () => {
    const totalS = round((Date.now() - started) / 1000, 1)
    const busyRule = `noisy when the 1-minute load average minus the run's own share exceeds ${BUSY.EXTERNAL_LOAD_PER_CPU} × CPUs at a suite's start or end, or other processes used more than ${BUSY.OTHERS_CPU_SHARE * 100} % of the CPUs during it; a noisy result's goal is not judged (met: null)`
    return { machine: m, mode: quick ? 'quick' : 'full', variants: !!values.variants, date: new Date(started).toISOString(), seconds: totalS, budgetSeconds: budget / 1000, overBudget: totalS > budget / 1000, suiteSeconds: timings, suiteProcesses: processes, load: { rule: busyRule, suites: loads, noisySuites: Object.keys(loads).filter((n) => loads[n]!.noisy) }, results, failures }
  }
  // Bounded: past the budget (plus slack for --variants) everything is stopped and the run fails,
  // still with its one JSON document: what finished, and the suite that was cut as a failure.
  const limitMs = budget * (values.variants ? 3 : 1.5)
  const hardLimit = setTimeout(() => {
    cut = true
    say(`run exceeded its time limit (${limitMs / 1000} s): stopping every child process`)
    if (running) {
      timings[running.name] = round((Date.now() - running.t0) / 1000, 1)
      loads[running.name] = monitor.suite(running.before, monitor.mark())
      failures.push({ name: running.name, error: `cut by the run's time limit (${limitMs / 1000} s)` })
    }
    for (const n of names) if (!(n in timings)) failures.push({ name: n, error: 'not run: the run hit its time limit' })
    cleanup(keep)
    process.stderr.write('\n' + table(results) + '\n' + loadTable(loads, timings) + '\n')
    setTimeout(() => process.exit(4), 10_000) // stdout stuck: exit anyway
    process.stdout.write(JSON.stringify(doc(), null, 2) + '\n', () => process.exit(4))
  }, limitMs)
  hardLimit.unref()

  say(`machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, node ${m.node}, ${m.os}; mode ${quick ? 'quick' : 'full'}`)
  const { proc: dht, bootstrap } = await startBootstrap(5)
  say(`local DHT (5 nodes) on ${bootstrap.join(',')}`)
  const ctx: Ctx = { quick, variants: !!values.variants, bootstrap, say, pick: (full, q) => (quick ? q : full) }

  for (const name of names) {
    if (cut) break
    const t0 = Date.now()
    const before = monitor.mark()
    const counts0 = { ...processCounts }
    running = { name, t0, before }
    say(`── ${name} (load ${before.loadavg[0]}, of it not ours ${before.external1})`)
    try {
      const r0 = await SUITES[name]!(ctx)
      const load = monitor.suite(before, monitor.mark())
      loads[name] = load
      if (load.noisy) say(`  machine busy during ${name}: ${load.reason}`)
      const r = withLoad(r0, load)
      results.push(...r)
      for (const x of r) say(`  → ${x.name}: ${fmt(x.value)} ${x.unit}${x.ratio !== null ? ` (ratio ${x.ratio})` : ''}`)
    } catch (err) {
      if (!loads[name]) loads[name] = monitor.suite(before, monitor.mark())
      if (cut) break
      const msg = (err as Error).stack ?? String(err)
      failures.push({ name, error: msg.slice(0, 4000) })
      say(`${name} FAILED: ${msg}`)
    }
    timings[name] = round((Date.now() - t0) / 1000, 1)
    processes[name] = { started: processCounts.started - counts0.started, setupInProcess: processCounts.inProcess - counts0.inProcess }
    say(`  ${name}: ${timings[name]} s, ${processes[name]!.started} Node processes started, ${processes[name]!.setupInProcess} set-up commands in process`)
    running = null
  }
  if (cut) return new Promise<number>(() => {}) // the limit's handler prints and exits
  // Every suite ended (the code since the last suite's await is synchronous): the limit must not
  // fire during the DHT's shutdown or the final write and call a finished run cut.
  clearTimeout(hardLimit)
  monitor.stop()
  await dht.stop()
  const out = doc()
  say(`done in ${out.seconds} s${out.seconds > budget / 1000 ? ` (over the ${budget / 1000} s budget of a ${quick ? 'quick' : 'full'} run)` : ''}`)
  process.stderr.write('\n' + table(results) + '\n' + loadTable(loads, timings) + '\n')
  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
  return failures.length ? 1 : 0
}

main().then(
  (code) => {
    process.stdout.write('', () => process.exit(code))
  },
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`)
    process.exit(2)
  }
)
