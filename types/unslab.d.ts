// Ambient types for unslab: copies buffers out of a larger allocation (a pool slab, a received chunk).
declare module 'unslab' {
  interface Unslab {
    /** `buf` itself when it owns its whole ArrayBuffer, else an exact-size copy. */
    <T extends Uint8Array | null>(buf: T): T
    /** The views of `list` that do not own their ArrayBuffer, copied together into one new allocation (the others as they were). */
    all<T extends Uint8Array | null>(list: readonly T[]): T[]
    /** True when `buf` is a view of a larger ArrayBuffer. */
    is(buf: Uint8Array): boolean
  }
  const unslab: Unslab
  export = unslab
}
