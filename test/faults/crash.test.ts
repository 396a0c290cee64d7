import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { NodeHost } from '../../lib/index.js'
import { cli, pseudoRandom } from '../helpers/index.js'
import { appender, checkLog, control, mustCli, report, sleep, startCluster, waitCaughtUp } from './cluster.js'
import { canRunLab } from './lab.js'

const skip = canRunLab()
const MiB = 1024 * 1024

/** Blocks the (stopped) embassy has stored, counted in its storage: downloads are not only a prefix. */
async function storedBlocks(dir: string): Promise<{ stored: number; known: number }> {
  const host = new NodeHost(dir)
  await host.ready()
  try {
    let stored = 0
    let known = 0
    for (const ref of await host.heldCores()) {
      known += ref.core.length
      for (let i = 0; i < ref.core.length; i++) if (await ref.core.has(i)) stored++
    }
    return { stored, known }
  } finally {
    await host.close()
  }
}

test('crash: kill -9 an embassy 10 times during a 256 MiB catch-up; it resumes every time and ends verified', { skip: !!skip, timeout: 900_000 }, async (t) => {
  const c = await startCluster(t, { embassies: 1, startEmbassies: false })
  const src = path.join(await t.tmp(), 'bulk')
  fs.mkdirSync(src)
  for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(src, `part-${i}.bin`), pseudoRandom(64 * MiB, i + 1))
  await mustCli(['dataset', 'create', 'bulk', '--kind', 'files', '--dir', c.agencyDir])
  await control(c.agencyDir, 'publish', ['bulk', src])
  const dir = c.embassyDirs[0]!
  // A thin link (as abroad): the catch-up takes long enough for every kill to land during it.
  c.lab.rateLimit('emb0', 20)
  let kills = 0
  const progress: Array<{ stored: number; known: number }> = []
  const started = Date.now()
  while (kills < 10) {
    const proc = await c.lab.run(t, 'emb0', dir, c.bootstrap)
    await proc.waitEvent((e) => e.event === 'peer-connected', 30_000)
    await sleep(200 + Math.random() * 1000)
    await proc.kill()
    kills++
    progress.push(await storedBlocks(dir))
  }
  const last = progress[progress.length - 1]!
  t.ok(last.stored > 0 && last.stored < last.known, `every kill landed during the catch-up; blocks stored after each kill: ${progress.map((p) => `${p.stored}/${p.known}`).join(', ')}`)
  t.ok(progress.every((p, i) => i === 0 || p.stored >= progress[i - 1]!.stored), 'never went backwards: each restart kept what it had and added to it')
  c.embassies[0] = await c.lab.run(t, 'emb0', dir, c.bootstrap)
  const finalMs = await waitCaughtUp(c, 300_000)
  t.pass('caught up with verified receipts at full length (tree hashes equal: every byte matches)')
  c.lab.rateLimit('emb0', 0)
  await c.embassies[0]!.stop()
  const verify = await cli(['verify', '--dir', dir, '--json'], { timeout: 300_000 })
  t.is(verify.code, 0, `embassy verify passes: ${verify.json?.totals?.checked} blocks checked, ${verify.json?.totals?.failed} failed`)
  report(t, { scenario: 'embassy kill -9 ×10 during a 256 MiB catch-up', runs: kills, lost: 0, recoverMs: finalMs, notes: `whole catch-up incl. kills ${((Date.now() - started) / 1000).toFixed(0)} s` })
})

test('crash: kill -9 the agency 10 times during an append loop; every acknowledged append survives', { skip: !!skip, timeout: 600_000 }, async (t) => {
  const c = await startCluster(t, { embassies: 1 })
  await waitCaughtUp(c, 60_000)
  const loop = appender(c.agencyDir, 'seq', 200)
  let kills = 0
  const restarts: number[] = []
  while (kills < 10) {
    await sleep(500 + Math.random() * 1500)
    await c.agency!.kill()
    kills++
    const t0 = Date.now()
    c.agency = await c.lab.run(t, 'agency', c.agencyDir, c.bootstrap)
    restarts.push(Date.now() - t0)
  }
  await sleep(1000)
  await loop.stop()
  const check = await checkLog(c.agencyDir, 'seq', loop.acked, loop.uncertain)
  t.is(check.lost, 0, `all ${loop.acked.length} acknowledged appends are there`)
  t.is(check.duplicated, 0, 'none duplicated')
  const recoverMs = await waitCaughtUp(c, 120_000)
  report(t, { scenario: 'agency kill -9 ×10 during an append loop', runs: kills, lost: check.lost, recoverMs: Math.max(...restarts), notes: `${loop.acked.length} acknowledged appends; restart to running ≤ ${Math.max(...restarts)} ms; embassy caught up ${recoverMs} ms after the loop` })
})
