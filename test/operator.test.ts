/**
 * Operator experience (issue 15, items 8, 10, 11, 12, 14, 15, 16, 18), through the real CLI:
 * global flags before the command, help that exits 0, grammar, no secret echoed in errors,
 * capabilities with a checksum (BAD_CAPABILITY), `follow` of the node's own key refused and an
 * agency never reached shown and alarmed, alarms with IDs and acknowledgements, a busy --http
 * port refused (PORT_IN_USE), `append --wait-for-custody`, and log milestones instead of one line
 * per append (embassy `caught-up`, agency `custody-held` / `custody-behind` / `custody-recovered`).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import test from 'brittle'
import z32 from 'z32'
import { formatReadCapability, parseReadCapability, toZ32 } from '../lib/index.js'
import { parseReadCapabilityText } from '../lib/data/read-capability.js'
import { READ_CAPABILITY_PREFIX, encode, readCapability } from '../protocol/index.js'
import { cli, cliOk, eventually, pairDirs, spawnBootstrap, spawnRun } from './helpers/index.js'

async function node(t: test.Assert, role: string, name = role): Promise<{ dir: string; nodeKey: string }> {
  const dir = path.join(await t.tmp(), name)
  const r = await cliOk(['init', '--role', role, '--dir', dir, '--json'])
  return { dir, nodeKey: r.json.nodeKey }
}

/** Edits config.json of a stopped node (mode kept: the file is rewritten in place). */
function editConfig(dir: string, change: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json')
  const c = JSON.parse(fs.readFileSync(file, 'utf8'))
  change(c)
  fs.writeFileSync(file, JSON.stringify(c, null, 2))
}

const ZBASE = 'ybndrfg8ejkmcpqxot1uwisza345h769'

test('operator: global flags work before the command (embassy --dir D id)', async (t) => {
  const a = await node(t, 'agency')
  const before = await cli(['--dir', a.dir, 'id', '--json'])
  t.is(before.code, 0, before.stderr)
  t.is(before.json?.nodeKey, a.nodeKey)
  const all = await cli(['--json', '--dir', a.dir, 'dataset', 'create', 'reg'])
  t.is(all.code, 0, all.stderr)
  t.is(all.json?.name, 'reg', 'a two-word command after global flags')
  const eq = await cli(['--dir=' + a.dir, 'list', '--json'])
  t.is(eq.code, 0, eq.stderr)
  t.is(eq.json?.datasets?.length, 1, '--dir=D form')
  const mixed = await cli(['--json', 'append', '--dir', a.dir, 'reg', '{"a":1}'])
  t.is(mixed.code, 0, mixed.stderr)
  t.is(mixed.json?.appended, 1, 'global flags on both sides')
  const unknown = await cli(['--dir', a.dir, 'nonsense'])
  t.is(unknown.code, 2)
  t.ok(/unknown command "nonsense"/.test(unknown.stderr), unknown.stderr)
})

test('operator: `embassy help`, `help COMMAND`, `kit --help`, `dataset --help` exit 0 printing help', async (t) => {
  const help = await cli(['help'])
  t.is(help.code, 0, help.stderr)
  t.ok(help.stdout.includes('commands:') && help.stdout.includes('alarms'), 'the command list')
  const one = await cli(['help', 'append'])
  t.is(one.code, 0)
  t.ok(one.stdout.startsWith('usage: embassy append'), one.stdout)
  t.ok(one.stdout.includes('--wait-for-custody'), 'append documents --wait-for-custody')
  for (const group of ['kit', 'dataset']) {
    const g = await cli([group, '--help'])
    t.is(g.code, 0, `${group} --help exits 0`)
    t.ok(g.stdout.includes(`${group} `) && g.stdout.includes('subcommands:'), g.stdout)
  }
  const sub = await cli(['kit', 'export', '--help'])
  t.is(sub.code, 0)
  t.ok(sub.stdout.startsWith('usage: embassy kit export'))
  const bare = await cli(['kit'])
  t.is(bare.code, 2, 'a group without its subcommand (and without --help) is still a usage error')
})

test('operator: grammar — "an agency", "an embassy" in role errors', async (t) => {
  const a = await node(t, 'agency')
  const e = await node(t, 'embassy')
  const follow = await cli(['follow', e.nodeKey, '--dir', a.dir])
  t.is(follow.code, 2)
  t.ok(follow.stderr.includes('needs an embassy node; this one is an agency'), follow.stderr)
  const kit = await cli(['capability', '--dir', e.dir])
  t.is(kit.code, 2)
  t.ok(/needs an agency node; this one is an embassy/.test(kit.stderr), kit.stderr)
  t.absent(/\ba (agency|embassy)\b/.test(follow.stderr + kit.stderr), 'no "a agency" / "a embassy"')
})

test('operator: a pasted capability is never echoed (allow, deny, follow, mirror, unexpected arguments)', async (t) => {
  const a = await node(t, 'agency')
  const e = await node(t, 'embassy')
  const m = await node(t, 'mirror')
  const cap = (await cliOk(['capability', '--dir', a.dir, '--json'])).json.readCapability as string
  const secret = cap.slice(READ_CAPABILITY_PREFIX.length)
  const leaks = (r: { stdout: string; stderr: string }) => r.stdout.includes(secret.slice(0, 16)) || r.stderr.includes(secret.slice(0, 16))
  for (const [args, dir] of [
    [['allow', cap], a.dir],
    [['deny', cap], a.dir],
    [['allow', secret], a.dir],
    [['follow', cap], e.dir],
    [['follow', secret], e.dir],
    [['accept-rewrite', cap], e.dir]
  ] as Array<[string[], string]>) {
    const r = await cli([...args, '--dir', dir, '--json'])
    t.is(r.code, 2, `${args[0]} refuses it`)
    t.is(r.json?.error?.code, 'BAD_ARGUMENT')
    t.absent(leaks(r), `${args[0]} ${args[1] === cap ? 'CAPABILITY' : 'SECRET'}: not echoed`)
  }
  const extra = await cli(['id', cap, '--dir', a.dir])
  t.is(extra.code, 2)
  t.absent(leaks(extra), 'an unexpected argument that is a capability is not echoed')
  const unknown = await cli([cap, '--dir', a.dir])
  t.is(unknown.code, 2)
  t.absent(leaks(unknown), 'nor as an unknown command')
  // A damaged capability given to `embassy mirror`: refused without quoting it.
  const file = path.join(await t.tmp(), 'cap.txt')
  fs.writeFileSync(file, cap.slice(0, -3) + (cap.at(-3) === 'y' ? 'b' : 'y') + cap.slice(-2), { mode: 0o600 })
  const bad = await cli(['mirror', '--capability-file', file, '--dir', m.dir, '--json'])
  t.is(bad.code, 2)
  t.is(bad.json?.error?.code, 'BAD_CAPABILITY')
  t.absent(leaks(bad), 'mirror: not echoed')
})

test('operator: capabilities carry a checksum — any one character changed is BAD_CAPABILITY; legacy ones are accepted with a warning', async (t) => {
  const cap = { catalogKey: crypto.randomBytes(32), readKey: crypto.randomBytes(32), agencyNodeKey: crypto.randomBytes(32) }
  const text = formatReadCapability(cap)
  t.alike(Buffer.from(parseReadCapability(text).readKey), cap.readKey, 'round trip')
  t.is(parseReadCapabilityText(`  ${text}\n`).checksum, true, 'surrounding whitespace is fine')
  const body = text.slice(READ_CAPABILITY_PREFIX.length)
  let refused = 0
  let quoted = 0
  for (let i = 0; i < body.length; i++) {
    for (const swap of [ZBASE[(ZBASE.indexOf(body[i]!) + 1) % 32]!, ZBASE[(ZBASE.indexOf(body[i]!) + 17) % 32]!, '0']) {
      const changed = READ_CAPABILITY_PREFIX + body.slice(0, i) + swap + body.slice(i + 1)
      try {
        parseReadCapability(changed)
      } catch (err) {
        if ((err as { code?: string }).code === 'BAD_CAPABILITY') refused++
        if ((err as Error).message.includes(body.slice(0, 12))) quoted++
      }
    }
  }
  t.is(refused, body.length * 3, `every one of ${body.length * 3} one-character changes is BAD_CAPABILITY`)
  t.is(quoted, 0, 'no error quotes the capability')
  for (const damaged of [text.slice(0, -1), text + 'y', 'embassy-read:', body, 'embassy-verify:' + body]) {
    t.exception(() => parseReadCapability(damaged), /BAD_CAPABILITY/, `refused: ${damaged.length} characters`)
  }

  // The text format is frozen (protocol/SPEC.md §5): contents, then the 4-byte checksum.
  const fixed = { catalogKey: Buffer.alloc(32, 1), readKey: Buffer.alloc(32, 2), agencyNodeKey: Buffer.alloc(32, 3) }
  t.is(
    formatReadCapability(fixed),
    'embassy-read:yryynyebyryonyebyryonyebyryonyebyryonyebyryonyebyryonyenyebyryonyebyryonyebyryonyebyryonyebyryonyebyryonyebogyadycbogyadycbogyadycbogyadycbogyadycbogyadycbo85qzxouy',
    'frozen vector'
  )

  // Made before checksums: exactly the payload. Still accepted (the agency may be gone), flagged.
  const legacy = READ_CAPABILITY_PREFIX + z32.encode(encode(readCapability, cap))
  const parsed = parseReadCapabilityText(legacy)
  t.is(parsed.checksum, false, 'legacy: no checksum')
  t.alike(Buffer.from(parsed.capability.catalogKey), cap.catalogKey)

  // Through the CLI: the mirror refuses a changed one (nothing saved), takes a legacy one with a warning.
  const m = await node(t, 'mirror')
  const dir = await t.tmp()
  const changedText = READ_CAPABILITY_PREFIX + body.slice(0, 40) + ZBASE[(ZBASE.indexOf(body[40]!) + 1) % 32] + body.slice(41)
  fs.writeFileSync(path.join(dir, 'changed.txt'), changedText + '\n', { mode: 0o600 })
  fs.writeFileSync(path.join(dir, 'legacy.txt'), legacy + '\n', { mode: 0o600 })
  const r1 = await cli(['mirror', '--capability-file', path.join(dir, 'changed.txt'), '--dir', m.dir])
  t.is(r1.code, 2, 'exit 2')
  t.ok(/BAD_CAPABILITY: the read capability is damaged: its checksum does not match/.test(r1.stderr), r1.stderr)
  t.is(JSON.parse(fs.readFileSync(path.join(m.dir, 'config.json'), 'utf8')).sources.length, 0, 'nothing saved')
  const r2 = await cli(['mirror', '--capability-file', path.join(dir, 'legacy.txt'), '--dir', m.dir, '--json'])
  t.is(r2.code, 0, r2.stderr)
  t.ok(/no checksum/.test(r2.stderr), 'a warning about the missing checksum')
  t.is(r2.json?.catalogKey, toZ32(cap.catalogKey))
})

test('operator: follow refuses the node\'s own key; an agency never reached shows "never reached" and raises an alarm that can be acknowledged', async (t) => {
  const e = await node(t, 'embassy')
  const own = await cli(['follow', e.nodeKey, '--dir', e.dir, '--json'])
  t.is(own.code, 2)
  t.is(own.json?.error?.code, 'BAD_ARGUMENT')
  t.ok(/own node key/.test(own.stderr), own.stderr)
  t.is(JSON.parse(fs.readFileSync(path.join(e.dir, 'config.json'), 'utf8')).follow.length, 0, 'not followed')

  const ghost = toZ32(crypto.randomBytes(32))
  const before = Date.now()
  await cliOk(['follow', ghost, '--dir', e.dir])
  const s1 = (await cliOk(['status', '--dir', e.dir, '--json'])).json
  t.is(s1.agencies[0].reached, false, 'not reached')
  t.ok(s1.agencies[0].followedAt >= before - 1000 && s1.agencies[0].followedAt <= Date.now(), 'followedAt recorded')
  t.ok(typeof s1.agencies[0].unreachedFor === 'number', 'time since following')
  const human = await cliOk(['status', '--dir', e.dir])
  t.ok(/never reached \(followed \d+ (ms|s|min) ago\)/.test(human.stdout), human.stdout)
  t.absent(/catching up/.test(human.stdout), 'not "catching up"')

  editConfig(e.dir, (c) => (c.neverReachedAlarmSeconds = 1))
  const { bootstrap } = await spawnBootstrap(t)
  let run = await spawnRun(t, e.dir, bootstrap)
  const logged = await run.waitEvent((x) => x.event === 'never-reached', 60_000)
  t.is(logged.agency, ghost, 'logged, naming the agency')

  const listed = await cliOk(['alarms', '--dir', e.dir, '--json'])
  t.is(listed.json.active, 1)
  const alarm = listed.json.alarms[0]
  t.is(alarm.kind, 'never-reached')
  t.is(alarm.peer, ghost)
  t.ok(/^[0-9a-f]{12}$/.test(alarm.id), 'a stable ID')
  const human2 = await cliOk(['alarms', '--dir', e.dir])
  t.ok(human2.stdout.includes(alarm.id) && human2.stdout.includes('never-reached'), human2.stdout)

  const missing = await cli(['alarms', 'ack', 'ffffffffffff', '--dir', e.dir, '--json'])
  t.is(missing.code, 1)
  t.is(missing.json?.error?.code, 'NOT_FOUND')
  const ack = await cliOk(['alarms', 'ack', alarm.id, '--dir', e.dir, '--json'])
  t.alike(ack.json, { acknowledged: [alarm.id], active: 0 })
  const s2 = (await cliOk(['status', '--dir', e.dir, '--json'])).json
  t.is(s2.alarms.length, 0, 'no active alarm in status')
  t.is(s2.alarmsAcknowledged, 1)
  t.is(s2.alarmCounts['never-reached'], 1, 'counts kept')
  const active = await cliOk(['alarms', '--dir', e.dir, '--json'])
  t.is(active.json.alarms.length, 0)
  t.is(active.json.acknowledged, 1)

  await run.stop()
  // Read from storage by another process: the same ID, still acknowledged, kept in the history.
  const history = await cliOk(['alarms', '--all', '--dir', e.dir, '--json'])
  t.is(history.json.alarms.length, 1)
  t.is(history.json.alarms[0].id, alarm.id, 'the ID is stable across processes')
  t.ok(history.json.alarms[0].acknowledgedAt > 0, 'acknowledged, kept in the history')
  t.is(history.json.counts['never-reached'], 1)
  // Restarted: the agency is still not reached, but the alarm is not raised again.
  run = await spawnRun(t, e.dir, bootstrap)
  await cliOk(['status', '--dir', e.dir, '--json'])
  await new Promise((r) => setTimeout(r, 2500))
  t.is((await cliOk(['alarms', '--all', '--dir', e.dir, '--json'])).json.alarms.length, 1, 'one alarm per agency, not one per start')
  await run.stop()
})

test('operator: a busy --http port is PORT_IN_USE (exit 2), never another port; --http with port 0 logs the bound address', async (t) => {
  const a = await node(t, 'agency')
  const { bootstrap } = await spawnBootstrap(t)
  const busy = net.createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())))
  const port = (busy.address() as net.AddressInfo).port
  const r = await cli(['run', '--dir', a.dir, '--bootstrap', bootstrap.join(','), '--http', `127.0.0.1:${port}`, '--json'])
  t.is(r.code, 2, 'exit 2')
  t.is(r.json?.error?.code, 'PORT_IN_USE')
  t.ok(r.stderr.includes(`127.0.0.1:${port} is already in use`), r.stderr)
  const run = await spawnRun(t, a.dir, bootstrap, ['--http', '127.0.0.1:0'])
  const http = await run.waitEvent((e) => e.event === 'http')
  t.ok(/^http:\/\/127\.0\.0\.1:\d+$/.test(http.url) && !http.url.endsWith(':0'), `the bound address is logged: ${http.url}`)
  await run.stop()
})

test('operator: append --wait-for-custody; custody milestones at the agency; caught-up lines are milestones, not one per append', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const a = await node(t, 'agency')
  const e = await node(t, 'embassy')
  const created = await cliOk(['dataset', 'create', 'reg', '--dir', a.dir, '--json'])
  const core = created.json.key as string
  await cliOk(['append', 'reg', '{"n":0}', '--dir', a.dir])
  await pairDirs(a, e)

  // Offline, --wait-for-custody cannot be kept: refused before anything is appended.
  const offline = await cli(['append', 'reg', '--wait-for-custody', '--dir', a.dir, '--json', '--', '{"never":1}'])
  t.is(offline.code, 1)
  t.is(offline.json?.error?.code, 'NOT_AVAILABLE')
  editConfig(a.dir, (c) => (c.custodyBehindSeconds = 1))

  const agency = await spawnRun(t, a.dir, bootstrap)
  let embassy = await spawnRun(t, e.dir, bootstrap)
  const held = await agency.waitEvent((x) => x.event === 'custody-held' && x.embassy === e.nodeKey, 90_000)
  t.ok(held.cores >= 2, `milestone: the embassy holds everything (${held.cores} cores)`)

  const tooMany = await cli(['append', 'reg', '--wait-for-custody', '5', '--dir', a.dir, '--json', '--', '{"never":2}'])
  t.is(tooMany.code, 2)
  t.is(tooMany.json?.error?.code, 'BAD_ARGUMENT')

  // 20 appends, one command each: the embassy logs a few caught-up milestones, not 20 lines.
  const started = Date.now()
  for (let i = 1; i <= 20; i++) await cliOk(['append', 'reg', `{"n":${i}}`, '--dir', a.dir])
  const elapsed = Date.now() - started
  await embassy.waitEvent((x) => x.event === 'caught-up' && x.core === core && x.length === 21, 60_000)
  const lines = embassy.events.filter((x) => x.event === 'caught-up' && x.core === core)
  t.ok(lines.length < 20 && lines.length <= Math.ceil(elapsed / 5000) + 3, `${lines.length} caught-up lines for 20 appends in ${elapsed} ms`)
  // Appends closer than the 5 s window are folded into one line that says how many.
  if (elapsed / 20 < 4000) t.ok(lines.some((x) => (x.folded ?? 0) > 0), 'a milestone says how many updates it folds')

  const waited = await cli(['append', 'reg', '--wait-for-custody', '--dir', a.dir, '--json', '--', '{"n":21}'])
  t.is(waited.code, 0, waited.stderr)
  t.is(waited.json?.length, 22)
  t.alike(waited.json?.custody?.heldBy, [e.nodeKey], 'returns once the embassy proved it holds length 22')

  // Custody milestones per embassy, newest last: it holds everything now (a slow receipt during
  // the appends may have logged behind/recovered already; the next behind must be a new one).
  const milestones = () => agency.events.filter((x) => ['custody-held', 'custody-behind', 'custody-recovered'].includes(x.event) && x.embassy === e.nodeKey)
  await eventually('the agency sees the embassy holding everything', () => milestones().at(-1)?.event !== 'custody-behind', 60_000)
  const mark = agency.events.length
  const after = (x: Record<string, any>) => agency.events.indexOf(x) >= mark

  // The embassy goes away: the wait times out (exit 3), the record stays appended at home.
  await embassy.stop()
  await agency.waitEvent((x) => x.event === 'peer-lost' && x.nodeKey === e.nodeKey && after(x), 30_000)
  const timedOut = await cli(['append', 'reg', '--wait-for-custody', '1', '--timeout', '2', '--dir', a.dir, '--json', '--', '{"n":22}'])
  t.is(timedOut.code, 3, 'exit 3')
  t.is(timedOut.json?.error?.code, 'TIMEOUT')
  t.is(timedOut.json?.error?.details?.length, 23)
  t.alike(timedOut.json?.error?.details?.heldBy, [])
  t.ok(/exist only at home/.test(timedOut.stderr), timedOut.stderr)
  const list = (await cliOk(['list', '--dir', a.dir, '--json'])).json
  t.is(list.datasets[0].length, 23, 'the record stays appended (never-1 and never-2 were not)')

  const behind = await agency.waitEvent((x) => x.event === 'custody-behind' && x.embassy === e.nodeKey && after(x), 60_000)
  t.ok(behind.missingBlocks >= 1, 'milestone: the embassy fell behind')
  embassy = await spawnRun(t, e.dir, bootstrap)
  const recovered = await agency.waitEvent((x) => x.event === 'custody-recovered' && x.embassy === e.nodeKey && after(x), 90_000)
  t.ok(recovered.behindMs >= 1000, 'milestone: it recovered, with how long it was behind')
  t.is(agency.events.filter((x) => x.event === 'custody-held' && x.embassy === e.nodeKey).length, 1, 'held is logged once, then behind/recovered')
  await embassy.stop()
  await agency.stop()
})
