// Ambient types for z32 (z-base-32), the encoding behind hypercore-id-encoding.
declare module 'z32' {
  const z32: {
    encode(buf: Uint8Array): string
    /** Throws on a character outside the z-base-32 alphabet. */
    decode(text: string): Buffer
  }
  export = z32
}
