/**
 * Recovery kits for every role and moved node directories (issue 15 items 2 and 3): an embassy,
 * mirror or auditor exports its identity and config (no data); a destroyed embassy rebuilt from its
 * kit keeps its node key, is still admitted by its agency and re-replicates everything; a garbled
 * kit is refused and nothing is written; a node directory copied with `cp -a` is refused with
 * NODE_MOVED, a rename is followed.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { EmbassyError, EmbassyNode, NodeHost, toZ32, type Agency, type Embassy } from '../lib/index.js'
import { kitExportHandler, type KitExportResult } from '../lib/daemon/commands/kit.js'
import { kitFromNode, kitImport, openKit, sealKit, splitKit, KDF_PROFILES } from '../lib/kit/index.js'
import { DIR_ID_FILE } from '../lib/node/node.js'
import { verifyCores } from '../lib/verify/index.js'
import { cli, eventually, initDir, pair, startDaemon, testnet } from './helpers/index.js'

const io = { json: true, progress() {}, line() {} }
const PASSPHRASE = 'correct horse battery staple'
const AGENCY_KEY = toZ32(Buffer.alloc(32, 7))
const CATALOG_KEY = toZ32(Buffer.alloc(32, 8))

async function exportShares(host: NodeHost, out: string): Promise<KitExportResult> {
  return (await kitExportHandler(host, { args: [], opts: { out, shares: '2/3' } }, io)) as KitExportResult
}

test('kit-roles: an embassy destroyed and rebuilt from its kit keeps its node key, is admitted by its agency and re-replicates everything', async (t) => {
  const bootstrap = await testnet(t)
  const agencyD = await startDaemon(t, await initDir(t, 'agency', 'agency'), bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('register')
  await agency.append('register', Array.from({ length: 80 }, (_, i) => ({ i })))
  await agency.createDataset('laws')
  await agency.append('laws', [{ law: 1 }, { law: 2 }])
  const embassyDir = await initDir(t, 'embassy', 'embassy')
  const embassyD = await startDaemon(t, embassyDir, bootstrap)
  await pair(agencyD, embassyD)
  const want = await agencyD.host.heldCores()
  const lengths = new Map(want.map((r) => [toZ32(r.core.key!), r.core.length]))
  const holdsAll = (e: Embassy) => {
    const held = e.holdings().flatMap((h) => h.cores)
    return held.length === lengths.size && held.every((c) => lengths.get(c.key) === c.contiguousLength)
  }
  await eventually('the embassy holds every core', async () => holdsAll((await embassyD.host.embassy()) as Embassy), 120_000)
  const nodeKey = toZ32(embassyD.host.node.nodeKey)
  const followed = structuredClone(embassyD.host.node.config.follow)

  const kitBase = path.join(await t.tmp(), 'embassy.kit')
  const exported = await exportShares(embassyD.host, kitBase)
  t.is(exported.role, 'embassy')
  t.is(exported.nodeKey, nodeKey)
  t.is(exported.catalogKey, null, 'an embassy has no catalog of its own')
  const text = fs.readFileSync(exported.files[0]!, 'utf8')
  t.absent(text.includes(followed[0]!.nodeKey), 'the followed agency is sealed, not in the clear')

  // The embassy is destroyed: its directory is gone.
  await embassyD.close()
  fs.rmSync(embassyDir, { recursive: true, force: true })

  const rebuiltDir = path.join(await t.tmp(), 'rebuilt')
  const imported = await kitImport(rebuiltDir, [exported.files[0]!, exported.files[2]!])
  t.is(imported.role, 'embassy')
  t.is(imported.nodeKey, nodeKey, 'same node key')
  const rebuiltD = await startDaemon(t, rebuiltDir, bootstrap)
  t.alike(rebuiltD.host.node.config.follow.map((f) => f.nodeKey), followed.map((f) => f.nodeKey), 'follows the same agency')
  t.absent(rebuiltD.host.node.config.restoring, 'a rebuilt embassy is not an agency in restore')
  await eventually('the agency admits the rebuilt embassy (same node key, no new allow)', () => agencyD.network!.connectedTo(rebuiltD.host.node.nodeKey), 120_000)
  const rebuilt = (await rebuiltD.host.embassy()) as Embassy
  await eventually('the rebuilt embassy re-replicated every core', () => holdsAll(rebuilt), 120_000)
  const report = await verifyCores(await rebuiltD.host.heldCores())
  t.ok(report.ok, `everything re-replicated verifies (${report.totals.checked} blocks)`)
  t.is(report.totals.checked, [...lengths.values()].reduce((a, b) => a + b, 0), 'every block is held again')
})

test('kit-roles: a mirror kit keeps its sources and read keys; an auditor kit its identity; a passphrase kit works for every role', async (t) => {
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const readKey = Buffer.alloc(32, 9).toString('hex')
  const mirror = new NodeHost(mirrorDir)
  await mirror.ready()
  t.teardown(() => mirror.close())
  mirror.node.updateConfig((c) => {
    c.sources.push({ catalogKey: CATALOG_KEY, agencyNodeKey: AGENCY_KEY })
    c.peers.push(AGENCY_KEY)
    c.bootstrap = ['127.0.0.1:49737']
    c.mirror = { prefetch: 'off' }
  })
  mirror.node.updateKeys((k) => (k.readKeys = { [CATALOG_KEY]: readKey }))
  const contents = await kitFromNode(mirror.node)
  const sealed = await sealKit(contents, PASSPHRASE, KDF_PROFILES.moderate)
  t.absent(sealed.includes(readKey), 'the read key is sealed')
  const dir = path.join(await t.tmp(), 'mirror2')
  const kitFile = path.join(await t.tmp(), 'mirror.kit')
  fs.writeFileSync(kitFile, sealed, { mode: 0o600 })
  const imported = await kitImport(dir, [kitFile], PASSPHRASE)
  t.is(imported.role, 'mirror')
  t.is(imported.nodeKey, toZ32(mirror.node.nodeKey), 'same node key')
  const again = new NodeHost(dir)
  await again.ready()
  t.teardown(() => again.close())
  t.alike(again.node.config.sources, mirror.node.config.sources, 'same sources')
  t.alike(again.node.config.peers, [AGENCY_KEY])
  t.alike(again.node.config.mirror, { prefetch: 'off' }, 'same settings')
  t.alike(again.node.keys.readKeys, { [CATALOG_KEY]: readKey }, 'same read capability')

  const auditorDir = await initDir(t, 'auditor', 'auditor')
  const auditor = new NodeHost(auditorDir)
  await auditor.ready()
  t.teardown(() => auditor.close())
  const out = path.join(await t.tmp(), 'auditor.kit')
  const exp = await exportShares(auditor, out)
  const restored = await kitImport(path.join(await t.tmp(), 'auditor2'), exp.files.slice(1))
  t.is(restored.role, 'auditor')
  t.is(restored.nodeKey, toZ32(auditor.node.nodeKey))

  // A holder's kit carries no agency restore settings.
  const err = await kitImport(path.join(await t.tmp(), 'auditor3'), exp.files.slice(0, 2), undefined, { quorum: 2 }).catch((e: unknown) => e)
  t.is((err as EmbassyError).code, 'BAD_ARGUMENT', 'restore settings are an agency\'s')
})

test('kit-roles: a garbled kit is refused and nothing is written', async (t) => {
  const embassyDir = await initDir(t, 'embassy', 'embassy')
  const host = new NodeHost(embassyDir)
  await host.ready()
  t.teardown(() => host.close())
  host.node.updateConfig((c) => c.follow.push({ nodeKey: AGENCY_KEY, catalogKey: CATALOG_KEY }))
  const tmp = await t.tmp()

  // A byte of the ciphertext changed: the seal does not open.
  const contents = await kitFromNode(host.node)
  const sealed = JSON.parse(await sealKit(contents, PASSPHRASE, KDF_PROFILES.moderate)) as Record<string, unknown>
  const ct = ([] as string[]).concat(sealed.ciphertext as string | string[])
  const first = Buffer.from(ct[0]!, 'base64')
  first[5] = first[5]! ^ 1
  ct[0] = first.toString('base64')
  const garbled = path.join(tmp, 'garbled.kit')
  fs.writeFileSync(garbled, JSON.stringify({ ...sealed, ciphertext: ct }))
  const target = path.join(tmp, 'target')
  const e1 = await kitImport(target, [garbled], PASSPHRASE).catch((e: unknown) => e)
  t.ok(e1 instanceof EmbassyError, String(e1))
  t.is((e1 as EmbassyError).code, 'BAD_INPUT', (e1 as EmbassyError).message)
  t.absent(fs.existsSync(target), 'nothing written')

  // Sealed correctly, but the config inside is not a valid config: refused by the reader.
  const bad = await kitFromNode(host.node)
  bad.config = { ...bad.config!, allow: ['not a key'] }
  const shares = await splitKit(bad, 2, 2)
  const files = shares.map((s, i) => {
    const f = path.join(tmp, `bad.kit.${i + 1}`)
    fs.writeFileSync(f, s)
    return f
  })
  const e2 = await kitImport(target, files).catch((e: unknown) => e)
  t.is((e2 as EmbassyError).code, 'BAD_INPUT', (e2 as EmbassyError).message)
  t.ok(/contents are invalid.*allow/.test((e2 as EmbassyError).message), (e2 as EmbassyError).message)
  t.absent(fs.existsSync(target), 'nothing written')

  // Not JSON at all.
  const junk = path.join(tmp, 'junk.kit')
  fs.writeFileSync(junk, 'this is not a kit\n')
  const e3 = await kitImport(target, [junk], PASSPHRASE).catch((e: unknown) => e)
  t.is((e3 as EmbassyError).code, 'BAD_INPUT')
  t.absent(fs.existsSync(target), 'nothing written')

  // The good kit still opens to the same node.
  const ok = await openKit(JSON.stringify(sealed), PASSPHRASE)
  t.is(toZ32(ok.nodeKey), toZ32(host.node.nodeKey))
})

test('kit-roles: a node directory copied with cp -a is refused (NODE_MOVED, exit 2); a rename is followed; the documented acceptance works', async (t) => {
  const dir = await initDir(t, 'embassy', 'embassy')
  t.ok(fs.existsSync(path.join(dir, DIR_ID_FILE)), 'init records the directory identity')
  const copy = path.join(path.dirname(dir), 'copy')
  execFileSync('cp', ['-a', dir, copy])

  const err = await new EmbassyNode(copy).ready().catch((e: unknown) => e)
  t.ok(err instanceof EmbassyError, String(err))
  t.is((err as EmbassyError).code, 'NODE_MOVED')
  t.is((err as EmbassyError).exitCode, 2)
  t.ok((err as EmbassyError).message.includes(`copied from ${dir}`), (err as EmbassyError).message)
  t.ok((err as EmbassyError).message.includes('node-dir.json'), 'the message says how to accept the copy')
  const viaCli = await cli(['--dir', copy, 'id'])
  t.is(viaCli.code, 2, 'the CLI exits 2')
  t.ok(/NODE_MOVED/.test(viaCli.stderr), viaCli.stderr)

  // The original still opens.
  const original = new EmbassyNode(dir)
  await original.ready()
  const key = toZ32(original.nodeKey)
  await original.close()

  // A rename (same inode) is one node: followed, and recorded.
  const moved = path.join(path.dirname(dir), 'moved')
  fs.renameSync(dir, moved)
  const m = new EmbassyNode(moved)
  await m.ready()
  t.is(toZ32(m.nodeKey), key)
  await m.close()
  t.is(JSON.parse(fs.readFileSync(path.join(moved, DIR_ID_FILE), 'utf8')).path, moved, 'the new path is recorded')

  // Removing only node-dir.json is not enough: the store itself knows it was copied.
  fs.rmSync(path.join(copy, DIR_ID_FILE))
  const half = await new EmbassyNode(copy).ready().catch((e: unknown) => e)
  t.is((half as EmbassyError).code, 'NODE_MOVED', (half as EmbassyError).message)
  t.ok(/storage was copied/.test((half as EmbassyError).message))

  // The operator deleted the original and accepts the copy as documented.
  fs.rmSync(moved, { recursive: true, force: true })
  fs.rmSync(path.join(copy, DIR_ID_FILE), { force: true })
  fs.rmSync(path.join(copy, 'store', 'CORESTORE'))
  const accepted = new EmbassyNode(copy)
  await accepted.ready()
  t.is(toZ32(accepted.nodeKey), key, 'the copy is the node now')
  await accepted.close()
  const reopened = new EmbassyNode(copy)
  await reopened.ready()
  await reopened.close()
  t.pass('and it opens again')

  // A damaged identity file is a clear BAD_CONFIG, not a crash.
  fs.writeFileSync(path.join(copy, DIR_ID_FILE), '{not json')
  const e2 = await new EmbassyNode(copy).ready().catch((e: unknown) => e)
  t.is((e2 as EmbassyError).code, 'BAD_CONFIG')
})
