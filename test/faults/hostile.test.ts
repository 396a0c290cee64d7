import test from 'brittle'
import c from 'compact-encoding'
import fc from 'fast-check'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { CATALOG_CORE_NAME } from '../../lib/caps.js'
import { CustodyChannel, toZ32, type Agency, type Embassy } from '../../lib/index.js'
import { signReceipt } from '../../lib/custody.js'
import { CUSTODY_MINOR, CustodyMessage, PeerRole, encode, receipt as receiptCodec, type Codec } from '../../protocol/index.js'
import { eventually } from '../helpers.js'
import { initDir, startDaemon, testnet } from '../network-helpers.js'
import { report } from './cluster.js'

const raw = c.raw as unknown as Codec<Buffer>

function pair() {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  a.rawStream!.pipe(b.rawStream!).pipe(a.rawStream!)
  return { a, b, ma: Protomux.from(a), mb: Protomux.from(b) }
}

const hello = { major: 1, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] }

/** Opens a custody channel pair; `received` collects what reaches the receipt handler. */
async function openPair() {
  const p = pair()
  const received: unknown[] = []
  const ours = new CustodyChannel(p.ma, hello, [{ codec: receiptCodec, onmessage: (r) => received.push(r) }])
  const theirs = new CustodyChannel(p.mb, hello, [{ codec: raw, onmessage: () => {} }])
  ours.open()
  theirs.open()
  await eventually('open', () => ours.remote && theirs.remote, 5000, 5)
  return { ...p, ours, theirs, received }
}

test('hostile (property): random and truncated custody messages close only that channel', { timeout: 300_000 }, async (t) => {
  const valid = encode(receiptCodec, signReceipt({ publicKey: Buffer.alloc(32), secretKey: Buffer.alloc(64, 1) }, { core: Buffer.alloc(32, 1), length: 5, treeHash: Buffer.alloc(32, 2), fork: 0, time: 1 }))
  const message = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 300 }),
    fc.integer({ min: 0, max: valid.length - 1 }).map((n) => valid.subarray(0, n)),
    fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const copy = Buffer.from(valid)
      copy[i] = v
      return copy
    })
  )
  let runs = 0
  let closed = 0
  await fc.assert(
    fc.asyncProperty(message, async (bytes) => {
      runs++
      const p = await openPair()
      try {
        p.theirs.send(CustodyMessage.RECEIPT, raw, Buffer.from(bytes))
        await eventually('handled', () => p.ours.closed || p.received.length > 0, 5000, 2)
        if (p.ours.closed) closed++
        // whatever the bytes, the connection under the channel is untouched
        return !p.a.destroyed && !p.b.destroyed && (p.ours.closed ? p.ours.invalidMessages === 1 : p.received.length === 1)
      } finally {
        p.a.destroy()
        p.b.destroy()
      }
    }),
    { numRuns: 150 }
  )
  t.pass(`${runs} messages: ${closed} closed the channel, the rest decoded; no connection was lost`)
  report(t, { scenario: 'random/truncated/bit-flipped custody messages (fast-check)', runs, lost: 0, recoverMs: null, notes: 'only the custody channel closes; the connection stays' })
})

test('hostile (property): random handshakes never take the connection down', { timeout: 300_000 }, async (t) => {
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200 }), async (bytes) => {
      runs++
      const p = pair()
      try {
        const ours = new CustodyChannel(p.ma, hello)
        const bad = p.mb.createChannel({ protocol: 'data-embassy/custody/1', handshake: raw, onopen() {} })!
        ours.open()
        bad.open(Buffer.from(bytes))
        await eventually('handshake judged', () => ours.closed || ours.remote, 5000, 2)
        return !p.a.destroyed && !p.b.destroyed
      } finally {
        p.a.destroy()
        p.b.destroy()
      }
    }),
    { numRuns: 150 }
  )
  t.pass(`${runs} random handshakes; the connection survived every one`)
  report(t, { scenario: 'random custody handshakes (fast-check)', runs, lost: 0, recoverMs: null })
})

test('hostile: a corrupt catalog entry is skipped and reported; holders keep everything else', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('before')
  await agency.append('before', [{ a: 1 }])
  const catalog = agencyD.host.node.store.get({ name: CATALOG_CORE_NAME })
  await catalog.ready()
  await catalog.append(Buffer.from([1, 0, 0xde, 0xad])) // a signed but undecodable entry
  await catalog.close()
  await agency.createDataset('after')
  await agency.append('after', [{ b: 2 }])
  t.alike((await agency.list()).map((d) => d.name).sort(), ['after', 'before'], 'the agency itself skips it')

  const embD = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  agencyD.host.node.updateConfig((cfg) => cfg.allow.push(toZ32(embD.host.node.nodeKey)))
  agencyD.network!.readmit(embD.host.node.nodeKey)
  const embassy = (await embD.host.embassy()) as Embassy
  await embassy.follow(toZ32(agencyD.host.node.nodeKey))
  const h = await eventually('embassy holds both datasets', () => {
    const x = embassy.holdings()[0]
    return x && x.cores.length === 3 && x.cores.every((c) => c.length > 0 && c.contiguousLength === c.length) ? x : null
  })
  t.ok(h.problems.some((p) => /catalog block 2/.test(p)), `reported: ${h.problems.join('; ')}`)
  report(t, { scenario: 'corrupt catalog entry', runs: 1, lost: 0, recoverMs: null, notes: 'skipped and reported; every other dataset held' })
})
