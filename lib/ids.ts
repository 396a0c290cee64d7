/** Keys at the edge: z32 text for people and JSON, Buffers inside. */
import id from 'hypercore-id-encoding'
import { EmbassyError } from './errors.js'

export function toZ32(key: Uint8Array): string {
  return id.encode(Buffer.from(key.buffer, key.byteOffset, key.byteLength))
}

/** Something whose key never changes once set: a Hypercore (once ready), a network peer. */
interface Keyed {
  readonly key: Uint8Array | null
}

const idsOf = new WeakMap<Keyed, { key: Uint8Array; z32: string; hex: string }>()

function idsFor(owner: Keyed): { key: Uint8Array; z32: string; hex: string } {
  const key = owner.key
  if (!key) throw new TypeError('no key yet (a core that is not ready?)')
  let ids = idsOf.get(owner)
  // Computed once per owner: the periodic checks over every core (restore gate, milestones,
  // audits) would otherwise encode thousands of keys several times a second.
  if (ids === undefined || ids.key !== key) {
    const buf = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
    ids = { key, z32: id.encode(buf), hex: buf.toString('hex') }
    idsOf.set(owner, ids)
  }
  return ids
}

/** `toZ32(owner.key)`, computed once per owner (a core or a peer; its key never changes). */
export function keyZ32(owner: Keyed): string {
  return idsFor(owner).z32
}

/** `owner.key` as hex, computed once per owner (a core or a peer; its key never changes). */
export function keyHex(owner: Keyed): string {
  return idsFor(owner).hex
}

/** Parses a 32-byte key given as z32 or hex; `what` names it in the error. */
export function parseKey(text: string, what = 'key'): Buffer {
  const trimmed = String(text).trim()
  let key: Buffer | null = null
  try {
    key = id.decode(trimmed)
  } catch {
    key = null
  }
  if (!key || key.byteLength !== 32) {
    throw EmbassyError.badArgument(`${what} "${trimmed.slice(0, 80)}" is not a 32-byte key (z32 or hex)`)
  }
  return key
}

export function toHex(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex')
}
