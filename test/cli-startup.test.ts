/**
 * CLI start-up: a command loads only what it runs on. `embassy --help` (and any command's --help)
 * loads the command table and nothing of the node, the roles, the network or the native crypto;
 * a command a running node serves (control socket) loads none of it either; a command that opens
 * the node directory itself loads the node and the roles, never the network or the daemon. The
 * modules a CLI process loads are recorded by a module hook (`--import` of a register script
 * written here). Also: help texts that name a default kept apart from its module agree with it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import test from 'brittle'
import { DRILL_TIMEOUT_HELP_SECONDS } from '../lib/daemon/commands/drill.js'
import { REPAIR_TIMEOUT_HELP_SECONDS } from '../lib/daemon/commands/repair.js'
import { DRILL_CONNECT_TIMEOUT_MS } from '../lib/roles/drill.js'
import { REPAIR_TIMEOUT_MS } from '../lib/verify/index.js'
import { KDF_PROFILES } from '../lib/kit/index.js'
import { cli, cliOk, initNode, serveAgency, type Test } from './helpers/index.js'

/** What no --help and no command served by a running node may load (paths as in the module URL). */
const HEAVY = ['/lib/node/node.js', '/lib/daemon/host.js', '/lib/daemon/daemon.js', '/lib/roles/', '/lib/net/', '/lib/gateway/', '/lib/kit/', '/node_modules/corestore/', '/node_modules/hyperswarm/', '/node_modules/hyperdht/', '/node_modules/sodium-native/']

/** A `--import` script that appends the URL of every ES module loaded to the file in $STARTUP_MODULES_OUT. */
async function moduleRecorder(t: Test): Promise<{ nodeArgs: string[]; read: (out: string) => string[] }> {
  const dir = await t.tmp()
  const hooks = path.join(dir, 'hooks.mjs')
  fs.writeFileSync(
    hooks,
    [
      "import fs from 'node:fs'",
      'export async function initialize (data) { globalThis.out = data.out }',
      'export async function load (url, context, next) {',
      '  fs.appendFileSync(globalThis.out, url + "\\n")',
      '  return next(url, context)',
      '}'
    ].join('\n')
  )
  const register = path.join(dir, 'register.mjs')
  fs.writeFileSync(register, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { out: process.env.STARTUP_MODULES_OUT } })\n`)
  return {
    nodeArgs: ['--import', pathToFileURL(register).href],
    read: (out) => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean) : [])
  }
}

/** Runs the CLI with the recorder; resolves its result and the modules it loaded. */
async function recorded(t: Test, args: string[], input?: string) {
  const rec = await moduleRecorder(t)
  const out = path.join(await t.tmp(), 'modules.txt')
  const r = await cli(args, { nodeArgs: rec.nodeArgs, env: { STARTUP_MODULES_OUT: out }, timeout: 120_000, ...(input !== undefined ? { input } : {}) })
  return { r, modules: rec.read(out) }
}

function heavyIn(modules: string[]): string[] {
  return modules.filter((m) => HEAVY.some((h) => m.includes(h)))
}

test('cli start-up: --help and a command\'s --help load the command table, not the node, roles, network or crypto', async (t) => {
  for (const args of [['--help'], ['append', '--help'], ['run', '--help'], ['drill', '--help'], ['kit', 'export', '--help'], ['status', '--help']]) {
    const { r, modules } = await recorded(t, args)
    t.is(r.code, 0, `embassy ${args.join(' ')} exits 0`)
    // The recorder works: the command table and a command module were seen.
    t.ok(modules.some((m) => m.endsWith('/lib/daemon/commands/data.js')) && modules.some((m) => m.endsWith('/bin/embassy.js')), `embassy ${args.join(' ')}: the recorder saw the CLI and the command table (${modules.length} modules)`)
    t.alike(heavyIn(modules), [], `embassy ${args.join(' ')} loads nothing heavy`)
  }
})

test('cli start-up: append and list through a running node\'s control socket load no node, roles or network', async (t) => {
  const { dir } = await serveAgency(t, 'Startup Agency')
  await cliOk(['dataset', 'create', 'events', '--dir', dir])
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ i }))
  const { r, modules } = await recorded(t, ['append', 'events', '--dir', dir, '--json'], lines.join('\n') + '\n')
  t.is(r.code, 0, `append exits 0 ${r.stderr}`)
  t.is(r.json?.appended, 50, 'the running node appended every record')
  t.ok(modules.some((m) => m.endsWith('/lib/daemon/control.js')), 'the control socket client was loaded')
  t.alike(heavyIn(modules), [], 'append through the socket loads nothing heavy')
  const listed = await recorded(t, ['list', '--dir', dir, '--json'])
  t.is(listed.r.code, 0)
  t.is(listed.r.json?.datasets?.[0]?.length, 50, 'list through the socket sees the 50 records')
  t.alike(heavyIn(listed.modules), [], 'list through the socket loads nothing heavy')
})

test('cli start-up: append opening the directory itself loads the node and roles, not the network, daemon or gateway', async (t) => {
  const dir = await initNode(t, 'agency', 'Startup Agency')
  await cliOk(['dataset', 'create', 'events', '--dir', dir])
  const { r, modules } = await recorded(t, ['append', 'events', '--dir', dir, '--json'], '{"a":1}\n{"a":2}\n')
  t.is(r.code, 0, `append exits 0 ${r.stderr}`)
  t.is(r.json?.appended, 2)
  t.ok(modules.some((m) => m.endsWith('/lib/daemon/host.js')) && modules.some((m) => m.includes('/node_modules/corestore/')), 'the node was opened here')
  const network = modules.filter((m) => ['/lib/net/', '/lib/daemon/daemon.js', '/lib/gateway/', '/node_modules/hyperswarm/', '/node_modules/hyperdht/'].some((h) => m.includes(h)))
  t.alike(network, [], 'nothing of the network, the daemon or the gateway')
})

test('cli start-up: usage errors read by lazily loaded parts still come before the directory is looked at', async (t) => {
  const missing = path.join(await t.tmp(), 'nothing-here')
  const since = await cli(['status', '--since', '99y', '--dir', missing])
  t.is(since.code, 2, 'status --since 99y: usage error (exit 2), before looking at the directory')
  t.ok(since.stderr.includes('--since must be a window'), since.stderr)
  const schedule = await cli(['run', '--schedule', 'soon', '--drill-kit', 'k', '--dir', missing])
  t.is(schedule.code, 2, 'run --schedule soon: usage error (exit 2), before looking at the directory')
  t.ok(schedule.stderr.includes('--schedule must be an interval'), schedule.stderr)
  const kdf = await cli(['kit', 'export', '--out', path.join(missing, 'kit'), '--kdf', 'toString', '--dir', missing], { env: { EMBASSY_PASSPHRASE: 'x' } })
  t.is(kdf.code, 2, 'kit export --kdf toString: usage error (an inherited property name is no profile)')
  t.ok(kdf.stderr.includes('--kdf must be sensitive or moderate'), kdf.stderr)
})

test('cli start-up: defaults named in help agree with their modules; the --kdf names are the profiles', (t) => {
  t.is(DRILL_TIMEOUT_HELP_SECONDS * 1000, DRILL_CONNECT_TIMEOUT_MS, 'drill --timeout default')
  t.is(REPAIR_TIMEOUT_HELP_SECONDS * 1000, REPAIR_TIMEOUT_MS, 'repair --timeout default')
  t.alike(Object.keys(KDF_PROFILES).sort(), ['moderate', 'sensitive'], 'the profiles kit export --kdf accepts')
})
