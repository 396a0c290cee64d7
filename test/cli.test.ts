import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { NodeHost } from '../lib/index.js'
import { cli, makeTree, readTree } from './helpers/index.js'

test('cli: init, id, dataset create, append (args and NDJSON), list, read, export', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  const init = await cli(['init', '--role', 'agency', '--name', 'Land Registry', '--dir', dir, '--json'])
  t.is(init.code, 0, init.stderr)
  t.is(init.json.role, 'agency')

  const id = await cli(['id', '--dir', dir, '--json'])
  t.is(id.code, 0)
  t.alike(Object.keys(id.json).sort(), ['catalogKey', 'name', 'nodeKey', 'role'])
  t.is(id.json.nodeKey, init.json.nodeKey)
  t.is(id.json.name, 'Land Registry')

  t.is((await cli(['dataset', 'create', 'events', '--dir', dir])).code, 0)
  t.is((await cli(['dataset', 'create', 'laws', '--kind', 'files', '--description', 'consolidated laws', '--dir', dir])).code, 0)

  const a1 = await cli(['append', 'events', '{"n":1}', '{"n":2}', '--dir', dir, '--json'])
  t.is(a1.code, 0, a1.stderr)
  t.alike(a1.json, { dataset: 'events', appended: 2, length: 2 })

  const ndjson = '{"n":3}\n\n{"n": 4, "s": "ü"}\r\n{"n":5}\n'
  const a2 = await cli(['append', 'events', '--dir', dir, '--json'], { input: ndjson })
  t.is(a2.code, 0, a2.stderr)
  t.is(a2.json.appended, 3)

  const list = await cli(['list', '--dir', dir, '--json'])
  t.is(list.code, 0)
  const byName = Object.fromEntries(list.json.datasets.map((d: { name: string }) => [d.name, d]))
  t.is(byName.events.length, 5)
  t.is(byName.laws.kind, 'files')
  t.is(byName.laws.description, 'consolidated laws')

  const human = await cli(['list', '--dir', dir])
  t.ok(/events\s+log\s+5/.test(human.stdout), 'human table')

  const read = await cli(['read', 'events', '--dir', dir])
  t.is(read.stdout, '{"n":1}\n{"n":2}\n{"n":3}\n{"n": 4, "s": "ü"}\n{"n":5}\n', 'NDJSON, verbatim')
  const readJson = await cli(['read', 'events', '--start', '1', '--end', '3', '--dir', dir, '--json'])
  t.alike(readJson.json.records.map((r: { seq: number; value: unknown }) => [r.seq, r.value]), [[1, { n: 2 }], [2, { n: 3 }]])

  const src = path.join(await t.tmp(), 'tree')
  makeTree(src)
  const pub = await cli(['publish', 'laws', src, '--dir', dir, '--json'])
  t.is(pub.code, 0, pub.stderr)
  t.is(pub.json.added, 6)

  const out = path.join(await t.tmp(), 'out')
  const ex1 = await cli(['export', 'laws', out, '--dir', dir, '--json'])
  t.is(ex1.code, 0, ex1.stderr)
  t.alike(readTree(out), readTree(src), 'files byte-identical')
  const ex2 = await cli(['export', 'events', out, '--dir', dir])
  t.is(ex2.code, 0, ex2.stderr)
  t.is(fs.readFileSync(path.join(out, 'events.ndjson'), 'utf8'), read.stdout, 'log export matches read')
})

test('cli: an NDJSON round trip through export is byte-identical', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  await cli(['dataset', 'create', 'events', '--dir', dir])
  const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ i, name: `record ${i}`, tags: ['a', 'b'] }))
  const input = lines.join('\n') + '\n'
  const r = await cli(['append', 'events', '--dir', dir], { input })
  t.is(r.code, 0, r.stderr)
  const out = path.join(await t.tmp(), 'out')
  t.is((await cli(['export', 'events', out, '--dir', dir])).code, 0)
  t.ok(fs.readFileSync(path.join(out, 'events.ndjson')).equals(Buffer.from(input)), 'byte-identical')
})

test('cli: a malformed NDJSON import appends nothing and names the line', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  await cli(['dataset', 'create', 'events', '--dir', dir])
  await cli(['append', 'events', '{"keep":1}', '--dir', dir])
  const bad = await cli(['append', 'events', '--dir', dir, '--json'], { input: '{"a":1}\n{"a":2}\n\n{"a":3\n{"a":4}\n' })
  t.is(bad.code, 1)
  t.is(bad.json.error.code, 'BAD_RECORD')
  t.is(bad.json.error.details.line, 4)
  t.ok(/line 4/.test(bad.stderr), 'stderr names line 4')
  const list = await cli(['list', '--dir', dir, '--json'])
  t.is(list.json.datasets[0].length, 1, 'dataset exactly as it was')
  const badArg = await cli(['append', 'events', '{"ok":1}', 'nope', '--dir', dir])
  t.is(badArg.code, 1)
  t.ok(/line 2/.test(badArg.stderr))
})

test('cli: bad flags, unknown commands and missing arguments exit 2', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  const cases: string[][] = [
    ['list', '--bogus', '--dir', dir],
    ['frobnicate'],
    ['dataset'],
    ['dataset', 'create', '--dir', dir],
    ['init', '--role', 'king', '--dir', path.join(dir, 'x')],
    ['read', 'events', '--start', 'abc', '--dir', dir],
    ['read', 'a', 'b', '--dir', dir],
    ['dataset', 'create', 'x', '--kind', 'video', '--dir', dir]
  ]
  for (const args of cases) {
    const r = await cli([...args, '--json'])
    t.is(r.code, 2, `exit 2: ${args.join(' ')}`)
    t.is(r.json?.error?.code, 'BAD_ARGUMENT', `BAD_ARGUMENT: ${args.join(' ')}`)
    t.ok(r.stderr.startsWith('embassy: BAD_ARGUMENT'), 'one clear line on stderr')
  }
  const help = await cli(['--help'])
  t.is(help.code, 0)
  t.ok(help.stdout.includes('dataset create'))
  const cmdHelp = await cli(['read', '--help'])
  t.is(cmdHelp.code, 0)
  t.ok(cmdHelp.stdout.includes('--start'))
})

test('cli: unknown and duplicate datasets, wrong roles', async (t) => {
  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  await cli(['dataset', 'create', 'events', '--dir', dir])
  const dup = await cli(['dataset', 'create', 'events', '--dir', dir, '--json'])
  t.is(dup.code, 1)
  t.is(dup.json.error.code, 'DATASET_EXISTS')
  const unknown = await cli(['read', 'nothing', '--dir', dir, '--json'])
  t.is(unknown.code, 1)
  t.is(unknown.json.error.code, 'UNKNOWN_DATASET')
  const again = await cli(['init', '--role', 'agency', '--dir', dir, '--json'])
  t.is(again.code, 2)
  t.is(again.json.error.code, 'ALREADY_INITIALISED')

  const emb = path.join(await t.tmp(), 'embassy')
  t.is((await cli(['init', '--role', 'embassy', '--dir', emb])).code, 0)
  const blind = await cli(['read', 'events', '--dir', emb, '--json'])
  t.is(blind.code, 2)
  t.is(blind.json.error.code, 'WRONG_ROLE')
  const noCreate = await cli(['dataset', 'create', 'x', '--dir', emb, '--json'])
  t.is(noCreate.json.error.code, 'WRONG_ROLE')
})

test('cli: uninitialised, locked and corrupt directories', async (t) => {
  const nothing = path.join(await t.tmp(), 'nothing')
  const un = await cli(['list', '--dir', nothing, '--json'])
  t.is(un.code, 2)
  t.is(un.json.error.code, 'NOT_INITIALISED')
  t.ok(un.stderr.includes('embassy init'), 'says what to do')

  const viaEnv = await cli(['list', '--json'], { env: { EMBASSY_DIR: nothing } })
  t.is(viaEnv.json.error.code, 'NOT_INITIALISED', '$EMBASSY_DIR is used')
  t.ok(viaEnv.json.error.details.dir.endsWith('nothing'))

  const dir = path.join(await t.tmp(), 'agency')
  await cli(['init', '--role', 'agency', '--dir', dir])
  const host = new NodeHost(dir)
  await host.ready()
  const locked = await cli(['list', '--dir', dir, '--json'])
  await host.close()
  t.is(locked.code, 1)
  t.is(locked.json.error.code, 'DIR_LOCKED')
  t.absent(locked.stderr.includes('    at '), 'no stack')
  t.is(locked.stderr.trim().split('\n').length, 1, 'one line')

  fs.writeFileSync(path.join(dir, 'config.json'), '{ "version": 1, "role": "agency", ')
  const corrupt = await cli(['list', '--dir', dir, '--json'])
  t.is(corrupt.code, 2)
  t.is(corrupt.json.error.code, 'BAD_CONFIG')
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ version: 1, role: 'agency', bootsrap: [] }))
  const typo = await cli(['list', '--dir', dir, '--json'])
  t.is(typo.json.error.code, 'BAD_CONFIG')
  t.ok(typo.json.error.message.includes('unknown field "bootsrap"'))
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ version: 1, role: 'agency', bootstrap: ['nohost'] }))
  const badBoot = await cli(['list', '--dir', dir, '--json'])
  t.is(badBoot.json.error.code, 'BAD_CONFIG')

  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ version: 1, role: 'agency' }))
  const keys = fs.readFileSync(path.join(dir, 'keys.json'))
  fs.writeFileSync(path.join(dir, 'keys.json'), '{"readKey": "not hex')
  const badKeys = await cli(['list', '--dir', dir, '--json'])
  t.is(badKeys.code, 2)
  t.is(badKeys.json.error.code, 'BAD_CONFIG', 'a damaged keys.json is named')
  fs.writeFileSync(path.join(dir, 'keys.json'), keys)
  t.is((await cli(['list', '--dir', dir, '--json'])).code, 0, 'restored: nothing was lost')
})
