/**
 * Appended notices (custody message `appended`, minor 5; protocol/SPEC.md "Minor 5"): an agency
 * tells each connected embassy which of its cores grew, so an embassy that closed an idle core
 * knows to open it again. On connect: every non-empty core; after appends: the cores that changed,
 * coalesced over one turn of the event loop. Never to a peer on minor 4, never to a mirror.
 */
import { EventEmitter } from 'node:events'
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { Network, type Agency, type Daemon, type Peer } from '../lib/index.js'
import { parseHostPort } from '../lib/node/config.js'
import { CustodyChannel } from '../lib/net/custody-channel.js'
import { AppendNotices, type NoticesAgency } from '../lib/roles/agency-notices.js'
import {
  CUSTODY_MAJOR,
  CUSTODY_MINOR,
  MAX_APPENDED_CORES,
  PeerRole,
  appendedNotice,
  decode,
  type AppendedNotice,
  type Handshake,
  type HolderList
} from '../protocol/index.js'
import { eventually, initDir, muxPair, startDaemon, testnet } from './helpers/index.js'

type T = test.Assert

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** One turn of the event loop: a flush queued (setImmediate) before this call has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** An agency with a log of 5 records and an empty log (length 0: never listed). */
async function agencyWith(t: T, bootstrap: string[]): Promise<{ d: Daemon; agency: Agency; register: Hypercore; empty: Hypercore }> {
  const d = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await d.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.createDataset('empty')
  await agency.append('register', [1, 2, 3, 4, 5].map((i) => ({ record: i })))
  const register = (await agency.datasets.openLog('register')).core
  const empty = (await agency.datasets.openLog('empty')).core
  await turn()
  return { d, agency, register, empty }
}

/**
 * A peer built from the protocol in the test: a bare Network that says it is `role` on custody
 * minor `minor`, admitted by the agency, recording every `appended` and `holders` message.
 */
async function fakePeer(t: T, bootstrap: string[], agency: Agency, opts: { role: number; minor: number }) {
  const dir = await t.tmp()
  const store = new Corestore(path.join(dir, 'store'))
  const keyPair = crypto.keyPair()
  const notices: AppendedNotice[] = []
  const holders: HolderList[] = []
  const network = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: opts.minor, role: opts.role, capabilities: [], catalogs: [agency.catalog.key] }),
    isAllowed: (k) => k.equals(agency.node.nodeKey),
    scope: { entitled: () => true, catalogOfTopic: () => null },
    handlers: () => ({
      appended: (n) => notices.push(n),
      holders: (h) => holders.push(h)
    })
  })
  t.teardown(async () => {
    await network.close()
    await store.close()
  }, { order: 0 })
  await network.ready()
  agency.allow(keyPair.publicKey)
  network.joinPeer(agency.node.nodeKey)
  const peer = await eventually('the peer is connected to the agency', () => network.connectedTo(agency.node.nodeKey))
  const atAgency = await eventually('the agency sees the peer', () => agency.network?.connectedTo(keyPair.publicKey))
  return { keyPair, network, peer, atAgency, notices, holders }
}

/** Every length a notice gave `core`, in order of arrival. */
function lengthsOf(notices: AppendedNotice[], core: Hypercore): number[] {
  return notices.flatMap((n) => n.cores.filter((e) => e.core.equals(core.key!)).map((e) => e.length))
}

test('appended: on connect an embassy gets one notice listing every non-empty core with its length', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { agency, register, empty } = await agencyWith(t, bootstrap)
  const embassy = await fakePeer(t, bootstrap, agency, { role: PeerRole.EMBASSY, minor: CUSTODY_MINOR })
  await eventually('the embassy gets a notice', () => embassy.notices.length > 0)
  const first = embassy.notices[0]!
  t.ok(first.catalog.equals(agency.catalog.key), 'it names the agency catalog')
  const expected = new Map<string, number>()
  for (const [key, { core }] of await agency.cores()) if (core.length > 0) expected.set(key, core.length)
  t.is(expected.size, 2, 'the catalog and the register are non-empty; the empty log is not')
  t.alike(new Map(first.cores.map((e) => [hex(e.core), e.length])), expected, 'the first notice lists every non-empty core with its length')
  t.is(first.cores.length, expected.size, 'each core once')
  t.is(lengthsOf([first], register)[0], 5, 'the register at 5 records')
  t.is(lengthsOf([first], agency.catalog.core)[0], agency.catalog.core.length, 'the catalog at its length (header and two entries)')
  t.is(lengthsOf([first], empty).length, 0, 'the empty log is not listed')
  t.ok(first.cores.every((e) => e.fork === 0), 'on fork 0')
})

test('appended: appends reach a connected embassy: the last entry at the new length, never more notices than appends; a later dataset too', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { agency, register } = await agencyWith(t, bootstrap)
  const embassy = await fakePeer(t, bootstrap, agency, { role: PeerRole.EMBASSY, minor: CUSTODY_MINOR })
  await eventually('the connect notice', () => lengthsOf(embassy.notices, register).includes(5))
  const N = 6
  // One synchronous batch of appends (each its own write, one record each).
  const writes: Array<Promise<unknown>> = []
  for (let i = 0; i < N; i++) writes.push(agency.append('register', [{ later: i }]))
  await Promise.all(writes)
  t.is(register.length, 5 + N)
  await eventually('a notice gives the register its new length', () => lengthsOf(embassy.notices, register).includes(5 + N))
  const lengths = lengthsOf(embassy.notices, register)
  t.is(lengths.at(-1), 5 + N, 'the last entry for the register has the new length')
  t.ok(lengths.every((l, i) => i === 0 || l >= lengths[i - 1]!), `lengths only grow (${lengths.join(', ')})`)
  const grown = embassy.notices.filter((n) => n.cores.some((e) => e.core.equals(register.key!) && e.length > 5))
  t.ok(grown.length <= N, `at most one notice per append (${grown.length} for ${N} appends)`)
  // A dataset created after the embassy connected: its core is watched and announced too.
  await agency.createDataset('later')
  await agency.append('later', [{ a: 1 }, { a: 2 }, { a: 3 }])
  const later = (await agency.datasets.openLog('later')).core
  await eventually('a notice lists the new dataset at 3', () => lengthsOf(embassy.notices, later).includes(3))
  await eventually('and the catalog at its new length', () => lengthsOf(embassy.notices, agency.catalog.core).includes(agency.catalog.core.length))
})

test('appended: a peer on custody minor 4 is never sent a notice (one on minor 5 is)', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { agency, register } = await agencyWith(t, bootstrap)
  const old = await fakePeer(t, bootstrap, agency, { role: PeerRole.EMBASSY, minor: 4 })
  const current = await fakePeer(t, bootstrap, agency, { role: PeerRole.EMBASSY, minor: CUSTODY_MINOR })
  t.absent(old.atAgency.channel.supports('appended'), 'the agency sees that the old peer does not speak minor 5')
  t.ok(current.atAgency.channel.supports('appended'))
  await agency.append('register', [{ more: 1 }, { more: 2 }])
  await eventually('the minor-5 peer hears of the append', () => lengthsOf(current.notices, register).includes(7))
  // A barrier on the old peer's connection: messages on one connection arrive in order, so a
  // notice sent to it at connect or at the flush would be here before this holder list.
  const before = old.holders.length
  agency.desk.sendHolders()
  await eventually('a holder list sent after the flush reaches the old peer', () => old.holders.length > before)
  t.is(old.notices.length, 0, 'the minor-4 peer got no notice')
  t.ok(old.peer.channel.closed === false && old.atAgency.channel.closed === false, 'its channel stays open')
})

test('appended: a mirror is never sent a notice (an embassy is)', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const { agency, register } = await agencyWith(t, bootstrap)
  const mirror = await fakePeer(t, bootstrap, agency, { role: PeerRole.MIRROR, minor: CUSTODY_MINOR })
  t.is(mirror.atAgency.role, 'mirror')
  await eventually('the mirror gets its holder list on connect', () => mirror.holders.length > 0)
  const before = mirror.holders.length
  await agency.append('register', [{ more: 1 }])
  await turn() // the flush of that append has run (nothing to send: only the mirror is connected)
  // An embassy connecting now gets its connect notice, and the mirror a holder list sent after
  // the flush above: on one connection messages arrive in order, so a notice would be here first.
  const embassy = await fakePeer(t, bootstrap, agency, { role: PeerRole.EMBASSY, minor: CUSTODY_MINOR })
  await eventually('the embassy gets its notice', () => lengthsOf(embassy.notices, register).includes(6))
  await eventually('the mirror gets the holder list sent when the embassy connected', () => mirror.holders.length > before)
  t.is(mirror.notices.length, 0, 'the mirror got no notice')
})

test('custody channel: `appended` is message 8 between minor-5 channels; not sent toward minor 4; a malformed one closes the channel only', async (t) => {
  const hello = (minor: number): Handshake => ({ major: 1, minor, role: PeerRole.AGENCY, capabilities: [], catalogs: [] })
  const notice = { catalog: Buffer.alloc(32, 1), cores: [{ core: Buffer.alloc(32, 2), length: 12, fork: 0 }] }
  {
    const { ma, mb } = muxPair(t)
    const got: AppendedNotice[] = []
    const agencySide = new CustodyChannel(ma, hello(CUSTODY_MINOR))
    const embassySide = new CustodyChannel(mb, { ...hello(CUSTODY_MINOR), role: PeerRole.EMBASSY }, { appended: (n) => got.push(n) })
    const opened = Promise.all([new Promise((r) => agencySide.once('open', r)), new Promise((r) => embassySide.once('open', r))])
    agencySide.open()
    embassySide.open()
    await opened
    t.ok(agencySide.supports('appended'))
    t.ok(agencySide.send('appended', notice), 'sent')
    await eventually('it arrives', () => got.length === 1)
    t.alike(got[0]!.cores[0]!.length, 12)
    t.ok(got[0]!.catalog.equals(notice.catalog))
  }
  {
    const { ma, mb } = muxPair(t)
    const got: AppendedNotice[] = []
    const agencySide = new CustodyChannel(ma, hello(CUSTODY_MINOR))
    const old = new CustodyChannel(mb, { ...hello(4), role: PeerRole.EMBASSY }, { appended: (n) => got.push(n) })
    const opened = Promise.all([new Promise((r) => agencySide.once('open', r)), new Promise((r) => old.once('open', r))])
    agencySide.open()
    old.open()
    await opened
    t.absent(agencySide.supports('appended'), 'a minor-4 peer does not speak it')
    t.is(agencySide.send('appended', notice), false, 'so it is not sent')
    t.ok(old.supports('lane'), 'older messages still are')
  }
  {
    const { a, ma, mb } = muxPair(t)
    const agencySide = new CustodyChannel(ma, hello(CUSTODY_MINOR))
    const embassySide = new CustodyChannel(mb, { ...hello(CUSTODY_MINOR), role: PeerRole.EMBASSY }, { appended: () => t.fail('a malformed notice is never handled') })
    const opened = Promise.all([new Promise((r) => agencySide.once('open', r)), new Promise((r) => embassySide.once('open', r))])
    agencySide.open()
    embassySide.open()
    await opened
    const invalid = new Promise<Error>((resolve) => embassySide.once('invalid', resolve))
    // 1025 entries promised: refused before any is read.
    t.ok(agencySide.sendRaw('appended', Buffer.concat([Buffer.alloc(32, 1), Buffer.from([0xfd, 0x01, 0x04])])))
    t.ok(/1025 cores in one appended notice \(at most 1024\)/.test((await invalid).message), 'refused with the reason')
    await eventually('the channel closes', () => embassySide.closed)
    t.absent(a.destroyed, 'the connection stays')
  }
})

/** A core as AppendNotices sees it: key, length, fork and the append / truncate events. */
class FakeCore extends EventEmitter {
  key: Buffer
  length: number
  fork = 0
  constructor(fill: number, length: number) {
    super()
    this.key = Buffer.alloc(32, fill)
    this.length = length
  }
}

function fakePeerRecord(id: string, opts: { role?: Peer['role']; minor?: number } = {}) {
  const got: AppendedNotice[] = []
  const minor = opts.minor ?? CUSTODY_MINOR
  const channel = {
    closed: false,
    supports: (name: string) => name === 'appended' && minor >= 5,
    send: (_name: string, v: AppendedNotice) => (got.push(v), true),
    sendRaw: (_name: string, bytes: Buffer) => (got.push(decode(appendedNotice, bytes)), true)
  }
  const peer = { key: Buffer.alloc(32, id.charCodeAt(0)), id, role: opts.role ?? 'embassy', channel } as unknown as Peer
  return { peer, got }
}

test('appended: changes within one turn of the event loop go out as one notice, per flush only what changed', async (t) => {
  const catalog = new FakeCore(0xca, 3)
  const a = new FakeCore(0xa1, 10)
  const b = new FakeCore(0xb1, 0)
  const state = { restoring: false }
  const agency: NoticesAgency = {
    get restoring() {
      return state.restoring
    },
    catalog: { key: catalog.key, core: catalog as unknown as Hypercore },
    cores: async () => new Map([catalog, a, b].map((c) => [hex(c.key), { core: c as unknown as Hypercore }])),
    isAllowed: () => true,
    notice: () => {}
  }
  const network = Object.assign(new EventEmitter(), { peers: new Map<string, Peer>() })
  const embassy = fakePeerRecord('e')
  const mirror = fakePeerRecord('m', { role: 'mirror' })
  const old = fakePeerRecord('o', { minor: 4 })
  for (const p of [embassy, mirror, old]) network.peers.set(p.peer.id, p.peer)
  const notices = new AppendNotices(agency, network as never)
  await notices.start()
  t.is(notices.watching, 3, 'the catalog and both cores')
  t.is(embassy.got.length, 1, 'a connected embassy gets the list once')
  t.alike(embassy.got[0]!.cores.map((e) => [hex(e.core), e.length]), [[hex(catalog.key), 3], [hex(a.key), 10]], 'every non-empty core')
  await turn()
  t.is(embassy.got.length, 1, 'nothing more without a change')

  // Ten appends to one core and one to another, in one synchronous batch: one notice.
  for (let i = 1; i <= 10; i++) {
    a.length = 10 + i
    a.emit('append')
  }
  b.length = 1
  b.emit('append')
  t.is(embassy.got.length, 1, 'nothing sent synchronously')
  await turn()
  t.is(embassy.got.length, 2, 'one notice for eleven appends')
  t.alike(embassy.got[1]!.cores.map((e) => [hex(e.core), e.length]), [[hex(a.key), 20], [hex(b.key), 1]], 'the changed cores at their new lengths, nothing else')

  // An event without a change sends nothing; a truncation sends the new fork.
  a.emit('append')
  await turn()
  t.is(embassy.got.length, 2, 'no change since the last flush: no notice')
  a.length = 15
  a.fork = 1
  a.emit('truncate', 15, 1)
  await turn()
  t.alike(embassy.got[2]!.cores.map((e) => [hex(e.core), e.length, e.fork]), [[hex(a.key), 15, 1]], 'the truncation, with its fork')

  // A restoring agency sends nothing; once restored, every connected embassy gets every core.
  state.restoring = true
  b.length = 2
  b.emit('append')
  await turn()
  t.is(embassy.got.length, 3, 'nothing while restoring')
  state.restoring = false
  await notices.restored()
  t.alike(embassy.got[3]!.cores.map((e) => [hex(e.core), e.length]), [[hex(catalog.key), 3], [hex(a.key), 15], [hex(b.key), 2]], 'restored: every non-empty core')

  // A new embassy: the list at once; many cores: in notices of at most 1024 entries.
  const many = Array.from({ length: MAX_APPENDED_CORES + 6 }, (_, i) => Object.assign(new FakeCore(0, 1), { key: crypto.randomBytes(32) }))
  agency.cores = async () => new Map([catalog, a, b, ...many].map((c) => [hex(c.key), { core: c as unknown as Hypercore }]))
  catalog.length = 4
  catalog.emit('append') // a new dataset: the list is rebuilt
  await eventually('the new cores are watched', () => notices.watching === 3 + many.length)
  await turn()
  const late = fakePeerRecord('l')
  network.peers.set(late.peer.id, late.peer)
  t.is(embassy.got.length, 6, 'the connected embassy heard of the 1031 changed cores in two notices')
  network.emit('peer', late.peer)
  t.alike(late.got.map((n) => n.cores.length), [MAX_APPENDED_CORES, 3 + many.length - MAX_APPENDED_CORES], 'two notices, the first of 1024 entries')

  t.is(mirror.got.length, 0, 'never to a mirror')
  t.is(old.got.length, 0, 'never to a peer on minor 4')

  notices.close()
  t.is(a.listenerCount('append') + a.listenerCount('truncate') + catalog.listenerCount('append') + network.listenerCount('peer'), 0, 'every listener removed')
  a.length = 30
  a.emit('append')
  await turn()
  t.is(embassy.got.length, 6, 'nothing after close')
})
