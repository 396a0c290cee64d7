/**
 * Reconnection (issue 15 item 4, issue 16 item 3): fast retries after a peer is lost, direct
 * probes and dials at its last known address, back-off reset on any sign of network activity
 * (lib/net/reconnect.ts), and a restarted peer dialled back within seconds (lib/net/network.ts).
 */
import test from 'brittle'
import DHT from 'hyperdht'
import { Daemon, type Agency } from '../lib/index.js'
import { formatStatus, nodeStatus, type NodeStatus } from '../lib/daemon/commands/node.js'
import { Network, type Peer } from '../lib/net/network.js'
import { MAX_PROBES_IN_FLIGHT, MIN_POKE_GAP_MS, Reconnector, STALE_DIAL_MS, type PeerAddress, type ReconnectHost } from '../lib/net/reconnect.js'
import { LocalDHT } from '../lib/net/local-dht.js'
import { eventually, holdDefaultPorts, initDir, pair, startDaemon, startNetwork, testnet, type Test } from './helpers/index.js'

/** A fake network: which peers wait, which dial, what each probe answers; a clock we move. */
function fake(opts: { waiting?: string[]; answers?: (a: PeerAddress) => boolean } = {}) {
  const state = {
    now: 1_000_000,
    waiting: new Set(opts.waiting ?? []),
    /** Dials in flight: their age (ms). */
    dialing: new Map<string, number>(),
    dialled: [] as string[],
    probes: [] as PeerAddress[],
    pendingProbes: [] as Array<() => void>,
    /** Peers whose dial in flight (or one-sided connection) an answering probe replaces at once. */
    replaceable: new Set<string>()
  }
  const host: ReconnectHost = {
    waiting: () => [...state.waiting],
    dialing: (hex) => state.dialing.get(hex) ?? null,
    dial: (hex) => void state.dialled.push(hex),
    replaceableNow: (hex) => state.replaceable.has(hex),
    probe: (address) => {
      state.probes.push(address)
      return new Promise<boolean>((resolve) => state.pendingProbes.push(() => resolve(opts.answers ? opts.answers(address) : false)))
    }
  }
  const r = new Reconnector(host, { now: () => state.now })
  /** Answers every probe in flight and lets their handlers run. */
  const answerProbes = async () => {
    const pending = state.pendingProbes.splice(0)
    for (const p of pending) p()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { r, state, answerProbes }
}

test('reconnect: a poke dials every waiting peer at once, except one dialling already, the one dialling us, and any poked < 500 ms ago', async (t) => {
  const { r, state } = fake({ waiting: ['a', 'b', 'c', 'd'] })
  state.dialing.set('b', 60_000)
  t.alike(r.poke('d').sort(), ['a', 'c'], 'a and c dialled; b is dialling (a poke never replaces a dial); d is dialling us')
  t.alike(r.poke(), ['d'], 'a second poke at once: only d (not poked yet)')
  state.now += 499
  t.alike(r.poke(), [], 'within 500 ms nothing is dialled again (signals come in bursts)')
  state.now += 1
  t.alike(r.poke().sort(), ['a', 'c', 'd'], '500 ms later: dialled again (b still dialling)')
  t.is(r.dials.poke, 6)
  r.close()
  state.now += 10_000
  t.alike(r.poke(), [], 'closed: never dials')
})

test('reconnect: a peer lost recently is dialled every second for a minute, then left to the back-off; one never connected is not', async (t) => {
  const { r, state } = fake({ waiting: ['lost', 'never'] })
  r.lost('lost')
  t.ok(r.fastRetrying('lost') && !r.fastRetrying('never'), 'the lost peer is fast-retried (status says "next in 1 s")')
  t.alike(r.tick(), ['lost'], 'first tick: the lost peer is dialled')
  state.now += 500
  t.alike(r.tick(), [], 'half a second later: not yet')
  state.now += 500
  t.alike(r.tick(), ['lost'], 'a second later: again')
  state.dialing.set('lost', 1000)
  state.now += 1000
  t.alike(r.tick(), [], 'a dial in flight for 1 s is left alone')
  state.dialing.set('lost', 4000)
  state.now += 1000
  t.alike(r.tick(), [], 'nor one pending for 4 s (a dial after a restart can take that long; replacing it would never connect)')
  state.dialing.delete('lost')
  state.now += 1000
  t.alike(r.tick(), ['lost'], 'once it failed: dialled again within a second')
  state.now += 60_000
  t.alike(r.tick(), [], 'after the fast-retry window: no more fast retries')
  t.absent(r.fastRetrying('lost'))
  t.is(r.dials['fast-retry'], 3)
  t.absent(state.dialled.includes('never'), 'a peer never connected since start is not fast-retried (no restart to ride out)')
})

test('reconnect: a back peer is found at its last known address: the probe answers and it is dialled; a dead address is not', async (t) => {
  const alive = { host: '10.0.0.2', port: 49737 }
  const { r, state, answerProbes } = fake({ waiting: [], answers: (a) => a.host === alive.host && a.port === alive.port })
  r.connected('up', alive)
  r.connected('down', { host: '10.0.0.3', port: 49737 })
  t.alike(r.addressOf('up'), alive, 'the address of a connection is remembered')
  state.waiting.add('up')
  state.waiting.add('down')
  // Lost long ago: outside the fast-retry window, only probes help.
  r.lost('up')
  r.lost('down')
  state.now += 120_000
  t.alike(r.tick(), [], 'no fast retry after the window')
  t.is(state.probes.length, 2, 'both last known addresses probed')
  state.now += 200
  r.tick()
  t.is(state.probes.length, 2, 'no second probe while one is in flight or within a second')
  state.dialing.set('up', 1500)
  await answerProbes()
  t.alike(state.dialled, ['up'], 'the peer whose DHT node answered is dialled at once (its 1.5 s old dial replaced); the dead one is not')
  t.is(r.dials.probe, 1)
  t.alike(r.directAddress('up'), alive, 'the answering address is dialled directly')
  t.is(r.directAddress('down'), null, 'a silent address never is (it would hold the dial for request timeouts)')
  state.now += 3001
  t.is(r.directAddress('up'), null, 'nor one that answered more than 3 s ago')
})

test('reconnect: hostile or useless addresses are never remembered, and the memory is bounded', async (t) => {
  const { r } = fake()
  r.connected('a', { host: '0.0.0.0', port: 1 })
  r.connected('b', { host: '10.0.0.1', port: 0 })
  r.connected('c', { host: '10.0.0.1', port: 70_000 })
  r.connected('d', { host: '', port: 5 })
  r.connected('e', null)
  t.is(r.knownAddresses, 0, 'unspecified host, port 0 or out of range, empty host, none: not remembered')
  const small = new Reconnector({ waiting: () => [], dialing: () => null, dial: () => {}, probe: async () => false }, { maxAddresses: 3 })
  for (let i = 0; i < 10; i++) small.connected(`p${i}`, { host: '10.0.0.1', port: 1000 + i })
  t.is(small.knownAddresses, 3, 'bounded')
  t.alike(small.addressOf('p9'), { host: '10.0.0.1', port: 1009 }, 'the most recent kept')
  t.is(small.addressOf('p0'), null, 'the oldest forgotten')
})

test('reconnect: the DHT node address a handshake of ours reached wins over a hole-punched connection\'s throwaway socket', async (t) => {
  const { r } = fake()
  r.connected('p', { host: '10.0.0.5', port: 40001 })
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 40001 }, 'without a handshake: where the connection came from')
  r.serverAddress('p', { host: '10.0.0.5', port: 49737 })
  r.connected('p', { host: '10.0.0.5', port: 51234 })
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49737 }, 'the DHT node address is kept when a punched connection opens from another socket')
  r.serverAddress('p', { host: '0.0.0.0', port: 49737 })
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49737 }, 'an unusable server address is ignored')
  r.remember('p', { host: '10.9.9.9', port: 1 })
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49737 }, 'an address from the memory file never replaces one learnt in this run')
  r.remember('q', { host: '10.0.0.6', port: 49737 })
  t.alike(r.addressOf('q'), { host: '10.0.0.6', port: 49737 }, 'but is used for a peer not seen yet')
})

test('reconnect: probes per tick are bounded (a node with many waiting peers spreads them)', async (t) => {
  const waiting = Array.from({ length: 100 }, (_, i) => `p${i}`)
  const { r, state } = fake({ waiting })
  for (const [i, hex] of waiting.entries()) r.connected(hex, { host: '10.0.0.1', port: 2000 + i })
  r.tick()
  t.is(state.probes.length, 32, 'at most 32 probes in one tick')
})

test('reconnect: the address a peer states (custody handshake) wins over every guess; one from the memory file over a DHT guess', async (t) => {
  const { r } = fake()
  r.serverAddress('p', { host: '10.0.0.5', port: 51234 })
  t.ok(r.stated('p', { host: '10.0.0.5', port: 49737 }), 'a usable stated address is taken')
  r.serverAddress('p', { host: '10.0.0.5', port: 40001 })
  r.connected('p', { host: '10.0.0.5', port: 40002 })
  r.remember('p', { host: '10.0.0.9', port: 1 })
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49737 }, 'no hole-punch socket, connection address or old memory replaces it')
  t.absent(r.stated('p', { host: '0.0.0.0', port: 49737 }), 'an unusable stated address is refused')
  t.absent(r.stated('p', { host: '10.0.0.5', port: 0 }), 'port 0 too')
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49737 }, 'and changes nothing')
  t.ok(r.stated('p', { host: '10.0.0.5', port: 49800 }), 'the peer restarted on another port and says so')
  t.alike(r.addressOf('p'), { host: '10.0.0.5', port: 49800 }, 'its latest statement wins')
  // Remembered from before a restart: a DHT guess (a throwaway hole-punch socket on a small DHT) never replaces it...
  r.remember('m', { host: '10.0.0.6', port: 49737 })
  r.serverAddress('m', { host: '10.0.0.6', port: 55555 })
  t.alike(r.addressOf('m'), { host: '10.0.0.6', port: 49737 }, 'the remembered address stays through DHT dials')
  // ...but a connection of this run does (a peer that does not state its port: as before).
  r.connected('m', { host: '10.0.0.6', port: 40003 })
  t.alike(r.addressOf('m'), { host: '10.0.0.6', port: 40003 }, 'a connection replaces a remembered address')
})

test('reconnect: a dial through the DHT probes the peer at once; the answer replaces that dial at once by a direct one', async (t) => {
  const at = { host: '10.0.0.7', port: 49737 }
  const { r, state, answerProbes } = fake({ waiting: ['p'], answers: (a) => a.port === at.port })
  r.stated('p', at)
  // Our dial through the DHT (a hole-punch on a small DHT: seconds, or never) starts: 10 ms old.
  state.dialing.set('p', 10)
  state.replaceable.add('p')
  t.ok(r.probeNow('p'), 'probed at once, not at the next tick')
  t.alike(state.probes, [at])
  t.absent(r.probeNow('p'), 'not again within the poke gap')
  await answerProbes()
  t.alike(state.dialled, ['p'], 'the answer replaced the 10 ms old dial (no STALE_DIAL_MS wait)')
  t.alike(r.directAddress('p'), at, 'and the new dial goes to the address that answered')
  t.is(r.dials.probe, 1)
  // A direct dial in flight (not replaceable) is kept until it is STALE_DIAL_MS old.
  state.replaceable.delete('p')
  state.now += MIN_POKE_GAP_MS
  t.ok(r.probeNow('p'))
  await answerProbes()
  t.alike(state.dialled, ['p'], 'a fresh direct dial is not replaced')
  state.dialing.set('p', STALE_DIAL_MS)
  state.now += MIN_POKE_GAP_MS
  t.ok(r.probeNow('p'))
  await answerProbes()
  t.alike(state.dialled, ['p', 'p'], 'one STALE_DIAL_MS old is')
})

test('reconnect: a signal (the peer dials us) probes past the gap, never more than MAX_PROBES_IN_FLIGHT at once; an answer is spent by the next connection', async (t) => {
  const first = { host: '10.0.0.8', port: 49737 }
  const { r, state, answerProbes } = fake({ waiting: ['p'], answers: () => true })
  r.stated('p', first)
  t.ok(r.probeNow('p'))
  t.absent(r.probeNow('p'), 'within the gap: no')
  let sent = 1
  while (r.probeNow('p', { signal: true })) sent++
  t.is(sent, MAX_PROBES_IN_FLIGHT, `a signal probes past the gap, up to ${MAX_PROBES_IN_FLIGHT} in flight`)
  t.is(state.probes.length, MAX_PROBES_IN_FLIGHT)
  // The peer states another port while the probes of the first are in flight: the direct dial
  // goes where the answer came from, not to an address that never answered.
  r.stated('p', { host: '10.0.0.8', port: 50000 })
  await answerProbes()
  t.alike(r.directAddress('p'), first, 'the answering address, not the latest one')
  t.ok(r.probeNow('p', { signal: true }), 'probes in flight answered: probing again is allowed')
  r.connected('p', null)
  t.is(r.directAddress('p'), null, 'a connection spends the answer: the next loss needs a new one (the old process may be shutting down)')
  r.close()
  t.absent(r.probeNow('p', { signal: true }), 'closed: never probes')
})

/** A bare Network for these tests (test/helpers/network.ts): no memory file, its store in a fresh directory. */
async function network(t: Test, bootstrap: string[], keyPair: { publicKey: Buffer; secretKey: Buffer }, opts: { port?: number; dials?: Buffer } = {}): Promise<Network> {
  return (await startNetwork(t, bootstrap, keyPair, opts)).net
}

function nextPeer(net: Network, key: Buffer): Promise<Peer> {
  return new Promise((resolve) => {
    const on = (p: Peer) => {
      if (!p.key.equals(key)) return
      net.off('peer', on)
      resolve(p)
    }
    net.on('peer', on)
  })
}

test('reconnect: a peer restarted on its address is dialled back within seconds, by the reconnector (fast retry or probe)', async (t) => {
  const bootstrap = await testnet(t)
  const aKeys = DHT.keyPair()
  const bKeys = DHT.keyPair()
  let b = await network(t, bootstrap, bKeys)
  const port = (b.dht.address() as { port: number }).port
  const a = await network(t, bootstrap, aKeys)
  const first = nextPeer(a, bKeys.publicKey)
  a.joinPeer(bKeys.publicKey)
  await first
  t.pass('a connected to b')
  // b goes away; a sees it lost.
  const lost = new Promise<void>((resolve) => a.once('peer-lost', () => resolve()))
  await b.close()
  await lost
  const before = a.reconnectStatus()!
  // b comes back on the same address (an embassy's fixed port), not dialling a itself.
  const back = nextPeer(a, bKeys.publicKey)
  const restartedAt = Date.now()
  b = await network(t, bootstrap, bKeys, { port })
  const readyAt = Date.now()
  await back
  const ms = Date.now() - readyAt
  const after = a.reconnectStatus()!
  const sum = (d: Record<string, number>) => (d['fast-retry'] ?? 0) + (d.probe ?? 0) + (d.poke ?? 0)
  const helped = sum(after.dials) - sum(before.dials)
  t.ok(helped > 0, `the reconnector dialled b (${JSON.stringify(after.dials)})`)
  t.ok(ms <= 5000, `a reconnected ${ms} ms after b was ready (${readyAt - restartedAt} ms to start b)`)
})

test('status: a mirror whose source has no connected holder says so (json and text), and its gateway does not claim fresh data', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', [{ n: 1 }, { n: 2 }])
  const mirrorD = new Daemon({ dir: await initDir(t, 'mirror', 'mirror'), bootstrap, http: '127.0.0.1:0' })
  t.teardown(() => mirrorD.close(), { order: 0, force: true })
  await mirrorD.ready()
  await pair(agencyD, mirrorD)
  const source = (s: NodeStatus) => (s.role === 'mirror' ? s.sources[0] : undefined)
  const withPeer = await eventually('the mirror counts its agency as a connected holder', async () => {
    const s = await nodeStatus(mirrorD.host)
    return (source(s)?.peers ?? 0) >= 1 ? s : null
  })
  t.is(source(withPeer)!.noPeers, false, 'noPeers: false while the agency is connected')
  t.is(source(withPeer)!.noPeersSince, null)
  t.ok(formatStatus(withPeer, { tty: false }).includes('1 holder connected'), 'the text says how many holders are connected')
  const fresh = await apiStatus(mirrorD)
  t.is(fresh.agencies[0].peers, 1, '/api/status: 1 peer')
  t.is(fresh.agencies[0].stale, false, '/api/status: not stale')

  // The only holder goes away: the mirror still serves what it holds, and says it may be stale.
  await eventually('the mirror holds the log', async () => {
    const s = source(await nodeStatus(mirrorD.host))
    return s?.complete && s.cores.every((c) => c.contiguousLength === c.length && c.length > 0) ? true : null
  })
  const stoppedAt = Date.now()
  await agencyD.close()
  const alone = await eventually('the mirror sees no holder', async () => {
    const s = await nodeStatus(mirrorD.host)
    return source(s)?.noPeers ? s : null
  })
  const src = source(alone)!
  t.is(src.peers, 0, 'sources[].peers: 0')
  t.ok(src.noPeersSince !== null && src.noPeersSince >= stoppedAt - 50 && src.noPeersSince <= Date.now(), 'noPeersSince: when the agency went away')
  t.ok(/NO PEERS: no holder of this catalog connected for .*; what is held here may be stale/.test(formatStatus(alone, { tty: false })), 'the text warns')
  const stale = await apiStatus(mirrorD)
  t.is(stale.agencies[0].peers, 0)
  t.is(stale.agencies[0].stale, true, '/api/status: stale: true (however complete the copy looks)')
  t.ok(Date.parse(stale.agencies[0].staleSince) >= stoppedAt - 1000, `/api/status: staleSince ${stale.agencies[0].staleSince}`)
  const records: string[] = []
  for await (const r of (await mirrorD.host.mirror()).read('register', { wait: false })) records.push(r.text)
  t.alike(records, ['{"n":1}', '{"n":2}'], 'what is held is still served')
})

async function apiStatus(d: Daemon): Promise<any> {
  const { port } = d.gateway!.address()
  const res = await fetch(`http://127.0.0.1:${port}/api/status`)
  if (res.status !== 200) throw new Error(`/api/status answered ${res.status}`)
  return res.json()
}

test('reconnect: the whole DHT stopped after the first connection: a restarted embassy is found again by its agency and a mirror, and a restarted agency finds the embassy (remembered ports and addresses)', { timeout: 300_000 }, async (t) => {
  await holdDefaultPorts(t)
  // Several nodes for the first connection (daemons bound to 0.0.0.0 on one loopback do not make a
  // first connection through a single DHT node in a minute: HyperDHT cannot classify their NAT),
  // then every one of them stopped: strictly harder than one DHT node that restarts with its peers.
  const dht = new LocalDHT({ port: 0, nodes: 5 })
  t.teardown(() => dht.close(), { order: 1 })
  await dht.ready()
  const bootstrap = dht.bootstrap
  const agencyDir = await initDir(t, 'agency', 'agency')
  const embassyDir = await initDir(t, 'embassy', 'embassy')
  let agencyD = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', [{ n: 1 }])
  let embassyD = await startDaemon(t, embassyDir, bootstrap)
  const mirrorD = await startDaemon(t, await initDir(t, 'mirror', 'mirror'), bootstrap)
  await pair(agencyD, embassyD)
  await pair(agencyD, mirrorD)
  await pair(embassyD, mirrorD)
  const embassyKey = embassyD.host.node.nodeKey
  const agencyKey = agencyD.host.node.nodeKey
  const linked = (d: Daemon, key: Buffer) => () => d.network?.connectedTo(key) ?? null
  await eventually('the agency connects to the embassy', linked(agencyD, embassyKey), MUST_RECONNECT_MS)
  await eventually('the mirror connects to the embassy (a listed holder)', linked(mirrorD, embassyKey), 120_000)

  // The DHT is gone for good: no lookup, no announcement, no relay from now on.
  await dht.close()

  const restart = async (dir: string, old: Daemon, gone: () => boolean): Promise<{ daemon: Daemon; upAt: number; startMs: number }> => {
    await old.close()
    await eventually('the restarted node seen gone', gone, MUST_RECONNECT_MS)
    const from = Date.now()
    const daemon = await startDaemon(t, dir, bootstrap)
    return { daemon, upAt: Date.now(), startMs: Date.now() - from }
  }
  const e = await restart(embassyDir, embassyD, () => !agencyD.network!.connectedTo(embassyKey) && !mirrorD.network!.connectedTo(embassyKey))
  embassyD = e.daemon
  await eventually('the agency reconnects to the restarted embassy', linked(agencyD, embassyKey), MUST_RECONNECT_MS)
  const agencyMs = Date.now() - e.upAt
  await eventually('the mirror reconnects to the restarted embassy', linked(mirrorD, embassyKey), MUST_RECONNECT_MS)
  const mirrorMs = Date.now() - e.upAt
  t.pass(`embassy restarted without any DHT node (start ${e.startMs} ms): agency back ${agencyMs} ms, mirror back ${mirrorMs} ms after it was up`)

  const a = await restart(agencyDir, agencyD, () => !embassyD.network!.connectedTo(agencyKey))
  agencyD = a.daemon
  await eventually('the restarted agency reconnects to the embassy', linked(agencyD, embassyKey), MUST_RECONNECT_MS)
  t.pass(`agency restarted without any DHT node (start ${a.startMs} ms): embassy back ${Date.now() - a.upAt} ms after it was up`)
  await eventually('the embassy sees its agency again', linked(embassyD, agencyKey), MUST_RECONNECT_MS)
  t.pass('and the embassy sees the agency')
})

/** Upper bound for a reconnection that must happen (a failure bound, not a race: it takes ~0–2 s after start). */
const MUST_RECONNECT_MS = 60_000

