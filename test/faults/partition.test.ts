import test from 'brittle'
import { appender, checkLog, custody, report, sleep, startCluster, waitCaughtUp } from './cluster.js'
import { canRunLab } from './lab.js'

const skip = canRunLab()

test('partition: the agency link is cut for 5, 30 and 120 s while it appends; embassies catch up, nothing lost', { skip: !!skip, timeout: 600_000 }, async (t) => {
  const c = await startCluster(t)
  await waitCaughtUp(c, 60_000)
  const loop = appender(c.agencyDir, 'seq', 20)
  for (const seconds of [5, 30, 120]) {
    await sleep(2000)
    c.lab.link('agency', false)
    await sleep(seconds * 1000)
    const during = await custody(c.agencyDir)
    const behind = during.datasets[0].embassies.map((e: { behindBlocks: number }) => e.behindBlocks)
    t.ok(behind.every((b: number) => b > 0), `the cut was real: embassies ${behind.join(', ')} blocks behind`)
    c.lab.link('agency', true)
    const healedAt = Date.now()
    const recoverMs = await waitCaughtUp(c, 120_000)
    const check = await checkLog(c.agencyDir, 'seq', loop.acked)
    t.is(check.lost, 0, `${seconds} s cut: no acknowledged append lost`)
    t.is(check.duplicated, 0, `${seconds} s cut: nothing duplicated`)
    report(t, { scenario: `agency link cut ${seconds} s while appending (20/s)`, runs: 1, lost: check.lost, recoverMs, notes: `${loop.acked.length} appends so far; caught up ${((Date.now() - healedAt) / 1000).toFixed(1)} s after heal` })
  }
  await loop.stop()
  await waitCaughtUp(c, 60_000)
  t.alike((await checkLog(c.agencyDir, 'seq', loop.acked)).lost, 0)
})

test('partition: a flapping link (down/up every few seconds for a minute) and lossy links (5%, 20%)', { skip: !!skip, timeout: 600_000 }, async (t) => {
  const c = await startCluster(t)
  await waitCaughtUp(c, 60_000)
  const loop = appender(c.agencyDir, 'seq', 20)
  const flapUntil = Date.now() + 60_000
  let flaps = 0
  while (Date.now() < flapUntil) {
    c.lab.link('agency', false)
    await sleep(1000 + Math.random() * 3000)
    c.lab.link('agency', true)
    await sleep(1000 + Math.random() * 3000)
    flaps++
  }
  let recoverMs = await waitCaughtUp(c, 120_000)
  let check = await checkLog(c.agencyDir, 'seq', loop.acked)
  t.is(check.lost + check.duplicated, 0, 'flapping: nothing lost or duplicated')
  report(t, { scenario: 'agency link flapping for 60 s', runs: flaps, lost: check.lost, recoverMs })

  for (const percent of [5, 20]) {
    for (const host of ['agency', 'emb0']) c.lab.loss(host, percent)
    await sleep(30_000)
    for (const host of ['agency', 'emb0']) c.lab.loss(host, 0)
    recoverMs = await waitCaughtUp(c, 120_000)
    check = await checkLog(c.agencyDir, 'seq', loop.acked)
    t.is(check.lost + check.duplicated, 0, `${percent}% loss: nothing lost or duplicated`)
    report(t, { scenario: `${percent}% random packet loss on agency and one embassy for 30 s`, runs: 1, lost: check.lost, recoverMs })
  }
  await loop.stop()
})
