import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import type Hypercore from 'hypercore'
import { Daemon, EmbassyNode, NodeHost, toZ32, type Agency, type Embassy } from '../lib/index.js'
import { cli, eventually, initDir, pair, startDaemon, testnet, type Test } from './helpers/index.js'

type T = Test

interface Kit {
  primaryKey: Buffer
  readKey: Buffer
  allow: string[]
}

/** Holds the agency's records? (custody proven by a receipt) */
async function held(agency: Agency, embKey: string, length: number): Promise<boolean> {
  const s = await agency.custody()
  return s.datasets.every((d) => (d.embassies.find((e) => e.nodeKey === embKey)?.heldLength ?? 0) >= length)
}

/** A restored agency (kit contents) in a new directory, with `restore` settings; not started. */
async function restoreDir(t: T, kit: Kit, settings: { force?: boolean; quorum?: number; backfillRate?: number } = {}): Promise<string> {
  const dir = path.join(await t.tmp(), 'restored')
  await EmbassyNode.init(dir, { role: 'agency', name: 'agency', primaryKey: kit.primaryKey, readKey: kit.readKey })
  const host = new NodeHost(dir)
  await host.ready()
  host.node.updateConfig((c) => {
    c.allow = [...kit.allow]
    if (Object.keys(settings).length > 0) c.restore = settings
  })
  await host.close()
  return dir
}

function startLater(t: T, dir: string, bootstrap: string[]): Daemon {
  const d = new Daemon({ dir, bootstrap })
  t.teardown(() => d.close(), { order: 0, force: true })
  return d
}

/** The core of `register` on a node (agency: its writable core; embassy: its blind copy). */
async function registerCore(d: Daemon, key: string): Promise<Hypercore> {
  const role = await d.host.role()
  const ref = (await role.heldCores()).find((r) => toZ32(r.core.key!) === key)
  if (!ref) throw new Error(`no core ${key}`)
  return ref.core
}

/**
 * The issue's scenario: E1 stopped at 10, only E2 got 10–14, then the agency is lost. Returns the
 * kit contents, E1 running again, E2's directory (stopped) and the register core key.
 */
async function staleScenario(t: T) {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 10 }, (_, i) => ({ transfer: i, to: 'Jaan' })))
  const e1Dir = await initDir(t, 'embassy', 'e1')
  const e2Dir = await initDir(t, 'embassy', 'e2')
  let e1 = await startDaemon(t, e1Dir, bootstrap)
  const e2 = await startDaemon(t, e2Dir, bootstrap)
  await pair(agencyD, e1)
  await pair(agencyD, e2)
  const k1 = toZ32(e1.host.node.nodeKey)
  const k2 = toZ32(e2.host.node.nodeKey)
  await eventually('both embassies hold blocks 0–9', async () => (await held(agency, k1, 10)) && (await held(agency, k2, 10)))
  await e1.close()
  await agency.append('register', Array.from({ length: 5 }, (_, i) => ({ transfer: 10 + i, original: true })))
  await eventually('E2 alone holds blocks 10–14', () => held(agency, k2, 15))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  const kit: Kit = { primaryKey: Buffer.from(agencyD.host.node.store.primaryKey!), readKey: Buffer.from(agency.readKey), allow: [...agencyD.host.node.config.allow] }
  await agencyD.close()
  await e2.close()
  e1 = await startDaemon(t, e1Dir, bootstrap)
  return { bootstrap, kit, e1, e2Dir, key }
}

/** An agency with a `register` of `n` records, and one embassy that proved it holds them. */
async function homeWithEmbassy(t: T, n: number) {
  const bootstrap = await testnet(t)
  const homeDir = await initDir(t, 'agency', 'agency')
  const home = await startDaemon(t, homeDir, bootstrap)
  const agency = (await home.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: n }, (_, i) => ({ i })))
  const embDir = await initDir(t, 'embassy', 'e')
  const emb = await startDaemon(t, embDir, bootstrap)
  await pair(home, emb)
  const ek = toZ32(emb.host.node.nodeKey)
  await eventually(`embassy holds ${n}`, () => held(agency, ek, n))
  const key = (await agency.list()).find((d) => d.name === 'register')!.key
  return { bootstrap, homeDir, home, agency, embDir, emb, ek, key }
}

/** Starts the agency in `dir` again, its notices (events) recorded from before it goes online. */
async function startWatched(t: T, dir: string, bootstrap: string[]) {
  const daemon = new Daemon({ dir, bootstrap })
  t.teardown(() => daemon.close(), { order: 0, force: true })
  const notices: string[] = []
  await daemon.host.ready()
  const agency = (await daemon.host.agency()) as Agency
  agency.on('notice', (n) => notices.push(n.event))
  await daemon.ready()
  return { daemon, agency, notices }
}

/** Raw (encrypted) blocks of a core, each with the fork it was written on. */
async function rawBlocks(core: Hypercore, forkFrom: number, fork: number): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (let i = 0; i < core.length; i++) {
    const block = await core.get(i, { raw: true })
    out.set(`${i < forkFrom ? 0 : fork}:${i}`, Buffer.from(block!).toString('hex'))
  }
  return out
}

test('safe restore: with only the stale embassy, writes are refused (NOT_SYNCED, saying what it waits for) until the newer head is reachable', async (t) => {
  const { bootstrap, kit, e1, e2Dir, key } = await staleScenario(t)
  const restoredD = startLater(t, await restoreDir(t, kit), bootstrap)
  await restoredD.ready()
  const restored = (await restoredD.host.agency()) as Agency
  await eventually('connected to E1', () => restoredD.network!.connectedTo(e1.host.node.nodeKey))
  await eventually('the gate saw E1 and waits for one more embassy', async () => /1 more of its embassies/.test((await restored.restoreStatus()).waitingFor ?? ''))
  const refused = await restored.append('register', [{ transfer: 10, forged: true }]).catch((e) => e)
  t.is(refused.code, 'NOT_SYNCED', 'append refused with only the stale embassy')
  t.ok(/quorum 2 of 2/.test(refused.message), `says what it waits for: ${refused.message}`)
  const s = await restored.restoreStatus()
  t.is(s.state, 'waiting')
  t.is(s.quorum, 2)

  // E2, with blocks 10–14, comes back: the restore takes its head.
  const e2 = await startDaemon(t, e2Dir, bootstrap)
  await eventually('writable once both embassies reported', async () => (await restored.restoreStatus()).writable, 60_000)
  const core = await registerCore(restoredD, key)
  t.is(core.length, 15, 'at the newest head (E2 held 15)')
  t.is(core.fork, 0, 'no fork needed')
  const r = await restored.append('register', [{ transfer: 15 }])
  t.is(r.length, 16, 'the append lands after the newest head')
  const e2core = await registerCore(e2, key)
  await eventually('E2 receives it', () => e2core.length === 16 && e2core.contiguousLength === 16)
  const mine = await rawBlocks(core, 0, 0)
  const theirs = await rawBlocks(e2core, 0, 0)
  for (const [at, hex] of theirs) t.is(mine.get(at), hex, `block ${at} identical`)
})

test('safe restore --force: with only the stale embassy, a new fork before the first append; no index carries two ciphertexts on one fork', async (t) => {
  const { bootstrap, kit, e1, e2Dir, key } = await staleScenario(t)
  const restoredD = startLater(t, await restoreDir(t, kit, { force: true }), bootstrap)
  await restoredD.ready()
  const restored = (await restoredD.host.agency()) as Agency
  // Writable as soon as E1 (the only embassy reachable) reported every core.
  const lengthBefore = await eventually('writes accepted', async () => {
    try {
      return (await restored.append('register', [{ transfer: 10, after: 'forced restore' }])).length - 1
    } catch (err) {
      if ((err as { code?: string }).code === 'NOT_SYNCED') return null
      throw err
    }
  }, 60_000)
  t.is(lengthBefore, 10, 'took E1\'s head: length 10')
  await restored.append('register', Array.from({ length: 4 }, (_, i) => ({ transfer: 11 + i, after: 'forced restore' })))
  const core = await registerCore(restoredD, key)
  t.is(core.length, 15)
  t.is(core.fork, 1, 'the forced restore moved the core to fork 1 before its first append')

  const e2 = await startDaemon(t, e2Dir, bootstrap)
  const e2core = await registerCore(e2, key)
  t.is(e2core.fork, 0)
  t.is(e2core.length, 15, 'E2 keeps the original blocks 10–14 (fork 0)')
  // Block level: (fork, index) → ciphertext, over the agency, E1 and E2.
  const seen = new Map<string, string>()
  let clashes = 0
  const e1core = await registerCore(e1, key)
  for (const blocks of [await rawBlocks(core, lengthBefore, core.fork), await rawBlocks(e2core, e2core.length, 0), await rawBlocks(e1core, e1core.length, 0)]) {
    for (const [at, hex] of blocks) {
      const prev = seen.get(at)
      if (prev !== undefined && prev !== hex) clashes++
      seen.set(at, hex)
    }
  }
  t.is(clashes, 0, 'no block index carries two different ciphertexts on one fork')
  t.ok(seen.has('1:10') && seen.has('0:10'), 'index 10 exists on both forks, with its own nonce each')
})

test('a node that comes back with an old copy of the agency syncs to the newest head before it writes, and does not fork', async (t) => {
  const { bootstrap, homeDir, home, agency: first, emb, key } = await homeWithEmbassy(t, 10)
  const kit: Kit = { primaryKey: Buffer.from(home.host.node.store.primaryKey!), readKey: Buffer.from(first.readKey), allow: [...home.host.node.config.allow] }
  await home.close() // the home node goes dark with its copy at 10 (a VM snapshot, a site that was cut off)

  // Meanwhile the agency runs elsewhere from its kit and writes 5 more.
  const otherD = startLater(t, await restoreDir(t, kit), bootstrap)
  await otherD.ready()
  const other = (await otherD.host.agency()) as Agency
  await eventually('restored elsewhere', async () => (await other.restoreStatus()).writable, 60_000)
  await other.append('register', Array.from({ length: 5 }, (_, i) => ({ i: 10 + i, elsewhere: true })))
  const ecore = await registerCore(emb, key)
  await eventually('the embassy holds 15', () => ecore.contiguousLength === 15)
  await otherD.close()

  // The old home node comes back to life with its stale copy.
  const { daemon: back, agency, notices } = await startWatched(t, homeDir, bootstrap)
  const core = await registerCore(back, key)
  await eventually('the stale copy syncs to the newest head', async () => core.length === 15 && (await agency.restoreStatus()).writable, 60_000)
  const r = await agency.append('register', [{ i: 15 }])
  t.is(r.length, 16, 'the append goes after the newest head, not at 10')
  t.is(core.fork, 0)
  await eventually('the embassy takes it on the same fork', () => ecore.length === 16)
  const alarms = ((await emb.host.role().then((role) => role.status())) as { alarms?: Array<{ kind: string }> }).alarms ?? []
  t.absent(alarms.some((a) => a.kind === 'equivocation' || a.kind === 'history-rewrite'), 'no fork at the embassy')
  await eventually('the stale copy says so in its log', () => notices.includes('stale-head'))
  await eventually('and backfills the blocks it was behind by', () => core.contiguousLength === 16)
  t.pass(`stale-head logged (notices: ${notices.join(', ')})`)
})

test('an agency whose store lost blocks it had signed (its ledger holds an embassy receipt beyond them) refuses writes from the start, syncs from the embassy, and appends after the newest head', async (t) => {
  const setup = await homeWithEmbassy(t, 10)
  const { bootstrap, homeDir, embDir, ek, key } = setup
  await setup.home.close()
  // The store as it is at 10 (what a disk that failed its later writes leaves behind).
  const snapshot = path.join(await t.tmp(), 'store-at-10')
  fs.cpSync(path.join(homeDir, 'store'), snapshot, { recursive: true })
  const again = await startDaemon(t, homeDir, bootstrap)
  const writer = (await again.host.agency()) as Agency
  await writer.append('register', Array.from({ length: 5 }, (_, i) => ({ i: 10 + i })))
  await eventually('the embassy proved it holds 15', () => held(writer, ek, 15))
  await again.close() // the ledger (custody.json) keeps the receipt for 15
  await setup.emb.close() // no embassy online when the agency comes back
  fs.rmSync(path.join(homeDir, 'store'), { recursive: true, force: true })
  fs.cpSync(snapshot, path.join(homeDir, 'store'), { recursive: true })
  // A copied store is refused until its device file goes (README "Moving and rebuilding a node");
  // a disk that lost writes leaves the files in place, so this is only how the test makes it.
  fs.rmSync(path.join(homeDir, 'store', 'CORESTORE'))

  const { daemon: home, agency, notices } = await startWatched(t, homeDir, bootstrap)
  const core = await registerCore(home, key)
  t.is(core.length, 10, 'the store came back at 10')
  const refused = await agency.append('register', [{ i: 10, lost: true }]).catch((e) => e)
  t.is(refused.code, 'NOT_SYNCED', 'no append on top of a copy shorter than what an embassy proved it holds')
  t.ok(/proved it holds/.test(refused.message) && /length 15/.test(refused.message), `says what it waits for: ${refused.message}`)
  t.is(core.length, 10, 'nothing appended')
  const st = await agency.restoreStatus()
  t.is(st.writable, false)
  t.is(st.state, 'waiting')
  t.ok(st.confirmedCores < st.cores, `not every head confirmed (${st.confirmedCores} of ${st.cores})`)
  t.ok(notices.includes('stale-head'), 'the log says the copy is behind')

  const emb = await startDaemon(t, embDir, bootstrap)
  await eventually('synced to the proven head', async () => core.length === 15 && (await agency.restoreStatus()).writable, 60_000)
  await eventually('every head confirmed by the embassy', async () => {
    const st = await agency.restoreStatus()
    return st.cores > 1 && st.confirmedCores === st.cores
  }, 60_000)
  const r = await agency.append('register', [{ i: 15 }])
  t.is(r.length, 16, 'the append goes after the proven head, not at 10')
  t.is(core.fork, 0, 'same fork')
  const ecore = await registerCore(emb, key)
  await eventually('the embassy takes it on the same fork', () => ecore.length === 16)
  const alarms = ((await emb.host.role().then((role) => role.status())) as { alarms?: Array<{ kind: string }> }).alarms ?? []
  t.absent(alarms.some((a) => a.kind === 'equivocation' || a.kind === 'history-rewrite'), 'no fork at the embassy')
  await eventually('and backfills the blocks it lost', () => core.contiguousLength === 16)
  t.ok(notices.includes('synced'), `synced logged (notices: ${notices.join(', ')})`)
})

test('a receipt in custody.json whose signature does not verify (a hand-edited ledger) does not hold writes back', async (t) => {
  const { bootstrap, homeDir, home, emb, ek, key } = await homeWithEmbassy(t, 3)
  await home.close()
  await emb.close()
  const file = path.join(homeDir, 'custody.json')
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'))
  t.ok(doc.receipts[ek]?.[key], 'the ledger holds the embassy receipt for the register')
  doc.receipts[ek][key].length = 1000 // raised by hand: its signature no longer matches
  fs.writeFileSync(file, JSON.stringify(doc))
  const back = await startDaemon(t, homeDir, bootstrap)
  const agency = (await back.host.agency()) as Agency
  const r = await agency.append('register', [{ i: 3 }])
  t.is(r.length, 4, 'writes go on: a receipt that does not verify proves nothing')
  t.ok((await agency.restoreStatus()).writable)
})

test('the same identity running twice, one writing: the copy that sees heads it did not write, or is told by the embassy, refuses writes and raises an alarm', async (t) => {
  const bootstrap = await testnet(t)
  const origD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const orig = (await origD.host.agency()) as Agency
  await orig.createDataset('register')
  await orig.append('register', Array.from({ length: 10 }, (_, i) => ({ i })))
  const emb = await startDaemon(t, await initDir(t, 'embassy', 'e'), bootstrap)
  await pair(origD, emb)
  await eventually('embassy holds 10', () => held(orig, toZ32(emb.host.node.nodeKey), 10))
  // As after any restart of the original: it dials its embassies itself.
  origD.network!.joinPeer(emb.host.node.nodeKey)
  const kit: Kit = { primaryKey: Buffer.from(origD.host.node.store.primaryKey!), readKey: Buffer.from(orig.readKey), allow: [...origD.host.node.config.allow] }

  // A drill done wrong: the kit imported while the original still runs.
  const twinD = startLater(t, await restoreDir(t, kit), bootstrap)
  await twinD.ready()
  const twin = (await twinD.host.agency()) as Agency
  // The twin becomes writable, or is told first by the embassy that two instances alternate.
  await eventually('the twin restored (or told of the original)', async () => {
    const s = await twin.restoreStatus()
    return s.writable || s.secondLiveNode
  }, 60_000)
  // A write by the original (refused when the embassy's report reached it first).
  await orig.append('register', [{ i: 10, by: 'the original' }]).catch((err) => t.is(err.code, 'NOT_SYNCED', 'the original was told first'))
  // The embassy keeps one connection per node key: the two knock each other off as they redial,
  // until one of them sees a head it did not write.
  const seen = await eventually('a head one of them did not write', async () => {
    if (process.env.DEBUG_RESTORE) console.error('peers', origD.network!.peers.size, twinD.network!.peers.size)
    for (const [name, a] of [['twin', twin], ['original', orig]] as const) if ((await a.restoreStatus()).secondLiveNode) return { name, a }
    return null
  }, 120_000, 500)
  t.comment(`detected by the ${seen.name}`)
  const err = await seen.a.append('register', [{ i: 11, by: seen.name }]).catch((e) => e)
  t.is(err.code, 'NOT_SYNCED', 'writes refused')
  t.is(err.details.reason, 'second-live-node')
  t.ok(/another live node/.test(err.message), err.message)
  t.ok((await seen.a.custody()).alarms.some((a) => a.kind === 'second-live-node'), 'alarm raised')
  t.is((await seen.a.restoreStatus()).state, 'waiting')
})

test('the same identity running twice, both idle: the embassy sees two instances alternate, raises an alarm, and both copies refuse writes', async (t) => {
  const bootstrap = await testnet(t)
  const origD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const orig = (await origD.host.agency()) as Agency
  await orig.createDataset('register')
  await orig.append('register', Array.from({ length: 5 }, (_, i) => ({ i })))
  const emb = await startDaemon(t, await initDir(t, 'embassy', 'e'), bootstrap)
  await pair(origD, emb)
  await eventually('embassy holds 5', () => held(orig, toZ32(emb.host.node.nodeKey), 5))
  origD.network!.joinPeer(emb.host.node.nodeKey)
  const kit: Kit = { primaryKey: Buffer.from(origD.host.node.store.primaryKey!), readKey: Buffer.from(orig.readKey), allow: [...origD.host.node.config.allow] }
  const twinD = startLater(t, await restoreDir(t, kit), bootstrap)
  await twinD.ready()
  const twin = (await twinD.host.agency()) as Agency
  t.not(twin.instance, orig.instance, 'each run has its own instance')
  // Nobody writes: the two only take turns on the embassy's one connection for their key.
  const embassy = (await emb.host.role()) as Embassy
  await eventually('the embassy raises second-live-node', () => embassy.alarms.some((a) => a.kind === 'second-live-node'), 120_000, 250)
  for (const [name, a] of [['original', orig], ['twin', twin]] as const) {
    await eventually(`the ${name} learns it and refuses writes`, async () => (await a.restoreStatus()).secondLiveNode, 120_000, 250)
    const err = await a.append('register', [{ by: name }]).catch((e) => e)
    t.is(err.code, 'NOT_SYNCED', `${name}: writes refused`)
    t.is(err.details?.reason, 'second-live-node')
    t.ok((await a.custody()).alarms.some((x) => x.kind === 'second-live-node'), `${name}: alarm raised`)
  }
})

test('a second-live-node report from one embassy of two is an alarm, not a stop (a hostile embassy cannot halt the writer)', async (t) => {
  const bootstrap = await testnet(t)
  const agD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const ag = (await agD.host.agency()) as Agency
  await ag.createDataset('register')
  const e1 = await startDaemon(t, await initDir(t, 'embassy', 'e1'), bootstrap)
  const e2 = await startDaemon(t, await initDir(t, 'embassy', 'e2'), bootstrap)
  await pair(agD, e1)
  await pair(agD, e2)
  const k1 = toZ32(e1.host.node.nodeKey)
  const agencyHex = Buffer.from(agD.host.node.nodeKey).toString('hex')
  // What a lying (or mistaken) e1 sends: a second-live-node report on its own custody channel.
  const toAgency = await eventually('e1 connected to the agency', () => e1.network!.peers.get(agencyHex) ?? null)
  toAgency.channel.send('alarm', { code: 5, core: ag.catalog.key, length: 0, fork: 0, offeredLength: 0, offeredFork: 0, offeredBy: Buffer.alloc(32), time: Date.now(), heads: [] })
  await eventually('the agency records the alarm', async () => (await ag.custody()).alarms.some((a) => a.kind === 'second-live-node' && a.peer === k1))
  t.absent((await ag.restoreStatus()).secondLiveNode, 'one report of two embassies does not stop writes')
  const r = await ag.append('register', [{ ok: true }])
  t.is(r.length, 1, 'the agency still writes')
})

test('restore options: malformed --quorum, --backfill-rate and config fields are named, nothing is written', async (t) => {
  const root = await t.tmp()
  const dir = path.join(root, 'restored')
  for (const [args, what] of [
    [['--quorum', '0'], '--quorum'],
    [['--quorum', '2.5'], '--quorum'],
    [['--quorum', 'two'], '--quorum'],
    [['--backfill-rate', '-1'], '--backfill-rate'],
    [['--backfill-rate', 'fast'], '--backfill-rate']
  ] as const) {
    const r = await cli(['kit', 'import', path.join(root, 'missing.kit'), '--dir', dir, ...args, '--json'])
    t.is(r.code, 2, `kit import ${args.join(' ')}: usage error`)
    t.is(r.json?.error?.code, 'BAD_ARGUMENT')
    t.ok(r.json?.error?.message.includes(what), r.json?.error?.message)
  }
  t.absent(fs.existsSync(dir), 'nothing written')

  const emb = await initDir(t, 'embassy', 'e')
  const onEmbassy = await cli(['run', '--dir', emb, '--bootstrap', '127.0.0.1:1', '--quorum', '2', '--json'])
  t.is(onEmbassy.code, 2, '--quorum on an embassy: usage error')
  t.ok(/restored agency/.test(onEmbassy.json?.error?.message), onEmbassy.json?.error?.message)

  const agency = await initDir(t, 'agency', 'a')
  const file = path.join(agency, 'config.json')
  const config = JSON.parse(fs.readFileSync(file, 'utf8'))
  for (const [restore, field] of [
    [{ quorum: 0 }, 'restore.quorum'],
    [{ backfillRate: -5 }, 'restore.backfillRate'],
    [{ force: 'yes' }, 'restore.force'],
    [{ quorom: 2 }, 'restore.quorom'],
    [[], '"restore"']
  ] as const) {
    fs.writeFileSync(file, JSON.stringify({ ...config, restore }))
    const r = await cli(['id', '--dir', agency, '--json'])
    t.is(r.json?.error?.code, 'BAD_CONFIG', `config restore ${JSON.stringify(restore)}: BAD_CONFIG`)
    t.ok(r.json?.error?.message.includes(field), r.json?.error?.message)
  }
})
