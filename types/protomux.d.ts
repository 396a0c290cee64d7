// Ambient types for protomux v3 (CommonJS: `module.exports = class Protomux`).
// Written against node_modules/protomux/index.js (3.12.x).
// Usage: `import Protomux from 'protomux'`; types as `Protomux.Channel`, `Protomux.Message<T>`.

declare module 'protomux' {
  import type { Encoder } from 'compact-encoding'

  class Protomux implements Iterable<Protomux.Channel> {
    /** `stream` must be a framed duplex (e.g. a NoiseSecretStream). Sets `stream.userData = this` if it was null. */
    constructor(stream: Protomux.FramedStream, opts?: { alloc?: (size: number) => Buffer })

    /** Reuse the muxer stored in `stream.userData` (or return `stream` if it is already a muxer). */
    static from(stream: Protomux.FramedStream | Protomux, opts?: { alloc?: (size: number) => Buffer }): Protomux
    static isProtomux(mux: unknown): mux is Protomux

    readonly isProtomux: true
    stream: Protomux.FramedStream
    corked: number
    /** false while the underlying stream is backpressured */
    drained: boolean

    /**
     * Returns null when the stream is already destroyed, or when `unique` (default true)
     * and a channel with this protocol+id is already open on this muxer.
     */
    createChannel<H = unknown>(opts: Protomux.ChannelOptions<H>): Protomux.Channel<H> | null

    /** Whether a channel with this protocol (+id) is currently open locally. */
    opened(opts: { protocol: string; id?: Uint8Array | null }): boolean
    /** Called (with the remote's channel id) whenever the remote opens this protocol and no local channel is waiting. */
    pair(opts: { protocol: string; id?: Uint8Array | null }, notify: (id: Buffer | null) => void | Promise<void>): void
    unpair(opts: { protocol: string; id?: Uint8Array | null }): void
    getLastChannel(opts: { protocol: string; id?: Uint8Array | null }): Protomux.Channel | null

    /** True when no channels are open. */
    isIdle(): boolean
    cork(): void
    uncork(): void
    destroy(err?: Error): void

    [Symbol.iterator](): Iterator<Protomux.Channel>
  }

  namespace Protomux {
    /** Minimal shape Protomux needs from its stream (NoiseSecretStream satisfies it). */
    interface FramedStream {
      userData: unknown
      destroyed?: boolean
      write(data: Uint8Array): boolean
      on(event: string, listener: (...args: any[]) => void): unknown
      destroy(err?: Error | null): void
    }

    interface MessageOptions<T = unknown> {
      /** compact-encoding codec; default `c.raw` (Buffer in, Buffer out). */
      encoding?: Encoder<any, T>
      /** Errors/rejections destroy the stream (or emit 'warning' on the stream if the channel is already closed). */
      onmessage?: (message: T, channel: Channel<any>) => void | Promise<void>
      autoBatch?: boolean
    }

    interface ChannelOptions<H = unknown> {
      protocol: string
      /** Extra binary id; channels pair on (protocol, id). */
      id?: Uint8Array | null
      aliases?: string[]
      /** Default true: createChannel returns null if one is already open. */
      unique?: boolean
      /** Encoding of the handshake value passed to `open(handshake)` and received in `onopen`. */
      handshake?: Encoder<any, H> | null
      /** Message types, in order (index = wire type). A falsy entry reserves a slot. */
      messages?: Array<MessageOptions<any> | null | undefined | false>
      userData?: unknown
      /** Called when the remote side opened the channel too (handshake is null without a handshake encoding). */
      onopen?: (handshake: H, channel: Channel<H>) => void | Promise<void>
      /** Called once when the channel closes (remote closed/rejected it, we closed it, or the stream ended). */
      onclose?: (isRemote: boolean, channel: Channel<H>) => void | Promise<void>
      /** Called after onclose once all pending handler promises settled. */
      ondestroy?: (channel: Channel<H>) => void | Promise<void>
      ondrain?: (channel: Channel<H>) => void | Promise<void>
    }

    interface Message<T = unknown> {
      type: number
      encoding: Encoder<any, T>
      onmessage: (message: T, channel: Channel<any>) => void | Promise<void>
      autoBatch?: boolean
      /** Returns false if the channel is closed or the stream is backpressured (data is still queued in the latter case). */
      send(message: T, channel?: Channel<any>): boolean
    }

    interface Channel<H = unknown> {
      userData: any
      protocol: string
      aliases: string[]
      id: Buffer | null
      /** Remote handshake, set once opened. */
      handshake: H | null
      messages: Message<any>[]
      opened: boolean
      closed: boolean
      destroyed: boolean
      readonly drained: boolean
      onopen: (handshake: H, channel: Channel<H>) => void | Promise<void>
      onclose: (isRemote: boolean, channel: Channel<H>) => void | Promise<void>
      ondestroy: (channel: Channel<H>) => void | Promise<void>
      ondrain: (channel: Channel<H>) => void | Promise<void>

      /** Send our open (with handshake) to the remote. */
      open(handshake?: H): void
      close(): void
      /** Resolves true once both sides opened, false if it closed first. */
      fullyOpened(): Promise<boolean>
      /** Resolves once destroyed (after onclose + pending handlers). */
      fullyClosed(): Promise<void>
      addMessage<T = Buffer>(opts?: MessageOptions<T> | null): Message<T>
      cork(): void
      uncork(): void
    }
  }

  export = Protomux
}
