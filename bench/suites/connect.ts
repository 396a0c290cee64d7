/**
 * 6. Connect: time from `embassy run` (process spawn) to connected with its agency (custody
 * handshake done: the embassy's `peer-connected` event), p50/p95 over restarts of the embassy;
 * and reconnect time after the agency process restarts (spawn → the embassy's next
 * `peer-connected`). Baseline: two plain Hyperswarm processes on the same DHT, one dialling the
 * other's key, connected = first application round trip; same back-offs as the product.
 */
import path from 'node:path'
import { median, percentile, RAW_WORKER, result, rmdir, round, startRun, tmpdir, type Proc, type Result } from '../harness.js'
import { connectedEvent, newAgency, newEmbassy, runEmbassy, spawnWorker } from '../product.js'
import type { Ctx } from '../context.js'

export async function connect(ctx: Ctx): Promise<Result[]> {
  const tries = ctx.pick(20, 5)
  const reTries = ctx.pick(5, 2)
  const procs: Proc[] = []
  const dirs: string[] = []
  const track = (p: Proc) => (procs.push(p), p)
  try {
    const agency = await newAgency('connect-agency')
    dirs.push(path.dirname(agency.dir))
    const embassy = await newEmbassy('connect-embassy', [agency])
    dirs.push(path.dirname(embassy.dir))
    let agencyProc = track(await startRun(agency.dir, ctx.bootstrap, 'connect-agency'))

    // run → connected, over embassy restarts
    const connectMs: number[] = []
    const startedMs: number[] = []
    for (let i = 0; i < tries; i++) {
      const emb = track(await runEmbassy(embassy.dir, ctx.bootstrap))
      const ev = await connectedEvent(emb)
      connectMs.push(ev.time - emb.spawnedAt)
      startedMs.push(emb.events.find((e) => e.event === 'started')!.time - emb.spawnedAt)
      await emb.stop()
    }
    ctx.say(`  product run → connected: ${connectMs.join(', ')} ms`)

    // reconnect after the agency restarts
    const emb = track(await runEmbassy(embassy.dir, ctx.bootstrap))
    await connectedEvent(emb)
    const reconnectMs: number[] = []
    const outageMs: number[] = []
    for (let i = 0; i < reTries; i++) {
      const stoppedAt = Date.now()
      await agencyProc.stop()
      agencyProc = track(await startRun(agency.dir, ctx.bootstrap, 'connect-agency'))
      const ev = await connectedEvent(emb, 'agency', agencyProc.spawnedAt)
      reconnectMs.push(ev.time - agencyProc.spawnedAt)
      outageMs.push(ev.time - stoppedAt)
    }
    ctx.say(`  product agency restart → reconnected: ${reconnectMs.join(', ')} ms`)
    await emb.stop()
    await agencyProc.stop()

    // baseline: plain hyperswarm
    const sdir = tmpdir('connect-raw-server')
    dirs.push(sdir)
    const serverCfg = { role: 'connect-server', dir: sdir, bootstrap: ctx.bootstrap }
    let server = track(spawnWorker(RAW_WORKER, serverCfg, 'raw-server'))
    const l = await server.waitEvent((e) => e.event === 'listening' || e.event === 'error', 60_000, 'raw server listening')
    if (l.event === 'error') throw new Error(l.message)
    const cdir = tmpdir('connect-raw-client')
    dirs.push(cdir)
    const clientCfg = { role: 'connect-client', dir: cdir, bootstrap: ctx.bootstrap, peer: l.publicKey }
    const rawConnect: number[] = []
    for (let i = 0; i < tries; i++) {
      const c = track(spawnWorker(RAW_WORKER, clientCfg, 'raw-client'))
      const ev = await c.waitEvent((e) => e.event === 'connected' || e.event === 'error', 60_000, 'raw connected')
      if (ev.event === 'error') throw new Error(ev.message)
      rawConnect.push(ev.time - c.spawnedAt)
      await c.stop()
    }
    const client = track(spawnWorker(RAW_WORKER, clientCfg, 'raw-client'))
    await client.waitEvent((e) => e.event === 'connected', 60_000, 'raw connected')
    const rawReconnect: number[] = []
    for (let i = 0; i < reTries; i++) {
      await server.stop()
      server = track(spawnWorker(RAW_WORKER, serverCfg, 'raw-server'))
      const spawned = server.spawnedAt
      const ev = await client.waitEvent((e) => e.event === 'connected' && e.time >= spawned, 60_000, 'raw reconnected')
      rawReconnect.push(ev.time - spawned)
    }
    ctx.say(`  raw connect: ${rawConnect.join(', ')} ms; raw reconnect: ${rawReconnect.join(', ')} ms`)

    const pctl = (xs: number[], p: number) => round(percentile(xs, p), 0)
    return [
      result({
        name: 'connect: run → connected, p50',
        value: median(connectMs),
        unit: 'ms',
        baseline: 'plain Hyperswarm process spawn → first round trip with a listening peer, p50',
        baselineValue: median(rawConnect),
        better: 'lower',
        detail: { tries, trials: connectMs, baselineTrials: rawConnect, spawnToStartedP50: pctl(startedMs, 50) }
      }),
      result({
        name: 'connect: run → connected, p95',
        value: percentile(connectMs, 95),
        unit: 'ms',
        baseline: 'plain Hyperswarm spawn → first round trip, p95',
        baselineValue: percentile(rawConnect, 95),
        better: 'lower',
        detail: { tries }
      }),
      result({
        name: 'connect: agency restart → reconnected, p50',
        value: median(reconnectMs),
        unit: 'ms',
        baseline: 'plain Hyperswarm: listening peer restarted → dialler reconnected (same back-offs), p50',
        baselineValue: median(rawReconnect),
        better: 'lower',
        detail: { tries: reTries, trials: reconnectMs, baselineTrials: rawReconnect }
      }),
      result({
        name: 'connect: agency restart → reconnected, worst',
        value: Math.max(...reconnectMs),
        unit: 'ms',
        baseline: 'plain Hyperswarm: listening peer restarted → dialler reconnected, worst',
        baselineValue: Math.max(...rawReconnect),
        better: 'lower',
        goal: '< 5 s every time',
        met: Math.max(...reconnectMs) < 5000,
        detail: { tries: reTries, trials: reconnectMs, baselineTrials: rawReconnect, stopToReconnectedMs: outageMs }
      })
    ]
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => {})
    for (const d of dirs) rmdir(d)
  }
}
