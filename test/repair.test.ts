/**
 * `embassy repair` (issue 15 item 2): damaged blocks are cleared and fetched again from another
 * holder, checked against the signed tree; exit 0 when all are repaired, REPAIR_FAILED (exit 1)
 * naming the blocks no holder could replace, PEER_UNREACHABLE (exit 3) when no holder is reachable.
 * Hostile cases: every holder has the same damage; a peer sends a forged replacement.
 */
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { EmbassyError, NodeHost, STORE_DIR, parseKey, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { repairHandler, formatRepairFailures } from '../lib/daemon/commands/repair.js'
import { verifyCores, type RepairReport } from '../lib/verify/index.js'
import { cli, corruptBlock, eventually, forgeBlock, initDir, openAgency, pair, rawStorage, startDaemon, testnet } from './helpers/index.js'

const io = { json: true, progress() {}, line() {} }

async function repairResult(host: NodeHost, opts: Record<string, string> = {}): Promise<RepairReport | EmbassyError> {
  return Promise.resolve()
    .then(() => repairHandler(host, { args: [], opts }, io))
    .then(
    (r) => r,
    (e: unknown) => {
      if (!(e instanceof EmbassyError)) throw e
      return e
    }
  )
}

async function rawBlock(core: Hypercore, index: number): Promise<Buffer | null> {
  const rx = rawStorage(core).read()
  const p = rx.getBlock(index)
  rx.tryFlush()
  return p
}

test('repair: nothing damaged is a clean exit 0; offline, a damaged block is named, left alone, and the exit is 3', async (t) => {
  const { dir, host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 40 }, (_, i) => ({ i })))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key

  const clean = await repairResult(host)
  t.absent(clean instanceof EmbassyError, 'nothing to repair is no error')
  t.is((clean as RepairReport).totals.damaged, 0)
  t.ok((clean as RepairReport).ok)
  await host.close()

  const store = new Corestore(path.join(dir, STORE_DIR))
  const core = store.get({ key: parseKey(key) })
  await core.ready()
  await corruptBlock(core, 4)
  const damagedBytes = await rawBlock(core, 4)
  await store.close()

  const viaCli = await cli(['repair', '--dir', dir])
  t.is(viaCli.code, 3, 'the CLI exits 3')
  t.ok(/PEER_UNREACHABLE/.test(viaCli.stderr) && /register: 4 \(unreachable\)/.test(viaCli.stderr), viaCli.stderr)
  const help = await cli(['repair', '--help'])
  t.is(help.code, 0)
  t.ok(help.stdout.startsWith('usage: embassy repair'), help.stdout)

  const reopened = new NodeHost(dir)
  await reopened.ready()
  t.teardown(() => reopened.close())
  t.absent(reopened.online, 'not running: no network')
  const err = await repairResult(reopened)
  t.ok(err instanceof EmbassyError)
  const e = err as EmbassyError
  t.is(e.code, 'PEER_UNREACHABLE')
  t.is(e.exitCode, 3)
  t.ok(/register: 4 \(unreachable\)/.test(e.message), e.message)
  const report = e.details as unknown as RepairReport
  t.alike(report.cores[0]!.blocks.map((b) => [b.index, b.outcome]), [[4, 'unreachable']])
  const ref = (await reopened.heldCores()).find((r) => toZ32(r.core.key!) === key)!
  t.alike(await rawBlock(ref.core, 4), damagedBytes, 'nothing was cleared offline')
  t.ok(formatRepairFailures(e.details).includes('block 4: unreachable'), formatRepairFailures(e.details))

  const sel = await repairResult(reopened, { dataset: 'nope' })
  t.is((sel as EmbassyError).code, 'UNKNOWN_DATASET', 'an unknown --dataset is refused')
  const badTimeout = await repairResult(reopened, { timeout: '-1' })
  t.is((badTimeout as EmbassyError).code, 'BAD_ARGUMENT')
})

test('repair: a damaged block on an embassy is fetched again from the agency and verifies; a forged replacement is refused', async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 60 }, (_, i) => ({ i })))
  await agency.createDataset('other')
  await agency.append('other', Array.from({ length: 10 }, (_, i) => ({ i })))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  const embassyD: Daemon = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyD, embassyD)
  const embassy = (await embassyD.host.embassy()) as Embassy
  const want = await agencyD.host.heldCores()
  const lengths = new Map(want.map((r) => [toZ32(r.core.key!), r.core.length]))
  await eventually('the embassy holds every core in full', () => {
    const held = embassy.holdings().flatMap((h) => h.cores)
    return held.length === lengths.size && held.every((c) => lengths.get(c.key) === c.contiguousLength)
  }, 120_000)
  const ref = (await embassyD.host.heldCores()).find((r) => toZ32(r.core.key!) === key)!
  const agencyCore = want.find((r) => toZ32(r.core.key!) === key)!.core
  const good = await rawBlock(agencyCore, 12)

  await corruptBlock(ref.core, 12)
  await corruptBlock(ref.core, 40)
  t.absent((await verifyCores([ref])).ok, 'the damage is there before repair')
  const fixed = await repairResult(embassyD.host)
  t.absent(fixed instanceof EmbassyError, fixed instanceof EmbassyError ? fixed.message : 'repaired')
  const r = fixed as RepairReport
  t.ok(r.ok)
  t.alike(r.cores.flatMap((c) => c.blocks.map((b) => [b.index, b.outcome])), [[12, 'repaired'], [40, 'repaired']], 'both blocks repaired')
  t.alike(await rawBlock(ref.core, 12), good, 'the stored bytes are the agency\'s again')
  const after = await verifyCores(await embassyD.host.heldCores())
  t.ok(after.ok, `everything on the embassy verifies (${after.totals.checked} blocks)`)

  // Hostile: the agency's copy of block 20 is forged (block and leaf rewritten), and the embassy's
  // copy is damaged. The forged bytes arrive, fail the embassy's proof check and are not stored.
  await forgeBlock(agencyCore, 20)
  await corruptBlock(ref.core, 20)
  const invalid = (ref.core.core as unknown as { replicator: { stats: { invalidData: number } } }).replicator.stats
  const invalidBefore = invalid.invalidData
  const refused = await repairResult(embassyD.host, { timeout: '5' })
  t.ok(refused instanceof EmbassyError, 'the repair fails')
  const e = refused as EmbassyError
  t.is(e.code, 'REPAIR_FAILED')
  t.is(e.exitCode, 1)
  t.ok(e.message.includes(`${key}: 20 (failed)`), `block 20 named (by core key: the embassy is blind): ${e.message}`)
  t.ok(invalid.invalidData > invalidBefore, 'the forged replacement failed verification on arrival')
  t.is(await rawBlock(ref.core, 20), null, 'the forged bytes were not stored (the damaged block is gone, nothing else)')
  const partial = await verifyCores(await embassyD.host.heldCores())
  t.ok(partial.ok, `every block the embassy still stores verifies (${partial.totals.checked})`)
  t.is(partial.totals.checked, after.totals.checked - 1, 'only the damaged block is missing')
})

test('repair: when every holder has the same damage it fails clearly, naming the block; nothing else is lost', async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 30 }, (_, i) => ({ i })))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  const length = (await agencyD.host.heldCores()).find((r) => toZ32(r.core.key!) === key)!.core.length
  const embassyD = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyD, embassyD)
  const embassy = (await embassyD.host.embassy()) as Embassy
  const eRef = await eventually('the embassy holds the register', async () => {
    const r = (await embassyD.host.heldCores()).find((x) => toZ32(x.core.key!) === key)
    return r && r.core.contiguousLength === length ? r : null
  }, 120_000)
  const capability = agency.capability()
  await agencyD.close() // the embassy is the mirror's only holder

  const mirrorD = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(embassyD, mirrorD, { capability })
  const mirror = (await mirrorD.host.mirror()) as Mirror
  const log = await eventually('the mirror reads the catalog', async () => mirror.openLog('register').catch(() => null), 120_000)
  await log.core.download({ start: 0, end: length }).done()
  const mRef = (await mirrorD.host.heldCores()).find((r) => toZ32(r.core.key!) === key)!

  await corruptBlock(eRef.core, 9)
  await corruptBlock(mRef.core, 9)
  const damaged: number[] = []
  for (const h of embassy.holders.values()) h.on('damaged-block', (d) => damaged.push(d.index))
  const err = await repairResult(mirrorD.host, { timeout: '5' })
  t.ok(err instanceof EmbassyError)
  const e = err as EmbassyError
  t.is(e.code, 'REPAIR_FAILED', e.message)
  t.is(e.exitCode, 1)
  t.ok(/: 9 \(failed\)/.test(e.message), `block 9 named: ${e.message}`)
  const report = e.details as unknown as RepairReport
  t.is(report.totals.failed, 1)
  t.is(report.totals.repaired, 0)
  t.ok(damaged.includes(9), 'the embassy refused its own damaged copy instead of serving it')
  const left = await verifyCores([mRef])
  t.ok(left.ok, 'every other block on the mirror still verifies')
  t.is(left.totals.checked, length - 1, 'only the damaged block is missing')
  t.ok(mirror.network!.connectedTo(embassyD.host.node.nodeKey), 'the mirror is still connected to the embassy')
})
