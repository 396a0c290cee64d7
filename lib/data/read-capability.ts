/**
 * Capabilities as text: one copy-pastable string with what a mirror (read) or an auditor (verify)
 * needs — `PREFIX` + z-base-32 of the payload followed by a 4-byte checksum, so that a mistyped
 * or truncated capability is refused (BAD_CAPABILITY) instead of sending a node after a catalog
 * that does not exist. Errors never quote the text: a capability is a secret.
 *
 * Read capabilities made before the checksum (exactly the payload, no checksum) are still
 * accepted — in a crisis the agency that could issue a new one may be gone — and reported as
 * `checksum: false` so that the CLI can warn; a verify capability always carries one.
 */
import sodium from 'sodium-universal'
import z32 from 'z32'
import { EmbassyError } from '../errors.js'
import { READ_CAPABILITY_PREFIX, decode, encode, readCapability, type ReadCapability } from '../../protocol/index.js'

/** Bytes of checksum after a capability's payload. */
export const CAPABILITY_CHECKSUM_BYTES = 4

const CHECKSUM_NS = Buffer.from('data-embassy/capability-checksum')

/**
 * The checksum of a capability's payload: the first 4 bytes of
 * BLAKE2b-128("data-embassy/capability-checksum" ‖ prefix ‖ payload). The prefix is hashed in,
 * so a read payload never passes as a verify one. It catches mistakes, not forgers (no key).
 */
export function capabilityChecksum(prefix: string, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(16)
  sodium.crypto_generichash_batch(out, [CHECKSUM_NS, Buffer.from(prefix), payload])
  return out.subarray(0, CAPABILITY_CHECKSUM_BYTES)
}

/** `prefix` + z32(payload ‖ checksum): the text of a capability. */
export function formatCapability(prefix: string, payload: Uint8Array): string {
  return prefix + z32.encode(Buffer.concat([payload, capabilityChecksum(prefix, payload)]))
}

/**
 * The bytes of a capability's text (payload and checksum, unchecked): BAD_CAPABILITY when the
 * prefix is missing or the rest is not canonical z-base-32 (a changed, added or dropped character).
 * `what` names it in errors ("read capability").
 */
export function capabilityBytes(prefix: string, text: string, what: string): Buffer {
  const t = String(text).trim()
  if (!t.startsWith(prefix)) {
    // Never quote the text: it may be the secret itself, pasted without its prefix.
    throw EmbassyError.badCapability(`a ${what} starts with "${prefix}" (${t.length} characters given, not shown); copy it again from its source`)
  }
  const body = t.slice(prefix.length)
  let bytes: Buffer
  try {
    bytes = Buffer.from(z32.decode(body))
  } catch (err) {
    throw EmbassyError.badCapability(`the ${what} is damaged: it has characters z-base-32 does not use; copy it again`, err)
  }
  if (body.length === 0 || z32.encode(bytes) !== body) throw EmbassyError.badCapability(`the ${what} is damaged (a character is missing or extra); copy it again`)
  return bytes
}

/**
 * The payload of `bytes` (payload ‖ checksum) after checking its checksum; BAD_CAPABILITY when
 * it is too short or differs (a changed character).
 */
export function checkCapabilityChecksum(prefix: string, bytes: Uint8Array, what: string): Buffer {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.byteLength <= CAPABILITY_CHECKSUM_BYTES) throw EmbassyError.badCapability(`the ${what} is damaged (too short); copy it again`)
  const payload = b.subarray(0, b.byteLength - CAPABILITY_CHECKSUM_BYTES)
  const sum = b.subarray(b.byteLength - CAPABILITY_CHECKSUM_BYTES)
  if (!capabilityChecksum(prefix, payload).equals(sum)) throw EmbassyError.badCapability(`the ${what} is damaged: its checksum does not match (a character was changed); copy it again`)
  return payload
}

export function formatReadCapability(cap: ReadCapability): string {
  return formatCapability(READ_CAPABILITY_PREFIX, encode(readCapability, cap))
}

/** A read capability and whether its text carried a checksum (false: made before checksums). */
export interface ParsedReadCapability {
  capability: ReadCapability
  checksum: boolean
}

/** Parses a read capability's text; BAD_CAPABILITY (never quoting it) when it is damaged. */
export function parseReadCapabilityText(text: string): ParsedReadCapability {
  const what = 'read capability'
  const bytes = capabilityBytes(READ_CAPABILITY_PREFIX, text, what)
  // Without a checksum: exactly the v1 payload (made before checksums), decoded as it is.
  const legacy = tryDecode(bytes)
  if (legacy) return { capability: legacy, checksum: false }
  const payload = checkCapabilityChecksum(READ_CAPABILITY_PREFIX, bytes, what)
  const cap = tryDecode(payload)
  if (!cap) throw EmbassyError.badCapability(`the ${what} is damaged: its checksum matches but its contents do not decode (a newer format?)`)
  return { capability: cap, checksum: true }
}

export function parseReadCapability(text: string): ReadCapability {
  return parseReadCapabilityText(text).capability
}

function tryDecode(bytes: Uint8Array): ReadCapability | null {
  try {
    return decode(readCapability, bytes)
  } catch {
    return null
  }
}
