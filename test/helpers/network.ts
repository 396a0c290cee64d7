/** Networked tests: a local testnet, in-process daemons with teardown, and pairing them. */
import dgram from 'node:dgram'
import fs from 'node:fs'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import Corestore from 'corestore'
import { Daemon, EmbassyNode, parseHostPort, toZ32, type Agency, type Embassy, type Mirror, type RoleName } from '../../lib/index.js'
import { Network } from '../../lib/net/network.js'
import { NET_MEMORY_FILE } from '../../lib/net/net-memory.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, PeerRole } from '../../protocol/index.js'
import type test from 'brittle'

type Test = test.Assert

/** A local DHT (≥ 4 nodes make first dials reliable); returns the bootstrap list as host:port. */
export async function testnet(t: Test, size = 5): Promise<string[]> {
  const net = await createTestnet(size)
  t.teardown(() => net.destroy(), { order: Infinity, force: true })
  return net.bootstrap.map((b: { host: string; port: number }) => `${b.host}:${b.port}`)
}

export async function initDir(t: Test, role: RoleName, name: string = role): Promise<string> {
  const dir = path.join(await t.tmp(), name)
  await EmbassyNode.init(dir, { role, name })
  return dir
}

/** Starts `embassy run` in-process on `dir`; closed at teardown (before the testnet). */
export async function startDaemon(t: Test, dir: string, bootstrap: string[]): Promise<Daemon> {
  const daemon = new Daemon({ dir, bootstrap })
  t.teardown(() => daemon.close(), { order: 0, force: true })
  await daemon.ready()
  return daemon
}

/** Admits `peer` on the running `holder`: the role's pairing API (config.allow + re-admission on its live network). */
export async function allow(holder: Daemon, peer: Daemon): Promise<void> {
  const role = await holder.host.role()
  role.allow(peer.host.node.nodeKey)
}

export interface PairOptions {
  /**
   * A mirror peer adds this read capability (an agency holder's own is used when not given;
   * an embassy holder has none: without it the mirror is only admitted).
   */
  capability?: string
}

/**
 * Pairs two running daemons the way operators do:
 * - `pair(agency, embassy)`: the agency allows the embassy, the embassy follows the agency;
 * - `pair(agency, mirror)`: the agency allows the mirror, the mirror adds the agency's capability;
 * - `pair(embassy, mirror, { capability })`: the embassy allows the mirror, the mirror adds
 *   `capability` (without it the mirror is only admitted: it already has a source).
 */
export async function pair(holder: Daemon, peer: Daemon, opts: PairOptions = {}): Promise<void> {
  await allow(holder, peer)
  const holderRole = holder.host.node.role
  const peerRole = peer.host.node.role
  if (peerRole === 'embassy') {
    if (holderRole !== 'agency') throw new Error(`pair: an embassy pairs with an agency, not with a ${holderRole}`)
    await ((await peer.host.embassy()) as Embassy).follow(toZ32(holder.host.node.nodeKey))
  } else if (peerRole === 'mirror') {
    const capability = opts.capability ?? (holderRole === 'agency' ? ((await holder.host.agency()) as Agency).capability() : null)
    if (capability) await ((await peer.host.mirror()) as Mirror).add(capability)
  } else {
    throw new Error(`pair: a ${peerRole} is never paired as a peer`)
  }
}

/**
 * HyperDHT binds 49737–49741 first when no port is given, so a lone test node would get the same
 * port at every start by luck (on a shared host, or beside `embassy bootstrap`, it does not): hold
 * the free ones of that range during the test so a node without a remembered port binds a random
 * one, as in the field trial.
 */
export async function holdDefaultPorts(t: Test): Promise<void> {
  const held: dgram.Socket[] = []
  for (let port = 49737; port <= 49742; port++) {
    const s = dgram.createSocket('udp4')
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false))
      s.bind(port, '0.0.0.0', () => resolve(true))
    })
    if (ok) held.push(s)
    else s.close()
  }
  t.teardown(() => Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => {}), { order: 2 })
}

export interface NetworkOptions {
  /** A node directory stand-in: the store goes under it, and the memory file too (unless `memory: false`). */
  dir?: string
  /** Remember ports and peer addresses in `dir` (default: true when `dir` is given). */
  memory?: boolean
  /** The DHT's UDP port (default: the remembered one, else any). */
  port?: number
  /** Dial this peer once ready (Network.joinPeer). */
  dials?: Buffer
  /** The DHT port stated in our custody handshake (default: the real one; a test of a lying peer sets another). */
  statedDhtPort?: number
}

export interface StartedNetwork {
  net: Network
  /** `memory-error` reasons, in order. */
  errors: string[]
  /** `port-changed` events as [was, now]. */
  portChanges: Array<[number, number]>
  /** Closes the network and its store (idempotent; also run at teardown). */
  stop(): Promise<void>
}

/**
 * A bare Network (no role, no daemon) on 127.0.0.1 that admits everyone and says it is an embassy:
 * the set-up of reconnection tests. Closed at teardown (before the testnet).
 */
export async function startNetwork(t: Test, bootstrap: string[], keyPair: { publicKey: Buffer; secretKey: Buffer }, opts: NetworkOptions = {}): Promise<StartedNetwork> {
  const dir = opts.dir ?? (await t.tmp())
  fs.mkdirSync(dir, { recursive: true })
  const store = new Corestore(path.join(dir, `store-${Date.now()}-${Math.random().toString(16).slice(2)}`))
  const memory = opts.memory ?? opts.dir !== undefined
  const net = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [], ...(opts.statedDhtPort !== undefined ? { dhtPort: opts.statedDhtPort } : {}) }),
    isAllowed: () => true,
    host: '127.0.0.1',
    ...(opts.port ? { port: opts.port } : {}),
    ...(memory ? { memoryFile: path.join(dir, NET_MEMORY_FILE) } : {}),
    scope: { entitled: () => [], catalogOfTopic: () => null }
  })
  const errors: string[] = []
  const portChanges: Array<[number, number]> = []
  net.on('memory-error', (_file, reason) => errors.push(reason))
  net.on('port-changed', (was, now) => portChanges.push([was, now]))
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await net.close()
    await store.close()
  }
  t.teardown(stop, { order: 0 })
  await net.ready()
  if (opts.dials) net.joinPeer(opts.dials)
  return { net, errors, portChanges, stop }
}
