import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Agency, Catalog, Datasets, EmbassyError, EmbassyNode, LogDataset, NodeHost, readConfig, toZ32 } from '../lib/index.js'
import { makeTree, openAgency, readTree } from './helpers/index.js'

test('agency: create a log, append, read back in order', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  const created = await agency.createDataset('events', { description: 'registry changes' })
  t.is(created.kind, 'log')
  t.is(created.length, 0)
  await agency.append('events', [{ n: 1 }, { n: 2 }])
  const r = await agency.appendJson('events', ['{"n": 3}'])
  t.alike(r, { appended: 1, length: 3 })
  const texts: string[] = []
  for await (const rec of agency.datasets.read('events')) texts.push(rec.text)
  t.alike(texts, ['{"n":1}', '{"n":2}', '{"n": 3}'], 'stored verbatim, in order')
  const sliced: number[] = []
  for await (const rec of agency.datasets.read('events', { start: 1, end: 2 })) sliced.push(rec.seq)
  t.alike(sliced, [1])
})

test('agency: a bad record appends nothing and names its line', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('events')
  await agency.append('events', [{ ok: true }])
  const err = await agency.appendJson('events', ['{"a":1}', '{"a":2}', '{"a":', '{"a":4}'], { lines: [1, 2, 5, 6] }).catch((e) => e)
  t.ok(err instanceof EmbassyError)
  t.is(err.code, 'BAD_RECORD')
  t.is(err.details.line, 5)
  const log = await agency.datasets.openLog('events')
  t.is(log.length, 1, 'dataset unchanged')
})

test('agency: names are unique and validated; unknown and wrong-kind datasets fail clearly', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  await t.exception(agency.createDataset('laws'), /DATASET_EXISTS/)
  await t.exception(agency.createDataset('../etc'), /BAD_ARGUMENT/)
  await t.exception(agency.createDataset(''), /BAD_ARGUMENT/)
  await t.exception(agency.append('missing', [1]), /UNKNOWN_DATASET/)
  await t.exception(agency.append('laws', [1]), /WRONG_KIND/)
  await t.exception(agency.publish('missing', '/tmp'), /UNKNOWN_DATASET/)
})

test('agency: publish a nested folder and export it byte-identical; re-publish appends only changes', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'src')
  const files = makeTree(src)
  const first = await agency.publish('laws', src)
  t.is(first.added, Object.keys(files).length)
  const files1 = await agency.datasets.openFiles('laws')
  const bytesAfterFirst = files1.byteLength()

  const again = await agency.publish('laws', src)
  t.is(again.added + again.changed + again.removed, 0, 'nothing changed')
  t.is(files1.byteLength(), bytesAfterFirst, 'no bytes appended')

  fs.writeFileSync(path.join(src, 'acts/2024/act-2.txt'), 'Act 2, amended.\n')
  fs.rmSync(path.join(src, 'README.txt'))
  const third = await agency.publish('laws', src)
  t.is(third.changed, 1)
  t.is(third.removed, 1)

  const out = path.join(await t.tmp(), 'out')
  const exported = await agency.datasets.export('laws', out)
  t.is(exported.kind, 'files')
  t.alike(readTree(out), readTree(src), 'byte-identical tree')
})

test('agency: a single file publishes under its base name', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('docs', { kind: 'files' })
  const src = path.join(await t.tmp(), 'one.txt')
  fs.writeFileSync(src, 'one file')
  const r = await agency.publish('docs', src)
  t.is(r.added, 1)
  const names: string[] = []
  for await (const f of (await agency.datasets.openFiles('docs')).list()) names.push(f.path)
  t.alike(names, ['/one.txt'])
  await t.exception(agency.publish('docs', path.join(src, 'nope')), /BAD_INPUT/)
})

test('agency: data survives close and reopen', async (t) => {
  const { dir, host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('events')
  await agency.append('events', [{ n: 1 }])
  const before = await host.node.identity()
  await host.close()
  const again = new NodeHost(dir)
  await again.ready()
  t.teardown(() => again.close())
  t.alike(await again.node.identity(), before, 'same identity')
  const list = await (await again.agency()).list()
  t.is(list.length, 1)
  t.is(list[0]?.length, 1)
})

test('catalog: datasets are encrypted, names sealed; a blind reader sees keys only', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('secret-registry')
  await agency.append('secret-registry', [{ citizen: 'PLAINTEXT-MARKER-42' }])
  const blind = await agency.catalog.datasets(null)
  t.is(blind.length, 1)
  t.is(blind[0]?.name, null, 'name sealed')
  t.is(blind[0]?.cores.length, 1)
  // the raw block, read without the encryption key, holds no plaintext
  const raw = host.node.store.get({ key: blind[0]!.cores[0]! })
  await raw.ready()
  const block = await raw.get(0, { wait: false, decrypt: false } as never)
  await raw.close()
  t.ok(block, 'block held')
  t.absent(Buffer.from(block as Buffer).includes('PLAINTEXT-MARKER-42'), 'ciphertext only')
})

test('catalog: a wrong read key is a clear error, not garbage', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('events')
  await agency.append('events', [{ n: 1 }])
  const wrong = Buffer.alloc(32, 9)
  await t.exception(agency.catalog.checkReadKey(wrong), /WRONG_READ_KEY/)
  const info = (await agency.catalog.datasets(agency.readKey))[0]!
  const reader = new Datasets(host.node.store, agency.catalog, wrong, { writable: false })
  t.teardown(() => reader.close())
  t.is((await reader.infos())[0]?.name, null, 'names do not open with a wrong key')
  const log = (await reader.open(info)) as LogDataset
  await t.exception(async () => {
    for await (const _ of log.read()) void _
  }, /WRONG_READ_KEY/)
})

test('node: init twice, uninitialised and locked directories fail clearly', async (t) => {
  const { dir } = await openAgency(t)
  await t.exception(EmbassyNode.init(dir, { role: 'agency' }), /ALREADY_INITIALISED/)
  const empty = path.join(await t.tmp(), 'nothing')
  await t.exception(new EmbassyNode(empty).ready(), /NOT_INITIALISED/)
  t.is(readConfig(dir).role, 'agency')
})

test('node: identity and catalog key are stable z32 keys', async (t) => {
  const { host } = await openAgency(t)
  const id = await host.node.identity()
  t.is(id.role, 'agency')
  t.is(id.nodeKey.length, 52)
  t.is(id.catalogKey, toZ32((await host.agency()).catalog.key))
  const header = await (await host.agency()).catalog.header()
  t.alike(Buffer.from(header.agencyNodeKey), host.node.nodeKey, 'catalog header names the agency node')
  t.ok(Catalog)
  t.ok(Agency)
})
