/**
 * Operator visibility (issue 15 items 4, 10, 13): `run --port N` binds N or fails with PORT_IN_USE
 * and logs the bound DHT address; a warning when fewer than 4 DHT nodes answer; "looking for PEER"
 * while a configured peer is unreachable (debounced); last contact per peer apart from a receipt's
 * age; a restoring agency's `list` says so; the human `status` text shows restore, quota, held,
 * fetch and last contact, escaped and within 100 columns.
 */
import dgram from 'node:dgram'
import test from 'brittle'
import { Daemon, EmbassyNode, toZ32, type Embassy, type LogEvent } from '../lib/index.js'
import { MIN_DHT_NODES, LOOKING_REPORT_MS } from '../lib/net/network.js'
import { formatStatus, nodeStatus, type NodeStatus } from '../lib/daemon/commands/node.js'
import { list } from '../lib/daemon/commands/data.js'
import { cli, eventually, initDir, pair, testnet } from './helpers/index.js'

type Test = test.Assert

/** A daemon whose log events are kept; closed at teardown (before the testnet). */
async function daemonWithLog(t: Test, dir: string, bootstrap: string[], port?: number): Promise<{ daemon: Daemon; events: LogEvent[] }> {
  const events: LogEvent[] = []
  const daemon = new Daemon({ dir, bootstrap, ...(port !== undefined ? { port } : {}), log: (e) => events.push(e) })
  t.teardown(() => daemon.close(), { order: 0, force: true })
  await daemon.ready()
  return { daemon, events }
}

/** A UDP port bound by someone else (closed at teardown). */
async function busyUdpPort(t: Test): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', resolve))
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  return socket.address().port
}

/** A UDP port free right now (bound and released). */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

const STATUS_VIEW = { tty: false }

/** No line ends in padding (a table's empty last column). */
function trailing(text: string): boolean {
  return text.split('\n').some((l) => / $/.test(l))
}

function longest(text: string): number {
  return Math.max(...text.split('\n').map((l) => l.length))
}

test('port: a busy --port fails with PORT_IN_USE (never a neighbour); a free one is bound exactly and logged', async (t) => {
  const bootstrap = await testnet(t)
  const busy = await busyUdpPort(t)
  const dir = await initDir(t, 'agency')
  const refused = new Daemon({ dir, bootstrap, port: busy })
  await t.exception(refused.ready(), /PORT_IN_USE/, 'in-process start refused')
  await refused.close().catch(() => {})

  const run = await cli(['run', '--dir', dir, '--bootstrap', bootstrap.join(','), '--port', String(busy), '--log-format', 'json'])
  t.is(run.code, 2, `the CLI exits 2 (stderr: ${run.stderr.slice(-300)})`)
  t.ok(run.stderr.includes('PORT_IN_USE'), 'and says PORT_IN_USE')
  t.ok(run.stderr.includes(String(busy)), 'naming the port')

  const free = await freeUdpPort()
  const { daemon, events } = await daemonWithLog(t, dir, bootstrap, free)
  const started = events.find((e) => e.event === 'started')
  t.ok(started, 'started logged')
  t.is(started!.dhtAddress, `0.0.0.0:${free}`, 'the bound DHT address is logged (the port asked for)')
  t.ok(started!.message.includes(`DHT on 0.0.0.0:${free}`), started!.message)
  t.is(daemon.network!.dhtStatus().address, `0.0.0.0:${free}`)
})

test('port: --port 0 picks any free port and logs it', async (t) => {
  const bootstrap = await testnet(t)
  const dir = await initDir(t, 'embassy')
  const { events } = await daemonWithLog(t, dir, bootstrap, 0)
  const started = events.find((e) => e.event === 'started')!
  t.ok(/^0\.0\.0\.0:[1-9]\d*$/.test(String(started.dhtAddress)), `bound ${started.dhtAddress}`)
})

test('DHT: fewer than 4 answering DHT nodes warn at start (log, status field, text); enough do not', async (t) => {
  const small = await testnet(t, 2)
  const dir = await initDir(t, 'agency')
  const { daemon, events } = await daemonWithLog(t, dir, small)
  const warn = events.find((e) => e.event === 'few-dht-nodes')
  t.ok(warn, 'warned')
  t.is(warn!.level, 'warn')
  t.ok((warn!.nodes as number) < MIN_DHT_NODES, `${warn!.nodes} node(s)`)
  t.ok(warn!.message.includes('four or more DHT nodes'), 'with the README\'s advice')
  const s = await nodeStatus(daemon.host)
  t.is(s.dht?.few, true, 'status.dht.few')
  t.ok(formatStatus(s, STATUS_VIEW).includes('WARNING: only'), 'status text warns')

  const big = await testnet(t, 6)
  const dir2 = await initDir(t, 'embassy')
  const quiet = await daemonWithLog(t, dir2, big)
  t.absent(quiet.events.find((e) => e.event === 'few-dht-nodes'), 'no warning with enough DHT nodes')
  const s2 = await nodeStatus(quiet.daemon.host)
  t.is(s2.dht?.few, false)
  t.absent(formatStatus(s2, STATUS_VIEW).includes('WARNING'), 'no warning in the text')
})

test('looking for: a followed agency that never answers is reported with attempt and retry, debounced', async (t) => {
  const bootstrap = await testnet(t)
  const dir = await initDir(t, 'embassy')
  const { daemon, events } = await daemonWithLog(t, dir, bootstrap)
  // An agency key nobody runs.
  const ghost = toZ32(Buffer.alloc(32, 7))
  await ((await daemon.host.embassy()) as Embassy).follow(ghost)
  const first = await eventually('a looking-for line', () => events.find((e) => e.event === 'looking-for' && e.nodeKey === ghost), 60_000)
  t.ok(new RegExp(`^looking for ${ghost} \\(attempt \\d+, next in \\d+ s\\)$`).test(first.message), first.message)
  // Two more DHT checks (every 5 s) pass: still one line (at most one per LOOKING_REPORT_MS).
  await new Promise((r) => setTimeout(r, 11_000))
  const lines = events.filter((e) => e.event === 'looking-for' && e.nodeKey === ghost)
  t.ok(LOOKING_REPORT_MS > 11_000)
  t.is(lines.length, 1, 'debounced: not one line per check')
})

test('last contact: recorded per peer from any message or keep-alive, apart from the receipt age; kept after the peer goes', async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency')
  const embassyDir = await initDir(t, 'embassy')
  const { daemon: agency } = await daemonWithLog(t, agencyDir, bootstrap)
  const { daemon: embassy } = await daemonWithLog(t, embassyDir, bootstrap)
  const a = await agency.host.agency()
  await a.createDataset('register')
  await a.append('register', [{ n: 1 }])
  await pair(agency, embassy)
  const embassyKey = toZ32(embassy.host.node.nodeKey)

  const held = await eventually('the embassy holds the record', async () => {
    const s = await nodeStatus(agency.host)
    if (s.role !== 'agency') return null
    const e = s.datasets.find((d) => d.name === 'register')?.embassies.find((x) => x.nodeKey === embassyKey)
    return e && e.heldLength === 1 && e.lastContact !== null && e.receiptAt !== null ? e : null
  }, 60_000)
  t.ok(held.lastContact! <= Date.now(), 'agency: last contact of the embassy')
  // Nothing changes now: the receipt stays the same, yet contact keeps advancing (keep-alives).
  const later = await eventually('contact advances without new receipts', async () => {
    const s = await nodeStatus(agency.host)
    if (s.role !== 'agency') return null
    const e = s.datasets.find((d) => d.name === 'register')!.embassies.find((x) => x.nodeKey === embassyKey)!
    return e.lastContact! >= held.lastContact! + 1500 ? e : null
  }, 30_000)
  t.is(later.receiptAt, held.receiptAt, 'the receipt did not change (its age only grew)')
  t.ok(later.receiptAge! > held.receiptAge!, 'receipt age grew')

  const es = await eventually('embassy: last contact of the agency', async () => {
    const s = await nodeStatus(embassy.host)
    return s.role === 'embassy' && s.agencies[0]?.lastContact ? s : null
  })
  t.ok(es.peers.every((p) => typeof p.lastContact === 'number'), 'peers carry lastContact')
  const text = formatStatus(es, STATUS_VIEW)
  t.ok(/last contact \d+ (ms|s) ago/.test(text), 'embassy text shows last contact')
  t.ok(formatStatus(await nodeStatus(agency.host), STATUS_VIEW).includes('LAST CONTACT'), 'agency text has the column')

  const lastSeen = agency.network!.lastContact(embassy.host.node.nodeKey)
  await embassy.close()
  const gone = await eventually('the agency sees the embassy offline', async () => {
    const s = await nodeStatus(agency.host)
    if (s.role !== 'agency') return null
    const e = s.datasets.find((d) => d.name === 'register')!.embassies.find((x) => x.nodeKey === embassyKey)!
    return e.connected ? null : e
  }, 30_000)
  t.ok(gone.lastContact !== null && gone.lastContact >= lastSeen!, 'last contact kept after the peer went away')
})

test('list: a restoring agency says it is restoring instead of "no datasets"', async (t) => {
  const empty = list.format({ datasets: [], restoring: true, restore: restoreStatus() }, STATUS_VIEW)
  t.absent(empty.includes('no datasets'), empty)
  t.ok(empty.includes('restoring from embassies (backfilling, 10/40 blocks held)'), empty)
  t.is(list.format({ datasets: [] }, STATUS_VIEW), 'no datasets\n', 'not restoring: unchanged')
  const partial = list.format({ datasets: [{ name: 'a', kind: 'log', length: 1, byteLength: 10 } as never], restoring: true }, STATUS_VIEW)
  t.ok(partial.includes('more datasets may appear'), partial)

  // The real command on an agency whose config says it is restoring.
  const dir = await initDir(t, 'agency')
  const node = new EmbassyNode(dir)
  await node.ready()
  node.updateConfig((c) => (c.restoring = true))
  await node.close()
  const res = await cli(['list', '--dir', dir])
  t.is(res.code, 0, res.stderr)
  t.ok(res.stdout.includes('restoring from embassies'), res.stdout)
  const json = await cli(['list', '--dir', dir, '--json'])
  t.is(json.json?.restoring, true, 'list --json: restoring')
})

function restoreStatus() {
  return { state: 'backfilling' as const, heldBlocks: 10, totalBlocks: 40, writable: false, waitingFor: 'embassy abc to report', quorum: 2, reported: ['x'], backfillRate: 0, secondLiveNode: false, cores: 3, confirmedCores: 1 }
}

const KEY = 'yry'.padEnd(52, 'x')
const KEY2 = 'abc'.padEnd(52, 'y')
const base = { nodeKey: KEY, catalogKey: KEY2, name: 'Land\x1b[31m Board', running: true, peers: [], alarms: [], alarmsAcknowledged: 0, alarmCounts: {} }
const core = { key: KEY2, dataset: 'd1', length: 10, contiguousLength: 4, byteLength: 1000, peers: 1, fork: 0, head: null, offered: null }

test('status text: agency restore, last contact apart from receipt age, escaped names, ≤ 100 columns', async (t) => {
  const now = Date.now()
  const s = {
    ...base,
    role: 'agency',
    dht: { address: '0.0.0.0:49737', nodes: 2, nodesAtStart: 2, few: true },
    restore: restoreStatus(),
    datasets: [
      {
        name: 'land\x1b[2J-register',
        kind: 'log',
        length: 12,
        byteLength: 12_000,
        heads: [],
        embassies: [
          { nodeKey: KEY2, heldLength: 12, behindBlocks: 0, behindBytes: 0, receiptAt: now - 600_000, receiptAge: 600_000, lastContact: now - 2000, connected: true, preRewrite: [], audit: { state: 'passed', sampled: 12, failed: 0 }, held: true },
          { nodeKey: KEY, heldLength: 3, behindBlocks: 9, behindBytes: 9000, receiptAt: null, receiptAge: null, lastContact: null, connected: false, preRewrite: [], audit: { state: 'never', sampled: 0, failed: 0 }, held: false }
        ]
      }
    ]
  } as unknown as NodeStatus
  const text = formatStatus(s, STATUS_VIEW)
  t.ok(text.includes('restore: backfilling, 10/40 blocks held, backfill paused; 1 of 2 embassies reported'), text)
  t.ok(text.includes('writes wait for embassy abc to report'))
  t.ok(text.includes('DHT 0.0.0.0:49737'))
  t.ok(/10 min\s+2 s ago/.test(text), 'receipt age and last contact side by side, separately')
  t.ok(/never\s+never/.test(text), 'an embassy never heard from')
  t.absent(/\x1b/.test(text), 'no raw escape reaches the terminal')
  t.ok(text.includes('land\\x1b[2J-register'), 'dataset name escaped')
  t.ok(text.includes('Land\\x1b[31m Board'), 'node name escaped')
  t.ok(longest(text) <= 100, `readable on 100 columns (longest ${longest(text)})`)
  t.absent(trailing(text), 'no trailing blanks')
})

test('status text: embassy quota (limits, use, state) and last contact', async (t) => {
  const now = Date.now()
  const agency = (quota: unknown, extra = {}) => ({ nodeKey: KEY2, catalogKey: KEY, connected: true, lastReceiptAt: now, receiptsSent: 3, complete: false, cores: [core], problems: ['bad\x1b]0;title\x07'], quota, reached: true, followedAt: now, unreachedFor: null, lastContact: now - 3000, ...extra })
  const s = {
    ...base,
    role: 'embassy',
    agencies: [
      agency({ maxBytes: 10 * 1024 * 1024, maxCores: 8, warn: 0.9, state: 'near', bytes: 9.5 * 1024 * 1024, heldBytes: 9 * 1024 * 1024, cores: 5, heldCores: 4, reason: 'holds 9.5 MiB of 10 MiB\x1b[0m' }),
      agency({ maxBytes: null, maxCores: null, warn: 0.9, state: 'ok' }),
      agency({ maxBytes: null, maxCores: 3, warn: 0.9 }, { reached: false, catalogKey: null, lastContact: null, unreachedFor: 5000 })
    ]
  } as unknown as NodeStatus
  const text = formatStatus(s, STATUS_VIEW)
  t.ok(text.includes('quota: NEAR; 9.0 MiB held of 9.5 MiB published (limit 10.0 MiB); 4/5 cores (limit 8 cores)\n    holds 9.5 MiB of 10 MiB\\x1b[0m'), text)
  t.ok(text.includes('quota: none (no limits)'))
  t.ok(text.includes('quota: no byte limit, limit 3 cores (use shown once its catalog is held)'))
  t.ok(text.includes('(connected, last contact 3 s ago)'))
  t.ok(text.includes('(connected, last contact never)'))
  t.absent(/[\x1b\x07]/.test(text), 'escaped')
  t.ok(longest(text) <= 100, `readable on 100 columns (longest ${longest(text)})`)
  t.absent(trailing(text), 'no trailing blanks')
})

test('status text: mirror held summary, fetch, last contact', async (t) => {
  const now = Date.now()
  const s = {
    ...base,
    role: 'mirror',
    sources: [{ catalogKey: KEY, agencyNodeKey: KEY2, complete: false, cores: [core], held: { heldBlocks: 4, totalBlocks: 10, state: 'backfilling' }, lastContact: now - 1000 }],
    fetch: { prefetch: 'off', sparse: true, cacheBytes: 64 * 1024 * 1024, cachedBytes: 2048, cachedBlocks: 2, evicted: 5 }
  } as unknown as NodeStatus
  const text = formatStatus(s, STATUS_VIEW)
  t.ok(text.includes('catching up; held 4/10 blocks (backfilling)'), text)
  t.ok(text.includes('fetch: prefetch off; sparse: 2.0 KiB in 2 blocks cached of 64.0 MiB, 5 evicted'))
  t.ok(/last contact 1 s ago/.test(text))
  t.ok(longest(text) <= 100, `readable on 100 columns (longest ${longest(text)})`)
  t.absent(trailing(text), 'no trailing blanks')
})
