import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import { EmbassyError, EmbassyNode, NodeHost, toZ32, type CommandIO, type NodeIdentity } from '../lib/index.js'
import {
  KDF_PROFILES,
  combineShares,
  inspectKit,
  kitFromNode,
  kitImport,
  kitNeedsPassphrase,
  openKit,
  parseShareCounts,
  restoreNode,
  sealKit,
  splitKit,
  type KitContents
} from '../lib/kit/index.js'
import { kitExportHandler, type KitExportResult } from '../lib/daemon/commands/kit.js'
import sodium from 'sodium-universal'
import { openAgency } from './helpers/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
/** Frozen v1 vectors (compiled tests run from dist/test; the fixture stays in test/fixtures). */
const FIXTURE = path.resolve(here, '..', '..', 'test', 'fixtures', 'kit-v1.json')

const PASSPHRASE = 'correct horse battery staple'
const EMBASSY_KEY = toZ32(Buffer.alloc(32, 1))
const MIRROR_KEY = toZ32(Buffer.alloc(32, 2))
const BOOTSTRAP = ['127.0.0.1:49737', '10.0.0.2:49737']

const io: CommandIO = { json: true, progress() {}, line() {} }

interface Original {
  dir: string
  host: NodeHost
  id: NodeIdentity
  readKey: string
}

/** An agency with a dataset, two allowed peers and a bootstrap list. */
async function agencyToSave(t: test.Assert): Promise<Original> {
  const { dir, host } = await openAgency(t, 'Land Registry')
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', [{ parcel: 1 }, { parcel: 2 }])
  host.node.updateConfig((c) => {
    c.allow.push(EMBASSY_KEY, MIRROR_KEY)
    c.bootstrap = [...BOOTSTRAP]
  })
  return { dir, host, id: await host.node.identity(), readKey: host.node.keys.readKey! }
}

async function freshDir(t: test.Assert, name = 'restored'): Promise<string> {
  return path.join(await t.tmp(), name)
}

/** Opens a restored directory and checks it is the original agency, keys and config included. */
async function assertRestored(t: test.Assert, dir: string, original: Original): Promise<void> {
  const host = new NodeHost(dir)
  await host.ready()
  try {
    const id = await host.node.identity()
    t.is(id.nodeKey, original.id.nodeKey, 'same node key')
    t.is(id.catalogKey, original.id.catalogKey, 'same catalog key')
    t.is(id.name, 'Land Registry', 'same name')
    t.is(host.node.keys.readKey, original.readKey, 'same read key')
    t.alike(host.node.config.allow, [EMBASSY_KEY, MIRROR_KEY], 'known embassies and mirrors restored')
    t.alike(host.node.config.bootstrap, BOOTSTRAP, 'bootstrap list restored')
    const agency = await host.agency()
    t.is(agency.catalog.core.length, 0, 'catalog empty locally until synced from an embassy')
  } finally {
    await host.close()
  }
}

function expectCode(t: test.Assert, err: unknown, code: string, pattern?: RegExp): void {
  t.ok(err instanceof EmbassyError, `an EmbassyError (${(err as Error)?.message})`)
  t.is((err as EmbassyError).code, code)
  if (pattern) t.ok(pattern.test((err as EmbassyError).message), `message: ${(err as EmbassyError).message}`)
}

/** Tests seal with the "moderate" Argon2id profile (0.7 s); the CLI default, "sensitive", is checked in kit-shares.test.ts. */
async function exportKit(host: NodeHost, opts: Record<string, string>): Promise<KitExportResult> {
  return (await kitExportHandler(host, { args: [], opts: { kdf: 'moderate', ...opts } }, io)) as KitExportResult
}

test('kit: passphrase export and import restore the same node key, catalog key and read key', async (t) => {
  const original = await agencyToSave(t)
  const out = path.join(await t.tmp(), 'agency.kit')
  const result = await exportKit(original.host, { out, passphrase: PASSPHRASE })
  t.is(result.protection, 'passphrase')
  t.alike(result.files, [out])
  t.is(result.nodeKey, original.id.nodeKey)
  t.is(result.catalogKey, original.id.catalogKey)
  t.is(fs.statSync(out).mode & 0o777, 0o600, 'kit file is 0600')

  const text = fs.readFileSync(out, 'utf8')
  const primaryKeyHex = original.host.node.store.primaryKey!.toString('hex')
  t.absent(text.includes(primaryKeyHex) || text.includes(original.readKey), 'no key in the clear')
  t.absent(JSON.stringify(result).includes(original.readKey), 'the result holds no secret')
  const info = inspectKit(text)
  t.is(info.type, 'passphrase')
  if (info.type === 'passphrase') {
    t.ok(info.opslimit >= 3, 'Argon2id opslimit ≥ 3')
    t.ok(info.memlimit >= 64 * 1024 * 1024 && info.memlimit <= 256 * 1024 * 1024, 'Argon2id memlimit 64–256 MiB')
  }
  t.ok(kitNeedsPassphrase([out]))
  await t.exception(exportKit(original.host, { out, passphrase: PASSPHRASE }), /BAD_ARGUMENT/, 'an existing kit is never overwritten')

  const dir = await freshDir(t)
  const imported = await kitImport(dir, [out], PASSPHRASE)
  t.is(imported.nodeKey, original.id.nodeKey)
  t.is(imported.catalogKey, original.id.catalogKey)
  t.is(imported.from, 'passphrase')
  t.is(imported.kit, info.kit)
  await assertRestored(t, dir, original)
})

test('kit: library round trip; a wrong passphrase, a short one and damaged files fail clearly', async (t) => {
  const original = await agencyToSave(t)
  const contents = await kitFromNode(original.host.node)
  t.alike(contents.primaryKey, original.host.node.store.primaryKey)
  const text = await sealKit(contents, PASSPHRASE, KDF_PROFILES.moderate)

  const opened = await openKit(text, PASSPHRASE)
  t.alike(opened.primaryKey, contents.primaryKey)
  t.alike(opened.readKey, contents.readKey)
  t.alike(opened.catalogKey, contents.catalogKey)
  t.alike(opened.nodeKey, contents.nodeKey)
  t.alike(opened.allow, [EMBASSY_KEY, MIRROR_KEY])

  expectCode(t, await openKit(text, 'not the passphrase at all').catch((e) => e), 'BAD_INPUT', /wrong passphrase or damaged kit/)
  expectCode(t, await sealKit(contents, 'short').catch((e) => e), 'BAD_ARGUMENT', /at least 12 characters/)
  expectCode(t, await exportKit(original.host, { out: path.join(await t.tmp(), 'k'), passphrase: 'eleven char' }).catch((e) => e), 'BAD_ARGUMENT', /at least 12/)
  expectCode(t, await exportKit(original.host, { out: path.join(await t.tmp(), 'k') }).catch((e) => e), 'BAD_ARGUMENT', /passphrase is needed/)

  // one flipped ciphertext character: the authenticated encryption refuses it
  const parsed = JSON.parse(text)
  const lines: string[] = Array.isArray(parsed.ciphertext) ? parsed.ciphertext : [parsed.ciphertext]
  const line = lines[1]!
  lines[1] = line.slice(0, 10) + (line[10] === 'A' ? 'B' : 'A') + line.slice(11)
  parsed.ciphertext = lines
  expectCode(t, await openKit(JSON.stringify(parsed), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /wrong passphrase or damaged kit/)

  // altered KDF parameters derive another key
  const weaker = JSON.parse(text)
  weaker.kdf.opslimit = 1
  expectCode(t, await openKit(JSON.stringify(weaker), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /wrong passphrase or damaged kit/)
  // a hostile memory cost is refused before any work
  weaker.kdf.memlimit = 8 * 1024 * 1024 * 1024
  expectCode(t, await openKit(JSON.stringify(weaker), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /memlimit/)

  // truncated file: not JSON any more
  expectCode(t, await openKit(text.slice(0, Math.floor(text.length / 2)), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /damaged or not a kit/)
  // truncated ciphertext, still valid JSON
  const short = JSON.parse(text)
  short.ciphertext = (Array.isArray(short.ciphertext) ? short.ciphertext : [short.ciphertext]).slice(0, 1)
  expectCode(t, await openKit(JSON.stringify(short), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /wrong passphrase or damaged kit/)
  // a newer kit version is named as such
  const future = JSON.parse(text)
  future.version = 2
  expectCode(t, await openKit(JSON.stringify(future), PASSPHRASE).catch((e) => e), 'BAD_INPUT', /kit version 2/)
  expectCode(t, await openKit('{"hello": "world"}', PASSPHRASE).catch((e) => e), 'BAD_INPUT', /not a Data Embassy recovery kit/)

  // a damaged file on disk fails the import and leaves no node behind
  const file = path.join(await t.tmp(), 'damaged.kit')
  fs.writeFileSync(file, JSON.stringify(parsed))
  const dir = await freshDir(t)
  expectCode(t, await kitImport(dir, [file], PASSPHRASE).catch((e) => e), 'BAD_INPUT')
  t.absent(EmbassyNode.exists(dir), 'no node created')
  expectCode(t, await kitImport(dir, [path.join(path.dirname(file), 'missing.kit')], PASSPHRASE).catch((e) => e), 'BAD_INPUT', /cannot read/)

  // the restored node from the library path is the original
  const restoredDir = await freshDir(t, 'restored-lib')
  const id = await restoreNode(restoredDir, opened)
  t.is(id.nodeKey, original.id.nodeKey)
  t.is(id.catalogKey, original.id.catalogKey)
  await assertRestored(t, restoredDir, original)
})

test('kit: any M of N shares restore the node; M-1 do not; shares of two kits are refused', async (t) => {
  const original = await agencyToSave(t)
  const out = path.join(await t.tmp(), 'agency.share')
  const result = await exportKit(original.host, { out, shares: '3/5' })
  t.is(result.protection, 'shares')
  t.is(result.threshold, 3)
  t.is(result.shares, 5)
  const files = [1, 2, 3, 4, 5].map((i) => `${out}.${i}`)
  t.alike(result.files, files)
  for (const f of files) t.is(fs.statSync(f).mode & 0o777, 0o600, `${path.basename(f)} is 0600`)
  const info = inspectKit(fs.readFileSync(files[1]!, 'utf8'))
  t.alike(info, { type: 'share', version: 1, kit: result.kit, index: 2, threshold: 3, shares: 5 })
  t.absent(kitNeedsPassphrase([files[0]!]), 'a share needs no passphrase')

  const subsets = [[1, 2, 3], [2, 4, 5], [5, 1, 3], [1, 2, 3, 4, 5], [4, 3, 2, 4]]
  for (const subset of subsets) {
    const dir = await freshDir(t, `restored-${subset.join('')}`)
    const imported = await kitImport(dir, subset.map((i) => files[i - 1]!))
    t.is(imported.from, 'shares')
    t.is(imported.nodeKey, original.id.nodeKey, `shares ${subset.join(',')}: same node key`)
    t.is(imported.catalogKey, original.id.catalogKey, `shares ${subset.join(',')}: same catalog key`)
    if (subset === subsets[0]) await assertRestored(t, dir, original)
  }

  // M-1 shares (and M-1 distinct ones given twice) do not restore
  const two = await freshDir(t, 'two')
  expectCode(t, await kitImport(two, [files[0]!, files[3]!]).catch((e) => e), 'BAD_INPUT', /needs 3 of its 5 shares; only 2 were given/)
  expectCode(t, await kitImport(two, [files[0]!, files[3]!, files[0]!]).catch((e) => e), 'BAD_INPUT', /only 2 were given/)
  t.absent(EmbassyNode.exists(two), 'nothing restored')
  // lowering a share's threshold by hand is caught by its checksum
  const lowered = JSON.parse(fs.readFileSync(files[0]!, 'utf8'))
  lowered.threshold = 2
  expectCode(t, await combineShares([JSON.stringify(lowered), fs.readFileSync(files[1]!, 'utf8')]).catch((e) => e), 'BAD_INPUT', /damaged/)

  // shares of a second kit of the same agency
  const other = path.join(await t.tmp(), 'other.share')
  await exportKit(original.host, { out: other, shares: '3/5' })
  const mixed = [files[0]!, files[1]!, `${other}.3`]
  expectCode(t, await kitImport(await freshDir(t, 'mixed'), mixed).catch((e) => e), 'BAD_INPUT', /different kits/)

  // a damaged share: one character of its share bytes changed
  const damaged = JSON.parse(fs.readFileSync(files[2]!, 'utf8'))
  damaged.share = (damaged.share[0] === 'A' ? 'B' : 'A') + damaged.share.slice(1)
  const damagedFile = path.join(await t.tmp(), 'damaged.share')
  fs.writeFileSync(damagedFile, JSON.stringify(damaged))
  expectCode(t, await kitImport(await freshDir(t, 'damaged'), [files[0]!, files[1]!, damagedFile]).catch((e) => e), 'BAD_INPUT', /damaged\.share is damaged/)

  // a passphrase kit mixed with shares, and a passphrase kit given as a share
  const kit = path.join(await t.tmp(), 'pass.kit')
  await exportKit(original.host, { out: kit, passphrase: PASSPHRASE })
  expectCode(t, await kitImport(await freshDir(t, 'mix2'), [kit, files[0]!, files[1]!]).catch((e) => e), 'BAD_ARGUMENT')

  // --shares validation
  for (const bad of ['1/3', '4/3', '3', 'x/y', '2/256']) t.exception(() => parseShareCounts(bad), /BAD_ARGUMENT/, `--shares ${bad} refused`)
  t.alike(parseShareCounts('2/3'), { m: 2, n: 3 })
})

test('kit: library split and combine; M-1 shares never open the kit', async (t) => {
  const original = await agencyToSave(t)
  const contents: KitContents = await kitFromNode(original.host.node)
  const shares = await splitKit(contents, 2, 3)
  t.is(shares.length, 3)
  const again = await combineShares([shares[2]!, shares[0]!])
  t.alike(again.primaryKey, contents.primaryKey)
  t.alike(again.readKey, contents.readKey)
  expectCode(t, await combineShares([shares[1]!]).catch((e) => e), 'BAD_INPUT', /needs 2 of its 3 shares; only 1 was given/)
  const otherShares = await splitKit(contents, 2, 3)
  expectCode(t, await combineShares([shares[0]!, otherShares[1]!]).catch((e) => e), 'BAD_INPUT', /different kits/)
})

test('kit: import refuses a directory that already holds a node; export needs an agency', async (t) => {
  const original = await agencyToSave(t)
  const out = path.join(await t.tmp(), 'agency.kit')
  await exportKit(original.host, { out, passphrase: PASSPHRASE })
  expectCode(t, await kitImport(original.dir, [out], PASSPHRASE).catch((e) => e), 'ALREADY_INITIALISED')

  const dir = await freshDir(t)
  await kitImport(dir, [out], PASSPHRASE)
  expectCode(t, await kitImport(dir, [out], PASSPHRASE).catch((e) => e), 'ALREADY_INITIALISED')

  // an orphaned store (no config) is not overwritten either
  const orphan = await freshDir(t, 'orphan')
  fs.mkdirSync(path.join(orphan, 'store'), { recursive: true })
  fs.writeFileSync(path.join(orphan, 'store', 'CURRENT'), 'x')
  expectCode(t, await kitImport(orphan, [out], PASSPHRASE).catch((e) => e), 'ALREADY_INITIALISED')
  expectCode(t, await kitImport(await freshDir(t, 'nokey'), [out]).catch((e) => e), 'BAD_ARGUMENT', /passphrase/)

  const embassyDir = path.join(await t.tmp(), 'embassy')
  await EmbassyNode.init(embassyDir, { role: 'embassy' })
  const embassy = new NodeHost(embassyDir)
  await embassy.ready()
  t.teardown(() => embassy.close())
  const embassyKit = await exportKit(embassy, { out: path.join(await t.tmp(), 'e.kit'), passphrase: PASSPHRASE })
  t.is(embassyKit.role, 'embassy', 'an embassy exports its own kit (identity and config, no data)')
  t.is(embassyKit.catalogKey, null)
  expectCode(t, await exportKit(original.host, { passphrase: PASSPHRASE }).catch((e) => e), 'BAD_ARGUMENT', /--out/)
})

/** The share checksum exactly as the format comment in lib/kit.ts specifies it. */
function specChecksum(s: Record<string, unknown>): string {
  const unwrap = (v: unknown) => (Array.isArray(v) ? v.join('') : String(v))
  const text = [s.format, s.version, s.kit, s.index, s.threshold, s.shares, unwrap(s.share), s.cipher, unwrap(s.nonce), unwrap(s.ciphertext)].join('\n')
  const out = Buffer.alloc(16)
  sodium.crypto_generichash(out, Buffer.from(text, 'utf8'))
  return out.toString('hex')
}

test('kit: a share whose threshold was lowered (checksum recomputed) still does not open with M-1 shares', async (t) => {
  const original = await agencyToSave(t)
  const shares = (await splitKit(await kitFromNode(original.host.node), 3, 5)).map((s) => JSON.parse(s))
  t.is(specChecksum(shares[0]), shares[0].checksum, 'checksum follows the documented formula')
  const forged = shares.slice(0, 2).map((s) => {
    const f = { ...s, threshold: 2 }
    return JSON.stringify({ ...f, checksum: specChecksum(f) })
  })
  expectCode(t, await combineShares(forged).catch((e) => e), 'BAD_INPUT', /do not open it/)
})

test('kit: frozen v1 vectors decode forever', async (t) => {
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8'))
  const check = (c: KitContents, how: string) => {
    const e = fixture.expected
    t.is(c.name, e.name, `${how}: name`)
    t.is(c.primaryKey.toString('hex'), e.primaryKey, `${how}: primary key`)
    t.is(c.readKey.toString('hex'), e.readKey, `${how}: read key`)
    t.is(toZ32(c.catalogKey), e.catalogKey, `${how}: catalog key`)
    t.is(toZ32(c.nodeKey), e.nodeKey, `${how}: node key`)
    t.alike(c.allow, e.allow)
    t.alike(c.bootstrap, e.bootstrap)
    t.alike(c.peers, e.peers)
    t.is(new Date(c.created).toISOString(), e.created)
  }
  check(await openKit(JSON.stringify(fixture.kit), fixture.passphrase), 'passphrase kit')
  const shares = fixture.shares.map((s: unknown) => JSON.stringify(s))
  check(await combineShares([shares[2], shares[0]]), 'shares 3+1')
  check(await combineShares([shares[1], shares[2]]), 'shares 2+3')
  for (const s of fixture.shares) t.is(specChecksum(s), s.checksum, `share ${s.index}: documented checksum`)
})
