/**
 * Custody status that tells the truth: ages by the agency's clock, future-dated receipts refused,
 * regressions shown, only embassies count, alarms rate-limited; and a peer on the older minor
 * version of the custody channel still works.
 */
import test from 'brittle'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { CustodyChannel, toZ32, type Agency, type Daemon } from '../lib/index.js'
import { signReceipt } from '../lib/custody/receipts.js'
import { PeerRole, type Handshake, type Receipt, type WitnessedHead } from '../protocol/index.js'
import { eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

async function agencyWithEmbassy(t: test.Assert) {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 20 }, (_, i) => ({ i })))
  const embD = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agencyD, embD)
  const key = toZ32(embD.host.node.nodeKey)
  await eventually('full receipt', async () => (await row(agency, key))?.heldLength === 20)
  const peer = await eventually('embassy sees the agency', () => embD.network!.connectedTo(agencyD.host.node.nodeKey))
  const log = await agency.datasets.openLog('register')
  return { bootstrap, agencyD, agency, embD, key, peer, log }
}

async function row(agency: Agency, embassyKey: string) {
  return (await agency.custody()).datasets.find((d) => d.name === 'register')?.embassies.find((e) => e.nodeKey === embassyKey) ?? null
}

function alarmsOf(agency: Agency, kind: string): number {
  return agency.ledger.alarmCounts[kind as keyof typeof agency.ledger.alarmCounts] ?? 0
}

test('custody truth: a receipt dated ten years ahead is refused; ages are the agency\'s clock', async (t) => {
  const { agency, embD, key, peer, log } = await agencyWithEmbassy(t)
  const kp = embD.host.node.keyPair
  const treeHash = await log.core.treeHash(20)
  const before = await row(agency, key)
  const future = signReceipt(kp, { core: log.core.key!, length: 20, treeHash, fork: 0, time: Date.now() + 10 * 365 * 24 * 3600_000 })
  peer.channel.send('receipt', future)
  await eventually('future-receipt alarm', () => alarmsOf(agency, 'future-receipt') === 1)
  const after = await row(agency, key)
  t.is(after?.receiptAt, before?.receiptAt, 'custody unchanged by the future-dated receipt')

  // A receipt dated an hour ago (the sender's clock is slow) is fresh by the agency's clock.
  const sentAt = Date.now()
  const slow = signReceipt(kp, { core: log.core.key!, length: 20, treeHash, fork: 0, time: Date.now() - 3600_000 })
  peer.channel.send('receipt', slow)
  const fresh = await eventually('receipt kept', async () => {
    const r = await row(agency, key)
    return r && r.receiptAt !== null && r.receiptAt >= sentAt ? r : null
  })
  t.ok(fresh.receiptAge !== null && fresh.receiptAge < 3600_000, 'its age is from when the agency verified it, not the sender\'s hour-old clock')
})

test('custody truth: an embassy that reports holding less lowers its custody and raises custody-regressed', async (t) => {
  const { agency, embD, peer, log } = await agencyWithEmbassy(t)
  const kp = embD.host.node.keyPair
  // Custody is at 20 (waited for above); a valid receipt for 5 is a regression whenever it lands.
  const events: Array<{ kind: string; detail: string }> = []
  agency.on('alarm', (a: { kind: string; detail: string }) => events.push(a))
  const lower = signReceipt(kp, { core: log.core.key!, length: 5, treeHash: await log.core.treeHash(5), fork: 0, time: Date.now() })
  peer.channel.send('receipt', lower)
  const alarm = await eventually('custody-regressed alarm', () => events.find((a) => a.kind === 'custody-regressed'))
  t.ok(/now holds 5 block\(s\).*down from 20/.test(alarm.detail), alarm.detail)
  t.ok(alarmsOf(agency, 'custody-regressed') >= 1)
})

test('custody truth: a holder’s receipts of one core are judged in the order they came — one checked from storage is not kept after a newer one checked from memory', async (t) => {
  const { agencyD, agency, embD, key, log } = await agencyWithEmbassy(t)
  const kp = embD.host.node.keyPair
  const events: Array<{ kind: string; detail: string }> = []
  agency.on('alarm', (a: { kind: string; detail: string }) => events.push(a))
  // The embassy says it holds 5 (one regression, on purpose), then 12, then all 20. Checking 12
  // reads the agency's tree from storage (below its signed length); checking 20 needs no read.
  const sign = async (length: number) => signReceipt(kp, { core: log.core.key!, length, treeHash: await log.core.treeHash(length), fork: 0, time: Date.now() })
  const [r5, r12, r20] = [await sign(5), await sign(12), await sign(20)]
  const peer = await eventually('the agency sees the embassy', () => agencyD.network!.connectedTo(embD.host.node.nodeKey))
  await agency.onreceipt(peer, r5)
  t.is((await row(agency, key))?.heldLength, 5, 'custody at 5')
  // Both arrive before either is judged (back to back on the channel).
  await Promise.all([agency.onreceipt(peer, r12), agency.onreceipt(peer, r20)])
  t.is((await row(agency, key))?.heldLength, 20, 'custody at 20: the newer receipt is the one kept')
  t.is(events.filter((a) => a.kind === 'custody-regressed').length, 1, 'one regression (to 5), none from 20 back to 12')
})

test('custody truth: a mirror\'s receipt is ignored and noted; only embassies hold custody', async (t) => {
  const { bootstrap, agencyD, agency, log } = await agencyWithEmbassy(t)
  const mirrorD: Daemon = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(agencyD, mirrorD)
  const peer = await eventually('mirror sees the agency', () => mirrorD.network!.connectedTo(agencyD.host.node.nodeKey))
  const r = signReceipt(mirrorD.host.node.keyPair, { core: log.core.key!, length: 20, treeHash: await log.core.treeHash(20), fork: 0, time: Date.now() })
  peer.channel.send('receipt', r)
  await eventually('not-an-embassy noted', () => alarmsOf(agency, 'not-an-embassy') === 1)
  const rows = (await agency.custody()).datasets.find((d) => d.name === 'register')!.embassies
  t.absent(rows.find((e) => e.nodeKey === toZ32(mirrorD.host.node.nodeKey)), 'the mirror has no custody row')
})

test('custody truth: alarms are rate-limited per peer and kind; counts keep counting', async (t) => {
  const { agency, embD, peer, log } = await agencyWithEmbassy(t)
  const kp = embD.host.node.keyPair
  const treeHash = await log.core.treeHash(20)
  const events: string[] = []
  agency.on('alarm', (a: { kind: string }) => events.push(a.kind))
  for (let i = 0; i < 50; i++) {
    const forged = { ...signReceipt(kp, { core: log.core.key!, length: 20, treeHash, fork: 0, time: Date.now() }), signature: Buffer.alloc(64, i + 1) }
    peer.channel.send('receipt', forged)
  }
  await eventually('all 50 counted', () => alarmsOf(agency, 'bad-signature') === 50)
  t.is(events.filter((k) => k === 'bad-signature').length, 1, 'one alarm event (one log line)')
  const listed = agency.ledger.alarms.filter((a) => a.kind === 'bad-signature')
  t.is(listed.length, 1, 'one listed alarm')
  t.is(listed[0]!.repeats, 49, 'the repeats are folded into it')
})

function channelPair(): [Protomux, Protomux, () => void] {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  a.rawStream!.pipe(b.rawStream!).pipe(a.rawStream!)
  return [Protomux.from(a), Protomux.from(b), () => {
    a.destroy()
    b.destroy()
  }]
}

test('custody channel: a peer on minor 0 still exchanges receipts; minor-1 messages are not sent to it', async (t) => {
  const [ma, mb, done] = channelPair()
  t.teardown(done)
  const hello = (minor: number): Handshake => ({ major: 1, minor, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] })
  const got: Receipt[] = []
  const heads: WitnessedHead[] = []
  const current = new CustodyChannel(ma, hello(1), { receipt: (r) => got.push(r), head: (h) => heads.push(h) })
  const old = new CustodyChannel(mb, hello(0), { receipt: (r) => got.push(r) })
  const opened = Promise.all([new Promise((r) => current.once('open', r)), new Promise((r) => old.once('open', r))])
  current.open()
  old.open()
  await opened
  t.is(current.remote?.minor, 0)
  const r = { core: Buffer.alloc(32, 4), length: 3, treeHash: Buffer.alloc(32, 5), fork: 0, time: 1, signature: Buffer.alloc(64, 6) }
  t.ok(old.send('receipt', r), 'the old peer sends a receipt')
  t.ok(current.send('receipt', r), 'and gets one')
  await eventually('both receipts arrive', () => got.length === 2)
  t.absent(current.supports('head'), 'the old peer does not speak minor 1')
  const h = { core: Buffer.alloc(32, 4), length: 3, fork: 0, treeHash: Buffer.alloc(32, 5), agencySignature: Buffer.alloc(68, 7), witness: Buffer.alloc(32, 8), time: 1, signature: Buffer.alloc(64, 9) }
  t.is(current.send('head', h), false, 'a minor-1 message is not sent to it')
  t.ok(old.supports('receipt'))
  t.ok(!old.closed && !current.closed, 'both channels stay open')
})

test('custody channel (minor 1): malformed head, alarm and holders messages close only the channel; a forged head is an alarm', async (t) => {
  const { agencyD, agency, embD, peer, log } = await agencyWithEmbassy(t)
  const before = alarmsOf(agency, 'malformed')
  // A head whose writer signature is forged (the witness signature is valid): bad-signature, stored nowhere.
  const { signWitnessedHead } = await import('../lib/custody/index.js')
  const forged = signWitnessedHead(embD.host.node.keyPair, { core: log.core.key!, length: 20, fork: 0, treeHash: await log.core.treeHash(20), agencySignature: Buffer.alloc(68, 1), time: Date.now() })
  peer.channel.send('head', forged)
  await eventually('bad-signature alarm for the forged head', () => agency.ledger.alarms.some((a) => a.kind === 'bad-signature' && /witnessed head/.test(a.detail)))
  // Garbage as each minor-1 message: the channel closes, the connection and replication stay.
  for (const name of ['head', 'alarm', 'holders'] as const) {
    const p = await eventually('custody channel open', () => {
      const x = embD.network!.connectedTo(agencyD.host.node.nodeKey)
      return x && !x.channel.closed ? x : null
    })
    p.channel.sendRaw(name, Buffer.from([0, 1, 2, 3, 4]))
    await eventually(`malformed ${name} closes the channel`, () => p.channel.closed)
    t.ok(agencyD.network!.connectedTo(embD.host.node.nodeKey), `${name}: the connection is still up`)
    // A new channel comes with the next connection; force one by reconnecting.
    p.conn.destroy()
  }
  await eventually('malformed noted at the agency', () => alarmsOf(agency, 'malformed') >= before + 1)
  await agency.append('register', [{ after: 'garbage' }])
  await eventually('replication and receipts go on', async () => (await row(agency, toZ32(embD.host.node.nodeKey)))?.heldLength === 21)
})

test('custody truth: cosigners are the holders that sent their heads — a head cosigned by any other key counts no one and is an alarm', async (t) => {
  const { agency, embD, peer, log } = await agencyWithEmbassy(t)
  const { signWitnessedHead } = await import('../lib/custody/index.js')
  const { signedHead } = await import('../lib/data/tree.js')
  const { default: crypto } = await import('hypercore-crypto')
  const cosigners = async () => (await agency.custody()).datasets.find((d) => d.name === 'register')!.heads[0]!.cosigners
  await eventually('the embassy cosigned the current head', async () => (await cosigners()) === 1)
  const head = (await signedHead(log.core))!
  const body = { core: log.core.key!, length: head.length, fork: head.fork, treeHash: head.treeHash, agencySignature: head.signature, time: Date.now() }
  // The true head, cosigned by keys the embassy made up: each would count as one more holder.
  const before = alarmsOf(agency, 'bad-signature')
  for (let i = 0; i < 3; i++) peer.channel.send('head', signWitnessedHead(crypto.keyPair(), body))
  await eventually('three bad-signature alarms: cosigned by another key than its sender', () => alarmsOf(agency, 'bad-signature') === before + 3)
  t.ok(agency.ledger.alarms.some((a) => a.kind === 'bad-signature' && /not by the peer that sent it/.test(a.detail)), 'saying so')
  t.is(await cosigners(), 1, 'still one cosigner: the embassy')
  // The embassy's own cosignature again (a reconnect's greeting): the same holder, counted once.
  peer.channel.send('head', signWitnessedHead(embD.host.node.keyPair, { ...body, time: Date.now() + 1 }))
  await agency.append('register', [{ after: 'cosigners' }])
  await eventually('the next head cosigned by the embassy', async () => (await agency.custody()).datasets[0]!.heads[0]!.length === 21 && (await cosigners()) === 1)
  t.is(alarmsOf(agency, 'bad-signature'), before + 3, 'its own cosignature is no alarm')
})
