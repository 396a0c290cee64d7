/**
 * The bound of open held cores (`maxOpenCores`): an embassy holding more cores than the bound
 * keeps at most that many open; the others are closed once caught up and receipted, kept as a
 * record of their figures, and opened again when the agency appends (its `appended` notice), a
 * mirror asks for one, an audit samples one, or the writer's stolen key offers a rewrite — which
 * is refused as ever. Notices from anyone but the followed agency change nothing. Verify and
 * repair read the held cores a window at a time: at most the bound plus one window open.
 */
import test from 'brittle'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { EmbassyError, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import type { Holder } from '../lib/roles/holder.js'
import { readerWindow } from '../lib/roles/open-cores.js'
import { verifyHandler } from '../lib/daemon/commands/verify.js'
import { repairHandler } from '../lib/daemon/commands/repair.js'
import { mergeVerifyReports, verifyCores, type RepairReport, type VerifyReport } from '../lib/verify/index.js'
import { CONFIG_FILE, defaultConfig, validateConfig } from '../lib/node/config.js'
import type { Peer } from '../lib/net/network.js'
import { datasetCoreName } from '../lib/data/datasets.js'
import { signedHead } from '../lib/data/tree.js'
import { signWitnessedHead } from '../lib/custody/index.js'
import { AlarmCode, type WitnessedHead } from '../protocol/index.js'
import { corruptBlock, eventually, initDir, pair, rawStorage, startDaemon, testnet, type Test } from './helpers/index.js'

const DATASETS = 8
const BOUND = 3
/** Held cores a verify or repair opens at once under that bound. */
const WINDOW = readerWindow(BOUND)
const io = { json: true, progress() {}, line() {} }

async function embassyDir(t: Test, maxOpenCores: number): Promise<string> {
  const dir = await initDir(t, 'embassy')
  const file = path.join(dir, CONFIG_FILE)
  const config = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>
  config.maxOpenCores = maxOpenCores
  await fs.writeFile(file, JSON.stringify(config, null, 2))
  return dir
}

interface Cluster {
  bootstrap: string[]
  agencyDir: string
  agencyD: Daemon
  agency: Agency
  embD: Daemon
  embassy: Embassy
  holder: Holder
  /** The most held cores open at once when a new core was picked up (pick-up keeps to the bound). */
  peak: () => number
}

/**
 * An agency whose first scheduled audit is an hour away: its audits would open closed cores at
 * their own time (tests that audit call auditNow()).
 */
async function agencyDir(t: Test): Promise<string> {
  const dir = await initDir(t, 'agency')
  const file = path.join(dir, CONFIG_FILE)
  const config = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>
  config.audit = { firstAuditMs: 3_600_000 }
  await fs.writeFile(file, JSON.stringify(config, null, 2))
  return dir
}

async function cluster(t: Test): Promise<Cluster> {
  const bootstrap = await testnet(t)
  const aDir = await agencyDir(t)
  const agencyD = await startDaemon(t, aDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  for (let i = 0; i < DATASETS; i++) {
    await agency.createDataset(`ds-${i}`)
    await agency.append(`ds-${i}`, [{ i }, { i, second: true }])
  }
  const embD = await startDaemon(t, await embassyDir(t, BOUND), bootstrap)
  const embassy = (await embD.host.embassy()) as Embassy
  let peak = 0
  let holder: Holder | null = null
  const watch = () => {
    for (const h of embassy.holders.values()) {
      if (h === holder) continue
      holder = h
      h.on('core-added', () => {
        peak = Math.max(peak, h.openCount)
      })
    }
  }
  watch()
  await pair(agencyD, embD)
  const held = await eventually('the embassy holds every dataset, receipted', async () => {
    watch()
    const h = [...embassy.holders.values()][0]
    if (!h || h.cores.size !== DATASETS) return null
    const custody = await agency.custody()
    const all = custody.datasets.every((d) => d.embassies.some((e) => e.heldLength === d.length && e.behindBlocks === 0))
    return all && h.complete ? h : null
  }, 120_000)
  return { bootstrap, agencyDir: aDir, agencyD, agency, embD, embassy, holder: held, peak: () => peak }
}

/** Flips a byte of block `index` of held core `key` in the embassy's storage; the holder keeps it closed. */
async function damageAtRest(c: Cluster, key: Buffer, index: number): Promise<void> {
  const session = c.embD.host.node.store.get({ key })
  await session.ready()
  await corruptBlock(session, index)
  await session.close()
}

/** Block `index` of `core` as stored. */
async function storedBlock(core: Hypercore, index: number): Promise<Buffer | null> {
  const rx = rawStorage(core).read()
  const p = rx.getBlock(index)
  rx.tryFlush()
  return p
}

/** A dataset whose core the embassy holds closed, and that entry. */
async function closedDataset(c: Cluster): Promise<{ name: string; key: Buffer }> {
  return eventually('a held core closed', async () => {
    for (const d of await c.agency.list()) {
      const log = await c.agency.datasets.openLog(d.name)
      const e = c.holder.cores.get(log.core.key!.toString('hex'))
      if (e && !e.core && !e.busy) return { name: d.name, key: log.core.key! }
    }
    return null
  })
}

test('open cores: an embassy bound to 3 open cores holds 8 datasets whole; closed ones keep their figures in status', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  t.ok(c.peak() <= BOUND, `pick-up never had more than ${BOUND} dataset cores open (peak ${c.peak()})`)
  await eventually('settled down to the bound', () => c.holder.openCount <= BOUND)
  t.ok(c.holder.stats.closed >= DATASETS - BOUND, `cores closed to stay within the bound (${c.holder.stats.closed})`)
  const rows = c.embassy.holdings()[0]!.cores.filter((r) => r.dataset !== 'catalog')
  t.is(rows.length, DATASETS, 'status lists every held core, open or closed')
  t.ok(rows.some((r) => !r.open), 'some are shown closed')
  for (const d of await c.agency.list()) {
    const log = await c.agency.datasets.openLog(d.name)
    const row = rows.find((r) => r.key === toZ32(log.core.key!))!
    t.ok(row.length === log.core.length && row.contiguousLength === log.core.length, `${d.name}: length as the agency's (${row.open ? 'open' : 'closed'})`)
    if (row.open) continue
    // The recorded figures are the core's own: open it again and compare (ciphertext bytes included).
    const core = (await c.holder.wake(log.core.key!))!
    t.alike([row.length, row.contiguousLength, row.byteLength, row.fork], [core.length, core.contiguousLength, core.byteLength, core.fork], `${d.name}: closed, its record matches the core`)
  }
  // A verification reads the held cores a window at a time: never more open than the bound plus
  // one window, and a window's cores open (not closing) while it reads them.
  await eventually('the cores opened to compare closed again down to the bound', () => c.holder.openCount <= BOUND)
  let listed = 0
  let most = 0
  let windows = 0
  const reports = await c.embD.host.forHeldCores(
    (all) => {
      listed = all.length
      return all
    },
    async (refs) => {
      windows++
      most = Math.max(most, c.holder.openCount, c.embassy.openCores().open)
      const cores = refs.map((r) => ('core' in r ? r.core : null))
      t.ok(refs.length <= WINDOW && cores.every((core) => core && core.opened && !core.closing), `window ${windows}: ${refs.length} core(s), open`)
      const report = await verifyCores(refs)
      t.ok(cores.every((core) => core && !core.closing), `window ${windows}: none closing while it reads`)
      return report
    }
  )
  t.is(listed, DATASETS + 1, 'every held core to choose from (the catalog too)')
  t.is(windows, Math.ceil((DATASETS + 1) / WINDOW), `${windows} windows of at most ${WINDOW}`)
  t.ok(most <= BOUND + WINDOW, `at most the bound plus one window open at once (${most})`)
  const report = mergeVerifyReports(reports)
  t.ok(report.ok && report.cores.length === DATASETS + 1, `every block verifies (${report.totals.checked} blocks)`)
  t.is(report.totals.cores, DATASETS + 1)
  t.ok(report.cores.every((r) => r.checked === r.length && r.length > 0), 'every block of every core checked')
  await eventually('closed again down to the bound', () => c.holder.openCount <= BOUND)
  t.pass(`back to ${c.holder.openCount} open`)
})

test('open cores: a window keeps its cores open whatever the bound may close; released when its reader throws or a core cannot be opened', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { key } = await closedDataset(c)
  const hex = key.toString('hex')
  // No peer: a core opened again is settled at once, so only its window keeps it from closing.
  await c.agencyD.close()
  const err = await c.embD.host
    .forHeldCores(
      (all) => all.filter((e) => e.key.equals(key)),
      async (refs) => {
        const ref = refs[0]!
        t.ok('core' in ref && ref.core.opened && ref.reopened, 'the closed core, opened again for the window')
        throw new Error('the reader failed')
      }
    )
    .then(
      () => null,
      (e: unknown) => e as Error
    )
  t.is(err?.message, 'the reader failed', 'the reader’s error is the caller’s')
  t.is(c.holder.cores.get(hex)!.using, 0, 'not marked in use any more')
  t.absent(c.holder.cores.get(hex)!.core, 'closed again, as it was')

  // A core whose storage cannot be opened: verify names it with why, and nothing stays in use.
  const store = c.embD.host.node.store
  const get = store.get.bind(store)
  store.get = ((opts: Parameters<typeof get>[0]) => {
    const core = get(opts)
    const k = typeof opts === 'object' && 'key' in opts ? opts.key : null
    if (k && Buffer.from(k).equals(key)) core.ready = () => Promise.reject(new Error('the storage failed'))
    return core
  }) as typeof store.get
  const unopened = await verifyHandler(c.embD.host, { args: [toZ32(key)], opts: {} }, io).then(
    () => null,
    (e: unknown) => e as EmbassyError
  )
  store.get = get
  t.is(unopened?.code, 'VERIFY_FAILED', 'verify fails, naming the core')
  const unopenedReport = unopened!.details as unknown as VerifyReport
  t.alike(unopenedReport.cores.map((r) => [r.key, r.failures.map((f) => f.error)]), [[toZ32(key), ['could not verify: the storage failed']]], 'with why')
  t.is(c.holder.cores.get(hex)!.using, 0, 'not marked in use')
  t.absent(c.holder.cores.get(hex)!.core, 'still closed')

  let seen = 0
  const reports = await c.embD.host.forHeldCores(
    (all) => all,
    async (refs) => {
      // Everything the bound may close, closed now: none of this window's cores is among it.
      for (const x of c.holder.closable()) x.close()
      for (const r of refs) {
        t.ok('core' in r && !r.core.closing, `${r.name}: not closing while its window reads it`)
        seen++
      }
      return verifyCores(refs)
    }
  )
  t.is(seen, DATASETS + 1, 'every core read')
  t.ok(mergeVerifyReports(reports).ok, 'and verified')
  t.ok([...c.holder.cores.values()].every((e) => e.using === 0), 'none left in use')
  await eventually('closed again down to the bound', () => c.holder.openCount <= BOUND)
  t.pass(`back to ${c.holder.openCount} open`)
})

test('open cores: a block damaged at rest in a closed core — verify names it, repair fetches it again from the agency', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const hex = key.toString('hex')
  await damageAtRest(c, key, 1)
  t.absent(c.holder.cores.get(hex)!.core, 'the damaged core is closed when verify starts')

  const failed = await verifyHandler(c.embD.host, { args: [], opts: {} }, io).then(
    () => null,
    (e: unknown) => e as EmbassyError
  )
  t.is(failed?.code, 'VERIFY_FAILED', 'verify fails')
  const report = failed!.details as unknown as VerifyReport
  t.is(report.cores.length, DATASETS + 1, 'every held core in the report')
  const bad = report.cores.filter((r) => r.failures.length > 0)
  t.alike(bad.map((r) => [r.key, r.failures.map((f) => f.index)]), [[toZ32(key), [1]]], 'block 1 of that core named, nothing else')
  t.absent(c.holder.cores.get(hex)!.core, 'closed again after its window')

  const repaired = (await repairHandler(c.embD.host, { args: [], opts: {} }, io)) as RepairReport
  t.ok(repaired.ok, 'repair succeeds')
  t.alike(repaired.cores.map((r) => [r.key, r.blocks.map((b) => [b.index, b.outcome])]), [[toZ32(key), [[1, 'repaired']]]], 'block 1 repaired')
  const agencyCore = (await c.agency.datasets.openLog(name)).core
  const core = (await c.holder.wake(key))!
  t.alike(await storedBlock(core, 1), await storedBlock(agencyCore, 1), 'the stored bytes are the agency’s again')
  const again = await verifyHandler(c.embD.host, { args: [toZ32(key)], opts: {} }, io)
  t.ok((again as VerifyReport).ok, 'and verify')
})

test('open cores: repair of a core it opened again waits for a holder to attach — the agency, back after the repair began', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const hex = key.toString('hex')
  const good = await storedBlock((await c.agency.datasets.openLog(name)).core, 1)
  await c.agencyD.close()
  await damageAtRest(c, key, 1)
  const repairing = repairHandler(c.embD.host, { args: [toZ32(key)], opts: { timeout: '120' } }, io).then(
    (r) => r as RepairReport,
    (e: unknown) => e as EmbassyError
  )
  // Its window opened the core (it reads it until the repair ends); no holder is connected.
  await Promise.race([eventually('the repair holds the damaged core', () => (c.holder.cores.get(hex)!.using > 0 ? true : null)), repairing])
  const agencyD = await startDaemon(t, c.agencyDir, c.bootstrap)
  t.ok(agencyD.host.online, 'the agency is back')
  const report = await repairing
  t.absent(report instanceof EmbassyError, report instanceof EmbassyError ? report.message : 'repaired')
  const r = report as RepairReport
  t.alike(r.cores.map((x) => [x.key, x.peers, x.blocks.map((b) => [b.index, b.outcome])]), [[toZ32(key), 1, [[1, 'repaired']]]], 'block 1 repaired from the agency once it attached')
  const core = (await c.holder.wake(key))!
  t.alike(await storedBlock(core, 1), good, 'the stored bytes are the agency’s again')
})

test('open cores: the agency appends to a closed core — the embassy opens it again, fetches, receipts', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const before = c.holder.stats.reopened
  await c.agency.append(name, [{ late: 1 }, { late: 2 }, { late: 3 }])
  const log = await c.agency.datasets.openLog(name)
  t.is(log.core.length, 5)
  await eventually('the agency sees the embassy hold the new records', async () => {
    const d = (await c.agency.custody()).datasets.find((x) => x.name === name)
    return d && d.embassies.some((e) => e.heldLength === 5 && e.behindBlocks === 0)
  }, 60_000)
  t.ok(c.holder.stats.reopened > before, 'the closed core was opened again')
  const e = c.holder.cores.get(key.toString('hex'))!
  const length = e.core ? e.core.contiguousLength : e.contiguousLength
  t.is(length, 5, 'the embassy holds all five blocks')
})

test('open cores: a mirror reads a dataset whose core the embassy closed, the agency gone', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const capability = c.agency.capability()
  await c.agencyD.close()
  const mirrorD = await startDaemon(t, await initDir(t, 'mirror'), c.bootstrap)
  await pair(c.embD, mirrorD, { capability })
  const mirror = (await mirrorD.host.mirror()) as Mirror
  const log = await eventually('the mirror opens the dataset', async () => mirror.openLog(name).catch(() => null), 60_000)
  const records = await eventually('both records read', async () => {
    const out: Array<{ i: number }> = []
    try {
      for await (const r of log.read({ start: 0, end: 2, wait: true, timeout: 5000 })) out.push(JSON.parse(r.text) as { i: number })
    } catch {
      return null
    }
    return out.length === 2 ? out : null
  }, 60_000)
  t.alike(records.map((r) => r.i), [Number(name.slice(3)), Number(name.slice(3))], 'the records, decrypted and verified')
  t.ok(c.holder.stats.reopened >= 1 && c.holder.cores.get(key.toString('hex')), 'served by opening the closed core again')
})

test('open cores: an audit of a closed core is answered from the embassy’s storage', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { key } = await closedDataset(c)
  const results = await c.agency.desk.audits.auditNow({ cores: new Set([toZ32(key)]), blocks: 2 })
  t.is(results.length, 1, 'one audit')
  t.is(results[0]!.error, undefined, 'no error')
  t.ok(results[0]!.sampled > 0 && results[0]!.passed === results[0]!.sampled && results[0]!.failed === 0, `every sampled block proven (${results[0]!.passed}/${results[0]!.sampled})`)
})

test('open cores: a rewrite by the writer’s key, offered while the core is closed, is refused and alarmed', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const log = await c.agency.datasets.openLog(name)
  await log.core.truncate(1)
  await c.agency.append(name, [{ rewritten: true }, { rewritten: 2 }])
  t.is(log.core.fork, 1)
  const coreZ = toZ32(key)
  await eventually('history-rewrite alarm on the embassy', () => c.embassy.alarms.find((a) => a.kind === 'history-rewrite' && a.core === coreZ), 60_000)
  const e = c.holder.cores.get(key.toString('hex'))!
  const held = e.core ?? (await c.holder.wake(key))
  t.is(held!.fork, 0, 'the embassy keeps fork 0')
  t.is(held!.length, 2, 'and both original blocks')
  t.ok(!!(await held!.get(1, { wait: false })), 'the original second block is still there')
})

test('open cores: appended notices from anyone but the followed agency, or about what is held, open nothing', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { key } = await closedDataset(c)
  const agencyPeer = c.embD.network!.connectedTo(c.agencyD.host.node.nodeKey)!
  const before = c.holder.stats.reopened
  const catalog = c.agency.catalogKey
  const grew = { catalog, cores: [{ core: key, length: 1000, fork: 0 }] }
  const fakeMirror = { ...agencyPeer, role: 'mirror' } as unknown as Peer
  c.embassy.handlers(fakeMirror).appended!(grew)
  const stranger = { ...agencyPeer, key: Buffer.alloc(32, 7), id: Buffer.alloc(32, 7).toString('hex') } as unknown as Peer
  c.embassy.handlers(stranger).appended!(grew)
  c.embassy.handlers(agencyPeer).appended!({ catalog: Buffer.alloc(32, 9), cores: [{ core: key, length: 1000, fork: 0 }] })
  c.embassy.handlers(agencyPeer).appended!({ catalog, cores: [{ core: Buffer.alloc(32, 3), length: 5, fork: 0 }] })
  c.embassy.handlers(agencyPeer).appended!({ catalog, cores: [{ core: key, length: 2, fork: 0 }] })
  t.is(c.holder.stats.reopened, before, 'a mirror, a stranger, another catalog, an unknown core, a length already held: nothing opened')
  t.absent(c.holder.cores.get(key.toString('hex'))!.core, 'the core stays closed')
  // Positive control: the agency saying the core grew opens it (the length is a hint; nothing
  // beyond the writer's signed length is fetched).
  c.embassy.handlers(agencyPeer).appended!(grew)
  await eventually('the core opened', () => c.holder.stats.reopened > before)
  t.pass('the followed agency’s notice opens it')
})

test('open cores: 40 datasets through a bound of 4 — every one held and receipted; after a restart the agency’s appends still arrive', { timeout: 300_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await agencyDir(t), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  const count = 40
  for (let i = 0; i < count; i++) {
    await agency.createDataset(`ds-${i}`)
    await agency.append(`ds-${i}`, [{ i }])
  }
  const dir = await embassyDir(t, 4)
  let embD = await startDaemon(t, dir, bootstrap)
  let embassy = (await embD.host.embassy()) as Embassy
  await pair(agencyD, embD)
  const heldAt = (names: Map<string, number>) =>
    eventually('the agency sees every dataset held', async () => {
      const custody = await agency.custody()
      return custody.datasets.length === count && custody.datasets.every((d) => d.embassies.some((e) => e.heldLength === (names.get(d.name) ?? 1) && e.behindBlocks === 0))
    }, 120_000)
  await heldAt(new Map())
  t.comment('held')
  const first = embassy.openCores()
  t.is(first.held, count, 'every dataset core held')
  t.ok(first.open <= 4 && first.closes >= count - 4, `at most 4 open (${first.open}), ${first.closes} closed on the way`)

  // Restart: the embassy opens its cores again within the bound; later appends to any dataset
  // (closed ones included) reach it and are receipted.
  await embD.close()
  t.comment('closed')
  embD = await startDaemon(t, dir, bootstrap)
  t.comment('restarted')
  embassy = (await embD.host.embassy()) as Embassy
  const grown = new Map<string, number>()
  for (const i of [0, 13, 27, 39]) {
    await agency.append(`ds-${i}`, [{ i, again: true }])
    grown.set(`ds-${i}`, 2)
  }
  await heldAt(grown)
  t.comment('held again')
  const after = embassy.openCores()
  t.is(after.held, count, 'every dataset core held after the restart')
  await eventually('settled to the bound', () => embassy.openCores().open <= 4)
})

test('open cores: maxOpenCores must be a whole number from 1', async (t) => {
  const base = { ...defaultConfig('embassy') }
  for (const bad of [0, -1, 1.5, '12', null, 2_000_000]) {
    t.exception(() => validateConfig({ ...base, maxOpenCores: bad }), /maxOpenCores/, `refused: ${JSON.stringify(bad)}`)
  }
  t.is(validateConfig({ ...base, maxOpenCores: 64 }).maxOpenCores, 64, 'a whole number is kept')
  t.is(validateConfig(base).maxOpenCores, undefined, 'absent: the default (DEFAULT_MAX_OPEN_CORES)')
})

/**
 * A head of dataset `name` at its held length, signed with the agency's key (stolen) over other
 * blocks: a second writer of the same core, in a store of its own.
 */
async function forgedHead(t: Test, c: Cluster, name: string, length: number) {
  const info = (await c.agency.datasets.infos()).find((d) => d.name === name)!
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'forge-'))
  const writer = new Corestore(tmp, { primaryKey: Buffer.from(c.agencyD.host.node.store.primaryKey!), unsafe: true })
  t.teardown(async () => {
    await writer.close()
    await fs.rm(tmp, { recursive: true, force: true })
  })
  const w = writer.get({ name: datasetCoreName(info.id) })
  await w.ready()
  for (let i = 0; i < length; i++) await w.append(Buffer.from(`forged ${i}`))
  return (await signedHead(w))!
}

test('open cores: heads peers send for a closed core are checked — a known one opens nothing and counts its cosigner (the sender’s own cosignature only); one of another history (the writer’s stolen key) is an equivocation, reported or sent', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const guard = c.embassy.guard
  const { name, key } = await closedDataset(c)
  const e = c.holder.cores.get(key.toString('hex'))!
  const own = guard.heads.at(key, e.length, e.fork)
  t.ok(own, `the head it held (length ${e.length}) was witnessed as it closed`)
  // Heads as a peer sends them: cosigned by that peer (here the agency's connection and node key).
  const peer = c.embD.network!.connectedTo(c.agencyD.host.node.nodeKey)!
  const other = c.agencyD.host.node.keyPair
  const reopened = c.holder.stats.reopened

  // A head cosigned by a key that is not the sender's counts no one: any key can sign.
  const stranger = crypto.keyPair()
  guard.handlers(peer).head!(signWitnessedHead(stranger, { core: key, length: own!.length, fork: own!.fork, treeHash: own!.treeHash, agencySignature: own!.agencySignature, time: Date.now() }))
  await eventually('bad-signature for a head its sender did not cosign', () => c.embassy.alarms.find((a) => a.kind === 'bad-signature' && a.core === toZ32(key) && a.detail.includes(toZ32(stranger.publicKey))))
  t.is(guard.heads.newest(key)?.cosigners, 1, 'not counted')

  // The peer cosigns the same head: counted, and the core stays closed.
  guard.handlers(peer).head!(signWitnessedHead(other, { core: key, length: own!.length, fork: own!.fork, treeHash: own!.treeHash, agencySignature: own!.agencySignature, time: Date.now() }))
  await eventually('the cosigner counted', () => guard.heads.newest(key)?.cosigners === 2)
  t.is(c.holder.stats.reopened, reopened, 'nothing was opened to check it')
  t.absent(e.core, 'the core is still closed')

  // The writer's stolen key signs another history at the same length, and a peer passes it on.
  const forged = await forgedHead(t, c, name, e.length)
  t.is(forged.length, e.length)
  t.not(forged.treeHash.toString('hex'), Buffer.from(own!.treeHash).toString('hex'), 'another tree at that length')
  guard.handlers(peer).head!(signWitnessedHead(other, { core: key, length: forged.length, fork: forged.fork, treeHash: forged.treeHash, agencySignature: forged.signature, time: Date.now() }))
  const alarm = await eventually('equivocation on the embassy', () => c.embassy.alarms.find((a) => a.kind === 'equivocation' && a.core === toZ32(key)))
  t.is(alarm.evidence?.length, 2, 'both heads kept as evidence')
  t.alike(new Set(alarm.evidence!.map((h) => h.treeHash)), new Set([Buffer.from(own!.treeHash).toString('hex'), forged.treeHash.toString('hex')]), 'its own head and the forged one')

  // Another holder reports an equivocation of a second closed core, both heads attached: checked
  // against the writer's key (the core opened for it) and alarmed here too.
  const second = await eventually('a second closed core', async () => {
    for (const d of await c.agency.list()) {
      const log = await c.agency.datasets.openLog(d.name)
      const x = c.holder.cores.get(log.core.key!.toString('hex'))
      if (d.name !== name && x && !x.core && !x.busy && guard.heads.at(log.core.key!, x.length, x.fork)) return { name: d.name, key: log.core.key!, entry: x }
    }
    return null
  })
  const held = guard.heads.at(second.key, second.entry.length, second.entry.fork)!
  const forged2 = await forgedHead(t, c, second.name, second.entry.length)
  const b = signWitnessedHead(other, { core: second.key, length: forged2.length, fork: forged2.fork, treeHash: forged2.treeHash, agencySignature: forged2.signature, time: Date.now() })
  guard.handlers(peer).alarm!({ code: AlarmCode.EQUIVOCATION, core: second.key, length: held.length, fork: held.fork, offeredLength: b.length, offeredFork: b.fork, offeredBy: Buffer.alloc(32), time: Date.now(), heads: [held, b] })
  const reported = await eventually('the reported equivocation on the embassy', () => c.embassy.alarms.find((a) => a.kind === 'equivocation' && a.core === toZ32(second.key)))
  t.is(reported.reportedBy, toZ32(c.agencyD.host.node.nodeKey), 'as reported by that peer')

  // Nothing of what the embassy verified changed.
  for (const k of [key, second.key]) {
    const core = (await c.holder.wake(k))!
    const log = await c.agency.datasets.openLog((await c.agency.list()).find((d) => d.name === (k === key ? name : second.name))!.name)
    t.is(core.fork, 0)
    t.is(core.length, log.core.length, 'the length it held')
    t.alike(Buffer.from(await core.treeHash()), Buffer.from(await log.core.treeHash()), 'the agency’s history')
  }
})

test('open cores: a peer that connects is greeted with the witnessed heads of closed cores too, and again with those witnessed while it was away', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const guard = c.embassy.guard
  const { name, key } = await closedDataset(c)
  const e = c.holder.cores.get(key.toString('hex'))!
  const sent: WitnessedHead[] = []
  const peer = {
    key: Buffer.from(crypto.keyPair().publicKey),
    handshake: { catalogs: [c.agency.catalogKey] },
    channel: { send: (name: string, m: WitnessedHead) => name === 'head' && sent.push(m) }
  } as unknown as Peer
  const greeted = (k: Buffer) => sent.filter((h) => Buffer.from(h.core).equals(k))
  guard.greet(peer)
  t.is(greeted(key).length, 1, 'a peer not met since this node started gets the closed core’s head')
  t.is(greeted(key)[0]!.length, e.length, 'at the length it holds')
  const closed = [...c.holder.cores.values()].filter((x) => !x.core && !x.busy)
  t.ok(closed.every((x) => greeted(x.key).length === 1), `and every closed core’s head (${closed.length} closed: each witnessed as it closed)`)

  // It goes; the agency appends to the closed core, which opens, fetches and is witnessed again.
  guard.farewell(peer)
  await c.agency.append(name, [{ while: 'away' }])
  await eventually('witnessed at the new length', () => guard.heads.at(key, 3, 0))
  // Other cores asked for push it out of the bound: closed again, at length 3.
  await eventually('closed again', async () => {
    if (!e.core && !e.busy) return true
    const other = [...c.holder.cores.values()].find((x) => !x.core && !x.busy)
    if (other) await c.holder.wake(other.key)
    return false
  })
  t.is(e.length, 3)
  sent.length = 0
  guard.greet(peer)
  t.is(greeted(key).length, 1, 'back: it gets the closed core’s head witnessed while it was away')
  t.is(greeted(key)[0]!.length, 3, 'the new one')
})

test('open cores: blocks that land while a held core’s session is closed — opened again, it says it caught up at the new length', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t)
  const { name, key } = await closedDataset(c)
  const e = c.holder.cores.get(key.toString('hex'))!
  // Another session of the same core on the embassy's store (as an audit's or a reader's would be)
  // keeps Hypercore's core open, and a replication stream of its own brings it the agency's blocks
  // while the holder's session is closed.
  const other = c.embD.host.node.store.get({ key })
  await other.ready()
  const s1 = c.agencyD.host.node.store.replicate(true)
  const s2 = c.embD.host.node.store.replicate(false)
  s1.pipe(s2).pipe(s1)
  t.teardown(async () => {
    s1.destroy()
    s2.destroy()
    await other.close()
  })
  other.download({ start: 0, end: -1 })
  // The agency's notice of the append would open the holder's session again at once (racing the
  // block): held back here, as an agency of an older version sends none.
  c.holder.announce = () => {}
  await c.agency.append(name, [{ landed: 'while closed' }])
  await eventually('the block landed in the core', async () => other.contiguousLength === 3)
  t.absent(e.core, 'the holder’s session of it is still closed')
  const caught: number[] = []
  c.holder.on('caught-up', (core) => core.key!.equals(key) && caught.push(core.length))
  const core = (await c.holder.wake(key))!
  t.is(core.contiguousLength, 3, 'opened again, complete at the new length')
  t.alike(caught, [3], 'and the holder says it caught up there (no block arrives to say it)')
})
