import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { EmbassyError, NodeHost, STORE_DIR, parseKey, toZ32, type Agency, type CommandIO, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { verifyCores, type VerifyReport } from '../lib/verify/index.js'
import { verifyHandler } from '../lib/daemon/commands/verify.js'
import { corruptBlock, corruptTreeNode, eventually, initDir, makeTree, openAgency, pair, rawStorage, startDaemon, testnet } from './helpers/index.js'

function recorder(): CommandIO & { calls: Array<[string, number, number]> } {
  const calls: Array<[string, number, number]> = []
  return { json: true, calls, progress: (label, done, total) => calls.push([label, done, total]), line() {} }
}

async function verify(host: NodeHost, args: string[] = [], io: CommandIO = recorder()): Promise<VerifyReport> {
  return (await verifyHandler(host, { args, opts: {} }, io)) as VerifyReport
}

async function verifyFails(t: test.Assert, host: NodeHost, args: string[] = []): Promise<VerifyReport> {
  const err = await verify(host, args).then(
    () => null,
    (e) => e
  )
  t.ok(err instanceof EmbassyError, 'verify throws an EmbassyError')
  t.is(err?.code, 'VERIFY_FAILED')
  t.is(err?.exitCode, 1, 'the CLI exits 1')
  return err.details as VerifyReport
}

/** An agency with a 300-record log and a files dataset of several content blocks. */
async function agencyWithData(t: test.Assert): Promise<{ dir: string; host: NodeHost; agency: Agency }> {
  const { dir, host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 300 }, (_, i) => ({ i, owner: `owner-${i}` })))
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 1024 * 1024 + 17)
  await agency.publish('laws', src)
  return { dir, host, agency }
}

function byName(report: VerifyReport, name: string) {
  const c = report.cores.find((x) => x.name === name)
  if (!c) throw new Error(`no core named ${name} in the report`)
  return c
}

test('verify: a clean agency (log + files) verifies every block against the signed tree', async (t) => {
  const { host } = await agencyWithData(t)
  const io = recorder()
  const report = await verify(host, [], io)
  t.ok(report.ok)
  t.alike(report.cores.map((c) => c.name).sort(), ['catalog', 'laws/content', 'laws/index', 'register'])
  for (const c of report.cores) {
    t.ok(c.length > 0, `${c.name}: ${c.length} blocks`)
    t.ok(c.signed, `${c.name}: signature verified`)
    t.is(c.checked, c.length, `${c.name}: every block checked`)
    t.is(c.held, c.length)
    t.is(c.failed, 0)
    t.is(c.contiguousLength, c.length)
    t.alike(c.failures, [])
    t.is(c.key.length, 52, 'z32 key')
  }
  t.is(byName(report, 'register').length, 300)
  t.ok(byName(report, 'laws/content').length > 1, 'several content blocks')
  t.is(report.totals.checked, report.totals.length)
  t.is(report.totals.coresFailed, 0)
  const last = io.calls[io.calls.length - 1]
  t.alike(last, ['verify', report.totals.length, report.totals.length], 'progress reaches the total')
  t.alike(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON')

  const one = await verify(host, ['register'])
  t.alike(one.cores.map((c) => c.name), ['register'], 'NAME selects a dataset')
  const files = await verify(host, ['laws'])
  t.alike(files.cores.map((c) => c.name).sort(), ['laws/content', 'laws/index'], 'both cores of a files dataset')
  await t.exception(verify(host, ['nope']), /UNKNOWN_DATASET/)
})

test('verify: blocks corrupted below hypercore are caught with their index; other cores stay clean', async (t) => {
  const { dir, host, agency } = await agencyWithData(t)
  const list = await agency.list()
  const register = list.find((d) => d.name === 'register')!
  const laws = list.find((d) => d.name === 'laws')!
  await host.close()

  // Put wrong bytes under a valid tree, through hypercore-storage, with the node closed.
  const store = new Corestore(path.join(dir, STORE_DIR))
  const log = store.get({ key: parseKey(register.key) })
  const content = store.get({ key: parseKey(laws.cores[1]!) })
  await log.ready()
  await content.ready()
  await corruptBlock(log, 7)
  await corruptBlock(log, 299)
  await corruptBlock(content, 1)
  await store.close()

  const reopened = new NodeHost(dir)
  await reopened.ready()
  t.teardown(() => reopened.close())
  const report = await verifyFails(t, reopened)
  t.absent(report.ok)
  const reg = byName(report, 'register')
  t.alike(reg.failures.map((f) => f.index), [7, 299], 'the corrupt blocks, by index')
  t.ok(reg.failures.every((f) => /do not match the signed Merkle tree/.test(f.error)), reg.failures[0]?.error)
  t.is(reg.failed, 2)
  t.is(reg.checked, 298, 'every other block still verifies')
  t.ok(reg.signed, 'the tree itself is intact')
  t.alike(byName(report, 'laws/content').failures.map((f) => f.index), [1])
  t.alike(byName(report, 'laws/index').failures, [])
  t.alike(byName(report, 'catalog').failures, [])
  t.is(report.totals.coresFailed, 2)
  t.is(report.totals.failed, 3)

  // Without verify, hypercore serves the altered ciphertext: the record reads wrong (or fails).
  const read = async () => {
    const out: string[] = []
    for await (const r of (await reopened.agency()).datasets.read('register', { start: 7, end: 8 })) out.push(r.text)
    return out[0]
  }
  t.not(await read().catch((e: Error) => e.message), JSON.stringify({ i: 7, owner: 'owner-7' }), 'a plain read does not return the original record')

  const clean = await verify(reopened, ['catalog'])
  t.ok(clean.ok, 'a clean selection passes')
  const again = await verifyFails(t, reopened, ['register'])
  t.alike(again.cores.map((c) => c.name), ['register'])
  t.alike(byName(again, 'register').failures.map((f) => f.index), [7, 299], 'verify repairs nothing: still there')
})

test('verify: a large core (several chunks): corrupt blocks, an altered tree node and an altered root', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('bulk')
  const LENGTH = 2500
  await agency.append('bulk', Array.from({ length: LENGTH }, (_, i) => i))
  const core = (await agency.datasets.openLog('bulk')).core
  const io = recorder()
  const clean = await verify(host, ['bulk'], io)
  t.is(byName(clean, 'bulk').checked, LENGTH, 'every block of a multi-chunk core checked')
  t.ok(io.calls.length >= 3, 'progress is reported per chunk')

  await corruptBlock(core, 0)
  await corruptBlock(core, 1500)
  await corruptBlock(core, LENGTH - 1)
  let bulk = byName(await verifyFails(t, host, ['bulk']), 'bulk')
  t.alike(bulk.failures.map((f) => f.index), [0, 1500, LENGTH - 1])
  t.is(bulk.checked, LENGTH - 3)

  // Node 4001 covers blocks 2000-2001; once altered, its parent 4003 (blocks 2000-2003) no longer matches.
  await corruptTreeNode(core, 4001)
  bulk = byName(await verifyFails(t, host, ['bulk']), 'bulk')
  const treeFailure = bulk.failures.find((f) => f.end !== undefined)
  t.alike(treeFailure, { index: 2000, end: 2004, error: 'tree node 4003 does not match its children (altered tree)' })
  t.is(bulk.checked, LENGTH - 3 - 4)
  t.ok(bulk.signed, 'roots and signature still fine')

  // A stored signature that is not the writer's.
  const storage = rawStorage(core)
  const rx = storage.read()
  const headRead = rx.getHead()
  rx.tryFlush()
  const head = (await headRead)!
  const forged = Buffer.from(head.signature)
  forged[forged.byteLength - 1] = forged[forged.byteLength - 1]! ^ 0x01
  let tx = storage.write()
  tx.setHead({ ...head, signature: forged })
  await tx.flush()
  bulk = byName(await verifyFails(t, host, ['bulk']), 'bulk')
  t.absent(bulk.signed)
  t.alike(bulk.failures[0], { index: null, error: `the tree signature does not verify (length ${LENGTH}, fork 0)` })
  tx = storage.write()
  tx.setHead(head)
  await tx.flush()
  t.ok(byName(await verifyFails(t, host, ['bulk']), 'bulk').signed, 'the genuine signature verifies again')

  // The first root (node 2047, blocks 0-2047) altered: the roots no longer give the signed tree hash.
  await corruptTreeNode(core, 2047)
  bulk = byName(await verifyFails(t, host, ['bulk']), 'bulk')
  t.absent(bulk.signed)
  t.alike(bulk.failures[0], { index: null, error: 'the stored tree roots do not hash to the stored tree hash' })
  t.is(bulk.checked, 0, 'nothing counts as verified without a signed tree')
  t.alike(bulk.failures.filter((f) => f.index !== null && f.end === undefined).map((f) => f.index), [0, 1500, LENGTH - 1], 'corrupt blocks still named')
})

test('verify: a blind embassy verifies its ciphertext copy without any read key and catches corruption; a mirror too', async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyDaemon = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyDaemon.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 120 }, (_, i) => ({ i })))
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 256 * 1024)
  await agency.publish('laws', src)

  const embassyDir = await initDir(t, 'embassy', 'embassy')
  const embassyDaemon: Daemon = await startDaemon(t, embassyDir, bootstrap)
  await pair(agencyDaemon, embassyDaemon)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy

  const want = await agencyDaemon.host.heldCores()
  const lengths = new Map(want.map((r) => [toZ32(r.core.key!), r.core.length]))
  await eventually('the embassy holds every core in full', () => {
    const held = embassy.holdings().flatMap((h) => h.cores)
    return held.length === lengths.size && held.every((c) => lengths.get(c.key) === c.contiguousLength)
  })

  t.absent(embassyDaemon.host.node.keys.readKey, 'the embassy has no read key')
  t.alike(embassyDaemon.host.node.keys.readKeys ?? {}, {}, 'and no mirror read keys')
  const report = await verify(embassyDaemon.host)
  t.ok(report.ok, 'blind verification passes')
  t.is(report.cores.length, 4, 'catalog + register + laws index and content')
  for (const c of report.cores) {
    t.is(c.length, lengths.get(c.key), `${c.name}: newest signed length is the agency's`)
    t.is(c.checked, c.length, `${c.name}: every ciphertext block checked`)
    t.ok(c.signed)
  }
  const catalogKey = (await agencyDaemon.host.node.identity()).catalogKey!
  t.ok(report.cores.every((c) => c.catalog === catalogKey))

  // Corrupt the embassy's copy of the register log in place.
  const registerKey = (await agency.list()).find((d) => d.name === 'register')!.key
  const ref = (await embassyDaemon.host.heldCores()).find((r) => toZ32(r.core.key!) === registerKey)!
  await corruptBlock(ref.core, 42)
  const bad = await verifyFails(t, embassyDaemon.host)
  const core = bad.cores.find((c) => c.key === registerKey)!
  t.alike(core.failures.map((f) => f.index), [42], 'block 42 named')
  t.is(core.checked, 119)
  t.is(bad.cores.filter((c) => c.failures.length > 0).length, 1, 'only that core fails')

  const selected = await verifyFails(t, embassyDaemon.host, [registerKey])
  t.alike(selected.cores.map((c) => c.key), [registerKey], 'NAME as a core key')
  const wholeAgency = await verifyFails(t, embassyDaemon.host, [catalogKey])
  t.is(wholeAgency.cores.length, 4, 'NAME as a catalog key selects all its cores')
  await t.exception(verify(embassyDaemon.host, ['register']), /NOT_FOUND/, 'an embassy knows no dataset names')

  // A mirror (it holds the read key) verifies too, and names its cores by dataset.
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const mirrorDaemon = await startDaemon(t, mirrorDir, bootstrap)
  await pair(agencyDaemon, mirrorDaemon)
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  await eventually('the mirror holds every core in full', () => {
    const held = mirror.sourceStatus().flatMap((s) => s.cores)
    return held.length === lengths.size && held.every((c) => lengths.get(c.key) === c.contiguousLength)
  })
  const mirrored = await verify(mirrorDaemon.host)
  t.ok(mirrored.ok)
  t.alike(mirrored.cores.map((c) => c.name).sort(), ['catalog', 'laws/content', 'laws/index', 'register'], 'labelled by dataset name')
  t.ok(mirrored.cores.every((c) => c.checked === c.length && c.length > 0))
  const laws = await verify(mirrorDaemon.host, ['laws'])
  t.alike(laws.cores.map((c) => c.name).sort(), ['laws/content', 'laws/index'], 'NAME is a dataset name on a mirror')
})

test('verify: empty cores and an empty selection verify trivially', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('empty')
  const report = await verifyCores(await host.heldCores())
  t.ok(report.ok)
  t.is(byName(report, 'empty').length, 0)
  t.is(byName(report, 'empty').checked, 0)
  t.alike(await verifyCores([]), { ok: true, cores: [], totals: { cores: 0, coresFailed: 0, length: 0, held: 0, checked: 0, failed: 0 }, elapsed: (await verifyCores([])).elapsed })
})
