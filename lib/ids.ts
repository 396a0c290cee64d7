/** Keys at the edge: z32 text for people and JSON, Buffers inside. */
import id from 'hypercore-id-encoding'
import { EmbassyError } from './errors.js'

export function toZ32(key: Uint8Array): string {
  return id.encode(Buffer.from(key.buffer, key.byteOffset, key.byteLength))
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
