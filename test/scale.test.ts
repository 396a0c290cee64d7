/**
 * Holding many cores (issue 16 item 2): an embassy replicates each held core only on the
 * connections that need it. A core belongs to one agency: it is opened on that agency's
 * connection (and on those of holders entitled to that agency), never on another agency's —
 * not at pick-up, not for a dataset added while both are connected. Also: a catalog listing more
 * datasets than one open batch is held whole (cores are opened in bounded batches).
 */
import test from 'brittle'
import Protomux from 'protomux'
import c from 'compact-encoding'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { toZ32, type Agency, type Daemon, type Embassy } from '../lib/index.js'
import { OPEN_BATCH } from '../lib/roles/holder.js'
import { eventually, initDir, pair, startDaemon, testnet, type Test } from './helpers/index.js'

const HYPERCORE_PROTOCOL = 'hypercore/alpha'

/**
 * Every Hypercore channel ever opened on a connection, by either side, recorded as it happens (a
 * channel the other side rejects is gone from Protomux's tables at once, so a snapshot would miss
 * it). Test-only: wraps Protomux's local open (createChannel) and remote open (_onopensession).
 */
function recordChannels(t: Test): (conn: NoiseSecretStream) => Set<string> {
  const seen = new WeakMap<object, Set<string>>()
  const note = (mux: object, protocol: unknown, id: unknown) => {
    if (protocol !== HYPERCORE_PROTOCOL || !id) return
    let set = seen.get(mux)
    if (!set) seen.set(mux, (set = new Set()))
    set.add(Buffer.from(id as Uint8Array).toString('hex'))
  }
  const proto = Protomux.prototype as unknown as {
    createChannel(opts: { protocol?: string; id?: Uint8Array | null }): unknown
    _onopensession(state: { start: number; end: number; buffer: Uint8Array }): unknown
  }
  const create = proto.createChannel
  const onopen = proto._onopensession
  proto.createChannel = function (this: object, opts) {
    note(this, opts?.protocol, opts?.id)
    return create.call(this, opts)
  }
  proto._onopensession = function (this: object, state) {
    try {
      const peek = { start: state.start, end: state.end, buffer: state.buffer }
      c.uint.decode(peek) // remote channel id
      const protocol = c.string.decode(peek)
      note(this, protocol, c.optionalBuffer.decode(peek))
    } catch {
      // malformed: Protomux itself rejects it
    }
    return onopen.call(this, state)
  }
  t.teardown(() => {
    proto.createChannel = create
    proto._onopensession = onopen
  })
  return (conn) => seen.get(Protomux.from(conn)) ?? new Set()
}

async function agencyWith(t: Test, bootstrap: string[], name: string, datasets: number): Promise<{ daemon: Daemon; agency: Agency }> {
  const daemon = await startDaemon(t, await initDir(t, 'agency', name), bootstrap)
  const agency = (await daemon.host.agency()) as Agency
  for (let i = 0; i < datasets; i++) {
    await agency.createDataset(`ds-${i}`)
    await agency.append(`ds-${i}`, [{ i, agency: name }])
  }
  return { daemon, agency }
}

/** Discovery keys (hex) of every core the embassy holds for `catalogKey`. */
function heldDiscoveryKeys(embassy: Embassy, catalogKey: Uint8Array): Set<string> {
  const holder = embassy.holders.get(Buffer.from(catalogKey).toString('hex'))
  return new Set((holder?.allCores() ?? []).map((c) => c.discoveryKey!.toString('hex')))
}

/** True when the embassy holds every core of `agency` complete (catalog included). */
function holdsAll(embassy: Embassy, agency: Agency, datasets: number): boolean {
  const h = embassy.holdings().find((x) => x.catalogKey === toZ32(agency.catalogKey))
  return !!h && h.complete && h.cores.length === datasets + 1 && h.cores.every((c) => c.length > 0)
}

test('scale: an agency connection never carries another agency’s cores (at pick-up and for a dataset added later)', { timeout: 180_000 }, async (t) => {
  const channelsOn = recordChannels(t)
  const bootstrap = await testnet(t)
  const a = await agencyWith(t, bootstrap, 'agency-a', 3)
  const b = await agencyWith(t, bootstrap, 'agency-b', 2)
  const embassyDaemon = await startDaemon(t, await initDir(t, 'embassy'), bootstrap)
  await pair(a.daemon, embassyDaemon)
  await pair(b.daemon, embassyDaemon)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  await eventually('the embassy holds both agencies', () => holdsAll(embassy, a.agency, 3) && holdsAll(embassy, b.agency, 2), 90_000)

  // A fourth dataset of A, added while both agencies are connected.
  await a.agency.createDataset('late')
  await a.agency.append('late', [{ late: true }])
  await eventually("the embassy holds A's new dataset", () => holdsAll(embassy, a.agency, 4), 90_000)

  const net = embassyDaemon.network!
  const connA = net.connectedTo(a.daemon.host.node.nodeKey)!.conn as unknown as NoiseSecretStream
  const connB = net.connectedTo(b.daemon.host.node.nodeKey)!.conn as unknown as NoiseSecretStream
  const heldA = heldDiscoveryKeys(embassy, a.agency.catalogKey)
  const heldB = heldDiscoveryKeys(embassy, b.agency.catalogKey)
  t.is(heldA.size, 5, "A's catalog and four datasets held")
  t.is(heldB.size, 3, "B's catalog and two datasets held")

  // Positive control: each agency's connection carries every core of that agency.
  const onA = channelsOn(connA)
  const onB = channelsOn(connB)
  t.ok([...heldA].every((dk) => onA.has(dk)), "every core of A is replicated on A's connection")
  t.ok([...heldB].every((dk) => onB.has(dk)), "every core of B is replicated on B's connection")
  // The point: no core of one agency on the other's connection, seen from the embassy...
  t.alike([...heldA].filter((dk) => onB.has(dk)), [], "no core of A (the late one included) on B's connection")
  t.alike([...heldB].filter((dk) => onA.has(dk)), [], "no core of B on A's connection")
  // ...and from agency B's side of that connection: it never saw an A core's channel opened.
  const bPeer = b.daemon.network!.connectedTo(embassyDaemon.host.node.nodeKey)!
  const seenByB = channelsOn(bPeer.conn as unknown as NoiseSecretStream)
  t.alike([...heldA].filter((dk) => seenByB.has(dk)), [], 'agency B never saw a channel for a core of A')
  t.is(net.scopeOf(net.connectedTo(b.daemon.host.node.nodeKey)!)?.cores, heldB.size, "the embassy attached exactly B's cores to B's connection")
})

test('scale: a catalog listing more datasets than one open batch is held whole', { timeout: 180_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const count = OPEN_BATCH + 6 // two batches, the second one partial
  const a = await agencyWith(t, bootstrap, 'agency-many', count)
  const embassyDaemon = await startDaemon(t, await initDir(t, 'embassy'), bootstrap)
  await pair(a.daemon, embassyDaemon)
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  const added: string[] = []
  embassy.on('core-added', (_catalog, core) => added.push(core))
  await eventually(`the embassy holds all ${count} datasets`, () => holdsAll(embassy, a.agency, count), 120_000)
  t.is(added.length, count, 'one core-added per dataset core')
  t.is(new Set(added).size, count, 'no core added twice')
})
