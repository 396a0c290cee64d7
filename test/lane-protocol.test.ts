/**
 * The custody channel's `lane` message (minor 3, protocol/SPEC.md): frozen vectors, its place at
 * the end of the table, and hostile encodings refused before anything is read.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import c from 'compact-encoding'
import { CUSTODY_MESSAGES, CUSTODY_MINOR, CustodyMessage, MAX_LANE_HOST, MESSAGE_SINCE_MINOR, decode, encode, laneOffer } from '../protocol/index.js'

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures')

test('frozen v1.3 vectors (lane offer) decode forever and re-encode to the same bytes', (t) => {
  const vectors = JSON.parse(fs.readFileSync(path.join(fixtures, 'protocol-v1.3.json'), 'utf8')) as Array<{ name: string; codec: string; hex: string; decoded: { host: string; port: number } }>
  t.ok(vectors.length >= 3, 'vectors present')
  for (const v of vectors) {
    t.is(v.codec, 'laneOffer')
    const decoded = decode(laneOffer, Buffer.from(v.hex, 'hex'))
    t.alike(decoded, v.decoded, `${v.name} decodes`)
    t.is(encode(laneOffer, decoded).toString('hex'), v.hex, `${v.name} re-encodes`)
  }
  // Minor 3 appends `lane` (7) at the end of the table; the earlier rows keep their numbers.
  t.alike(
    CUSTODY_MESSAGES.map((m) => m.name).slice(0, 8),
    ['error', 'receipt', 'head', 'alarm', 'holders', 'challenge', 'answer', 'lane']
  )
  t.is(CustodyMessage.LANE, 7)
  t.is(MESSAGE_SINCE_MINOR.lane, 3)
  t.ok(CUSTODY_MINOR >= 3)
})

test('lane offer: hostile encodings are refused with a clear reason', (t) => {
  const raw = (host: Buffer, port: number) => {
    const state = c.state()
    c.uint.preencode(state, 0)
    c.buffer.preencode(state, host)
    c.uint.preencode(state, port)
    state.buffer = Buffer.alloc(state.end)
    c.uint.encode(state, 0)
    c.buffer.encode(state, host)
    c.uint.encode(state, port)
    return state.buffer as Buffer
  }
  t.exception(() => decode(laneOffer, raw(Buffer.alloc(MAX_LANE_HOST + 1, 0x61), 7100)), /a lane host of 254 bytes \(at most 253\)/)
  // A length prefix claiming 4 GiB is refused from the prefix alone (no allocation, no read).
  t.exception(() => decode(laneOffer, Buffer.from([0, 0xfe, 0xff, 0xff, 0xff, 0xff])), /a lane host of 4294967295 bytes/)
  t.exception(() => decode(laneOffer, raw(Buffer.from('a.example'), 0)), /lane port 0 is not 1…65535/)
  t.exception(() => decode(laneOffer, raw(Buffer.from('a.example'), 65536)), /lane port 65536 is not 1…65535/)
  t.exception(() => decode(laneOffer, raw(Buffer.from('user@host'), 7100)), /no spaces, slashes or @/)
  t.exception(() => decode(laneOffer, raw(Buffer.from('a b'), 7100)), /no spaces, slashes or @/)
  t.exception(() => decode(laneOffer, Buffer.from([0, 3, 0x61])), /out of bounds|Out of bounds/i, 'truncated')
  t.alike(decode(laneOffer, raw(Buffer.alloc(MAX_LANE_HOST, 0x61), 1)), { host: 'a'.repeat(MAX_LANE_HOST), port: 1 }, 'the longest host is accepted')
  // Fields of a later minor after the known ones are skipped.
  t.alike(decode(laneOffer, Buffer.concat([raw(Buffer.from('h'), 9), Buffer.from([1, 2, 3])])), { host: 'h', port: 9 })
})
