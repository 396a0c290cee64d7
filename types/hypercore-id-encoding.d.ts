// Ambient types for hypercore-id-encoding v1 (CommonJS: `module.exports = { encode, decode, normalize, isValid }`).
// Usage: `import id from 'hypercore-id-encoding'` (named imports also work at runtime).

declare module 'hypercore-id-encoding' {
  namespace HypercoreId {
    /** z-base-32 (52 chars). Throws unless `key` is a 32-byte buffer. */
    function encode(key: Uint8Array): string
    /**
     * Accepts a 32-byte buffer (returned as-is), a 52-char z32 id, a 64-char hex string,
     * or a `pear://<id>/...` link. Throws 'Invalid Hypercore key' otherwise.
     */
    function decode(id: string | Uint8Array): Buffer
    /** encode(decode(any)) — canonical z32 form. */
    function normalize(id: string | Uint8Array): string
    /** decode() would not throw. */
    function isValid(id: unknown): boolean
  }

  export = HypercoreId
}
