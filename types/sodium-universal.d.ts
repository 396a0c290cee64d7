// Ambient types for sodium-universal v5 (`module.exports = require('sodium-native')`) — the subset
// of sodium-native 5.x this project uses, plus closely related calls. Signatures follow
// sodium-native's index.js: every function writes into caller-allocated output buffers and
// throws (assertion / 'status: N') on wrong sizes or failure.
// Usage: `import sodium from 'sodium-universal'` — use the DEFAULT import: the *_BYTES etc.
// constants come from a native binding spread and are NOT visible as ESM named exports.

declare module 'sodium-universal' {
  namespace sodium {
    // ---- memory / helpers ----
    /** Zero the buffer in place. */
    function sodium_memzero(buf: Uint8Array): void
    /** Constant-time equality; buffers must have the same length (asserts). */
    function sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean
    function sodium_compare(a: Uint8Array, b: Uint8Array): number
    function sodium_is_zero(buf: Uint8Array, length?: number): boolean
    /** Guarded, mlocked buffer (`.secure === true`); release with sodium_free. */
    function sodium_malloc(size: number): Buffer & { secure: true }
    function sodium_free(buf: Uint8Array): void

    // ---- randombytes ----
    const randombytes_SEEDBYTES: number
    /** Fill `buf` with random bytes. */
    function randombytes_buf(buf: Uint8Array): void
    function randombytes_buf_deterministic(buf: Uint8Array, seed: Uint8Array): void
    function randombytes_random(): number
    function randombytes_uniform(upperBound: number): number

    // ---- crypto_generichash (BLAKE2b) ----
    /** 32 */
    const crypto_generichash_BYTES: number
    /** 16 */
    const crypto_generichash_BYTES_MIN: number
    /** 64 */
    const crypto_generichash_BYTES_MAX: number
    /** 32 */
    const crypto_generichash_KEYBYTES: number
    const crypto_generichash_KEYBYTES_MIN: number
    const crypto_generichash_KEYBYTES_MAX: number
    const crypto_generichash_STATEBYTES: number
    /** output length must be within [BYTES_MIN, BYTES_MAX]; key (optional) within [KEYBYTES_MIN, KEYBYTES_MAX]. */
    function crypto_generichash(output: Uint8Array, input: Uint8Array, key?: Uint8Array | null): void
    /** Hash of the concatenation of `batch`. */
    function crypto_generichash_batch(output: Uint8Array, batch: Uint8Array[], key?: Uint8Array | null): void
    function crypto_generichash_keygen(key: Uint8Array): void
    /** `state` must be crypto_generichash_STATEBYTES long. */
    function crypto_generichash_init(state: Uint8Array, key: Uint8Array | null | undefined, outputLength: number): void
    function crypto_generichash_update(state: Uint8Array, input: Uint8Array): void
    function crypto_generichash_final(state: Uint8Array, output: Uint8Array): void

    // ---- crypto_secretbox (XSalsa20-Poly1305) ----
    /** 32 */
    const crypto_secretbox_KEYBYTES: number
    /** 24 */
    const crypto_secretbox_NONCEBYTES: number
    /** 16 */
    const crypto_secretbox_MACBYTES: number
    /** `ciphertext.byteLength` must be `message.byteLength + MACBYTES`. */
    function crypto_secretbox_easy(ciphertext: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
    /** Returns false if authentication fails. `message.byteLength` must be `ciphertext.byteLength - MACBYTES`. */
    function crypto_secretbox_open_easy(message: Uint8Array, ciphertext: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean
    function crypto_secretbox_detached(ciphertext: Uint8Array, mac: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
    function crypto_secretbox_open_detached(message: Uint8Array, ciphertext: Uint8Array, mac: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean

    // ---- crypto_stream (XSalsa20) ----
    /** 32 */
    const crypto_stream_KEYBYTES: number
    /** 24 */
    const crypto_stream_NONCEBYTES: number
    /** Fill `ciphertext` with keystream. */
    function crypto_stream(ciphertext: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
    /** XOR `message` with the keystream into `ciphertext` (same length; may be the same buffer). */
    function crypto_stream_xor(ciphertext: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void

    // ---- crypto_sign (Ed25519) ----
    /** 64 */
    const crypto_sign_BYTES: number
    /** 32 */
    const crypto_sign_PUBLICKEYBYTES: number
    /** 64 */
    const crypto_sign_SECRETKEYBYTES: number
    /** 32 */
    const crypto_sign_SEEDBYTES: number
    function crypto_sign_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
    /** Writes a crypto_sign_BYTES signature of `message` into `signature`. */
    function crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
    /** `signedMessage.byteLength` must be `message.byteLength + crypto_sign_BYTES`. */
    function crypto_sign(signedMessage: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_open(message: Uint8Array, signedMessage: Uint8Array, publicKey: Uint8Array): boolean
    function crypto_sign_ed25519_sk_to_pk(publicKey: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_ed25519_pk_to_curve25519(x25519PublicKey: Uint8Array, ed25519PublicKey: Uint8Array): void
    function crypto_sign_ed25519_sk_to_curve25519(x25519SecretKey: Uint8Array, ed25519SecretKey: Uint8Array): void

    // ---- crypto_pwhash (Argon2) ----
    /** 16 */
    const crypto_pwhash_SALTBYTES: number
    const crypto_pwhash_BYTES_MIN: number
    const crypto_pwhash_BYTES_MAX: number
    const crypto_pwhash_STRBYTES: number
    /** 1 */
    const crypto_pwhash_ALG_ARGON2I13: number
    /** 2 */
    const crypto_pwhash_ALG_ARGON2ID13: number
    const crypto_pwhash_ALG_DEFAULT: number
    const crypto_pwhash_OPSLIMIT_MIN: number
    const crypto_pwhash_OPSLIMIT_MAX: number
    /** 2 */
    const crypto_pwhash_OPSLIMIT_INTERACTIVE: number
    /** 3 */
    const crypto_pwhash_OPSLIMIT_MODERATE: number
    /** 4 */
    const crypto_pwhash_OPSLIMIT_SENSITIVE: number
    const crypto_pwhash_MEMLIMIT_MIN: number
    const crypto_pwhash_MEMLIMIT_MAX: number
    /** 64 MiB */
    const crypto_pwhash_MEMLIMIT_INTERACTIVE: number
    /** 256 MiB */
    const crypto_pwhash_MEMLIMIT_MODERATE: number
    /** 1 GiB */
    const crypto_pwhash_MEMLIMIT_SENSITIVE: number
    /** Synchronous (blocks the event loop). `salt` must be SALTBYTES; alg 1 (Argon2i) or 2 (Argon2id). */
    function crypto_pwhash(output: Uint8Array, password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number, alg: number): void
    /** Runs on the libuv threadpool; returns a promise when no callback is given. */
    function crypto_pwhash_async(output: Uint8Array, password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number, alg: number): Promise<void>
    function crypto_pwhash_async(
      output: Uint8Array,
      password: Uint8Array,
      salt: Uint8Array,
      opslimit: number,
      memlimit: number,
      alg: number,
      callback: (err: Error | null) => void
    ): undefined
    /** `output` must be crypto_pwhash_STRBYTES long. */
    function crypto_pwhash_str(output: Uint8Array, password: Uint8Array, opslimit: number, memlimit: number): void
    function crypto_pwhash_str_verify(str: Uint8Array, password: Uint8Array): boolean
  }

  export = sodium
}

declare module 'sodium-native' {
  import sodium = require('sodium-universal')
  export = sodium
}
