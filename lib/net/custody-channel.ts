/**
 * CustodyChannel: our Protomux channel beside Corestore replication on one connection.
 * Every message travels as raw bytes and is decoded here, so a malformed message closes this
 * channel only — never the connection, never replication.
 */
import { EventEmitter } from 'node:events'
import c from 'compact-encoding'
import type Protomux from 'protomux'
import {
  CUSTODY_MAJOR,
  CUSTODY_PROTOCOL,
  ChannelError,
  MAX_CUSTODY_MESSAGE,
  decode,
  encode,
  errorMessage,
  handshake as handshakeCodec,
  type Codec,
  type ErrorMessage,
  type Handshake
} from '../../protocol/index.js'

/** Bytes as they came: decoding happens here, where a failure can close only this channel. */
const raw = c.raw as unknown as Codec<Buffer>

export interface CustodyChannelEvents {
  /** The remote's handshake arrived and is acceptable. */
  open: [remote: Handshake]
  /** The remote sent an error message. */
  'remote-error': [err: ErrorMessage]
  /** A message from the remote was malformed or refused; the channel is closing. */
  invalid: [err: Error]
  close: []
}

/** A typed message on the channel. Handlers receive decoded values; bad bytes never reach them. */
export interface MessageSpec<T> {
  codec: Codec<T>
  onmessage(value: T): void
}

export class CustodyChannel extends EventEmitter<CustodyChannelEvents> {
  readonly local: Handshake
  remote: Handshake | null = null
  closed = false
  /** Messages that failed to decode (this channel closes on the first). */
  invalidMessages = 0
  #channel: Protomux.Channel<Buffer> | null
  #senders: Array<{ send(buf: Buffer): boolean }> = []

  /**
   * @param specs messages after the built-in `error` (index 0), in protocol order
   */
  constructor(mux: Protomux, local: Handshake, specs: Array<MessageSpec<any>> = []) {
    super()
    this.local = local
    this.#channel = mux.createChannel({
      protocol: CUSTODY_PROTOCOL,
      handshake: raw,
      onopen: (raw: Buffer) => this.#onopen(raw),
      onclose: () => this.#onclose()
    })
    if (!this.#channel) return
    const all: Array<MessageSpec<any>> = [{ codec: errorMessage, onmessage: (e: ErrorMessage) => this.emit('remote-error', e) }, ...specs]
    for (const spec of all) {
      const m = this.#channel.addMessage({ encoding: raw, onmessage: (raw: Buffer) => this.#onmessage(spec, raw) })
      this.#senders.push(m)
    }
  }

  /** False when a channel of this protocol is already open on the connection. */
  get usable(): boolean {
    return !!this.#channel
  }

  open(): void {
    this.#channel?.open(encode(handshakeCodec, this.local))
  }

  /** Sends message number `index` (1 = the first spec). False when closed. */
  send<T>(index: number, codec: Codec<T>, value: T): boolean {
    if (this.closed || !this.remote) return false
    const sender = this.#senders[index]
    if (!sender) throw new Error(`no message ${index}`)
    return sender.send(encode(codec, value))
  }

  sendError(code: number, message: string): void {
    const sender = this.#senders[0]
    if (sender && !this.closed) sender.send(encode(errorMessage, { code, message }))
  }

  close(): void {
    if (this.closed) return
    this.#channel?.close()
  }

  #onopen(raw: Buffer): void {
    let remote: Handshake
    try {
      remote = decode(handshakeCodec, raw)
    } catch (err) {
      this.#refuse(ChannelError.BAD_MESSAGE, `malformed handshake: ${(err as Error).message}`)
      return
    }
    if (remote.major !== CUSTODY_MAJOR) {
      this.#refuse(ChannelError.UNSUPPORTED_VERSION, `unsupported custody protocol version ${remote.major}.${remote.minor}; this node speaks ${CUSTODY_MAJOR}.x`)
      return
    }
    this.remote = remote
    this.emit('open', remote)
  }

  #onmessage<T>(spec: MessageSpec<T>, raw: Buffer): void {
    if (this.closed) return
    let value: T
    try {
      if (raw.byteLength > MAX_CUSTODY_MESSAGE) throw new Error(`message of ${raw.byteLength} bytes is over ${MAX_CUSTODY_MESSAGE}`)
      value = decode(spec.codec, raw)
    } catch (err) {
      this.#refuse(ChannelError.BAD_MESSAGE, `malformed message: ${(err as Error).message}`)
      return
    }
    try {
      spec.onmessage(value)
    } catch (err) {
      this.#refuse(ChannelError.BAD_MESSAGE, (err as Error).message)
    }
  }

  #refuse(code: number, message: string): void {
    this.invalidMessages++
    const err = new Error(message)
    ;(err as Error & { channelCode?: number }).channelCode = code
    this.emit('invalid', err)
    this.sendError(code, message)
    this.close()
  }

  #onclose(): void {
    if (this.closed) return
    this.closed = true
    this.emit('close')
  }
}
