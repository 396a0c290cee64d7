/**
 * Sealed metadata is padded to size classes (issue 14, item 12): a blind holder sees the class of
 * an agency's or dataset's sealed name and description, not its exact length. Old, unpadded
 * entries still read; padded and unpadded are told apart by a flag old writers never set.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import Corestore from 'corestore'
import { Catalog, sealAgencyMeta, sealDatasetMeta } from '../lib/data/catalog.js'
import { metadataKey, keyCheck } from '../lib/node/caps.js'
import { MIN_SEALED_CLASS, SEAL_OVERHEAD, open, seal, sealedSizeClass } from '../lib/node/seal.js'
import {
  CatalogType,
  DatasetKind,
  DecodeError,
  MAX_SEALED_META_BYTES,
  META_PADDED,
  RECORD_MAGIC,
  RECORD_VERSION_PADDED,
  RecordType,
  agencyMeta,
  logRecord,
  catalogBlock,
  datasetMeta,
  decode,
  encode,
  type Codec
} from '../protocol/index.js'
import { openAgency, type Test } from './helpers/index.js'
import type { Agency } from '../lib/index.js'

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures')
const readKey = crypto.randomBytes(32)

async function store(t: Test): Promise<Corestore> {
  const s = new Corestore(path.join(await t.tmp(), 'store'))
  t.teardown(() => s.close())
  await s.ready()
  return s
}

const isClass = (n: number) => n >= MIN_SEALED_CLASS && (n & (n - 1)) === 0

test('padding: sealed agency and dataset names fall in size classes, whatever their exact length', (t) => {
  const agencyLengths = new Set<number>()
  for (let n = 0; n <= 80; n++) agencyLengths.add(sealAgencyMeta({ name: 'A'.repeat(n) }, readKey).byteLength)
  t.alike([...agencyLengths], [128], 'every agency name of 0–80 bytes seals to 128 bytes')
  const lengths = new Set<number>()
  for (let n = 1; n <= 300; n += 7) {
    const sealed = sealDatasetMeta({ name: 'd'.repeat(Math.min(n, 200)), description: 'x'.repeat(n * 3), contentType: 'application/json' }, readKey)
    t.ok(isClass(sealed.byteLength), `${n}: ${sealed.byteLength} bytes is a class`)
    lengths.add(sealed.byteLength)
  }
  t.alike([...lengths].sort((a, b) => a - b), [128, 256, 512, 1024, 2048], 'sizes collapse into a few classes')
  // Unpadded, as before: every length is distinct (what a blind holder used to learn).
  const before = new Set<number>()
  for (let n = 0; n <= 80; n++) before.add(seal(encode(agencyMeta, { name: 'A'.repeat(n) }), metadataKey(readKey)).byteLength)
  t.is(before.size, 81, 'unpadded, all 81 name lengths were told apart')
  // What is inside opens to the same fields, the padding being zero bytes.
  const sealed = sealDatasetMeta({ name: 'laws', description: 'acts in force', contentType: 'text/plain' }, readKey)
  const plain = open(sealed, metadataKey(readKey))!
  const m = decode(datasetMeta, plain)
  t.is(m.name, 'laws')
  t.is(m.description, 'acts in force')
  t.is(m.contentType, 'text/plain')
  t.is(plain.byteLength + SEAL_OVERHEAD, 128)
  t.is(plain[0], META_PADDED, 'flag set')
})

test('padding: the size classes stop at the catalog limit; metadata over it is refused before anything is written', (t) => {
  t.is(sealedSizeClass(1, MAX_SEALED_META_BYTES), 128)
  t.is(sealedSizeClass(129, MAX_SEALED_META_BYTES), 256)
  t.is(sealedSizeClass(40_000, MAX_SEALED_META_BYTES), MAX_SEALED_META_BYTES, 'the largest class is the limit itself')
  const big = sealDatasetMeta({ name: 'x', description: 'y'.repeat(MAX_SEALED_META_BYTES - 200), contentType: '' }, readKey)
  t.is(big.byteLength, MAX_SEALED_META_BYTES)
  t.exception(() => sealDatasetMeta({ name: 'x', description: 'y'.repeat(MAX_SEALED_META_BYTES), contentType: '' }, readKey), /BAD_ARGUMENT: .* over the 65536 a catalog entry holds/)
})

test('padding: an old catalog (unpadded entries and header) still reads, beside new padded entries', async (t) => {
  const s = await store(t)
  const core = s.get({ name: 'catalog' })
  await core.ready()
  const mk = metadataKey(readKey)
  // Written as before padding existed: flags 0, sealed at its exact length.
  await Catalog.writeHeader(core, { agencyNodeKey: crypto.randomBytes(32), keyCheck: keyCheck(readKey), meta: seal(encode(agencyMeta, { name: 'Old Board' }), mk) })
  const oldMeta = seal(encode(datasetMeta, { name: 'old-register', description: 'from before', contentType: 'application/json' }), mk)
  await core.append(encode(catalogBlock, { type: CatalogType.ADD, id: crypto.randomBytes(16), kind: DatasetKind.LOG, cores: [crypto.randomBytes(32)], meta: oldMeta }))
  const catalog = new Catalog(core)
  await catalog.add(crypto.randomBytes(16), DatasetKind.LOG, [crypto.randomBytes(32)], { name: 'new-register', description: 'padded', contentType: 'application/json' }, readKey)
  const list = await catalog.datasets(readKey)
  t.alike(
    list.map((d) => [d.name, d.description]),
    [
      ['old-register', 'from before'],
      ['new-register', 'padded']
    ],
    'both read'
  )
  t.is(catalog.problems.length, 0, 'no problem reported')
  const header = await catalog.header()
  const name = decode(agencyMeta, open(header.meta, mk)!)
  t.alike(name, { name: 'Old Board' }, 'the old header opens, with no padding')
  const newBlock = decode(catalogBlock, (await core.get(2))!)
  t.is(newBlock.meta.byteLength, 128, 'the new entry is sealed to a class')
})

test('padding: a new agency pads its own name in its catalog header', async (t) => {
  const { host } = await openAgency(t, 'Republic of Somewhere Land and Property Board')
  const agency = await host.agency()
  const header = await agency.catalog.header()
  t.is(header.meta.byteLength, 128, 'the 45-byte name is sealed into the 128-byte class')
  const key = Buffer.from(host.node.keys.readKey!, 'hex')
  const m = decode(agencyMeta, open(header.meta, metadataKey(key))!)
  t.is(m.name, 'Republic of Somewhere Land and Property Board')
})

test('padding: padded and unpadded are told apart by the flag; the frozen vectors decode forever', (t) => {
  const load = (file: string) => JSON.parse(fs.readFileSync(path.join(fixtures, file), 'utf8')) as Array<{ name: string; codec: string; hex: string; decoded: Record<string, unknown> }>
  const codecs: Record<string, Codec<any>> = { datasetMeta, agencyMeta }
  const old = load('protocol-v1.json').filter((v) => v.codec in codecs)
  const padded = load('sealed-meta-padded-v1.json')
  t.is(old.length, 2, 'the v1 vectors (unpadded)')
  t.is(padded.length, 2, 'the padded vectors')
  for (const v of [...old, ...padded]) {
    const codec = codecs[v.codec]!
    const value = decode(codec, Buffer.from(v.hex, 'hex'))
    t.alike({ ...value }, v.decoded, `${v.name} decodes`)
    t.is(encode(codec, value).toString('hex'), v.hex, `${v.name} re-encodes`)
  }
  for (const v of old) t.absent('padding' in decode(codecs[v.codec]!, Buffer.from(v.hex, 'hex')), `${v.name}: no padding read into an old entry`)
  // Old writers always wrote flags 0: a padded blob starts with flag 1, so no old entry is ever taken for padded.
  for (const v of old) t.is(Buffer.from(v.hex, 'hex')[0], 0)
  for (const v of padded) t.is(Buffer.from(v.hex, 'hex')[0], META_PADDED)
  // An old reader (flags ignored, no trailing bytes allowed) refuses a padded blob rather than misreading it.
  const oldReader: Codec<{ name: string }> = {
    preencode() {},
    encode() {},
    decode(state) {
      state.start += 1 // flags, ignored as version 1 readers did
      const len = (state.buffer as Uint8Array)[state.start]!
      state.start += 1
      const name = Buffer.from((state.buffer as Uint8Array).subarray(state.start, state.start + len)).toString()
      state.start += len
      return { name }
    }
  }
  const paddedAgency = padded.find((v) => v.codec === 'agencyMeta')!
  t.exception(() => decode(oldReader, Buffer.from(paddedAgency.hex, 'hex')), /trailing bytes/, 'an old reader sees trailing bytes: an error, not a wrong name')
  // Padding must be zero bytes: anything else is refused (not silently ignored).
  const tampered = Buffer.from(paddedAgency.hex, 'hex')
  tampered[tampered.length - 1] = 7
  t.exception(() => decode(agencyMeta, tampered), DecodeError)
})

// ---------------------------------------------------------------- record padding (optional, per log dataset)

/** Frozen: a JSON record padded to 64 bytes (record version 2: the value's length, then zero bytes). */
const PADDED_RECORD_V2 = '4445020100ff0068e5cf8b010000077b2261223a317d000000000000000000000000000000000000000000000000000000000000000000000000000000000000'

test('record padding: frozen v2 vector; a v1 reader would refuse it, never misread it; damaged padding is refused', (t) => {
  const rec = { type: RecordType.JSON, time: 1_700_000_000_000, value: Buffer.from('{"a":1}'), padTo: 64 } as const
  const buf = encode(logRecord, rec)
  t.is(buf.toString('hex'), PADDED_RECORD_V2, 'encodes to the frozen bytes')
  const back = decode(logRecord, Buffer.from(PADDED_RECORD_V2, 'hex'))
  t.is(Buffer.from(back.value).toString(), '{"a":1}', 'the value, without the padding')
  t.is(back.time, rec.time)
  t.is(buf[RECORD_MAGIC.byteLength], RECORD_VERSION_PADDED, 'written as record version 2 (a version-1 reader says "unsupported record version")')
  const dirty = Buffer.from(buf)
  dirty[dirty.byteLength - 1] = 1
  t.exception(() => decode(logRecord, dirty), /padding is not zero/)
  const short = Buffer.from(buf.subarray(0, 20))
  t.exception(() => decode(logRecord, short), /shorter than its value/)
  const unpadded = encode(logRecord, { type: RecordType.JSON, time: 1, value: Buffer.from('{"a":1}') })
  t.is(unpadded[RECORD_MAGIC.byteLength], 1, 'unpadded records stay version 1')
})

test('record padding: a log created with recordPad stores every block as a multiple of it; records read back exactly', async (t) => {
  const { host } = await openAgency(t)
  const agency = (await host.agency()) as Agency
  await agency.createDataset('padded', { recordPad: 256 })
  await agency.createDataset('plain')
  const texts = [1, 50, 150, 200, 256, 300, 700].map((n) => JSON.stringify({ p: 'x'.repeat(n) }))
  await agency.appendJson('padded', texts)
  await agency.appendJson('plain', texts)
  await agency.appendBytes('padded', [Buffer.alloc(3, 7)])
  const padded = await agency.datasets.openLog('padded')
  const plain = await agency.datasets.openLog('plain')
  const sizes = async (core: typeof padded.core) => {
    const out: number[] = []
    for (let i = 0; i < core.length; i++) out.push(((await core.get(i, { raw: true })) as Buffer).byteLength)
    return out
  }
  const p = await sizes(padded.core)
  // Stored blocks carry the core's constant encryption overhead on top of the padded plaintext.
  t.is(new Set(p.map((n) => n % 256)).size, 1, `padded blocks differ by whole classes of 256 bytes: ${p.join(', ')}`)
  t.is(new Set(p.slice(0, 4)).size, 1, 'records of 11 to 210 bytes look alike to a holder')
  const q = await sizes(plain.core)
  t.is(new Set(q).size, q.length, `unpadded blocks show every size: ${q.join(', ')}`)
  const read: string[] = []
  for await (const r of padded.read()) read.push(r.text)
  t.alike(read.slice(0, texts.length), texts, 'every record reads back exactly')
  t.is(read[texts.length], Buffer.alloc(3, 7).toString('base64'), 'byte records too')
  t.is((await agency.datasets.resolve('padded')).recordPad, 256, 'the setting is in the sealed catalog entry')
  t.is((await agency.datasets.resolve('plain')).recordPad, 0)
  for (const bad of [-1, 1.5, 65537]) {
    const err = await agency.createDataset(`bad${String(bad).replace(/\W/g, '')}`, { recordPad: bad }).catch((e) => e)
    t.is(err.code, 'BAD_ARGUMENT', `recordPad ${bad} refused`)
  }
  const files = await agency.createDataset('tree', { kind: 'files', recordPad: 64 }).catch((e) => e)
  t.is(files.code, 'BAD_ARGUMENT', 'record padding is for logs only')
})
