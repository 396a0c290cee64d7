/**
 * The benchmark tooling's own logic (no benchmark is run): the CPU profile's aggregation by module
 * and function within a time window, the busy-machine rule that keeps a noisy result from
 * claiming its goal, and set-up commands run in process (setupCli, describeInProcess) doing what
 * the CLI and the node worker do.
 */
import test from 'brittle'
import { aggregate, moduleOf, type CpuProfile } from '../bench/profile.js'
import path from 'node:path'
import fs from 'node:fs'
import { cliOk, describeInProcess, NODE_WORKER, setupCli, startWorker, withLoad, type LoadPoint, type Result, type SuiteLoad } from '../bench/harness.js'

test('profile: frames are attributed to their module (ours, packages, scoped packages, node, natives)', (t) => {
  t.is(moduleOf('file:///work/main/dist-bench/lib/net/network.js', 'x'), 'ours: lib/net')
  t.is(moduleOf('file:///work/main/dist/lib/errors.js', 'x'), 'ours: lib/errors')
  t.is(moduleOf('file:///work/main/dist/protocol/codecs.js', 'encode'), 'ours: protocol')
  t.is(moduleOf('file:///work/main/node_modules/hypercore/lib/replicator.js', 'f'), 'hypercore')
  t.is(moduleOf('file:///work/main/node_modules/@hyperswarm/secret-stream/index.js', 'f'), '@hyperswarm/secret-stream')
  t.is(moduleOf('file:///x/node_modules/corestore/node_modules/hypercore-storage/lib/tx.js', 'f'), 'hypercore-storage', 'the innermost package wins')
  t.is(moduleOf('node:events', 'emit'), 'node internals')
  t.is(moduleOf('', '(garbage collector)'), '(garbage collector)')
  t.is(moduleOf('', 'fsync'), 'native: fsync')
})

/** A profile with three frames sampled every 1 ms: root → a (ours) → b (hypercore). */
function profile(samples: number[], deltasUs: number[]): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1, columnNumber: -1 }, children: [2] },
      { id: 2, callFrame: { functionName: 'a', url: 'file:///w/dist/lib/roles/holder.js', lineNumber: 9, columnNumber: 0 }, children: [3] },
      { id: 3, callFrame: { functionName: 'b', url: 'file:///w/node_modules/hypercore/index.js', lineNumber: 0, columnNumber: 0 } },
      { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1, columnNumber: -1 } }
    ],
    startTime: 1_000_000, // µs, V8's clock
    endTime: 1_000_000 + deltasUs.reduce((x, y) => x + y, 0) + 1000,
    samples,
    timeDeltas: deltasUs
  }
}

test('profile: self time per module and function, only inside the window, idle left out', (t) => {
  // samples at +1, +2, … +6 ms; the profile ends at +7 ms, which is epoch 10,007 ms
  const p = profile([2, 3, 3, 4, 2, 3], [1000, 1000, 1000, 1000, 1000, 1000])
  const all = aggregate(p, 0, Infinity, 10_007, 1000)
  t.is(Math.round(all.sampledMs), 5, 'five non-idle samples of 1 ms')
  t.is(Math.round(all.byModule['hypercore']!), 3)
  t.is(Math.round(all.byModule['ours: lib/roles']!), 2)
  t.is(Math.round(all.byFunction['a dist/lib/roles/holder.js:10']!), 2, 'function keys carry file and line')
  // window: epoch 10,001.5 … 10,003.5 holds the samples at +2 and +3 ms (both 'b')
  const w = aggregate(p, 10_001.5, 10_003.5, 10_007, 1000)
  t.is(Math.round(w.sampledMs), 2)
  t.is(w.byModule['ours: lib/roles'], undefined)
  t.is(Math.round(w.byModule['hypercore']!), 2)
})

test('profile: a gap far above the interval (thread descheduled) is capped at twice the interval', (t) => {
  const p = profile([2, 3], [1000, 1000])
  p.endTime = p.startTime + 2000 + 500_000 // the last sample "lasted" half a second
  const a = aggregate(p, -Infinity, Infinity, 0, 1000)
  t.is(Math.round(a.byModule['hypercore']!), 2, 'capped at 2 ms, not 500')
})

function point(load1: number, own1: number): LoadPoint {
  return { at: new Date(0).toISOString(), loadavg: [load1, load1, load1], own1, external1: Math.max(0, load1 - own1) }
}

function suiteLoad(noisy: boolean): SuiteLoad {
  return { before: point(3, 0.2), after: point(3, 1.5), othersCores: 1.2, ownCores: 1, cpus: 2, noisy, reason: noisy ? 'load from other work 2.8 at the start (> 1 on 2 CPUs)' : '' }
}

const met: Result = { name: 'x', value: 1, unit: 's', baseline: 'b', baselineValue: 2, ratio: 0.5, better: 'lower', goal: '< 5 s', met: true }

test('hygiene: a noisy suite never claims a goal met; a quiet one keeps its verdict', (t) => {
  const [noisy] = withLoad([met], suiteLoad(true))
  t.is(noisy!.noisy, true)
  t.is(noisy!.met, null, 'goal not judged')
  t.ok(noisy!.reason!.includes('machine busy') && noisy!.reason!.includes('measured: met'), noisy!.reason)
  t.ok(noisy!.load, 'load recorded on the result')
  const [quiet] = withLoad([met], suiteLoad(false))
  t.is(quiet!.met, true)
  t.is(quiet!.noisy, undefined)
  t.ok(quiet!.load, 'load recorded on quiet results too')
  const [noGoal] = withLoad([{ ...met, goal: undefined, met: undefined }], suiteLoad(true))
  t.is(noGoal!.noisy, true)
  t.is(noGoal!.met, undefined, 'no goal: nothing to judge')
})

test('set-up in process: setupCli runs the CLI\'s commands (same result as the CLI process), and a failure throws', async (t) => {
  const root = await t.tmp()
  const agency = path.join(root, 'agency')
  const embassy = path.join(root, 'embassy')
  const a = await setupCli(['init', '--role', 'agency', '--dir', agency, '--json', '--name', 'bench-tools'])
  t.is(a.code, 0)
  t.ok(typeof a.json?.nodeKey === 'string' && a.json.nodeKey.length > 40, 'init returns the node key')
  const e = await setupCli(['init', '--role', 'embassy', '--dir', embassy])
  await setupCli(['dataset', 'create', 'events', '--dir', agency, '--json'])
  // NDJSON on stdin, as fillLog() passes it.
  const appended = await setupCli(['append', 'events', '--dir', agency, '--json'], { input: '{"a":1}\n{"b":2}\n\n{"c":3}\n' })
  t.is(appended.json?.appended, 3, 'NDJSON input: three records (the blank line skipped)')
  await setupCli(['allow', e.json.nodeKey, '--dir', agency, '--json'])
  await setupCli(['follow', a.json.nodeKey, '--dir', embassy, '--json'])
  // The same state, seen by a real CLI process.
  const list = await cliOk(['list', '--dir', agency, '--json'])
  const events = list.json.datasets.find((d: { name: string }) => d.name === 'events')
  t.is(events?.length, 3, 'a CLI process reads what the in-process append wrote')
  const inProcess = await setupCli(['list', '--dir', agency, '--json'])
  t.alike(inProcess.json, list.json, 'the same --json document as the CLI process prints')
  // A bad record fails like the CLI does: nothing appended, the code and the line in the error.
  await t.exception(setupCli(['append', 'events', '--dir', agency, '--json'], { input: '{"ok":1}\nnot json\n' }), /BAD_RECORD[\s\S]*line 2|line 2[\s\S]*BAD_RECORD/)
  t.is((await setupCli(['list', '--dir', agency, '--json'])).json.datasets.find((d: { name: string }) => d.name === 'events')?.length, 3, 'nothing appended')
  await t.exception(setupCli(['no-such-command', '--dir', agency]), /unknown command|not a command/)
})

test('set-up in process: describeInProcess lists the same cores, lengths and bytes as the node worker\'s describe (a process)', async (t) => {
  const root = await t.tmp()
  const agency = path.join(root, 'agency')
  await setupCli(['init', '--role', 'agency', '--dir', agency, '--json', '--name', 'bench-describe'])
  await setupCli(['dataset', 'create', 'events', '--dir', agency, '--json'])
  await setupCli(['append', 'events', '--dir', agency, '--json'], { input: '{"a":1}\n{"b":2}\n{"c":3}\n' })
  const folder = path.join(root, 'folder')
  fs.mkdirSync(folder)
  fs.writeFileSync(path.join(folder, 'one.txt'), 'one')
  fs.writeFileSync(path.join(folder, 'two.bin'), Buffer.alloc(70_000, 7))
  await setupCli(['dataset', 'create', 'docs', '--kind', 'files', '--dir', agency, '--json'])
  await setupCli(['publish', 'docs', folder, '--dir', agency, '--json'])
  const inProcess = await describeInProcess(agency)
  const w = startWorker(NODE_WORKER, { role: 'describe', dir: agency }, 'describe')
  const e = await w.waitEvent((x) => x.event === 'cores' || x.event === 'error', 120_000, 'core listing')
  await w.exited
  t.is(e.event, 'cores', 'the node worker listed the cores')
  const strip = (cores: Array<{ key: string; name: string; length: number; byteLength: number }>) => cores.map((c) => ({ key: c.key, name: c.name, length: c.length, byteLength: c.byteLength }))
  t.alike(strip(inProcess), strip(e.cores), 'same cores, names, lengths and bytes')
  const events = inProcess.find((c) => c.name === 'events')
  t.is(events?.length, 3, 'the log holds the three records')
  t.alike(inProcess.filter((c) => c.name.startsWith('docs')).map((c) => c.name).sort(), ['docs/content', 'docs/index'], 'a files dataset: its index and content cores')
  t.ok(inProcess.every((c) => typeof c.catalog === 'string' && c.catalog.length > 40), 'the catalog key as text')
  await t.exception(describeInProcess(path.join(root, 'no-such-node')), 'a directory that is no node: an error, not an empty list')
})
