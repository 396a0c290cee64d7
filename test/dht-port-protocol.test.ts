/**
 * The custody handshake's `dhtPort` (minor 4, protocol/SPEC.md): each node states its DHT server
 * port, so a peer probes and dials it directly after a restart (lib/net/reconnect.ts). Frozen
 * vectors, older handshakes unchanged, and hostile values refused with a clear reason (the custody
 * channel closes; the connection stays).
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import c from 'compact-encoding'
import { CustodyChannel } from '../lib/net/custody-channel.js'
import { CUSTODY_MINOR, CUSTODY_PROTOCOL, PeerRole, decode, encode, handshake, type Codec, type Handshake } from '../protocol/index.js'
import { eventually, muxPair } from './helpers/index.js'

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures')

interface Vector {
  name: string
  codec: string
  hex: string
  decoded: { major: number; minor: number; role: number; capabilities: string[]; catalogs: string[]; dhtPort?: number }
}

const load = (file: string) => JSON.parse(fs.readFileSync(path.join(fixtures, file), 'utf8')) as Vector[]

const plain = (h: Handshake) => ({ ...h, catalogs: h.catalogs.map((k) => Buffer.from(k).toString('hex')) })

test('frozen v1.4 vectors (handshake with its DHT port) decode forever and re-encode to the same bytes', (t) => {
  const vectors = load('protocol-v1.4.json')
  t.ok(vectors.length >= 3, 'vectors present')
  for (const v of vectors) {
    t.is(v.codec, 'handshake')
    const decoded = decode(handshake, Buffer.from(v.hex, 'hex'))
    t.alike(plain(decoded), v.decoded, `${v.name} decodes`)
    t.is(encode(handshake, decoded).toString('hex'), v.hex, `${v.name} re-encodes`)
  }
  t.ok(CUSTODY_MINOR >= 4, 'this build speaks minor 4')
})

test('handshake: older handshakes are unchanged (no dhtPort), and a minor-4 one is an older one plus one trailing uint', (t) => {
  // The v1 vector (minor 0): decodes without the field, re-encodes to the same bytes.
  const old = load('protocol-v1.json').find((v) => v.codec === 'handshake')!
  const decoded = decode(handshake, Buffer.from(old.hex, 'hex'))
  t.absent('dhtPort' in decoded, 'an older peer says nothing: no dhtPort at all (not 0)')
  t.is(encode(handshake, decoded).toString('hex'), old.hex, 'and it re-encodes to the same bytes')
  // A minor-4 handshake is the older layout, then the port: an older decoder (which skips what
  // follows the fields it knows) reads the same handshake and ignores the port.
  const withPort = Buffer.from(load('protocol-v1.4.json')[0]!.hex, 'hex')
  const without = encode(handshake, { ...decode(handshake, withPort), dhtPort: undefined })
  t.ok(withPort.subarray(0, without.byteLength).equals(without), 'the same bytes up to the port')
  t.is(c.uint.decode({ start: without.byteLength, end: withPort.byteLength, buffer: withPort }), 49737, 'then the port, a compact uint')
  // A later minor's fields after the port are skipped.
  t.alike(plain(decode(handshake, Buffer.concat([withPort, Buffer.from([7, 7, 7])]))), load('protocol-v1.4.json')[0]!.decoded)
})

test('handshake: a DHT port outside 0…65535 is refused with a clear reason, on decode and on encode', (t) => {
  const base = encode(handshake, { major: 1, minor: 4, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] })
  const withUint = (n: number) => {
    const state = c.state()
    c.uint.preencode(state, n)
    state.buffer = Buffer.alloc(state.end)
    c.uint.encode(state, n)
    return Buffer.concat([base, state.buffer as Buffer])
  }
  t.exception(() => decode(handshake, withUint(65536)), /handshake DHT port 65536 is not 0…65535/)
  t.exception(() => decode(handshake, withUint(2 ** 32 - 1)), /handshake DHT port 4294967295 is not 0…65535/)
  t.exception(() => decode(handshake, Buffer.concat([base, Buffer.from([0xfd, 0x01])])), /out of bounds/i, 'a truncated port')
  t.alike(decode(handshake, withUint(0)).dhtPort, 0, '0 (not said) is accepted')
  t.exception(() => encode(handshake, { major: 1, minor: 4, role: 2, capabilities: [], catalogs: [], dhtPort: 70000 }), /handshake DHT port 70000 is not 0…65535/, 'never sent either')
  t.exception(() => encode(handshake, { major: 1, minor: 4, role: 2, capabilities: [], catalogs: [], dhtPort: -1 }), /handshake DHT port -1/)
})

test('custody channel: a handshake stating a DHT port out of range closes the channel only (the connection stays)', async (t) => {
  const { a, ma, mb } = muxPair(t)
  const ours = new CustodyChannel(ma, { major: 1, minor: CUSTODY_MINOR, role: PeerRole.AGENCY, capabilities: [], catalogs: [] })
  const invalid = new Promise<Error>((resolve) => ours.once('invalid', resolve))
  let opened = false
  ours.on('open', () => (opened = true))
  const raw = c.raw as unknown as Codec<Buffer>
  const hostile = mb.createChannel({ protocol: CUSTODY_PROTOCOL, handshake: raw, onopen() {} })!
  ours.open()
  const state = c.state()
  c.uint.preencode(state, 99999)
  state.buffer = Buffer.alloc(state.end)
  c.uint.encode(state, 99999)
  hostile.open(Buffer.concat([encode(handshake, { major: 1, minor: 4, role: PeerRole.EMBASSY, capabilities: [], catalogs: [] }), state.buffer as Buffer]))
  t.ok(/malformed handshake: handshake DHT port 99999 is not 0…65535/.test((await invalid).message), 'refused with the reason')
  await eventually('closed', () => ours.closed)
  t.absent(opened, 'never a peer')
  t.absent(a.destroyed, 'the connection stays')
})
