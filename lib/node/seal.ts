/**
 * Authenticated sealing of small blobs (XSalsa20-Poly1305 secretbox, random nonce in front), and
 * the size classes sealed metadata is padded to: a sealed blob's length shows its class, not the
 * exact length of what it hides (an agency's name, a dataset's name and description).
 */
import sodium from 'sodium-universal'

const NONCE = sodium.crypto_secretbox_NONCEBYTES
const MAC = sodium.crypto_secretbox_MACBYTES

/** Bytes a sealed blob adds to its plaintext (nonce and MAC): 40. */
export const SEAL_OVERHEAD = NONCE + MAC

/** Smallest size class of sealed metadata (bytes, sealed): names up to ~80 bytes all look alike. */
export const MIN_SEALED_CLASS = 128

/**
 * The size class of a sealed blob of `sealedBytes`: the smallest power of two ≥ it, at least
 * MIN_SEALED_CLASS, and never above `max` (a blob that needs more than `max` is returned as is:
 * the caller refuses it).
 */
export function sealedSizeClass(sealedBytes: number, max: number): number {
  if (sealedBytes > max) return sealedBytes
  let size = MIN_SEALED_CLASS
  while (size < sealedBytes) size *= 2
  return Math.min(size, max)
}

export function seal(plaintext: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(NONCE + MAC + plaintext.byteLength)
  const nonce = out.subarray(0, NONCE)
  sodium.randombytes_buf(nonce)
  sodium.crypto_secretbox_easy(out.subarray(NONCE), plaintext, nonce, key)
  return out
}

/**
 * Seals what `plaintextWithPadding(n)` encodes (its plaintext with `n` bytes of padding) so that
 * the sealed blob is exactly a size class long. `plaintextWithPadding(0)` must be the bare size.
 */
export function sealPadded(plaintextWithPadding: (padding: number) => Uint8Array, key: Uint8Array, max: number): Buffer {
  const bare = plaintextWithPadding(0).byteLength + SEAL_OVERHEAD
  const padding = Math.max(0, sealedSizeClass(bare, max) - bare)
  return seal(plaintextWithPadding(padding), key)
}

/** Opens a sealed blob; null when the key is wrong or the bytes were altered. */
export function open(sealed: Uint8Array, key: Uint8Array): Buffer | null {
  if (sealed.byteLength < NONCE + MAC) return null
  const out = Buffer.alloc(sealed.byteLength - NONCE - MAC)
  const ok = sodium.crypto_secretbox_open_easy(out, sealed.subarray(NONCE), sealed.subarray(0, NONCE), key)
  return ok ? out : null
}
