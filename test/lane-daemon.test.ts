/**
 * The bulk lane in product daemons (config `lane`): an agency and an embassy that both listen
 * open one lane once paired, replicate over it, log its opening, and `embassy status --json`
 * shows it per peer with its bytes. A node without `lane` in its config opens nothing.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'brittle'
import { Daemon, toZ32, type Agency, type Embassy, type LogEvent } from '../lib/index.js'
import { readConfig, writeConfig } from '../lib/node/config.js'
import { formatStatus, nodeStatus } from '../lib/daemon/commands/node.js'
import { eventually, initDir, makeTree, pair, testnet, type Test } from './helpers/index.js'

async function laneDaemon(t: Test, role: 'agency' | 'embassy', bootstrap: string[], lane: Record<string, unknown> | null): Promise<{ daemon: Daemon; log: LogEvent[] }> {
  const dir = await initDir(t, role, role)
  if (lane) writeConfig(dir, { ...readConfig(dir), lane })
  const log: LogEvent[] = []
  const daemon = new Daemon({ dir, bootstrap, log: (e) => log.push(e) })
  t.teardown(() => daemon.close(), { order: 0, force: true })
  await daemon.ready()
  return { daemon, log }
}

test('lane-daemon: paired agency and embassy with `lane` open one lane, replicate over it, log it and show it in status', async (t) => {
  const bootstrap = await testnet(t)
  const ag = await laneDaemon(t, 'agency', bootstrap, { listen: '127.0.0.1:0' })
  const em = await laneDaemon(t, 'embassy', bootstrap, { listen: '127.0.0.1:0' })
  await eventually('both listen', () => ag.log.some((e) => e.event === 'lane-listening') && em.log.some((e) => e.event === 'lane-listening'))
  await pair(ag.daemon, em.daemon)
  await eventually('the lane opened on both sides', () => ag.log.some((e) => e.event === 'lane-open') && em.log.some((e) => e.event === 'lane-open'), 60_000)
  const opens = [...ag.log, ...em.log].filter((e) => e.event === 'lane-open')
  t.is(opens.filter((e) => e.initiator === true).length, 1, 'one side dialled: one lane per pair')

  // Bulk: a files dataset published after the lane is up.
  const agency = (await ag.daemon.host.agency()) as Agency
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 6 * 1024 * 1024)
  await agency.publish('laws', src)
  const embassy = (await em.daemon.host.embassy()) as Embassy
  const drive = async () => {
    for (const info of await agency.datasets.infos()) {
      const ds = await agency.datasets.open(info)
      if ('drive' in ds) return (await ds.drive.getBlobs())!.core
    }
    return null
  }
  const blobs = (await drive())!
  await eventually('the embassy holds the files', () => embassy.holdings().some((h) => h.cores.some((c) => c.key === toZ32(blobs.key!) && c.contiguousLength === blobs.length)), 120_000)

  const status = (await nodeStatus(em.daemon.host)) as unknown as { peers: Array<{ nodeKey: string; lane?: { up: boolean; bytesIn: number; bytesOut: number } }> }
  const peer = status.peers.find((p) => p.nodeKey === toZ32(ag.daemon.host.node.nodeKey))
  t.ok(peer?.lane?.up, 'status: the lane with the agency is up')
  t.ok((peer?.lane?.bytesIn ?? 0) > 512 * 1024, `status: ${peer?.lane?.bytesIn} bytes came over the lane`)
  t.ok(JSON.parse(JSON.stringify(status)).peers[0].lane.up === true, 'the --json form carries it')
  t.ok(/bulk lane up/.test(formatStatus(await nodeStatus(em.daemon.host), { tty: false } as never)), 'the text status says so')
  t.absent(em.log.some((e) => e.event === 'lane-failed') || ag.log.some((e) => e.event === 'lane-failed'), 'no failed lane dial')
})

test('lane-daemon: without `lane` in the config no listener opens and no lane is offered', async (t) => {
  const bootstrap = await testnet(t)
  const ag = await laneDaemon(t, 'agency', bootstrap, null)
  const em = await laneDaemon(t, 'embassy', bootstrap, { listen: '127.0.0.1:0' })
  await pair(ag.daemon, em.daemon)
  await eventually('paired', () => ag.daemon.network?.connectedTo(em.daemon.host.node.nodeKey) && em.daemon.network?.connectedTo(ag.daemon.host.node.nodeKey))
  t.is(ag.daemon.network!.lane, null, 'the agency has no lane at all')
  t.absent(ag.log.some((e) => e.event.startsWith('lane-')), 'the agency logs nothing about lanes')
  // The embassy offered; the agency (lane off) ignored the offer: it never dials.
  await eventually('the agency speaks minor 3 (it got the offer and has no lane to use it)', () => em.daemon.network!.connectedTo(ag.daemon.host.node.nodeKey)?.channel.supports('lane'))
  t.is(em.daemon.network!.lane!.server!.stats.accepted, 0, 'nobody dialled the embassy')
  t.is(em.daemon.network!.lane!.openLanes, 0, 'no lane')
  t.ok(fs.existsSync(ag.daemon.host.node.dir), 'agency still running')
})

test('lane-daemon: a lane port already in use is logged and the node runs on the swarm alone', async (t) => {
  const bootstrap = await testnet(t)
  const busy = net.createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())))
  const port = (busy.address() as net.AddressInfo).port
  const ag = await laneDaemon(t, 'agency', bootstrap, null)
  const em = await laneDaemon(t, 'embassy', bootstrap, { listen: `127.0.0.1:${port}` })
  const failed = await eventually('the failure is logged', () => em.log.find((e) => e.event === 'lane-listen-failed'))
  t.is(failed.level, 'error')
  t.ok(/cannot listen on 127\.0\.0\.1:\d+: PORT_IN_USE/.test(failed.message), failed.message)
  t.ok(failed.message.includes('lane.listen') && !failed.message.includes('--port'), 'the advice names lane.listen, not --port')
  await pair(ag.daemon, em.daemon)
  await eventually('the embassy still connects to its agency', () => em.daemon.network?.connectedTo(ag.daemon.host.node.nodeKey))
  t.is(em.daemon.network!.lane!.server, null, 'no listener')
})
