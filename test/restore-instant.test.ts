import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Daemon, EmbassyNode, NodeHost, toZ32, type Agency, type RestoreResult } from '../lib/index.js'
import { cli, cliOk, eventually, initDir, pair, pairDirs, spawnBootstrap, spawnRun, startDaemon, testnet } from './helpers/index.js'

test('instant restore: with the backfill paused (no old block held), an append is accepted and the embassy receives it; the backfill then completes', async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 2000 }, (_, i) => ({ i, pad: 'x'.repeat(200) })))
  const emb = await startDaemon(t, await initDir(t, 'embassy', 'e'), bootstrap)
  await pair(agencyD, emb)
  const ek = toZ32(emb.host.node.nodeKey)
  await eventually('embassy holds 2000', async () => (await agency.custody()).datasets[0]?.embassies.find((e) => e.nodeKey === ek)?.heldLength === 2000)
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  const primaryKey = Buffer.from(agencyD.host.node.store.primaryKey!)
  const readKey = Buffer.from(agency.readKey)
  const allow = [...agencyD.host.node.config.allow]
  await agencyD.close()

  const dir = path.join(await t.tmp(), 'restored')
  await EmbassyNode.init(dir, { role: 'agency', name: 'agency', primaryKey, readKey })
  const offline = new NodeHost(dir)
  await offline.ready()
  // Backfill paused: "not yet downloaded" is a controlled condition, not a race.
  offline.node.updateConfig((c) => {
    c.allow = allow
    c.restore = { backfillRate: 0 }
  })
  await offline.close()
  const restoredD = new Daemon({ dir, bootstrap })
  t.teardown(() => restoredD.close(), { order: 0, force: true })
  await restoredD.host.ready()
  const restored = (await restoredD.host.agency()) as Agency
  const started = Date.now()
  const complete = new Promise<RestoreResult>((resolve) => restored.once('restored', resolve))
  await restoredD.ready()
  const length = await eventually('writes accepted', async () => {
    try {
      return (await restored.append('register', [{ after: 'restore' }])).length
    } catch (err) {
      if ((err as { code?: string }).code === 'NOT_SYNCED') return null
      throw err
    }
  }, 60_000)
  t.comment(`first append accepted ${Date.now() - started} ms after start`)
  t.is(length, 2001, 'appended after the newest head')
  const core = (await restored.heldCores()).find((r) => toZ32(r.core.key!) === key)!.core
  t.ok(core.contiguousLength < 2000, `old blocks not held yet (contiguous ${core.contiguousLength} of ${core.length})`)
  const s = await restored.restoreStatus()
  t.is(s.state, 'backfilling')
  t.ok(s.heldBlocks < s.totalBlocks, `status: ${s.heldBlocks} of ${s.totalBlocks} held`)
  const ecore = (await (await emb.host.role()).heldCores()).find((r) => toZ32(r.core.key!) === key)!.core
  await eventually('the embassy receives the new block', () => ecore.length === 2001 && ecore.contiguousLength === 2001)
  t.alike((await restored.custody()).alarms, [], 'no alarms')
  const onDemand: string[] = []
  for await (const r of restored.datasets.read('register', { start: 1234, end: 1235, wait: true })) onDemand.push(r.text)
  t.alike(onDemand.map((x) => JSON.parse(x).i), [1234], 'a block not backfilled yet is read on demand')

  restored.setBackfillRate(null)
  const r = await complete
  t.ok(r.blocks >= 2001, `restore complete: ${r.blocks} blocks`)
  t.is(core.contiguousLength, 2001, 'every block held again')
  t.is((await restored.restoreStatus()).state, 'complete')
})

test('instant restore, processes: kill -9 during the backfill, and the next run resumes it to restore-complete', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const agencyDir = path.join(root, 'agency')
  const embDir = path.join(root, 'embassy')
  const kit = path.join(root, 'agency.kit')
  const boot = ['--bootstrap', bootstrap.join(',')]
  await cliOk(['init', '--role', 'agency', '--name', 'Treasury', '--dir', agencyDir, ...boot])
  await cliOk(['init', '--role', 'embassy', '--dir', embDir, ...boot])
  const agencyId = (await cliOk(['id', '--dir', agencyDir, '--json'])).json
  const embId = (await cliOk(['id', '--dir', embDir, '--json'])).json
  await cliOk(['dataset', 'create', 'ledger', '--dir', agencyDir])
  const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ entry: i }))
  await cliOk(['append', 'ledger', '--dir', agencyDir], { input: lines.join('\n') + '\n' })
  await pairDirs({ dir: agencyDir, nodeKey: agencyId.nodeKey }, { dir: embDir, nodeKey: embId.nodeKey })
  const agency = await spawnRun(t, agencyDir, bootstrap)
  await spawnRun(t, embDir, bootstrap)
  await eventually('embassy holds the ledger', async () => (await cli(['status', '--dir', agencyDir, '--json'])).json?.datasets?.[0]?.embassies?.[0]?.heldLength === 3000, 60_000)
  await cliOk(['kit', 'export', '--out', kit, '--shares', '2/2', '--dir', agencyDir])
  await agency.kill()
  fs.rmSync(agencyDir, { recursive: true, force: true })

  // Throttled: 200 blocks a second, so the backfill is still running when it is killed.
  const imported = await cliOk(['kit', 'import', `${kit}.1`, `${kit}.2`, '--dir', agencyDir, '--backfill-rate', '200', '--json'])
  t.alike(imported.json.restore, { backfillRate: 200 })
  const first = await spawnRun(t, agencyDir, bootstrap)
  await first.waitEvent((e) => e.event === 'restore-writable', 60_000)
  const during = await eventually('backfilling, part held', async () => {
    const r = (await cli(['status', '--dir', agencyDir, '--json'])).json?.restore
    return r?.state === 'backfilling' && r.heldBlocks > 100 && r.heldBlocks < r.totalBlocks ? r : null
  }, 60_000)
  const progress = await first.waitEvent((e) => e.event === 'restore-progress' && e.heldBlocks > 0)
  t.ok(progress.heldBlocks < progress.totalBlocks, `progress in the log: ${progress.message}`)
  const appended = await cliOk(['append', 'ledger', '{"entry":"during backfill"}', '--dir', agencyDir, '--json'])
  t.is(appended.json.length, 3001, 'an append during the backfill')
  const late = await cliOk(['read', 'ledger', '--start', '2998', '--end', '3000', '--dir', agencyDir])
  t.is(late.stdout, lines.slice(2998, 3000).join('\n') + '\n', '`read` of records not backfilled yet fetches them on demand')
  t.comment(`killed at ${during.heldBlocks} of ${during.totalBlocks} blocks held`)
  await first.kill()

  const second = await spawnRun(t, agencyDir, bootstrap, ['--backfill-rate', '100000'])
  const done = await second.waitEvent((e) => e.event === 'restore-complete', 120_000)
  t.ok(done.blocks >= 3001, `resumed to restore-complete: ${done.blocks} blocks`)
  const status = (await cliOk(['status', '--dir', agencyDir, '--json'])).json.restore
  t.is(status.state, 'complete')
  t.is(status.heldBlocks, status.totalBlocks)
  const read = await cliOk(['read', 'ledger', '--dir', agencyDir])
  t.is(read.stdout, lines.join('\n') + '\n' + '{"entry":"during backfill"}\n', 'every record back, the one appended during the backfill included')
})
