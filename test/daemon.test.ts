import path from 'node:path'
import test from 'brittle'
import { cli, eventually, spawnBootstrap, spawnRun } from './helpers/index.js'

test('processes: agency, embassy and mirror through the CLI; commands go through the control socket', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const dirs = { agency: path.join(root, 'agency'), embassy: path.join(root, 'embassy'), mirror: path.join(root, 'mirror') }
  t.is((await cli(['init', '--role', 'agency', '--name', 'Land Board', '--dir', dirs.agency])).code, 0)
  t.is((await cli(['init', '--role', 'embassy', '--dir', dirs.embassy, '--bootstrap', bootstrap.join(',')])).code, 0)
  t.is((await cli(['init', '--role', 'mirror', '--dir', dirs.mirror])).code, 0)
  const agencyId = (await cli(['id', '--dir', dirs.agency, '--json'])).json
  const embassyId = (await cli(['id', '--dir', dirs.embassy, '--json'])).json
  const mirrorId = (await cli(['id', '--dir', dirs.mirror, '--json'])).json

  await cli(['dataset', 'create', 'register', '--dir', dirs.agency])
  await cli(['append', 'register', '{"n":1}', '{"n":2}', '--dir', dirs.agency])
  t.is((await cli(['allow', embassyId.nodeKey, '--dir', dirs.agency])).code, 0)
  t.is((await cli(['follow', agencyId.nodeKey, '--dir', dirs.embassy])).code, 0)
  t.is((await cli(['allow', mirrorId.nodeKey, '--dir', dirs.embassy])).code, 0)

  const agency = await spawnRun(t, dirs.agency, bootstrap)
  const embassy = await spawnRun(t, dirs.embassy, bootstrap)
  await embassy.waitEvent((e) => e.event === 'catalog-learnt')

  // while the daemons run, commands go through their control sockets
  const appended = await cli(['append', 'register', '--dir', dirs.agency, '--json'], { input: '{"n":3}\n{"n":4}\n' })
  t.is(appended.code, 0, appended.stderr)
  t.is(appended.json.length, 4)
  const created = await cli(['dataset', 'create', 'later', '--dir', dirs.agency, '--json'])
  t.is(created.code, 0, created.stderr)
  await cli(['append', 'later', '{"late":true}', '--dir', dirs.agency])

  const held = await eventually('embassy holds every core at full length', async () => {
    const s = (await cli(['status', '--dir', dirs.embassy, '--json'])).json
    const cores = s?.agencies?.[0]?.cores ?? []
    return cores.length === 3 && cores.every((c: { length: number; contiguousLength: number }) => c.length > 0 && c.contiguousLength === c.length) ? s : null
  })
  t.ok(held.running, 'status came from the running node')
  t.is(held.agencies[0].catalogKey, agencyId.catalogKey)

  const agencyStatus = await eventually('receipts at the agency', async () => {
    const s = (await cli(['status', '--dir', dirs.agency, '--json'])).json
    const reg = s?.datasets?.find((d: { name: string }) => d.name === 'register')
    return reg?.embassies?.[0]?.heldLength === 4 ? s : null
  })
  t.is(agencyStatus.datasets.find((d: { name: string }) => d.name === 'register').embassies[0].nodeKey, embassyId.nodeKey)
  const human = await cli(['status', '--dir', dirs.agency])
  t.ok(human.stdout.includes('register'), 'human status table')

  const cap = (await cli(['capability', '--dir', dirs.agency, '--json'])).json.readCapability
  t.is(await agency.stop(), 0, 'agency exits 0 on SIGTERM')

  t.is((await cli(['mirror', cap, '--dir', dirs.mirror])).code, 0)
  const mirror = await spawnRun(t, dirs.mirror, bootstrap, ['--http', '127.0.0.1:0'])
  const { url } = await mirror.waitEvent((e) => e.event === 'http')
  const api = await eventually('the gateway lists both datasets', async () => {
    const res = await fetch(`${url}/api/datasets`)
    const body = (await res.json()) as { datasets?: Array<{ name: string }> }
    return res.status === 200 && body.datasets?.length === 2 ? body : null
  })
  t.alike(api.datasets!.map((d) => d.name).sort(), ['later', 'register'], 'web gateway serves the agency\'s data with the agency gone')
  const page = await fetch(`${url}/`)
  t.is(page.status, 200)
  t.ok((await page.text()).includes('register'), 'web page lists the datasets')
  t.is((await fetch(`${url}/api/datasets`, { method: 'POST' })).status, 405, 'read-only')
  const read = await cli(['read', 'register', '--dir', dirs.mirror])
  t.is(read.code, 0, read.stderr)
  t.is(read.stdout, '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n', 'mirror reads every record with the agency gone')
  const list = await cli(['list', '--dir', dirs.mirror, '--json'])
  t.alike(list.json.datasets.map((d: { name: string }) => d.name).sort(), ['later', 'register'])
})

test('processes: run without a bootstrap list refuses to start with a clear message', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  const r = await cli(['run', '--dir', dir, '--json'])
  t.is(r.code, 2)
  t.is(r.json.error.code, 'NO_BOOTSTRAP')
  t.ok(/public DHT is never used/.test(r.stderr))
  const bad = await cli(['run', '--dir', dir, '--bootstrap', 'nohost', '--json'])
  t.is(bad.code, 2)
})

test('cli: the demo runs end to end and leaves nothing running', async (t) => {
  const r = await cli(['demo', '--json'], { timeout: 120_000 })
  t.is(r.code, 0, r.stderr)
  t.is(r.json.plaintextHits, 0)
  t.ok(r.json.identical)
  t.is(r.json.records, 5001)
})

test('processes: a command racing a starting node: neither fails (the command waits for it, or the node for the command)', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  const { spawn } = await import('node:child_process')
  const { CLI } = await import('./helpers/index.js')
  const { track } = await import('./helpers/index.js')
  const proc = track(t, spawn(process.execPath, [CLI, 'run', '--dir', dir, '--bootstrap', bootstrap.join(','), '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  const status = await cli(['status', '--dir', dir, '--json'])
  t.is(status.code, 0, status.stderr)
  t.comment(status.json.running ? 'answered by the starting node' : 'answered from storage; the node waited for it')
  await proc.waitEvent((e) => e.event === 'started')
  t.pass('the node started')
  const again = await cli(['status', '--dir', dir, '--json'])
  t.is(again.json.running, true, 'and now answers')
  t.is(await proc.stop(), 0)
})

test('daemon: run waits for a directory a one-shot command holds for a moment; a second run is refused', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  const { NodeHost, Daemon } = await import('../lib/index.js')
  const busy = new NodeHost(dir)
  await busy.ready()
  const daemon = new Daemon({ dir, bootstrap })
  t.teardown(() => daemon.close(), { force: true })
  const firstHost = daemon.host
  const starting = daemon.ready()
  starting.catch(() => {}) // awaited below; never left to the teardown
  // Proof that it is waiting (not a fixed sleep): a DIR_LOCKED try replaces its host and retries.
  await eventually('the daemon found the directory locked and waits for it', () => daemon.host !== firstHost, 30_000, 10)
  await busy.close()
  await starting
  t.ok(daemon.opened, 'started once the directory was free')
  const second = await cli(['run', '--dir', dir, '--bootstrap', bootstrap.join(','), '--json'])
  t.is(second.code, 1)
  t.ok(/already running/.test(second.json.error.message), second.json.error.message)
})
