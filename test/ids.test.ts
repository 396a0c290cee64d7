import crypto from 'node:crypto'
import test from 'brittle'
import { keyHex, keyZ32, parseKey, toZ32 } from '../lib/ids.js'

test('ids: keyZ32 and keyHex give the same strings as encoding the key, once per object', (t) => {
  const a = { key: crypto.randomBytes(32) }
  const b = { key: crypto.randomBytes(32) }
  t.is(keyZ32(a), toZ32(a.key))
  t.is(keyHex(a), a.key.toString('hex'))
  t.is(keyZ32(b), toZ32(b.key), 'another object: its own key')
  t.ok(parseKey(keyZ32(a)).equals(a.key), 'the z32 parses back to the key')
  // A key held in a slice of a larger buffer encodes only its own 32 bytes.
  const slab = crypto.randomBytes(96)
  const sliced = { key: slab.subarray(32, 64) }
  t.is(keyHex(sliced), slab.subarray(32, 64).toString('hex'))
})

test('ids: a replaced key buffer is encoded again (never a stale id)', (t) => {
  const peer: { key: Buffer | null } = { key: crypto.randomBytes(32) }
  const first = keyZ32(peer)
  peer.key = crypto.randomBytes(32)
  t.not(keyZ32(peer), first)
  t.is(keyZ32(peer), toZ32(peer.key))
  t.is(keyHex(peer), peer.key.toString('hex'))
})

// A programmer's error (TypeError: brittle's plain exception() rethrows native errors).
test('ids: an object without a key yet (a core not ready) is an error, not an id', (t) => {
  t.exception.all(() => keyZ32({ key: null }), /no key yet/)
  t.exception.all(() => keyHex({ key: null }), /no key yet/)
})
