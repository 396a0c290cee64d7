/**
 * History no one can erase: append-only holders refuse signed rewrites (and say so, everywhere),
 * witness each other's heads, and catch an equivocating writer.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import { datasetCoreName } from '../lib/data/datasets.js'
import { signedHead, treeHashAt, verifySignedHead } from '../lib/data/tree.js'
import { EmbassyNode, toZ32, type Agency, type Daemon, type Embassy, type Mirror } from '../lib/index.js'
import { eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

async function cluster(t: test.Assert, embassies: number) {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyD = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 10 }, (_, i) => ({ original: i })))
  const log = await agency.datasets.openLog('register')
  const embs: Daemon[] = []
  for (let i = 0; i < embassies; i++) {
    const d = await startDaemon(t, await initDir(t, 'embassy', `embassy-${i}`), bootstrap)
    await pair(agencyD, d)
    embs.push(d)
  }
  for (const e of embs) {
    const emb = await embassy(e)
    await eventually('embassy holds 10', () => heldCore(emb, log.core.key!)?.contiguousLength === 10)
  }
  return { bootstrap, agencyD, agency, log, embs }
}

/** The embassy's status row for core `key`. */
function heldCore(emb: Embassy, key: Buffer) {
  const z = toZ32(key)
  return emb.holdings().flatMap((h) => h.cores).find((c) => c.key === z) ?? null
}

async function embassy(d: Daemon): Promise<Embassy> {
  return (await d.host.embassy()) as Embassy
}

test('history: a signed truncation never erases an embassy copy; both sides alarm; a mirror reads the original records through the embassy', async (t) => {
  const { bootstrap, agencyD, agency, log, embs } = await cluster(t, 1)
  const embD = embs[0]!
  const emb = await embassy(embD)
  const coreZ = toZ32(log.core.key!)
  const capability = agency.capability()

  // The agency's key holder rewrites history: truncate to 3, append one record.
  const rewrittenAt = Date.now()
  await log.core.truncate(3)
  await agency.append('register', [{ rewritten: true }])
  t.is(log.core.length, 4)
  t.is(log.core.fork, 1)

  const alarm = await eventually('history-rewrite alarm on the embassy', () => emb.alarms.find((a) => a.kind === 'history-rewrite' && a.core === coreZ))
  t.comment(`rewrite → history-rewrite alarm on the embassy: ${Date.now() - rewrittenAt} ms`)
  t.is(alarm.peer, toZ32(agencyD.host.node.nodeKey), 'names the peer that offered it')
  t.alike(alarm.held?.length, 10)
  t.alike(alarm.held?.fork, 0)
  t.alike(alarm.offered, { length: 4, fork: 1 })
  const held = heldCore(emb, log.core.key!)!
  t.is(held.length, 10, 'the embassy keeps the length it verified')
  t.is(held.contiguousLength, 10, 'and every block of it')
  t.is(held.fork, 0, 'on the fork it verified')
  t.alike(held.offered, { length: 4, fork: 1 }, 'the offered head is shown beside it')
  const status = (await emb.status()) as { alarms: Array<{ kind: string }> }
  t.ok(status.alarms.some((a) => a.kind === 'history-rewrite'), 'embassy status --json lists it under alarms')

  const reported = await eventually('the embassy reported it to the agency', async () => (await agency.custody()).alarms.find((a) => a.kind === 'history-rewrite' && a.core === coreZ))
  t.comment(`rewrite → history-rewrite alarm at the agency: ${Date.now() - rewrittenAt} ms`)
  t.is(reported.reportedBy, toZ32(embD.host.node.nodeKey))
  const row = await eventually('custody shows pre-rewrite history', async () => {
    const r = (await agency.custody()).datasets.find((d) => d.name === 'register')?.embassies.find((e) => e.nodeKey === toZ32(embD.host.node.nodeKey))
    return r && r.preRewrite.length > 0 ? r : null
  })
  t.alike(row.preRewrite, [{ core: coreZ, length: 10, fork: 0 }])
  t.ok(row.behindBlocks > 0, 'not shown as caught up')

  // The agency goes away; a fresh mirror reads through the embassy: the original ten records.
  await agencyD.close()
  const mirrorD = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(embD, mirrorD, { capability })
  const mirror = (await mirrorD.host.mirror()) as Mirror
  const records = await eventually('mirror reads 10 records', async () => {
    const out: unknown[] = []
    for await (const r of mirror.read('register', { wait: false })) out.push(JSON.parse(r.text))
    return out.length === 10 ? out : null
  }, 60_000, 200)
  t.alike(records, Array.from({ length: 10 }, (_, i) => ({ original: i })), 'exactly the original history')
  t.is(heldCore(emb, log.core.key!)?.length, 10)
})

test('history: an accepted rewrite is taken; the holder is append-only again on the new fork', async (t) => {
  const { agency, log, embs } = await cluster(t, 1)
  const embD = embs[0]!
  const emb = await embassy(embD)
  await log.core.truncate(5)
  await agency.append('register', [{ corrected: true }])
  await eventually('refused', () => emb.alarms.some((a) => a.kind === 'history-rewrite'))
  t.is(heldCore(emb, log.core.key!)?.fork, 0, 'refused until the operator acts')
  const r = emb.acceptRewrite(log.core.key!)
  t.is(r.fork, 1)
  t.alike(embD.host.node.config.acceptRewrites, { [toZ32(log.core.key!)]: 1 }, 'persisted')
  await eventually('the accepted fork is taken', () => {
    const c = heldCore(emb, log.core.key!)
    return c && c.fork === 1 && c.length === 6 && c.contiguousLength === 6
  })
  // Append-only again on the new fork: a further rewrite is refused.
  await log.core.truncate(2)
  await agency.append('register', [{ again: true }])
  await eventually('a second rewrite is refused again', () => emb.alarms.some((a) => a.kind === 'history-rewrite' && a.offered?.fork === 2))
  t.is(heldCore(emb, log.core.key!)?.fork, 1)
})

test('history: an equivocating writer (two different blocks at one length, one to each embassy) raises equivocation on both embassies', async (t) => {
  const { bootstrap, agencyD, agency, log, embs } = await cluster(t, 2)
  const [e1D, e2D] = embs as [Daemon, Daemon]
  const e1 = await embassy(e1D)
  // The agency lists its embassies to each other: they admit and will dial each other.
  await eventually('holders learnt', () => (e1D.host.node.config.follow[0]?.holders ?? []).length === 1 && (e2D.host.node.config.follow[0]?.holders ?? []).length === 1)
  const info = (await agency.datasets.infos()).find((d) => d.name === 'register')!
  const primaryKey = Buffer.from(agencyD.host.node.store.primaryKey!)

  // E2 stops; the agency appends A at length 10 (E1 gets it), then stops too.
  await e2D.close()
  await agency.append('register', [{ version: 'A' }])
  await eventually('E1 holds A', () => heldCore(e1, log.core.key!)?.contiguousLength === 11)
  await agencyD.close()

  // A second writer with the same key (a stolen primary key) appends B at length 10 and shows it
  // to E2 alone (in-process, straight from E2's storage while E2 is stopped).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'equivocate-'))
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const writer = new Corestore(tmp, { primaryKey, unsafe: true })
  const e2node = new EmbassyNode(e2D.host.node.dir)
  await e2node.ready()
  const w = writer.get({ name: datasetCoreName(info.id) })
  await w.ready()
  t.alike(w.key, log.core.key, 'the same core, writable with the stolen key')
  const e2core = e2node.store.get({ key: log.core.key!, allowFork: false })
  await e2core.ready()
  const s1 = writer.replicate(true)
  const s2 = e2node.store.replicate(false)
  s1.pipe(s2).pipe(s1)
  await w.update({ wait: true, force: true })
  t.is(w.length, 10, 'the second writer sees the head E2 holds')
  await w.append(Buffer.from('version B'))
  e2core.download({ start: 0, end: -1 })
  await eventually('E2 takes B at length 10', () => e2core.contiguousLength === 11)
  s1.destroy()
  s2.destroy()
  await e2core.close()
  await writer.close()
  await e2node.close()

  // E2 comes back: it and E1 know each other from the agency's holder list, meet, and compare heads.
  const restartedAt = Date.now()
  const e2again = await startDaemon(t, e2D.host.node.dir, bootstrap)
  const e2b = await embassy(e2again)
  const coreZ = toZ32(log.core.key!)
  const onE1 = await eventually('equivocation on E1', () => e1.alarms.find((a) => a.kind === 'equivocation' && a.core === coreZ), 60_000)
  const onE2 = await eventually('equivocation on E2', () => e2b.alarms.find((a) => a.kind === 'equivocation' && a.core === coreZ), 60_000)
  t.comment(`E2 restarted → equivocation on E1 ${onE1.time - restartedAt} ms, on E2 ${onE2.time - restartedAt} ms`)
  for (const a of [onE1, onE2]) {
    t.is(a.evidence?.length, 2, 'both heads kept as evidence')
    const [x, y] = a.evidence!
    t.is(x!.length, y!.length, 'same length')
    t.is(x!.fork, y!.fork, 'same fork')
    t.not(x!.treeHash, y!.treeHash, 'different trees')
    t.ok(x!.signature && y!.signature, 'both carry the writer\'s signature')
  }
  t.is(heldCore(e1, log.core.key!)?.length, 11, 'E1 keeps what it verified')
  t.is(heldCore(e2b, log.core.key!)?.length, 11, 'E2 keeps what it verified')
})

test('history: a holder’s signed head needs no block — the writer gone before its last block arrived, it is still witnessed at once', async (t) => {
  const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'head-w-')), fs.mkdtempSync(path.join(os.tmpdir(), 'head-r-'))]
  t.teardown(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  })
  const ws = new Corestore(dirs[0]!)
  const rs = new Corestore(dirs[1]!)
  t.teardown(async () => {
    await rs.close()
    await ws.close()
  })
  const w = ws.get({ name: 'log' })
  await w.append([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')])
  const r = rs.get({ key: w.key! })
  await r.ready()
  const s1 = ws.replicate(true)
  const s2 = rs.replicate(false)
  s1.pipe(s2).pipe(s1)
  // The signed length arrives (an upgrade), none of the blocks: nothing asks for them.
  await r.update({ wait: true })
  s1.destroy()
  s2.destroy()
  t.is(r.length, 3, 'the holder verified the writer’s length 3')
  t.absent(await r.has(2), 'without its last block, and no peer left to fetch it from')
  const head = await signedHead(r)
  t.ok(head, 'a head to witness')
  t.is(head!.length, 3)
  t.alike(head!.treeHash, Buffer.from(await w.treeHash()), 'the writer’s tree hash at that length')
  t.ok(verifySignedHead(r, { ...head! }), 'with the writer’s signature over it')
  t.alike(await treeHashAt(r, 3), Buffer.from(await w.treeHash()), 'the tree hash at that length, as receipts and heads compare it, needs no block either')
})

test('history: the tree hash at the signed length, from the roots in memory, is Hypercore’s at every length', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tree-'))
  const store = new Corestore(dir)
  t.teardown(async () => {
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const core = store.get({ name: 'log' })
  const differ: string[] = []
  for (let length = 1; length <= 70; length++) {
    await core.append(Buffer.alloc(length % 7, length))
    for (const at of length > 1 ? [length, length - 1] : [length]) {
      if (!(await treeHashAt(core, at)).equals(Buffer.from(await core.treeHash(at)))) differ.push(`${at} of ${length}`)
    }
  }
  t.alike(differ, [], 'the same at lengths 1 to 70, at and below the signed length')
})
