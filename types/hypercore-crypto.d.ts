// Ambient types for hypercore-crypto v3 (CommonJS, `exports.fn = ...`).
// Usage: `import crypto from 'hypercore-crypto'` (named imports also work at runtime).

declare module 'hypercore-crypto' {
  namespace HypercoreCrypto {
    interface KeyPair {
      publicKey: Buffer
      secretKey: Buffer
    }

    interface TreeNode {
      index: number
      size: number
      hash: Uint8Array
    }

    /** Ed25519 signing key pair; deterministic when a 32-byte seed is given. */
    function keyPair(seed?: Uint8Array): KeyPair
    /** True if secretKey matches publicKey. */
    function validateKeyPair(keyPair: { publicKey: Uint8Array; secretKey: Uint8Array }): boolean
    /** Detached Ed25519 signature (64 bytes). */
    function sign(message: Uint8Array, secretKey: Uint8Array): Buffer
    /** False (no throw) on wrong-sized signature or public key. */
    function verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean

    /** Sealed box (X25519) to an encryptionKeyPair() public key. */
    function encrypt(message: Uint8Array, publicKey: Uint8Array): Buffer
    /** null if it cannot be opened. */
    function decrypt(ciphertext: Uint8Array, keyPair: { publicKey: Uint8Array; secretKey: Uint8Array }): Buffer | null
    function encryptionKeyPair(seed?: Uint8Array): KeyPair

    /** Merkle leaf hash of a block. */
    function data(data: Uint8Array): Buffer
    function parent(a: TreeNode, b: TreeNode): Buffer
    /** Hash of merkle roots (what core.treeHash() returns). */
    function tree(roots: TreeNode[], out?: Uint8Array): Buffer
    /** 32-byte BLAKE2b of a buffer or of the concatenation of several. */
    function hash(data: Uint8Array | Uint8Array[], out?: Uint8Array): Buffer
    function randomBytes(n: number): Buffer
    /** BLAKE2b keyed hash of 'hypercore' with `key`; throws unless key is 32 bytes. */
    function discoveryKey(key: Uint8Array): Buffer
    /** `count` (or one per given id) 32-byte namespace keys derived from `name`. */
    function namespace(name: string | Uint8Array, count: number | number[]): Buffer[]
    /** sodium_free for secure buffers (no-op otherwise). */
    function free(secureBuf: Uint8Array): void
  }

  export = HypercoreCrypto
}
