/** Authenticated sealing of small blobs (XSalsa20-Poly1305 secretbox, random nonce in front). */
import sodium from 'sodium-universal'

const NONCE = sodium.crypto_secretbox_NONCEBYTES
const MAC = sodium.crypto_secretbox_MACBYTES

export function seal(plaintext: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(NONCE + MAC + plaintext.byteLength)
  const nonce = out.subarray(0, NONCE)
  sodium.randombytes_buf(nonce)
  sodium.crypto_secretbox_easy(out.subarray(NONCE), plaintext, nonce, key)
  return out
}

/** Opens a sealed blob; null when the key is wrong or the bytes were altered. */
export function open(sealed: Uint8Array, key: Uint8Array): Buffer | null {
  if (sealed.byteLength < NONCE + MAC) return null
  const out = Buffer.alloc(sealed.byteLength - NONCE - MAC)
  const ok = sodium.crypto_secretbox_open_easy(out, sealed.subarray(NONCE), sealed.subarray(0, NONCE), key)
  return ok ? out : null
}
