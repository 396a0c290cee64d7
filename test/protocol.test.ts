import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import {
  CatalogType,
  DecodeError,
  RecordType,
  agencyMeta,
  catalogBlock,
  datasetMeta,
  decode,
  encode,
  logRecord,
  readCapability,
  handshake,
  errorMessage,
  receipt,
  receiptSignable,
  witnessedHead,
  alarmReport,
  holderList,
  headSignable,
  type CatalogBlock,
  type Codec
} from '../protocol/index.js'
import { formatReadCapability, parseReadCapability } from '../lib/index.js'

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures')

const CODECS: Record<string, Codec<any>> = { catalogBlock, logRecord, datasetMeta, agencyMeta, readCapability, handshake, errorMessage, receipt, witnessedHead, alarmReport, holderList }

/** Turns decoded values into JSON-comparable form (bytes as hex). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  if (Array.isArray(v)) return v.map(plain)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

test('frozen v1 and v1.1 vectors decode forever and re-encode to the same bytes', (t) => {
  const load = (file: string) =>
    JSON.parse(fs.readFileSync(path.join(fixtures, file), 'utf8')) as Array<{
      name: string
      codec: string
      hex: string
      decoded: unknown
    }>
  const v1 = load('protocol-v1.json')
  const v11 = load('protocol-v1.1.json')
  t.ok(v1.length >= 6 && v11.length >= 5, 'vectors present')
  for (const v of [...v1, ...v11]) {
    if (v.codec === 'headSignable') {
      const d = v.decoded as Record<string, string | number>
      const bytes = headSignable({
        core: Buffer.from(d.core as string, 'hex'),
        length: d.length as number,
        fork: d.fork as number,
        treeHash: Buffer.from(d.treeHash as string, 'hex'),
        agencySignature: Buffer.from(d.agencySignature as string, 'hex'),
        witness: Buffer.from(d.witness as string, 'hex'),
        time: d.time as number
      })
      t.is(bytes.toString('hex'), v.hex, 'head signing bytes are frozen')
      continue
    }
    if (v.codec === 'receiptSignable') {
      const d = v.decoded as { core: string; length: number; treeHash: string; fork: number; time: number }
      const bytes = receiptSignable({ core: Buffer.from(d.core, 'hex'), length: d.length, treeHash: Buffer.from(d.treeHash, 'hex'), fork: d.fork, time: d.time })
      t.is(bytes.toString('hex'), v.hex, 'receipt signing bytes are frozen')
      continue
    }
    const codec = CODECS[v.codec]
    if (!codec) {
      t.fail(`unknown codec ${v.codec}`)
      continue
    }
    const decoded = decode(codec, Buffer.from(v.hex, 'hex'))
    t.alike(plain(decoded), v.decoded, `${v.name} decodes`)
    t.is(encode(codec, decoded).toString('hex'), v.hex, `${v.name} re-encodes`)
  }
})

test('catalog entry round trip', (t) => {
  const entry = { type: CatalogType.ADD, id: Buffer.alloc(16, 1), kind: 1, cores: [Buffer.alloc(32, 2)], meta: Buffer.from('sealed') } satisfies CatalogBlock
  const back = decode(catalogBlock, encode(catalogBlock, entry))
  t.alike(plain(back), plain(entry))
})

test('malformed catalog blocks are rejected with DecodeError', (t) => {
  const good = encode(catalogBlock, { type: CatalogType.ADD, id: Buffer.alloc(16), kind: 1, cores: [Buffer.alloc(32)], meta: Buffer.alloc(0) })
  t.exception(() => decode(catalogBlock, good.subarray(0, good.length - 5)), DecodeError, 'truncated')
  t.exception(() => decode(catalogBlock, Buffer.concat([good, Buffer.from([1])])), DecodeError, 'trailing bytes')
  t.exception(() => decode(catalogBlock, Buffer.from([9, 0])), /unknown catalog block type 9/, 'unknown type')
  t.exception(() => decode(catalogBlock, Buffer.alloc(0)), DecodeError, 'empty')
  const foreign = encode(catalogBlock, {
    type: CatalogType.HEADER,
    protocol: 'something-else',
    version: 1,
    agencyNodeKey: Buffer.alloc(32),
    keyCheck: Buffer.alloc(16),
    meta: Buffer.alloc(0)
  })
  t.exception(() => decode(catalogBlock, foreign), /not a Data Embassy catalog/, 'foreign header')
})

test('log records: round trip, and garbage is told apart', (t) => {
  const rec = { type: RecordType.JSON, time: 1_700_000_000_000, value: Buffer.from('{"a":1}') } as const
  const buf = encode(logRecord, rec)
  const back = decode(logRecord, buf)
  t.is(Buffer.from(back.value).toString(), '{"a":1}')
  t.is(back.time, rec.time)
  t.exception(() => decode(logRecord, Buffer.from('garbage that is not a record')), /no Data Embassy header/)
  t.exception(() => decode(logRecord, Buffer.from([0x44])), /too short/)
  const wrongType = Buffer.from(buf)
  wrongType[3] = 9
  t.exception(() => decode(logRecord, wrongType), /unknown record type/)
})

test('read capability string round trip and damage', (t) => {
  const cap = { catalogKey: Buffer.alloc(32, 1), readKey: Buffer.alloc(32, 2), agencyNodeKey: Buffer.alloc(32, 3) }
  const text = formatReadCapability(cap)
  t.ok(text.startsWith('embassy-read:'))
  t.alike(plain(parseReadCapability(text)), plain(cap))
  t.exception(() => parseReadCapability('nope'), /BAD_ARGUMENT: a read capability starts with/)
  t.exception(() => parseReadCapability(text.slice(0, -6)), /BAD_ARGUMENT: the read capability is damaged/)
  t.exception(() => parseReadCapability(text + '!'), /BAD_ARGUMENT/)
})
