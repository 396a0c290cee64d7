// Augmentation for streamx's own (shipped) typings, which declare `end(data: unknown)` with a
// required argument although streamx's Writable/Duplex end() accepts none (or a 'finish' callback).
// This matters because Hyperswarm/HyperDHT sockets and Hyperdrive write streams are streamx streams.

import type { WritableEvents } from 'streamx'

declare module 'streamx' {
  interface Writable<M extends WritableEvents = WritableEvents> {
    end(): this
    end(onfinish: () => void): this
  }
}
