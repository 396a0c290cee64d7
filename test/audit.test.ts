/**
 * Audits, not claims: an embassy shows it holds the blocks by answering challenges from its own
 * copy. A lazy embassy (receipts, no blocks), a slow one, one on a protocol without challenges and
 * one whose blocks were cleared all fail; an honest one passes; hostile challenges and answers get
 * clear errors and leave the connection up; the sweep covers every block in its period.
 */
import path from 'node:path'
import fs from 'node:fs'
import test from 'brittle'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import c from 'compact-encoding'
import { Network, toZ32, type Agency, type Daemon, type Embassy, type Peer } from '../lib/index.js'
import { parseHostPort } from '../lib/node/config.js'
import {
  AUDIT_DEFAULTS,
  ChallengeAnswerer,
  Challenger,
  BLIND_AUDIT_DIR,
  blindAudit,
  auditConfidence,
  auditValue,
  planAudit,
  samplesFor,
  signReceipt,
  verifyAuditExport,
  type AuditExchange,
  type CoreAudit
} from '../lib/custody/index.js'
import {
  AnswerStatus,
  CUSTODY_MAJOR,
  CUSTODY_MINOR,
  MAX_CHALLENGE_INDICES,
  PeerRole,
  answer as answerCodec,
  challenge as challengeCodec,
  decode,
  encode,
  type Challenge
} from '../protocol/index.js'
import { eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

type T = test.Assert

/** Audit settings small enough for a test (the schedule still waits for conditions, never races). */
const FAST = { intervalMs: 300, samples: 4, periodMs: 60_000, deadlinePerBlockMs: 500, minDeadlineMs: 3_000, firstAuditMs: 0 }

async function agencyWith(t: T, bootstrap: string[], records = 40, audit: Record<string, number> = FAST) {
  const d = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  d.host.node.updateConfig((cfg) => {
    cfg.audit = audit
  })
  const agency = (await d.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: records }, (_, i) => ({ record: i, pad: 'x'.repeat(200) })))
  const log = await agency.datasets.openLog('register')
  return { d, agency, log }
}

async function honestEmbassy(t: T, bootstrap: string[], agencyD: Daemon, coreKey: Buffer, length: number, name = 'embassy') {
  const d = await startDaemon(t, await initDir(t, 'embassy', name), bootstrap)
  await pair(agencyD, d)
  const emb = (await d.host.embassy()) as Embassy
  await eventually(`${name} holds ${length}`, () => emb.holdings().flatMap((h) => h.cores).find((x) => x.key === toZ32(coreKey))?.contiguousLength === length)
  return { d, emb }
}

/**
 * A holder built from the protocol in the test: it connects as an embassy, learns the heads of
 * the agency's cores with update() only (no blocks), signs receipts for the full length, and
 * answers challenges (or not) the way `behaviour` says.
 */
async function fakeHolder(
  t: T,
  bootstrap: string[],
  agency: Agency,
  opts: { minor?: number; answer?: 'honest-api' | 'none'; cores: Buffer[] }
) {
  const dir = await t.tmp()
  const store = new Corestore(path.join(dir, 'store'))
  const keyPair = crypto.keyPair()
  const cores = opts.cores.map((key) => store.get({ key }))
  const answerer = new ChallengeAnswerer(keyPair, (key) => cores.find((x) => x.key!.equals(Buffer.from(key))) ?? null)
  const challenges: Challenge[] = []
  const network = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: opts.minor ?? CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [agency.catalog.key] }),
    isAllowed: (k) => k.equals(agency.node.nodeKey),
    scope: { entitled: () => true, catalogOfTopic: () => null },
    handlers: (peer) => ({
      challenge: (ch) => {
        challenges.push(ch)
        if (opts.answer !== 'none') answerer.handle(peer, ch)
      }
    })
  })
  t.teardown(async () => {
    await network.close()
    await store.close()
  }, { order: 0 })
  await network.ready()
  agency.allow(keyPair.publicKey)
  network.joinPeer(agency.node.nodeKey)
  const peer = await eventually('the fake holder is connected', () => network.connectedTo(agency.node.nodeKey))
  for (const core of cores) {
    await core.ready()
    await eventually('the head arrives', async () => {
      await core.update({ wait: true })
      return core.length > 0
    })
  }
  // Receipts for everything, holding nothing: the tree hash comes from the signed roots.
  for (const core of cores) {
    const r = signReceipt(keyPair, { core: core.key!, length: core.length, treeHash: await core.treeHash(core.length), fork: core.fork, time: Date.now() })
    peer.channel.send('receipt', r)
  }
  return { keyPair, key: toZ32(keyPair.publicKey), network, peer, cores, challenges, answerer, store }
}

function row(status: Awaited<ReturnType<Agency['custody']>>, dataset: string, embassy: string) {
  return status.datasets.find((d) => d.name === dataset)?.embassies.find((e) => e.nodeKey === embassy) ?? null
}

function auditsOf(agency: Agency): AuditExchange[] {
  const seen: AuditExchange[] = []
  agency.on('audit' as never, ((x: AuditExchange) => seen.push(x)) as never)
  return seen
}

test('audit: a lazy embassy (receipts, no blocks) fails its first audit and is flagged; the honest one passes', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { d: agencyD, agency, log } = await agencyWith(t, bootstrap)
  const seen = auditsOf(agency)
  const honest = await honestEmbassy(t, bootstrap, agencyD, log.core.key!, 40)
  const honestKey = toZ32(honest.d.host.node.nodeKey)
  const lazy = await fakeHolder(t, bootstrap, agency, { cores: [log.core.key!] })
  t.is(lazy.cores[0]!.contiguousLength, 0, 'the lazy embassy holds no block')

  // The receipt is accepted as custody (it only proves knowledge of the head)…
  const claimed = await eventually('the lazy receipt is counted', async () => {
    const r = row(await agency.custody(), 'register', lazy.key)
    return r && r.receiptAt !== null ? r : null
  })
  t.is(claimed.audit.state === 'failed' || claimed.heldLength === 40, true, 'before any audit a receipt is all the agency has')

  // …until the first scheduled audit.
  const lazyRow = await eventually('the lazy embassy is audited', async () => {
    const r = row(await agency.custody(), 'register', lazy.key)
    return r && r.audit.state !== 'never' ? r : null
  })
  t.is(lazyRow.audit.state, 'failed', 'the lazy embassy fails its first audit')
  t.is(lazyRow.held, false, 'and is not counted as held')
  t.is(lazyRow.heldLength, 0, 'no block of the failed core counts')
  t.ok(lazyRow.audit.failed > 0)
  const alarm = (await agency.custody()).alarms.find((a) => a.kind === 'audit-failed' && a.peer === lazy.key)
  t.ok(alarm, 'an audit-failed alarm names the lazy embassy')
  t.is(alarm?.core, toZ32(log.core.key!), 'and the core')

  const honestRow = await eventually('the honest embassy is audited', async () => {
    const r = row(await agency.custody(), 'register', honestKey)
    return r && r.audit.state !== 'never' ? r : null
  })
  t.is(honestRow.audit.state, 'passed', 'the honest embassy passes')
  t.is(honestRow.held, true)
  t.is(honestRow.heldLength, 40)
  t.ok(honestRow.audit.sampled > 0, `sampled ${honestRow.audit.sampled}`)
  t.ok(/≥ .* % that fewer than 1 % of blocks are missing/.test(honestRow.audit.confidence), honestRow.audit.confidence)
  t.ok(seen.some((x) => x.result.embassy === honestKey && x.answer !== null), 'the audit event carries the signed answer')

  // One audit now, as `embassy audit` runs it.
  const results = await agency.desk.audits.auditNow({ blocks: 16 })
  const lazyResult = results.find((r) => r.embassy === lazy.key && r.dataset === 'register')!
  const honestResult = results.find((r) => r.embassy === honestKey && r.dataset === 'register')!
  t.is(lazyResult.sampled, 16)
  // update() may bring the head's last block along; every other sample fails.
  const lazyHas = (await Promise.all(Array.from({ length: 40 }, (_, i) => lazy.cores[0]!.has(i)))).filter(Boolean).length
  t.ok(lazyHas <= 1, `the lazy embassy holds ${lazyHas} of 40 blocks`)
  t.ok(lazyResult.failed >= 16 - lazyHas, `${lazyResult.failed} of 16 samples fail`)
  t.is(honestResult.passed, 16)
  t.is(honestResult.failed, 0)

  // The audit log is evidence: exported, it verifies offline with the public keys only.
  const file = path.join(await t.tmp(), 'audits.json')
  const exported = agency.desk.audits.log.export(file)
  t.ok(exported.entries >= 4)
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'))
  const verdict = verifyAuditExport(doc, { auditor: toZ32(agency.node.nodeKey) })
  t.ok(verdict.ok, 'every entry and every answer signature verifies')
  t.ok(verdict.answersSigned >= 2)
  doc.entries[0].body.result.ms += 1
  t.is(verifyAuditExport(doc).ok, false, 'an edited entry no longer verifies')
})

test('audit: a holder that answers after the deadline fails; its late answer is refused as stray', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { d: agencyD, agency, log } = await agencyWith(t, bootstrap, 10, { ...FAST, intervalMs: 3_600_000, firstAuditMs: 3_600_000, minDeadlineMs: 500, deadlinePerBlockMs: 100 })
  const { d: embD, emb } = await honestEmbassy(t, bootstrap, agencyD, log.core.key!, 10)
  const embKey = toZ32(embD.host.node.nodeKey)
  await eventually('the receipt is in', async () => row(await agency.custody(), 'register', embKey)?.heldLength === 10)
  const seen = auditsOf(agency)
  // The holder withholds its answer until the auditor has given up on it (no race: an event).
  let held = 0
  emb.answerer.delay = () =>
    new Promise((resolve) => {
      held++
      const check = () => (seen.some((x) => x.result.embassy === embKey && x.result.error?.includes('no answer within the deadline')) ? resolve() : setTimeout(check, 20))
      check()
    })
  const stray = agency.desk.audits.challenger.stray
  const before = stray.length
  const [result] = await agency.desk.audits.auditNow({ embassy: embKey, cores: new Set([toZ32(log.core.key!)]), blocks: 4 })
  t.ok(held >= 1, 'the holder held its answer back')
  t.is(result!.failed, 4, 'a late holder fails every sample')
  t.ok(/no answer within the deadline/.test(result!.error ?? ''), result!.error)
  await eventually('the late answer arrives and is refused', () => stray.length > before)
  t.ok(/no pending challenge/.test(stray[stray.length - 1]!.reason), stray[stray.length - 1]!.reason)
  t.is((await agency.custody()).alarms.filter((a) => a.kind === 'audit-failed' && a.peer === embKey).length, 1, 'audit-failed alarm')
  t.is(row(await agency.custody(), 'register', embKey)?.held, false)

  // Answering in time again passes, and custody counts again.
  emb.answerer.delay = null
  const [again] = await agency.desk.audits.auditNow({ embassy: embKey, cores: new Set([toZ32(log.core.key!)]), blocks: 4 })
  t.is(again!.passed, 4)
  const r = row(await agency.custody(), 'register', embKey)!
  t.is(r.audit.state, 'passed', 'a later passing audit clears the failure')
  t.is(r.held, true)
  t.is(r.heldLength, 10)
  t.ok(agency.network!.connectedTo(embD.host.node.nodeKey), 'the connection stayed up')
})

test('audit: a holder on custody minor 1 (no challenge) fails, never skipped', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { agency, log } = await agencyWith(t, bootstrap, 10, { ...FAST, intervalMs: 3_600_000, firstAuditMs: 3_600_000 })
  const old = await fakeHolder(t, bootstrap, agency, { minor: 1, cores: [log.core.key!] })
  await eventually('the receipt is in', async () => row(await agency.custody(), 'register', old.key)?.receiptAt)
  const [r] = await agency.desk.audits.auditNow({ embassy: old.key, cores: new Set([toZ32(log.core.key!)]), blocks: 5 })
  t.is(r!.sampled, 5)
  t.is(r!.failed, 5, 'every sample counts as failed')
  t.ok(/custody protocol 1\.1, which has no audit challenge/.test(r!.error ?? ''), r!.error)
  t.is(old.challenges.length, 0, 'no challenge was sent to a peer that cannot read it')
  t.is(row(await agency.custody(), 'register', old.key)?.audit.state, 'failed')
})

test('audit: with the agency stopped, blocks cleared from a stopped embassy fail an audit by a third party and by a blind auditor (Merkle-proven samples from that embassy alone); an intact embassy passes', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { d: agencyD, agency, log } = await agencyWith(t, bootstrap, 30, { ...FAST, intervalMs: 3_600_000, firstAuditMs: 3_600_000 })
  const coreKey = Buffer.from(log.core.key!)
  const agencyDir = agencyD.host.node.dir
  const embDir = await initDir(t, 'embassy', 'cleared')
  let embD = await startDaemon(t, embDir, bootstrap)
  await pair(agencyD, embD)
  const intact = await honestEmbassy(t, bootstrap, agencyD, coreKey, 30, 'intact')
  const emb = (await embD.host.embassy()) as Embassy
  await eventually('held 30', () => emb.holdings().flatMap((h) => h.cores).find((x) => x.key === toZ32(coreKey))?.contiguousLength === 30)
  void agency
  // The agency goes down; the embassy stops, loses blocks 5-29 from its storage, and comes back
  // while no other holder is up (the intact embassy would repair it: a repaired copy is a copy).
  const intactDir = intact.d.host.node.dir
  await agencyD.close()
  await intact.d.close()
  await embD.close()
  {
    const store = new Corestore(path.join(embDir, 'store'))
    const core = store.get({ key: coreKey })
    await core.ready()
    await core.clear(5, 30)
    t.is(core.contiguousLength, 5)
    await core.close()
    await store.close()
  }
  embD = await startDaemon(t, embDir, bootstrap)

  // A third party with a copy of the agency's data (here: the agency's own storage, opened while
  // the agency is down) audits both embassies directly. Its network store is empty, so nobody can
  // repair the embassy through it.
  const copy = new Corestore(path.join(agencyDir, 'store'), { readOnly: true } as never)
  t.teardown(() => copy.close())
  const own = copy.get({ key: coreKey })
  await own.ready()
  t.is(own.length, 30)
  const auditStore = new Corestore(path.join(await t.tmp(), 'auditor'))
  const embassyKeys: Buffer[] = []
  const keyPair = crypto.keyPair()
  const challenger = new Challenger(keyPair)
  const network = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store: auditStore,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.AUDITOR, capabilities: [], catalogs: [] }),
    // It dials the embassies it audits; nobody else.
    isAllowed: (k) => embassyKeys.some((e) => e.equals(k)),
    // Replicates nothing: the auditor can never repair the embassy it audits.
    scope: { entitled: () => [], catalogOfTopic: () => null },
    handlers: (peer) => ({ answer: (a) => challenger.onanswer(peer, a) })
  })
  t.teardown(async () => {
    challenger.close()
    await network.close()
    await auditStore.close()
  }, { order: 0 })
  await network.ready()
  const settings = { ...AUDIT_DEFAULTS, deadlinePerBlockMs: 500 }
  const audit = async (d: Daemon) => {
    embassyKeys.push(d.host.node.nodeKey)
    ;((await d.host.embassy()) as Embassy).allow(keyPair.publicKey)
    network.joinPeer(d.host.node.nodeKey)
    const peer = await eventually('connected to the embassy', () => network.connectedTo(d.host.node.nodeKey))
    return { peer, x: await challenger.audit(peer, own, Array.from({ length: 30 }, (_, i) => i), { dataset: 'register', settings }) }
  }
  const { peer: badPeer, x: bad } = await audit(embD)
  t.is(bad.result.sampled, 30)
  t.is(bad.result.failed, 25, 'the 25 cleared blocks fail')
  t.alike(bad.failedIndices, Array.from({ length: 25 }, (_, i) => i + 5))
  // The blind auditor: no copy at all, only the verify capability's catalog key. It fetches
  // Merkle-proven samples from each embassy alone, into a temporary store it deletes after.
  const auditorDir = await t.tmp()
  const catalogKey = Buffer.from(agency.catalog.key)
  const blindBad = await blindAudit(badPeer, { dir: auditorDir, catalogKey, samples: 30, settings: { deadlinePerBlockMs: 300, minDeadlineMs: 2_000 } })
  const badRow = blindBad.find((r) => r.core === toZ32(coreKey))!
  t.ok(badRow, 'the blind auditor found the dataset core in the catalog it replicated from the embassy')
  t.is(badRow.sampled, 30)
  t.is(badRow.failed, 25, 'the 25 cleared blocks are not served with a proof: failed')
  t.ok(blindBad.filter((r) => r.core !== toZ32(coreKey)).every((r) => r.failed === 0), 'the intact catalog passes')

  const intactD = await startDaemon(t, intactDir, bootstrap)
  const { peer: goodPeer, x: good } = await audit(intactD)
  t.is(good.result.passed, 30, 'the intact embassy passes')
  t.is(good.result.failed, 0)

  const blindGood = await blindAudit(goodPeer, { dir: auditorDir, catalogKey, samples: 30 })
  t.ok(blindGood.length >= 2 && blindGood.every((r) => r.failed === 0 && r.sampled > 0), 'the intact embassy passes the blind audit')
  t.alike(fs.readdirSync(path.join(auditorDir, BLIND_AUDIT_DIR)), [], 'the auditor keeps no block after its audits')
})

test('audit: malformed, oversized and replayed challenges and answers get clear errors; the connection stays up', { timeout: 180_000 }, async (t) => {
  // Codecs: bounds are checked before decoding.
  const ch: Challenge = { id: 7, core: Buffer.alloc(32, 1), nonce: Buffer.alloc(32, 2), indices: [1, 2, 3] }
  t.alike(decode(challengeCodec, encode(challengeCodec, ch)).indices, [1, 2, 3])
  const tooMany = encode(challengeCodec, { ...ch, indices: Array.from({ length: MAX_CHALLENGE_INDICES + 1 }, (_, i) => i) })
  t.exception(() => decode(challengeCodec, tooMany), /257 indices in one challenge \(at most 256\)/)
  t.exception(() => decode(challengeCodec, encode(challengeCodec, { ...ch, indices: [] })), /names no block/)
  // A length prefix claiming a huge array is refused before anything is allocated.
  const huge = Buffer.concat([encode(challengeCodec, ch).subarray(0, 1 + 1 + 64), Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x7f])])
  t.exception(() => decode(challengeCodec, huge), /indices in one challenge \(at most 256\)/)
  const lying = Buffer.from(encode(answerCodec, { id: 1, core: Buffer.alloc(32), nonce: Buffer.alloc(32), status: 0, time: 1, values: [Buffer.alloc(32)], signature: Buffer.alloc(64) }))
  const off = 1 + 1 + 64 + 1 + 1
  lying[off] = 200 // claims 200 values in a message that has one
  t.exception(() => decode(answerCodec, lying), /200 values in one answer do not fit/)
  t.exception(() => decode(challengeCodec, Buffer.from([0, 1, 2])), 'truncated')

  const bootstrap = await testnet(t)
  const { d: agencyD, agency, log } = await agencyWith(t, bootstrap, 10, { ...FAST, intervalMs: 3_600_000, firstAuditMs: 3_600_000 })
  const { d: embD, emb } = await honestEmbassy(t, bootstrap, agencyD, log.core.key!, 10)
  const embKey = embD.host.node.nodeKey
  const peer = agency.network!.connectedTo(embKey)!

  // Replayed challenge: the holder never answers the same nonce twice.
  const replay: Challenge = { id: 1_000_001, core: log.core.key!, nonce: crypto.randomBytes(32), indices: [0, 1] }
  const first = await emb.answerer.answer(agency.node.nodeKey, replay)
  const second = await emb.answerer.answer(agency.node.nodeKey, replay)
  t.is(first.status, AnswerStatus.OK)
  t.alike(Buffer.from(first.values[0]!), auditValue(replay.nonce, await log.core.get(0, { raw: true } as never)), 'the value is H(nonce ‖ stored block)')
  t.is(second.status, AnswerStatus.REPLAYED, 'a replayed challenge is refused')

  // Replayed / unsolicited answer on the wire: counted as stray, never trusted.
  const stray = agency.desk.audits.challenger.stray
  const n = stray.length
  const embPeer = embD.network!.connectedTo(agency.node.nodeKey)!
  t.ok(embPeer.channel.send('answer', first), 'the embassy side replays an old answer')
  await eventually('the replayed answer is refused', () => stray.length > n)
  t.ok(/no pending challenge/.test(stray[stray.length - 1]!.reason))

  // An honest audit still works on the same channel.
  const [ok1] = await agency.desk.audits.auditNow({ embassy: toZ32(embKey), cores: new Set([toZ32(log.core.key!)]), blocks: 3 })
  t.is(ok1!.passed, 3)

  // Oversized challenge on the wire: the holder refuses it with a clear error; the connection stays up.
  const errors: string[] = []
  agencyD.network!.on('channel-error', (_p: Peer, err: Error) => errors.push(err.message))
  t.ok(peer.channel.sendRaw('challenge', tooMany), 'sent 257 indices')
  await eventually('the holder answers with an error', () => errors.some((m) => /257 indices in one challenge/.test(m)))
  t.ok(agency.network!.connectedTo(embKey) === peer, 'the connection is still up')
  // Replication is unaffected: a new record reaches the embassy.
  await agency.append('register', [{ after: 'oversized' }])
  await eventually('the embassy still replicates', () => emb.holdings().flatMap((h) => h.cores).find((x) => x.key === toZ32(log.core.key!))?.contiguousLength === 11)
  t.pass('replication continues after the refused challenge')
  // A malformed answer (garbage) is refused the same way, at the auditor.
  const { d: emb2D } = await honestEmbassy(t, bootstrap, agencyD, log.core.key!, 11, 'embassy-2')
  const p2 = emb2D.network!.connectedTo(agency.node.nodeKey)!
  const alarmsBefore = (await agency.custody()).alarmCounts.malformed ?? 0
  t.ok(p2.channel.sendRaw('answer', Buffer.from([0, 1, 2, 3])))
  await eventually('the agency refuses the malformed answer', async () => ((await agency.custody()).alarmCounts.malformed ?? 0) > alarmsBefore)
  t.ok(agency.network!.connectedTo(emb2D.host.node.nodeKey), 'that connection stays up too')
  void c
})

test('audit: the sweep challenges every block within its period', { timeout: 180_000 }, async (t) => {
  // The plan alone: 40 blocks, 10 audits a period → every block once, plus random samples.
  const settings = { ...AUDIT_DEFAULTS, intervalMs: 100, periodMs: 1000, samples: 2 }
  const state = { periodStart: 0, cursor: 0, swept: false }
  const covered = new Set<number>()
  for (let i = 0; i < 10; i++) for (const x of planAudit(state, 40, settings, i * 100)) covered.add(x)
  t.is(covered.size, 40, 'every block once per period')
  t.ok(state.swept)
  planAudit(state, 40, settings, 1000)
  t.is(state.cursor, 4, 'a new period starts the sweep again')

  // Live: a short period on a running agency.
  const bootstrap = await testnet(t)
  const { d: agencyD, agency, log } = await agencyWith(t, bootstrap, 24, { intervalMs: 200, samples: 1, periodMs: 2_400, deadlinePerBlockMs: 500, minDeadlineMs: 3_000, firstAuditMs: 0 })
  const seen = auditsOf(agency)
  const { d: embD } = await honestEmbassy(t, bootstrap, agencyD, log.core.key!, 24)
  const embKey = toZ32(embD.host.node.nodeKey)
  const coreKey = toZ32(log.core.key!)
  // The book says when the sweep of a period reached the claimed length; the audit events of that
  // period (from its start to that audit) must have challenged every block.
  type Seen = AuditExchange & { state: CoreAudit }
  const done = await eventually('a sweep completes at the full length', () =>
    (seen as Seen[]).find((x) => x.result.embassy === embKey && x.result.core === coreKey && x.state.swept && x.state.cursor === 24)
  , 60_000)
  const period = (seen as Seen[]).filter((x) => x.result.embassy === embKey && x.result.core === coreKey && x.result.at >= done.state.periodStart && x.result.at <= done.result.at)
  const union = new Set(period.flatMap((x) => x.indices))
  t.is(union.size, 24, `every one of the 24 blocks was challenged within one period (${period.length} audits over ${done.result.at - done.state.periodStart} ms)`)
  t.ok(done.result.at - done.state.periodStart < 2_400, 'inside the 2.4 s period')
  t.ok(period.every((x) => x.result.failed === 0), 'all passed')
  const r = row(await agency.custody(), 'register', embKey)!
  t.is(r.audit.state, 'passed')
  t.ok(r.audit.sampled > 0)
})

test('audit: detection math', (t) => {
  t.is(auditConfidence(0).text, 'no blocks sampled yet')
  const c459 = auditConfidence(459)
  t.ok(c459.confidence >= 0.99 && c459.confidence < 0.991, `459 samples → ${c459.confidence}`)
  t.is(samplesFor(0.99, 0.01), 459, '459 random samples give 99 % confidence that fewer than 1 % are missing')
  t.is(samplesFor(0.95, 0.05), 59)
})
