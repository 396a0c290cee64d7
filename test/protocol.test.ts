import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import c from 'compact-encoding'
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
  answerSignable,
  challenge as auditChallenge,
  answer as auditAnswer,
  CUSTODY_MESSAGES,
  MESSAGE_SINCE_MINOR,
  MAX_CHALLENGE_INDICES,
  MAX_APPENDED_CORES,
  CUSTODY_MINOR,
  CustodyMessage,
  appendedNotice,
  PeerRole,
  peerRoleName,
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
  t.exception(() => parseReadCapability('nope'), /BAD_CAPABILITY: a read capability starts with/)
  t.exception(() => parseReadCapability(text.slice(0, -6)), /BAD_CAPABILITY: the read capability is damaged/)
  t.exception(() => parseReadCapability(text + '!'), /BAD_CAPABILITY/)
})

test('frozen v1.2 vectors (audits) decode forever and re-encode to the same bytes', (t) => {
  const vectors = JSON.parse(fs.readFileSync(path.join(fixtures, 'protocol-v1.2.json'), 'utf8')) as Array<{ name: string; codec: string; hex: string; decoded: any }>
  t.ok(vectors.length >= 4, 'vectors present')
  const codecs: Record<string, Codec<any>> = { challenge: auditChallenge, answer: auditAnswer }
  for (const v of vectors) {
    if (v.codec === 'answerSignable') {
      const d = v.decoded
      const bytes = answerSignable(
        Buffer.from(d.challenger, 'hex'),
        { core: Buffer.from(d.core, 'hex'), nonce: Buffer.from(d.nonce, 'hex'), indices: d.indices },
        { status: d.status, time: d.time, values: d.values.map((x: string) => Buffer.from(x, 'hex')) }
      )
      t.is(bytes.toString('hex'), v.hex, 'answer signing bytes are frozen')
      continue
    }
    const codec = codecs[v.codec]
    if (!codec) {
      t.fail(`unknown codec ${v.codec}`)
      continue
    }
    const decoded = decode(codec, Buffer.from(v.hex, 'hex'))
    t.alike(plain(decoded), v.decoded, `${v.name} decodes`)
    t.is(encode(codec, decoded).toString('hex'), v.hex, `${v.name} re-encodes`)
  }
  // Minor 2 appends challenge (5) and answer (6) at the end of the table.
  t.alike(CUSTODY_MESSAGES.map((m) => m.name).slice(0, 7), ['error', 'receipt', 'head', 'alarm', 'holders', 'challenge', 'answer'])
  t.is(MESSAGE_SINCE_MINOR.challenge, 2)
  t.is(MESSAGE_SINCE_MINOR.answer, 2)
  t.is(peerRoleName(PeerRole.AUDITOR), 'auditor')
})

test('audit messages: bounds are checked before decoding', (t) => {
  const ch = { id: 1, core: Buffer.alloc(32, 1), nonce: Buffer.alloc(32, 2), indices: [3] }
  t.exception(() => decode(auditChallenge, encode(auditChallenge, { ...ch, indices: Array.from({ length: MAX_CHALLENGE_INDICES + 1 }, (_, i) => i) })), /257 indices in one challenge \(at most 256\)/)
  t.exception(() => decode(auditChallenge, encode(auditChallenge, { ...ch, indices: [] })), /names no block/)
  const an = { id: 1, core: ch.core, nonce: ch.nonce, status: 0, time: 5, values: [Buffer.alloc(32, 9)], signature: Buffer.alloc(64) }
  const bytes = Buffer.from(encode(auditAnswer, an))
  bytes[1 + 1 + 64 + 1 + 1] = 100
  t.exception(() => decode(auditAnswer, bytes), /100 values in one answer do not fit/)
  t.exception(() => decode(auditAnswer, bytes.subarray(0, 40)), DecodeError, 'truncated')
})

test('frozen v1.5 vectors (appended notices) decode forever and re-encode to the same bytes', (t) => {
  const vectors = JSON.parse(fs.readFileSync(path.join(fixtures, 'protocol-v1.5.json'), 'utf8')) as Array<{ name: string; codec: string; hex: string; decoded: unknown }>
  t.ok(vectors.length >= 3, 'vectors present')
  for (const v of vectors) {
    t.is(v.codec, 'appendedNotice')
    const decoded = decode(appendedNotice, Buffer.from(v.hex, 'hex'))
    t.alike(plain(decoded), v.decoded, `${v.name} decodes`)
    t.is(encode(appendedNotice, decoded).toString('hex'), v.hex, `${v.name} re-encodes`)
    t.ok(decoded.cores.every((e) => Buffer.isBuffer(e.core)) && Buffer.isBuffer(decoded.catalog), 'keys decode as Buffers')
  }
  // Minor 5 appends `appended` (8) at the end of the table; the earlier rows keep their numbers.
  t.alike(CUSTODY_MESSAGES.map((m) => m.name).slice(0, 9), ['error', 'receipt', 'head', 'alarm', 'holders', 'challenge', 'answer', 'lane', 'appended'])
  t.is(CustodyMessage.APPENDED, 8)
  t.is(CUSTODY_MESSAGES[CustodyMessage.APPENDED]!.name, 'appended')
  t.is(MESSAGE_SINCE_MINOR.appended, 5)
  t.ok(CUSTODY_MINOR >= 5, 'this build speaks minor 5')
})

test('appended notice: an oversized count and truncated entries are refused with a clear reason; a later minor is skipped', (t) => {
  const catalog = Buffer.alloc(32, 0x11)
  const uint = (n: number) => {
    const state = c.state()
    c.uint.preencode(state, n)
    state.buffer = Buffer.alloc(state.end)
    c.uint.encode(state, n)
    return state.buffer as Buffer
  }
  // The count is checked before any entry is read: no 1025 entries need to follow.
  t.exception(() => decode(appendedNotice, Buffer.concat([catalog, uint(MAX_APPENDED_CORES + 1)])), /1025 cores in one appended notice \(at most 1024\)/, 'oversized count')
  t.exception(() => decode(appendedNotice, Buffer.concat([catalog, uint(2 ** 32)])), /4294967296 cores in one appended notice/, 'huge count')
  const many = Array.from({ length: MAX_APPENDED_CORES + 1 }, (_, i) => ({ core: Buffer.alloc(32, i & 0xff), length: i, fork: 0 }))
  t.exception(() => encode(appendedNotice, { catalog, cores: many }), /1025 cores in one appended notice/, 'never sent either')
  const full = encode(appendedNotice, { catalog, cores: many.slice(0, MAX_APPENDED_CORES) })
  t.is(decode(appendedNotice, full).cores.length, MAX_APPENDED_CORES, '1024 entries decode')
  // Truncated: the count promises entries that the bytes cannot hold.
  const one = encode(appendedNotice, { catalog, cores: [{ core: Buffer.alloc(32, 0x22), length: 70000, fork: 3 }] })
  t.exception(() => decode(appendedNotice, Buffer.concat([catalog, uint(3), one.subarray(33)])), /3 cores of an appended notice do not fit in the message \(truncated\)/, 'count beyond the bytes')
  // An entry cut inside its length (the prefix 0xfe says 4 bytes follow; 2 do).
  t.exception(() => decode(appendedNotice, one.subarray(0, 33 + 32 + 3)), /core 1 of 1 of an appended notice is truncated/, 'entry cut short')
  t.exception(() => decode(appendedNotice, catalog.subarray(0, 20)), /shorter than its catalog key and count/, 'catalog cut short')
  t.exception(() => decode(appendedNotice, catalog), /shorter than its catalog key and count/, 'no count')
  t.exception(() => decode(appendedNotice, one.subarray(0, one.byteLength - 1)), DecodeError, 'the last byte missing')
  // Fields of a later minor after the entries are skipped.
  const later = decode(appendedNotice, Buffer.concat([one, Buffer.from([1, 2, 3, 4])]))
  t.alike(plain(later), plain(decode(appendedNotice, one)), 'trailing bytes of a later minor are skipped')
  t.is(later.cores[0]!.length, 70000)
  t.is(later.cores[0]!.fork, 3)
})
