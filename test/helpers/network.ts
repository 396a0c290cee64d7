/** Helpers for networked tests: a local testnet and in-process daemons with teardown. */
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import { Daemon, EmbassyNode, type Role } from '../lib/index.js'
import type test from 'brittle'

type Test = test.Assert

/** A local DHT (≥ 4 nodes make first dials reliable); returns the bootstrap list as host:port. */
export async function testnet(t: Test, size = 5): Promise<string[]> {
  const net = await createTestnet(size)
  t.teardown(() => net.destroy(), { order: Infinity, force: true })
  return net.bootstrap.map((b: { host: string; port: number }) => `${b.host}:${b.port}`)
}

export async function initDir(t: Test, role: Role, name: string = role): Promise<string> {
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
