/**
 * Fault scenario (issue 15 item 2): a damaged block on one embassy of two. Two blocks of one
 * embassy's copy are damaged at rest while it is stopped; the agency goes down, so the two
 * embassies are each other's only source. The other embassy, behind, fetches everything else from
 * the damaged one — other blocks of that dataset and another dataset — while the damaged block
 * it asks for is refused alone (alarmed). `embassy repair` on the damaged embassy fetches its
 * other damaged block from the other embassy (exit 0); once the agency is back the refused block
 * is fetched again by both, and every copy verifies.
 */
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import { STORE_DIR, parseKey } from '../../lib/index.js'
import { cli, corruptBlock, eventually } from '../helpers/index.js'
import { control, mustCli, report, startCluster, waitCaughtUp } from './cluster.js'
import { canRunLab } from './lab.js'
import fs from 'node:fs'

const skip = canRunLab()

const records = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ seq: from + i }))

interface VerifyTotals {
  length: number
  held: number
  checked: number
  failed: number
}

/** The running node's verify report (held and checked blocks); a failing verify's report too. */
async function verified(dir: string): Promise<{ totals: VerifyTotals; cores: Array<{ key: string; length: number; held: number; checked: number; failed: number }> }> {
  try {
    return await control(dir, 'verify')
  } catch (err) {
    const details = (err as { details?: unknown }).details as { totals?: VerifyTotals } | undefined
    if (details && details.totals) return details as never
    throw err
  }
}

test('damage: a damaged block on one embassy of two fails only its requests; repair fetches it from the other embassy', { skip: !!skip, timeout: 900_000 }, async (t) => {
  const started = Date.now()
  const c = await startCluster(t, { embassies: 2 })
  const [emb0Dir, emb1Dir] = c.embassyDirs as [string, string]
  await control(c.agencyDir, 'append', ['seq'], records(0, 50))
  await mustCli(['dataset', 'create', 'other', '--dir', c.agencyDir]).catch(async () => control(c.agencyDir, 'dataset create', ['other']))
  await control(c.agencyDir, 'append', ['other'], records(0, 10))
  await waitCaughtUp(c, 180_000)
  // The agency lists each embassy to the other: they admit and dial each other without it.
  const knows = (dir: string, key: string) => {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { follow: Array<{ holders?: string[] }> }
    return cfg.follow.some((f) => (f.holders ?? []).includes(key))
  }
  await eventually('the embassies know each other as holders', () => knows(emb0Dir, c.embassyKeys[1]!) && knows(emb1Dir, c.embassyKeys[0]!), 120_000)

  // emb1 falls behind: stopped while both datasets grow.
  await c.embassies[1]!.stop()
  await control(c.agencyDir, 'append', ['seq'], records(50, 50))
  await control(c.agencyDir, 'append', ['other'], records(10, 10))
  await waitCaughtUp(c, 180_000, [c.embassyKeys[0]!])
  const list = (await control(c.agencyDir, 'list')) as { datasets?: Array<{ name: string; key: string }> } | Array<{ name: string; key: string }>
  const datasets = Array.isArray(list) ? list : list.datasets!
  const seqKey = datasets.find((d) => d.name === 'seq')!.key
  const full = (await verified(c.agencyDir)).totals.length

  // Damage at rest on emb0: block 10 (emb1 holds it) and block 70 (emb1 will ask emb0 for it).
  await c.embassies[0]!.stop()
  const store = new Corestore(path.join(emb0Dir, STORE_DIR))
  const core = store.get({ key: parseKey(seqKey) })
  await core.ready()
  await corruptBlock(core, 10)
  await corruptBlock(core, 70)
  await store.close()

  // The agency goes down: the embassies are each other's only source.
  await c.agency!.stop()
  c.agency = null
  c.embassies[0] = await c.lab.run(t, 'emb0', emb0Dir, c.bootstrap)
  c.embassies[1] = await c.lab.run(t, 'emb1', emb1Dir, c.bootstrap)

  const behind = Date.now()
  await eventually(
    'emb1 fetched every other block from emb0 (both datasets), all but the damaged block 70',
    async () => {
      const r = await verified(emb1Dir).catch(() => null)
      return r && r.totals.length === full && r.totals.held === full - 1 && r.totals.checked === full - 1 ? r : null
    },
    300_000,
    500
  )
  const catchUpMs = Date.now() - behind
  t.pass(`emb1 holds ${full - 1} of ${full} blocks from emb0 alone (${catchUpMs} ms): other blocks and the other dataset kept coming`)
  const alarm = await c.embassies[0]!.waitEvent((e) => e.event === 'damaged-block' && e.block === 70, 60_000)
  t.ok(alarm, 'emb0 refused block 70 and alarmed (damaged-block)')
  t.absent(c.embassies[0]!.events.some((e) => e.event === 'peer-lost'), 'no connection was reset')

  // Block 10: nobody asked for it; `embassy repair` finds it and fetches it from emb1.
  const repairStarted = Date.now()
  const repaired = await cli(['repair', '--dir', emb0Dir, '--json'], { timeout: 300_000 })
  const repairMs = Date.now() - repairStarted
  t.is(repaired.code, 0, `embassy repair exits 0: ${repaired.stderr.slice(-400)}`)
  const blocks = (repaired.json?.cores ?? []).flatMap((x: { blocks: Array<{ index: number; outcome: string }> }) => x.blocks.map((b) => `${b.index}:${b.outcome}`))
  t.alike(blocks, ['10:repaired'], 'block 10 repaired from emb1 (the agency is down)')

  // The agency is back: block 70 (cleared by emb0 when it refused it) comes again, to both.
  c.agency = await c.lab.run(t, 'agency', c.agencyDir, c.bootstrap)
  for (const dir of [emb0Dir, emb1Dir]) {
    await eventually(`${path.basename(dir)} holds every block, verified`, async () => {
      const r = await verified(dir).catch(() => null)
      return r && r.totals.held === full && r.totals.checked === full && r.totals.failed === 0 ? r : null
    }, 300_000, 500)
  }
  t.pass('both embassies hold every block and verify in full')
  report(t, {
    scenario: 'a damaged block on one embassy of two (agency down)',
    runs: 1,
    lost: 0,
    recoverMs: repairMs,
    notes: `the other embassy fetched ${full - 1}/${full} blocks from the damaged one in ${catchUpMs} ms (only the damaged block refused); \`embassy repair\` fetched the other damaged block from the other embassy in ${repairMs} ms; whole scenario ${((Date.now() - started) / 1000).toFixed(0)} s`
  })
})
