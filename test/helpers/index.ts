/**
 * Test helpers, one import for every test: temporary nodes, trees of files, polling. Each helper
 * that makes something registers its teardown. One file per concern:
 *   files.ts    trees of files and deterministic bytes (no product import: bench workers use it)
 *   network.ts  local DHT (testnet), in-process daemons, pair()
 *   process.ts  the real CLI as child processes (cli(), `embassy run`, `embassy bootstrap`)
 *   tamper.ts   bytes flipped below hypercore
 *   report.ts   rows of the fault table in TESTING.md
 *   mux.ts      two Protomux muxers over an in-memory Noise stream pair
 */
import path from 'node:path'
import type test from 'brittle'
import { EmbassyNode, NodeHost, type RoleName } from '../../lib/index.js'
import { ControlServer } from '../../lib/daemon/control.js'

export type Test = test.Assert

export * from './files.js'
export * from './network.js'
export * from './process.js'
export * from './tamper.js'
export * from './report.js'
export * from './mux.js'

/** A fresh node directory for `role`, initialised through the library. */
export async function initNode(t: Test, role: RoleName, name = ''): Promise<string> {
  const dir = path.join(await t.tmp(), role)
  await EmbassyNode.init(dir, { role, name })
  return dir
}

/** An open NodeHost on a fresh agency directory, closed at teardown. */
export async function openAgency(t: Test, name = 'Test Agency'): Promise<{ dir: string; host: NodeHost }> {
  const dir = await initNode(t, 'agency', name)
  const host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close())
  return { dir, host }
}

/** An agency directory with its node open and its control socket listening (what `embassy run` serves), closed at teardown. */
export async function serveAgency(t: Test, name = 'Test Agency'): Promise<{ dir: string; host: NodeHost; server: ControlServer }> {
  const dir = await initNode(t, 'agency', name)
  const host = new NodeHost(dir)
  await host.ready()
  const server = new ControlServer(dir, host)
  t.teardown(async () => {
    await server.close()
    await host.close()
  })
  await server.listen()
  return { dir, host, server }
}

/** Polls `check` until it returns a truthy value; throws after `timeout` ms with `what`. */
export async function eventually<T>(what: string, check: () => T | Promise<T>, timeout = 30_000, every = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout
  let last: unknown = null
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    await new Promise((r) => setTimeout(r, every))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}
