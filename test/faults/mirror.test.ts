/**
 * Fault scenario (issue 15 items 1 and 4, issue 16 item 3): an embassy restarted while a mirror
 * reads from it. The agency is down (a crisis: the embassy is the mirror's only holder), the
 * embassy restarts three times on its lab host (SIGTERM, then `embassy run` again, on the UDP
 * ports it had: remembered in its node directory's network.json), and the mirror must reconnect within 5 s of each restart — measured from the
 * restarted embassy being up (its `started` log event: it listens, has announced and dials) to the
 * mirror's own `peer-connected` log event for that embassy, both stamped by the same machine
 * clock (negative: the mirror was connected before the embassy logged `started`). The embassy's
 * own start-up (spawn → started: ~2 s idle, 10+ s on a loaded 2-core machine) is not the mirror's
 * reconnection; it is reported beside it (spawn → reconnected). In the gap the mirror's status
 * must say its source has no peers, and after each reconnection a read must return every record.
 */
import path from 'node:path'
import test from 'brittle'
import { control, mustCli, report, startCluster, waitCaughtUp } from './cluster.js'
import { canRunLab } from './lab.js'

const skip = canRunLab()

/** The spec (issue 15): the mirror reconnects within 5 s of the embassy's restart. */
const RECONNECT_SPEC_MS = 5000
const RESTARTS = 3
const RECORDS = 50

test('mirror: an embassy restarted while a mirror reads from it; the mirror reconnects within 5 s every time', { skip: !!skip, timeout: 600_000 }, async (t) => {
  const c = await startCluster(t, { embassies: 1 })
  const records = Array.from({ length: RECORDS }, (_, i) => JSON.stringify({ seq: i }))
  await control(c.agencyDir, 'append', ['seq'], records)
  await waitCaughtUp(c, 120_000)

  // The mirror: its own host, reading the agency's capability, admitted by the embassy.
  c.lab.addHost('mirror')
  const mirrorDir = path.join(path.dirname(c.agencyDir), 'mirror')
  await mustCli(['init', '--role', 'mirror', '--dir', mirrorDir])
  const mirrorKey = (await mustCli(['id', '--dir', mirrorDir, '--json'])).json.nodeKey as string
  const cap = (await mustCli(['capability', '--dir', c.agencyDir, '--json'])).json.readCapability as string
  await mustCli(['mirror', cap, '--dir', mirrorDir])
  await control(c.embassyDirs[0]!, 'allow', [mirrorKey])
  const embassyKey = c.embassyKeys[0]!
  const mirror = await c.lab.run(t, 'mirror', mirrorDir, c.bootstrap)
  const isEmbassy = (e: Record<string, any>) => e.role === 'embassy' && e.nodeKey === embassyKey
  await mirror.waitEvent((e) => e.event === 'peer-connected' && isEmbassy(e), 60_000)

  const readAll = async (): Promise<number> => {
    const r = await control(mirrorDir, 'read', ['seq'])
    return (r.records as Array<{ value: { seq: number } }>).filter((x, i) => x.value.seq === i).length
  }
  let held = 0
  for (let tries = 0; held < RECORDS && tries < 60; tries++) {
    held = await readAll().catch(() => 0)
    if (held < RECORDS) await new Promise((r) => setTimeout(r, 500))
  }
  t.is(held, RECORDS, `the mirror reads all ${RECORDS} records`)

  // A crisis: the agency is gone, the embassy is the mirror's only holder.
  await c.agency!.stop()
  c.agency = null

  const reconnectMs: number[] = []
  const fromStartedMs: number[] = []
  for (let i = 0; i < RESTARTS; i++) {
    const lostBefore = mirror.events.filter((e) => e.event === 'peer-lost' && isEmbassy(e)).length
    await c.embassies[0]!.stop()
    await mirror.waitEvent((e) => e.event === 'peer-lost' && isEmbassy(e) && mirror.events.filter((x) => x.event === 'peer-lost' && isEmbassy(x)).length > lostBefore, 30_000)
    const gap = await control(mirrorDir, 'status')
    t.is(gap.sources[0].noPeers, true, `restart ${i + 1}: with the embassy down the mirror's status says its source has no peers`)
    t.ok(typeof gap.sources[0].noPeersSince === 'number', 'and since when')

    const spawnedAt = Date.now()
    c.embassies[0] = await c.lab.run(t, 'emb0', c.embassyDirs[0]!, c.bootstrap)
    const started = c.embassies[0]!.events.find((e) => e.event === 'started')!.time as number
    const back = await mirror.waitEvent((e) => e.event === 'peer-connected' && isEmbassy(e) && e.time >= spawnedAt, 60_000)
    const ms = (back.time as number) - started
    fromStartedMs.push(ms)
    reconnectMs.push((back.time as number) - spawnedAt)
    t.ok(
      ms <= RECONNECT_SPEC_MS,
      `restart ${i + 1}: the mirror reconnected ${ms} ms after the restarted embassy was up (started); spec ≤ ${RECONNECT_SPEC_MS} ms (${(back.time as number) - spawnedAt} ms after its spawn, ${started - spawnedAt} ms of which its own start-up)`
    )
    t.is(await readAll(), RECORDS, `restart ${i + 1}: the mirror reads every record`)
    const after = await control(mirrorDir, 'status')
    t.is(after.sources[0].noPeers, false, `restart ${i + 1}: status shows the source has a peer again (${after.sources[0].peers})`)
  }
  report(t, {
    scenario: `embassy restarted ×${RESTARTS} while a mirror reads (agency down)`,
    runs: RESTARTS,
    lost: 0,
    recoverMs: Math.max(0, ...fromStartedMs),
    notes: `mirror reconnected ${fromStartedMs.join(', ')} ms after the restarted embassy logged started (negative: before), ${reconnectMs.join(', ')} ms after its spawn; spec ≤ 5 s`
  })
})
