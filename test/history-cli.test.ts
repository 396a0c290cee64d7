/**
 * History no one can erase, through the CLI on separate processes: a signed truncation by the
 * agency's own key never erases an embassy's copy; the embassy alarms and tells the agency; the
 * agency's custody shows the pre-rewrite history; a fresh mirror reads the original records
 * through the embassy with the agency gone.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { NodeHost, toZ32, type Agency } from '../lib/index.js'
import { cli, cliOk, eventually, pairDirs, spawnBootstrap, spawnRun } from './helpers/index.js'

const ORIGINAL = Array.from({ length: 10 }, (_, i) => ({ original: i }))

interface CoreRow {
  key: string
  length: number
  contiguousLength: number
  fork: number
  offered?: { length: number; fork: number }
}

interface AlarmRow {
  kind: string
  core: string
  peer: string
  reportedBy?: string
  held?: { length: number; fork: number; treeHash: string | null }
  offered?: { length: number; fork: number }
}

async function statusJson(dir: string): Promise<any> {
  const r = await cli(['status', '--dir', dir, '--json'])
  if (r.code !== 0) throw new Error(`status exited ${r.code}: ${r.stderr.slice(-500)}`)
  return r.json
}

function heldCore(status: any, key: string): CoreRow | null {
  const cores: CoreRow[] = (status?.agencies ?? []).flatMap((a: { cores: CoreRow[] }) => a.cores)
  return cores.find((c) => c.key === key) ?? null
}

test('history (CLI, processes): a signed truncation by the agency key is refused by a running embassy; both sides alarm; a fresh mirror reads the original 10 records through the embassy', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const dirs = { agency: path.join(root, 'agency'), embassy: path.join(root, 'embassy'), mirror: path.join(root, 'mirror') }
  await cliOk(['init', '--role', 'agency', '--name', 'Land Board', '--dir', dirs.agency])
  await cliOk(['init', '--role', 'embassy', '--dir', dirs.embassy])
  const agencyId = (await cliOk(['id', '--dir', dirs.agency, '--json'])).json
  const embassyId = (await cliOk(['id', '--dir', dirs.embassy, '--json'])).json

  await cliOk(['dataset', 'create', 'register', '--dir', dirs.agency])
  await cliOk(['append', 'register', '--dir', dirs.agency], { input: ORIGINAL.map((r) => JSON.stringify(r)).join('\n') + '\n' })
  await pairDirs({ dir: dirs.agency, nodeKey: agencyId.nodeKey }, { dir: dirs.embassy, nodeKey: embassyId.nodeKey })

  let agency = await spawnRun(t, dirs.agency, bootstrap)
  const embassy = await spawnRun(t, dirs.embassy, bootstrap)

  // The embassy holds the dataset core at 10 (found as the one non-catalog core it holds).
  const held = await eventually('the embassy holds the register core at length 10', async () => {
    const s = await statusJson(dirs.embassy)
    const a = s?.agencies?.[0]
    if (!a) return null
    const data = (a.cores as Array<CoreRow & { dataset: string }>).filter((c) => c.dataset !== 'catalog' && c.key !== a.catalogKey)
    return data.length === 1 && data[0]!.length === 10 && data[0]!.contiguousLength === 10 ? data[0]! : null
  })
  const coreZ = held.key
  t.is(held.fork, 0, 'held on fork 0')
  // The agency has the embassy's receipt at 10 (the proof it will later show as pre-rewrite history).
  await eventually('the agency has a receipt at 10', async () => {
    const s = await statusJson(dirs.agency)
    return s?.datasets?.find((d: { name: string }) => d.name === 'register')?.embassies?.find((e: { nodeKey: string }) => e.nodeKey === embassyId.nodeKey)?.heldLength === 10
  })
  const capability = (await cliOk(['capability', '--dir', dirs.agency, '--json'])).json.readCapability as string
  t.ok(typeof capability === 'string' && capability.length > 0, 'read capability obtained while the agency exists')

  t.is(await agency.stop(), 0, 'agency exits 0 on SIGTERM')

  // The agency's key holder rewrites history with the agency's own key: truncate to 3, append one.
  {
    const host = new NodeHost(dirs.agency)
    await host.ready()
    try {
      const a = (await host.agency()) as Agency
      const log = await a.datasets.openLog('register')
      t.is(toZ32(log.core.key!), coreZ, 'the library opens the same core the embassy holds')
      await log.core.truncate(3)
      await a.append('register', [{ rewritten: true }])
      t.is(log.core.length, 4, 'agency now at length 4')
      t.is(log.core.fork, 1, 'on fork 1')
    } finally {
      await host.close()
    }
  }

  const restartAt = Date.now()
  agency = await spawnRun(t, dirs.agency, bootstrap)
  // Timing from the daemons' own log lines (their `time` is the moment the alarm was raised).
  const embLogged = embassy.waitEvent((e) => e.event === 'history-rewrite' && e.core === coreZ, 60_000)
  const agencyLogged = agency.waitEvent((e) => e.event === 'custody-alarm' && e.kind === 'history-rewrite' && e.core === coreZ, 60_000)
  embLogged.catch(() => {})
  agencyLogged.catch(() => {})

  // Both sides polled at once, so each time seen is its own.
  const seen = { embassy: 0, agency: 0 }
  const embPoll = eventually(
    'a history-rewrite alarm in the embassy status',
    async () => {
      const s = await statusJson(dirs.embassy)
      return (s?.alarms ?? []).some((a: AlarmRow) => a.kind === 'history-rewrite' && a.core === coreZ) ? s : null
    },
    30_000
  ).then((s) => ((seen.embassy = Date.now() - restartAt), s))
  const agencyPoll = eventually(
    'a history-rewrite alarm in the agency status',
    async () => {
      const s = await statusJson(dirs.agency)
      return (s?.alarms ?? []).some((a: AlarmRow) => a.kind === 'history-rewrite' && a.core === coreZ) ? s : null
    },
    30_000
  ).then((s) => ((seen.agency = Date.now() - restartAt), s))
  agencyPoll.catch(() => {}) // awaited below
  const embStatus = await embPoll
  const agencyStatus = await agencyPoll

  // The embassy: still holds the verified history, and says so.
  const embAlarms = (embStatus.alarms as AlarmRow[]).filter((a) => a.kind === 'history-rewrite' && a.core === coreZ)
  t.is(embAlarms.length, 1, 'exactly one history-rewrite alarm for the core on the embassy')
  const alarm = embAlarms[0]!
  t.is(alarm.peer, agencyId.nodeKey, 'names the agency as the peer that offered it')
  t.is(alarm.held?.length, 10, 'alarm: held length 10')
  t.is(alarm.held?.fork, 0, 'alarm: held fork 0')
  t.ok(typeof alarm.held?.treeHash === 'string' && alarm.held.treeHash.length > 0, 'alarm: held tree hash')
  t.alike(alarm.offered, { length: 4, fork: 1 }, 'alarm: offered length 4, fork 1')
  const row = heldCore(embStatus, coreZ)
  t.ok(row, 'the core is still among the held cores')
  t.is(row?.length, 10, 'the embassy keeps length 10')
  t.is(row?.contiguousLength, 10, 'and every block of it')
  t.is(row?.fork, 0, 'on fork 0')
  const offered = await eventually('the offered head beside the held core', async () => heldCore(await statusJson(dirs.embassy), coreZ)?.offered, 30_000)
  t.alike(offered, { length: 4, fork: 1 }, 'status core row: offered length 4, fork 1')

  // The agency: alarm reported by the embassy; its custody row keeps the pre-rewrite history.
  const reported = (agencyStatus.alarms as AlarmRow[]).find((a) => a.kind === 'history-rewrite' && a.core === coreZ)!
  t.is(reported.reportedBy, embassyId.nodeKey, 'reported by the embassy')
  const custodyRow = await eventually(
    'the custody row shows pre-rewrite history',
    async () => {
      const s = await statusJson(dirs.agency)
      const r = s?.datasets?.find((d: { name: string }) => d.name === 'register')?.embassies?.find((e: { nodeKey: string }) => e.nodeKey === embassyId.nodeKey)
      return r && Array.isArray(r.preRewrite) && r.preRewrite.length > 0 ? r : null
    },
    30_000
  )
  t.alike(custodyRow.preRewrite, [{ core: coreZ, length: 10, fork: 0 }], 'preRewrite: the core at length 10, fork 0')
  t.ok(custodyRow.behindBlocks > 0, `not shown as caught up (behindBlocks ${custodyRow.behindBlocks})`)

  const embEvent = await embLogged
  const agencyEvent = await agencyLogged
  t.comment(`rewrite → alarm on the embassy: ${embEvent.time - restartAt} ms after the agency restart (logged); seen in status --json after ${seen.embassy} ms`)
  t.comment(`rewrite → alarm on the agency: ${agencyEvent.time - restartAt} ms after the agency restart (logged); seen in status --json after ${seen.agency} ms`)

  const help = await cli(['accept-rewrite', '--help'])
  t.is(help.code, 0, 'accept-rewrite --help exits 0')
  t.ok(help.stdout.includes('accept-rewrite'), 'and prints its usage')

  // The agency goes away; a fresh mirror reads through the embassy alone.
  t.is(await agency.stop(), 0, 'agency exits 0 on SIGTERM again')
  await cliOk(['init', '--role', 'mirror', '--dir', dirs.mirror])
  const mirrorId = (await cliOk(['id', '--dir', dirs.mirror, '--json'])).json
  const capFile = path.join(root, 'read-capability.txt')
  fs.writeFileSync(capFile, capability + '\n', { mode: 0o600 })
  await cliOk(['mirror', '--capability-file', capFile, '--dir', dirs.mirror, '--json'])
  await cliOk(['allow', mirrorId.nodeKey, '--dir', dirs.embassy, '--json'])
  const mirror = await spawnRun(t, dirs.mirror, bootstrap)
  const records = await eventually(
    'the mirror reads 10 records through the embassy',
    async () => {
      const r = await cli(['read', 'register', '--json', '--dir', dirs.mirror])
      if (r.code !== 0) throw new Error(`read exited ${r.code}: ${r.stderr.slice(-300)}`)
      const recs = r.json?.records as Array<{ value: unknown }> | undefined
      return recs && recs.length === 10 ? recs : null
    },
    60_000,
    200
  )
  t.alike(
    records.map((r) => r.value),
    ORIGINAL,
    'exactly the original 10 records'
  )
  const after = heldCore(await statusJson(dirs.embassy), coreZ)
  t.is(after?.length, 10, 'the embassy still holds 10')
  t.is(after?.fork, 0, 'on fork 0')
  t.is(await mirror.stop(), 0, 'mirror exits 0')
  t.is(await embassy.stop(), 0, 'embassy exits 0')
})
