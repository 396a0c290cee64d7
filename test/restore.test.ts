import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Daemon, EmbassyNode, NodeHost, toZ32, type Agency, type Embassy, type RestoreResult } from '../lib/index.js'
import { eventually, initDir, makeTree, pair, readTree, startDaemon, testnet } from './helpers/index.js'

test('restore: agency destroyed → rebuilt from its keys → synced from an embassy → appends continue on the same feeds', async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyD = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 300 }, (_, i) => ({ i })))
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 1024 * 1024)
  await agency.publish('laws', src)

  const embDir = await initDir(t, 'embassy', 'embassy')
  const embD = await startDaemon(t, embDir, bootstrap)
  const embKey = toZ32(embD.host.node.nodeKey)
  await pair(agencyD, embD)
  await eventually('embassy holds everything', async () => {
    const s = await agency.custody()
    return s.datasets.every((d) => d.embassies.find((e) => e.nodeKey === embKey)?.behindBlocks === 0)
  })

  const before = await agencyD.host.node.identity()
  const registerKey = (await agency.list()).find((d) => d.name === 'register')!.key
  const primaryKey = Buffer.from(agencyD.host.node.store.primaryKey!)
  const readKey = Buffer.from(agency.readKey)
  await agencyD.close()
  fs.rmSync(agencyDir, { recursive: true, force: true })
  t.absent(fs.existsSync(agencyDir), 'agency directory destroyed')

  const restoredDir = path.join(await t.tmp(), 'restored')
  const id = await EmbassyNode.init(restoredDir, { role: 'agency', name: 'agency', primaryKey, readKey })
  t.is(id.nodeKey, before.nodeKey, 'same node key')
  t.is(id.catalogKey, before.catalogKey, 'same catalog key')
  const offline = new NodeHost(restoredDir)
  await offline.ready()
  ;(await offline.role()).allow(embD.host.node.nodeKey) // offline: persisted only
  const early = await (await offline.agency()).append('register', [{ too: 'early' }]).catch((e) => e)
  t.is(early.code, 'NOT_SYNCED', 'appends refused until synced')
  await offline.close()

  // Listen before the daemon goes online: the restore may finish while ready() is still running.
  const restoredD = new Daemon({ dir: restoredDir, bootstrap })
  t.teardown(() => restoredD.close(), { order: 0, force: true })
  await restoredD.host.ready()
  const restored = (await restoredD.host.agency()) as Agency
  const done = new Promise<RestoreResult>((resolve, reject) => {
    restored.once('restored', resolve)
    restored.once('restore-error', reject)
  })
  done.catch(() => {}) // awaited below; never left to the teardown
  await restoredD.ready()
  const result = await done
  t.ok(result.blocks > 300, `synced ${result.blocks} blocks from ${result.embassies.length} embassy`)
  t.absent(restored.restoring, 'no longer restoring')
  t.absent(restoredD.host.node.config.restoring, 'flag cleared in config.json')

  const texts: string[] = []
  for await (const r of restored.datasets.read('register')) texts.push(r.text)
  t.is(texts.length, 300)
  const out = path.join(await t.tmp(), 'out')
  await restored.datasets.export('laws', out)
  t.alike(readTree(out), readTree(src), 'files back, byte-identical')

  await restored.append('register', [{ after: 'restore' }])
  t.is((await restored.list()).find((d) => d.name === 'register')!.key, registerKey, 'same core key')
  await eventually('embassy accepts the new append on the same feed', async () => {
    const s = await restored.custody()
    const row = s.datasets.find((d) => d.name === 'register')?.embassies.find((e) => e.nodeKey === embKey)
    return row?.heldLength === 301
  })
  const embassy = (await embD.host.embassy()) as Embassy
  t.is(embassy.holdings()[0]!.cores.find((c) => c.key === registerKey)?.contiguousLength, 301)
  t.alike((await restored.custody()).alarms, [], 'no fork, no alarms')
})
