import test from 'brittle'
import { appender, checkLog, control, report, sleep, startCluster, waitCaughtUp } from './cluster.js'
import { canRunLab } from './lab.js'

const skip = canRunLab()

test('bootstrap down: connected peers keep replicating; broken links come back when the DHT does', { skip: !!skip, timeout: 600_000 }, async (t) => {
  const c = await startCluster(t)
  await waitCaughtUp(c, 60_000)

  await c.boot.kill()
  const loop = appender(c.agencyDir, 'seq', 20)
  await sleep(3000)
  const live = await waitCaughtUp(c, 30_000)
  t.pass(`with every DHT node down, connected embassies still replicate (caught up in ${live} ms)`)
  report(t, { scenario: 'all DHT bootstrap nodes down, connections up', runs: 1, lost: 0, recoverMs: live, notes: 'existing connections keep replicating and receipting' })

  // Break the connections: restart the agency while the DHT is still down.
  await c.agency!.kill()
  c.agency = await c.lab.run(t, 'agency', c.agencyDir, c.bootstrap)
  await sleep(15_000)
  const during = await control(c.agencyDir, 'status')
  const reconnectedWithoutDht = during.peers.length
  t.comment(`peers connected 15 s after the agency restarted with the DHT down: ${reconnectedWithoutDht}`)

  // The DHT comes back on the same address.
  const back = Date.now()
  const { proc } = await c.lab.bootstrap(t, 'boot')
  c.boot = proc
  const recoverMs = await waitCaughtUp(c, 180_000)
  await loop.stop()
  const check = await checkLog(c.agencyDir, 'seq', loop.acked, loop.uncertain)
  t.is(check.lost, 0, 'no acknowledged append lost')
  t.ok(recoverMs < 180_000, `known peers reconnected and caught up ${((Date.now() - back) / 1000).toFixed(1)} s after the DHT returned`)
  report(t, {
    scenario: 'agency restarted while all DHT nodes are down, then DHT back',
    runs: 1,
    lost: check.lost,
    recoverMs: Date.now() - back,
    notes: `${reconnectedWithoutDht} peer(s) reconnected while the DHT was down; time is from the DHT's return to full custody`
  })
})
