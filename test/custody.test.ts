import test from 'brittle'
import c from 'compact-encoding'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { CustodyChannel, toZ32, type Agency, type Daemon, type Embassy } from '../lib/index.js'
import { signReceipt } from '../lib/custody/receipts.js'
import { CUSTODY_MINOR, CustodyMessage, PeerRole, receipt as receiptCodec, type Codec, type Handshake } from '../protocol/index.js'
import { eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

const raw = c.raw as unknown as Codec<Buffer>

async function pairedCluster(t: test.Assert, embassies = 1) {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyD = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 20 }, (_, i) => ({ i })))
  const embs: Daemon[] = []
  for (let i = 0; i < embassies; i++) {
    const dir = await initDir(t, 'embassy', `embassy-${i}`)
    const d = await startDaemon(t, dir, bootstrap)
    await pair(agencyD, d)
    embs.push(d)
  }
  return { bootstrap, agencyD, agency, embs }
}

async function registerRow(agency: Agency, embassyKey: string) {
  const status = await agency.custody()
  return status.datasets.find((d) => d.name === 'register')?.embassies.find((e) => e.nodeKey === embassyKey) ?? null
}

test('custody: receipts arrive; heldLength reaches the agency length after replication and after a live append', async (t) => {
  const { agency, embs } = await pairedCluster(t, 2)
  for (const e of embs) {
    const key = toZ32(e.host.node.nodeKey)
    await eventually('full receipt', async () => (await registerRow(agency, key))?.heldLength === 20)
  }
  const appendedAt = Date.now()
  await agency.append('register', [{ live: 1 }])
  for (const e of embs) {
    const key = toZ32(e.host.node.nodeKey)
    const row = await eventually('receipt for the live append', async () => {
      const r = await registerRow(agency, key)
      return r && r.heldLength === 21 ? r : null
    })
    t.is(row.behindBlocks, 0)
    t.is(row.behindBytes, 0)
    t.ok(row.connected)
    t.ok(row.receiptAt !== null && row.receiptAt >= appendedAt, 'fresh receipt: signed after the append')
  }
  await agency.createDataset('empty')
  for (const e of embs) {
    const key = toZ32(e.host.node.nodeKey)
    await eventually('a receipt proves the empty dataset is held too', async () => {
      const s = await agency.custody()
      return s.datasets.find((d) => d.name === 'empty')?.embassies.find((x) => x.nodeKey === key)?.receiptAt
    })
  }
  const status = await agency.custody()
  t.alike(status.alarms, [], 'no alarms')
  // durable: the ledger survives on disk
  agency.ledger.flush()
  const { CustodyLedger } = await import('../lib/custody/index.js')
  const again = new CustodyLedger(agency.node.dir)
  t.is(again.get(toZ32(embs[0]!.host.node.nodeKey), (await agency.datasets.list())[0]!.key)?.length, 21, 'stored durably')
})

test('custody: a stopped embassy shows exactly how far behind it is', async (t) => {
  const { agency, embs } = await pairedCluster(t, 2)
  const [a, b] = embs as [Daemon, Daemon]
  const keyB = toZ32(b.host.node.nodeKey)
  await eventually('B full', async () => (await registerRow(agency, keyB))?.heldLength === 20)
  await eventually('A full', async () => (await registerRow(agency, toZ32(a.host.node.nodeKey)))?.heldLength === 20)
  await b.close()
  const log = await agency.datasets.openLog('register')
  const before = log.byteLength
  await agency.append('register', [{ x: 'a'.repeat(100) }, { x: 'b'.repeat(200) }, { x: 'c' }])
  const added = log.byteLength - before
  await eventually('A has the new records', async () => (await registerRow(agency, toZ32(a.host.node.nodeKey)))?.heldLength === 23)
  const row = await eventually('B disconnected', async () => {
    const r = await registerRow(agency, keyB)
    return r && !r.connected ? r : null
  })
  t.is(row.heldLength, 20)
  t.is(row.behindBlocks, 3)
  t.is(row.behindBytes, added, 'bytes behind, exactly')
})

test('custody: forged, lying and inflated receipts raise alarms and are never stored', async (t) => {
  const { agency, agencyD, embs } = await pairedCluster(t, 1)
  const emb = embs[0]!
  const key = toZ32(emb.host.node.nodeKey)
  await eventually('full receipt', async () => (await registerRow(agency, key))?.heldLength === 20)
  const peer = await eventually('embassy sees the agency', () => emb.network!.connectedTo(agencyD.host.node.nodeKey))
  const log = await agency.datasets.openLog('register')
  const coreKey = log.core.key!
  const treeHash = await log.core.treeHash(20)
  const kp = emb.host.node.keyPair
  const alarms: string[] = []
  agency.on('alarm', (a: { kind: string }) => alarms.push(a.kind))

  const forged = { ...signReceipt(kp, { core: coreKey, length: 20, treeHash, fork: 0, time: Date.now() }), signature: Buffer.alloc(64, 1) }
  peer.channel.send('receipt', forged)
  const lie = signReceipt(kp, { core: coreKey, length: 20, treeHash: Buffer.alloc(32, 9), fork: 0, time: Date.now() })
  peer.channel.send('receipt', lie)
  const inflated = signReceipt(kp, { core: coreKey, length: 500, treeHash, fork: 0, time: Date.now() })
  peer.channel.send('receipt', inflated)
  const unknown = signReceipt(kp, { core: Buffer.alloc(32, 3), length: 1, treeHash, fork: 0, time: Date.now() })
  peer.channel.send('receipt', unknown)

  await eventually('four alarms', () => alarms.length >= 4)
  t.alike(alarms.sort(), ['bad-signature', 'length-beyond', 'tree-mismatch', 'unknown-core'])
  const row = await registerRow(agency, key)
  t.is(row?.heldLength, 20, 'custody unchanged by the bad receipts')
  const status = await agency.custody()
  t.is(status.alarms.length, 4)
  t.is(status.alarmCounts['tree-mismatch'], 1)
})

test('custody: garbage on the channel closes only that channel; replication goes on', async (t) => {
  const { agency, agencyD, embs } = await pairedCluster(t, 1)
  const emb = embs[0]!
  const key = toZ32(emb.host.node.nodeKey)
  await eventually('full receipt', async () => (await registerRow(agency, key))?.heldLength === 20)
  const peer = await eventually('embassy sees the agency', () => emb.network!.connectedTo(agencyD.host.node.nodeKey))
  const alarms: string[] = []
  agency.on('alarm', (a: { kind: string }) => alarms.push(a.kind))
  peer.channel.sendRaw('receipt', Buffer.from([0, 1, 2, 3])) // truncated receipt
  await eventually('malformed alarm', () => alarms.includes('malformed'))
  await eventually('channel closed on the embassy side', () => peer.channel.closed)
  t.ok(agencyD.network!.connectedTo(emb.host.node.nodeKey), 'connection still up')
  await agency.append('register', [{ after: 'garbage' }])
  const embassy = (await emb.host.embassy()) as Embassy
  const logKey = (await agency.datasets.list())[0]!.key
  await eventually('replication continues', () => embassy.holdings()[0]?.cores.find((c) => c.key === logKey)?.contiguousLength === 21)
  t.pass('the append still reached the embassy')
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

const hello = (major: number): Handshake => ({ major, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] })

test('custody channel: an unknown major version gets an explicit error, then close', async (t) => {
  const [ma, mb, destroy] = channelPair()
  t.teardown(destroy)
  const ours = new CustodyChannel(ma, hello(1))
  const theirs = new CustodyChannel(mb, hello(2))
  const invalid = new Promise<Error>((resolve) => ours.once('invalid', resolve))
  const told = new Promise<{ message: string }>((resolve) => theirs.once('remote-error', resolve))
  ours.open()
  theirs.open()
  t.ok(/unsupported custody protocol version 2/.test((await invalid).message))
  t.ok(/unsupported custody protocol version 2/.test((await told).message), 'the peer is told why')
  await eventually('closed', () => ours.closed && theirs.closed)
})

test('custody channel: a malformed handshake closes the channel only', async (t) => {
  const [ma, mb, destroy] = channelPair()
  t.teardown(destroy)
  const ours = new CustodyChannel(ma, hello(1))
  const raw2 = mb.createChannel({ protocol: 'data-embassy/custody/1', handshake: raw, onopen() {} })!
  ours.open()
  raw2.open(Buffer.from([1])) // major 1, then nothing
  await eventually('closed', () => ours.closed)
  t.is(ours.invalidMessages, 1)
  t.absent(ma.stream.destroyed, 'the connection stays')
})
