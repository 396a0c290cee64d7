import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { cli, eventually, pairDirs, spawnBootstrap, spawnRun } from './helpers/index.js'

const PASS = { EMBASSY_PASSPHRASE: 'correct horse battery staple' }

test('drill: agency destroyed → kit import → sync from the embassy → append accepted, all through the CLI', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const agencyDir = path.join(root, 'agency')
  const embDir = path.join(root, 'embassy')
  const kit = path.join(root, 'agency.kit')
  const boot = ['--bootstrap', bootstrap.join(',')]
  t.is((await cli(['init', '--role', 'agency', '--name', 'Treasury', '--dir', agencyDir, ...boot])).code, 0)
  t.is((await cli(['init', '--role', 'embassy', '--dir', embDir, ...boot])).code, 0)
  const agencyId = (await cli(['id', '--dir', agencyDir, '--json'])).json
  const embId = (await cli(['id', '--dir', embDir, '--json'])).json
  await cli(['dataset', 'create', 'ledger', '--dir', agencyDir])
  const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ entry: i }))
  t.is((await cli(['append', 'ledger', '--dir', agencyDir], { input: lines.join('\n') + '\n' })).code, 0)
  await pairDirs({ dir: agencyDir, nodeKey: agencyId.nodeKey }, { dir: embDir, nodeKey: embId.nodeKey })
  const agency = await spawnRun(t, agencyDir, bootstrap)
  await spawnRun(t, embDir, bootstrap)
  await eventually('embassy holds the ledger, proven by a receipt', async () => {
    const s = (await cli(['status', '--dir', agencyDir, '--json'])).json
    return s?.datasets?.[0]?.embassies?.[0]?.heldLength === 1000
  })

  const exported = await cli(['kit', 'export', '--out', kit, '--dir', agencyDir, '--json'], { env: PASS })
  t.is(exported.code, 0, exported.stderr)
  t.is((fs.statSync(kit).mode & 0o777).toString(8), '600', 'kit written 0600')
  const wrong = await cli(['kit', 'import', kit, '--dir', path.join(root, 'nope'), '--json'], { env: { EMBASSY_PASSPHRASE: 'not the passphrase' } })
  t.is(wrong.code, 1)
  t.is(wrong.json.error.code, 'BAD_INPUT', 'wrong passphrase: clear error')

  await agency.kill()
  fs.rmSync(agencyDir, { recursive: true, force: true })

  const started = Date.now()
  const imported = await cli(['kit', 'import', kit, '--dir', agencyDir, '--json'], { env: PASS })
  t.is(imported.code, 0, imported.stderr)
  t.is(imported.json.nodeKey, agencyId.nodeKey, 'same node key')
  t.is(imported.json.catalogKey, agencyId.catalogKey, 'same catalog key')
  const early = await cli(['append', 'ledger', '{"too":"early"}', '--dir', agencyDir, '--json'])
  t.is(early.json.error.code, 'NOT_SYNCED', 'refused before sync')

  const restored = await spawnRun(t, agencyDir, bootstrap)
  const done = await restored.waitEvent((e) => e.event === 'restore-complete', 60_000)
  t.comment(`recovery time: ${Date.now() - started} ms from kit import to restore-complete (${done.blocks} blocks)`)
  const read = await cli(['read', 'ledger', '--dir', agencyDir])
  t.is(read.stdout, lines.join('\n') + '\n', 'every record back')
  const after = await cli(['append', 'ledger', '{"entry":"after restore"}', '--dir', agencyDir, '--json'])
  t.is(after.code, 0, after.stderr)
  t.is(after.json.length, 1001)
  await eventually('embassy holds the new append on the same feed', async () => {
    const s = (await cli(['status', '--dir', embDir, '--json'])).json
    return s?.agencies?.[0]?.cores?.some((c: { length: number; contiguousLength: number }) => c.length === 1001 && c.contiguousLength === 1001)
  })
  const verify = await cli(['verify', '--dir', embDir, '--json'])
  t.is(verify.code, 0, 'the embassy copy verifies (blind)')
  t.ok(verify.json.totals.checked >= 1001)
})
