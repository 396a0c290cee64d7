/**
 * Damaged storage (issue 15 item 2): `embassy verify` names every bad block of a damaged core,
 * also when storage itself cannot read them; a damaged block on a holder fails only the requests
 * for that block (the peer keeps reading other blocks and other datasets), and is reported.
 */
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import { EmbassyError, NodeHost, STORE_DIR, parseKey, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { verifyHandler, formatVerifyFailures } from '../lib/daemon/commands/verify.js'
import { alarms as alarmsCommand } from '../lib/daemon/commands/alarms.js'
import { MAX_LISTED_FAILURES, verifyCores, type VerifyReport } from '../lib/verify/index.js'
import type { DamagedBlock } from '../lib/data/checked-blocks.js'
import { corruptBlock, eventually, initDir, makeTree, openAgency, pair, rawStorage, readTree, startDaemon, testnet } from './helpers/index.js'

async function verifyError(host: NodeHost, args: string[] = []): Promise<EmbassyError> {
  const io = { json: true, progress() {}, line() {} }
  const err = await verifyHandler(host, { args, opts: {} }, io).then(
    () => null,
    (e: unknown) => e
  )
  if (!(err instanceof EmbassyError)) throw new Error(`verify did not fail with an EmbassyError: ${String(err)}`)
  return err
}

test('damage: two damaged blocks in one core: verify names both (and every other block still verifies)', async (t) => {
  const { dir, host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 200 }, (_, i) => ({ i })))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  await host.close()

  const store = new Corestore(path.join(dir, STORE_DIR))
  const core = store.get({ key: parseKey(key) })
  await core.ready()
  await corruptBlock(core, 3)
  await corruptBlock(core, 150)
  await store.close()

  const reopened = new NodeHost(dir)
  await reopened.ready()
  t.teardown(() => reopened.close())
  const err = await verifyError(reopened, ['register'])
  t.is(err.code, 'VERIFY_FAILED')
  const report = err.details as unknown as VerifyReport
  const reg = report.cores.find((c) => c.name === 'register')!
  t.alike(reg.failures.map((f) => f.index), [3, 150], 'both bad blocks named')
  t.is(reg.failed, 2)
  t.is(reg.checked, 198)
  t.ok(/register: 3, 150/.test(err.message), `the message names both: ${err.message}`)
  const text = formatVerifyFailures(err.details)
  t.ok(text.includes('bad block(s) (2): 3, 150'), text)
})

test('damage: blocks storage cannot read at all (store corruption) are named by index; verification goes on', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('bulk')
  const LENGTH = 1500 // two chunks
  await agency.append('bulk', Array.from({ length: LENGTH }, (_, i) => i))
  const core = (await agency.datasets.openLog('bulk')).core
  const ref = (await host.heldCores()).find((r) => r.core.key!.equals(core.key!))!

  // The store reports corruption for these blocks, as RocksDB does for a damaged .sst block.
  const broken = new Set([5, 6, 1200])
  const storage = rawStorage(core) as unknown as { read: (...a: unknown[]) => { getBlock(i: number): Promise<Buffer | null> } }
  const read = storage.read.bind(storage)
  storage.read = (...a: unknown[]) => {
    const rx = read(...a)
    const getBlock = rx.getBlock.bind(rx)
    rx.getBlock = (i: number) => {
      if (!broken.has(i)) return getBlock(i)
      const p = Promise.reject(new Error('Corruption: block checksum mismatch'))
      p.catch(() => {})
      return p
    }
    return rx
  }
  t.teardown(() => {
    storage.read = read
  })

  const report = await verifyCores([ref])
  const c = report.cores[0]!
  t.absent(report.ok)
  t.alike(c.failures.map((f) => f.index), [5, 6, 1200], 'every unreadable block named, across chunks')
  t.ok(c.failures.every((f) => /cannot be read from storage.*Corruption/.test(f.error)), c.failures[0]?.error)
  t.is(c.failed, 3)
  t.is(c.checked, LENGTH - 3, 'every readable block still checked')
  t.ok(c.signed)
})

test('damage: listing is bounded: MAX_LISTED_FAILURES indices, then a count', async (t) => {
  t.is(MAX_LISTED_FAILURES, 1000)
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('bulk')
  const LENGTH = 1100
  await agency.append('bulk', Array.from({ length: LENGTH }, (_, i) => i))
  const core = (await agency.datasets.openLog('bulk')).core
  const ref = (await host.heldCores()).find((r) => r.core.key!.equals(core.key!))!
  const storage = rawStorage(core) as unknown as { read: (...a: unknown[]) => { getBlock(i: number): Promise<Buffer | null> } }
  const read = storage.read.bind(storage)
  storage.read = (...a: unknown[]) => {
    const rx = read(...a)
    rx.getBlock = () => {
      const p = Promise.reject(new Error('Corruption'))
      p.catch(() => {})
      return p
    }
    return rx
  }
  t.teardown(() => {
    storage.read = read
  })
  const c = (await verifyCores([ref])).cores[0]!
  t.is(c.failed, LENGTH, 'every block counted')
  t.is(c.failures.length, 1000, 'the first 1000 listed')
  t.is(c.failures[999]!.index, 999)
  t.ok(c.failuresTruncated)
  const text = formatVerifyFailures({ cores: [c] } as never)
  t.ok(text.includes(`bad block(s) (1000)`) && text.includes(`${LENGTH} block(s) failed in all`), text.slice(0, 200))
})

test('damage: a damaged block on an embassy fails only that request; a mirror keeps reading other blocks and another dataset', async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyDaemon = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyDaemon.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 50 }, (_, i) => ({ i })))
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 128 * 1024)
  await agency.publish('laws', src)
  const registerKey = (await agency.list()).find((d) => d.name === 'register')!.key

  const embassyDaemon: Daemon = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyDaemon, embassyDaemon)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  const want = await agencyDaemon.host.heldCores()
  const lengths = new Map(want.map((r) => [toZ32(r.core.key!), r.core.length]))
  await eventually('the embassy holds every core in full', () => {
    const held = embassy.holdings().flatMap((h) => h.cores)
    return held.length === lengths.size && held.every((c) => lengths.get(c.key) === c.contiguousLength)
  })
  const capability = agency.capability()
  await agencyDaemon.close() // the embassy is now the only source

  const damaged: DamagedBlock[] = []
  for (const holder of embassy.holders.values()) holder.on('damaged-block', (d) => damaged.push(d))
  const ref = (await embassyDaemon.host.heldCores()).find((r) => toZ32(r.core.key!) === registerKey)!
  await corruptBlock(ref.core, 7)
  // Block 20: the store itself reports corruption (a damaged RocksDB block), which made hypercore
  // reset the requesting peer's whole connection.
  const storage = rawStorage(ref.core) as unknown as { read: (...a: unknown[]) => { getBlock(i: number): Promise<Buffer | null> } }
  const read = storage.read.bind(storage)
  storage.read = (...a: unknown[]) => {
    const rx = read(...a)
    const getBlock = rx.getBlock.bind(rx)
    rx.getBlock = (i: number) => {
      if (i !== 20) return getBlock(i)
      const p = Promise.reject(new Error('Corruption: block checksum mismatch'))
      p.catch(() => {})
      return p
    }
    return rx
  }
  t.teardown(() => {
    storage.read = read
  })

  const mirrorDaemon = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(embassyDaemon, mirrorDaemon, { capability })
  const mirror = (await mirrorDaemon.host.mirror()) as Mirror
  const lost: string[] = []
  mirror.network!.on('peer-lost', (_peer, why) => lost.push(String(why)))

  const records = async (start: number, end: number): Promise<string[]> => {
    const out: string[] = []
    for await (const r of mirror.read('register', { start, end })) out.push(r.text)
    return out
  }
  t.is((await records(0, 7)).length, 7, 'blocks before the damaged one read')

  await eventually('the embassy refused the damaged block when the mirror asked for it', () => damaged.some((d) => d.index === 7))
  const hashBad = damaged.find((d) => d.index === 7)!
  t.alike(hashBad, { core: registerKey, index: 7, reason: hashBad.reason }, 'reported with core and index')
  t.ok(/do not match the signed Merkle tree/.test(hashBad.reason), hashBad.reason)

  // After the refusal the same connection keeps serving: other blocks of that core and another dataset.
  t.is((await records(8, 20)).length, 12, 'blocks between the damaged ones read')
  await eventually('the embassy refused the unreadable block', () => damaged.some((d) => d.index === 20))
  t.ok(/storage read failed: Corruption/.test(damaged.find((d) => d.index === 20)!.reason))
  const after = await records(21, 50)
  t.is(after.length, 29, 'blocks after the damaged ones read')
  t.alike(JSON.parse(after[28]!), { i: 49 })
  const out = path.join(await t.tmp(), 'out')
  await mirror.export('laws', out)
  t.alike(readTree(out), readTree(src), 'another dataset exports byte-identical from the same embassy')
  t.is(damaged.filter((d) => d.index === 7).length, 1, 'reported once')
  t.alike(lost, [], 'the connection to the embassy was never reset')
  const alarms = embassy.alarms.filter((a) => a.kind === 'damaged-block' && a.core === hashBad.core)
  t.ok(alarms.some((a) => /block 7 /.test(a.detail)) && alarms.some((a) => /block 20 /.test(a.detail)), 'the embassy raised damaged-block for both (alarms.json, status, log)')

  // The damaged blocks were cleared, not kept: once another holder (the agency) is back, the
  // embassy fetches them again, verified, and its copy verifies in full.
  storage.read = read
  await startDaemon(t, agencyDir, bootstrap)
  await eventually('the embassy fetched the cleared blocks again', async () => ref.core.contiguousLength === ref.core.length && (await ref.core.has(7)) && (await ref.core.has(20)), 60_000)
  const io = { json: true, progress() {}, line() {} }
  const report = (await verifyHandler(embassyDaemon.host, { args: [registerKey], opts: {} }, io)) as VerifyReport
  t.ok(report.ok, 'the repaired core verifies')
  t.is(report.cores[0]!.checked, 50)
  await eventually('both damaged-block alarms are marked repaired (no longer active)', () =>
    [7, 20].every((b) => embassy.alarms.some((a) => a.kind === 'damaged-block' && a.core === hashBad.core && a.block === b && a.resolvedAt !== undefined))
  )
  const listed = await alarmsCommand.handler(embassyDaemon.host, { all: false }, io)
  t.absent(listed.alarms.some((a) => a.kind === 'damaged-block' && a.core === hashBad.core), '`embassy alarms` no longer lists them as active')
})
