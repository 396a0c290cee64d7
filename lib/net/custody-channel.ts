/**
 * CustodyChannel: our Protomux channel beside Corestore replication on one connection.
 * Every message travels as raw bytes and is decoded here, so a malformed message closes this
 * channel only — never the connection, never replication.
 */
import { EventEmitter } from 'node:events'
import c from 'compact-encoding'
import type Protomux from 'protomux'
import { EmbassyError } from '../errors.js'
import {
  CUSTODY_MAJOR,
  CUSTODY_MESSAGES,
  CUSTODY_PROTOCOL,
  ChannelError,
  MAX_CUSTODY_MESSAGE,
  MAX_HANDSHAKE_CATALOGS,
  MESSAGE_SINCE_MINOR,
  decode,
  encode,
  handshake as handshakeCodec,
  type Codec,
  type CustodyMessageName,
  type CustodyMessages,
  type ErrorMessage,
  type Handshake
} from '../../protocol/index.js'

/**
 * Largest handshake decoded (bytes): MAX_HANDSHAKE_CATALOGS 32-byte keys plus room for the
 * version, role and capability names. Checked before decoding.
 */
export const MAX_HANDSHAKE_BYTES = MAX_HANDSHAKE_CATALOGS * 32 + 16 * 1024

/** Bytes as they came: decoding happens here, where a failure can close only this channel. */
const raw = c.raw as unknown as Codec<Buffer>

export interface CustodyChannelEvents {
  /** The remote's handshake arrived and is acceptable. */
  open: [remote: Handshake]
  /** The remote sent an error message. */
  'remote-error': [err: ErrorMessage]
  /** A message from the remote was malformed or refused; the channel is closing. */
  invalid: [err: EmbassyError]
  close: []
}

/** What a node does with each message it receives (`error` is handled by the channel itself). */
export type CustodyHandlers = { [N in Exclude<CustodyMessageName, 'error'>]?: (value: CustodyMessages[N]) => void }

export class CustodyChannel extends EventEmitter<CustodyChannelEvents> {
  readonly local: Handshake
  remote: Handshake | null = null
  closed = false
  /** Messages that failed to decode (this channel closes on the first). */
  invalidMessages = 0
  #channel: Protomux.Channel<Buffer> | null
  #senders = new Map<CustodyMessageName, { send(buf: Buffer): boolean }>()

  /**
   * Registers every message of protocol/'s table, in its order; messages without a handler are
   * still decoded (a malformed one is refused) and then dropped.
   */
  constructor(mux: Protomux, local: Handshake, handlers: CustodyHandlers = {}) {
    super()
    this.local = local
    this.#channel = mux.createChannel({
      protocol: CUSTODY_PROTOCOL,
      handshake: raw,
      onopen: (raw: Buffer) => this.#onopen(raw),
      onclose: () => this.#onclose()
    })
    if (!this.#channel) return
    const all: Record<CustodyMessageName, ((value: never) => void) | undefined> = {
      error: (e: ErrorMessage) => this.emit('remote-error', e),
      ...handlers
    } as Record<CustodyMessageName, ((value: never) => void) | undefined>
    for (const spec of CUSTODY_MESSAGES) {
      const onvalue = all[spec.name]
      const m = this.#channel.addMessage({ encoding: raw, onmessage: (bytes: Buffer) => this.#onmessage(spec.codec as Codec<unknown>, onvalue as ((v: unknown) => void) | undefined, bytes) })
      this.#senders.set(spec.name, m)
    }
  }

  /** False when a channel of this protocol is already open on the connection. */
  get usable(): boolean {
    return !!this.#channel
  }

  open(): void {
    this.#channel?.open(encode(handshakeCodec, this.local))
  }

  /** Sends one message. False when the channel is not open (yet) or closed. */
  send<N extends CustodyMessageName>(name: N, value: CustodyMessages[N]): boolean {
    const spec = CUSTODY_MESSAGES.find((m) => m.name === name)!
    return this.sendRaw(name, encode(spec.codec as Codec<CustodyMessages[N]>, value))
  }

  /** True when the remote speaks a minor version that has message `name`. */
  supports(name: CustodyMessageName): boolean {
    return !!this.remote && this.remote.minor >= MESSAGE_SINCE_MINOR[name]
  }

  /** Sends bytes as message `name` without encoding them (tests of hostile input use it). */
  sendRaw(name: CustodyMessageName, bytes: Buffer): boolean {
    if (this.closed || !this.remote || !this.supports(name)) return false
    return this.#senders.get(name)!.send(bytes)
  }

  sendError(code: number, message: string): void {
    const sender = this.#senders.get('error')
    if (sender && !this.closed) sender.send(encode(CUSTODY_MESSAGES[0]!.codec as Codec<ErrorMessage>, { code, message }))
  }

  close(): void {
    if (this.closed) return
    this.#channel?.close()
  }

  #onopen(raw: Buffer): void {
    let remote: Handshake
    try {
      // Size first: a handshake is small (MAX_HANDSHAKE_CATALOGS keys at most); never decode a huge one.
      if (raw.byteLength > MAX_HANDSHAKE_BYTES) throw new Error(`handshake of ${raw.byteLength} bytes is over ${MAX_HANDSHAKE_BYTES}`)
      remote = decode(handshakeCodec, raw)
    } catch (err) {
      this.#refuse(EmbassyError.badPeerMessage(`malformed handshake: ${(err as Error).message}`, ChannelError.BAD_MESSAGE))
      return
    }
    if (remote.major !== CUSTODY_MAJOR) {
      this.#refuse(
        EmbassyError.unsupportedVersion(
          `unsupported custody protocol version ${remote.major}.${remote.minor}; this node speaks ${CUSTODY_MAJOR}.x`,
          ChannelError.UNSUPPORTED_VERSION
        )
      )
      return
    }
    this.remote = remote
    this.emit('open', remote)
  }

  #onmessage(codec: Codec<unknown>, onvalue: ((value: unknown) => void) | undefined, raw: Buffer): void {
    if (this.closed) return
    let value: unknown
    try {
      if (raw.byteLength > MAX_CUSTODY_MESSAGE) throw new Error(`message of ${raw.byteLength} bytes is over ${MAX_CUSTODY_MESSAGE}`)
      value = decode(codec, raw)
    } catch (err) {
      this.#refuse(EmbassyError.badPeerMessage(`malformed message: ${(err as Error).message}`, ChannelError.BAD_MESSAGE))
      return
    }
    try {
      onvalue?.(value)
    } catch (err) {
      this.#refuse(EmbassyError.badPeerMessage((err as Error).message, ChannelError.BAD_MESSAGE))
    }
  }

  #refuse(err: EmbassyError): void {
    this.invalidMessages++
    this.emit('invalid', err)
    this.sendError(err.details.channelCode as number, err.text)
    this.close()
  }

  #onclose(): void {
    if (this.closed) return
    this.closed = true
    this.emit('close')
  }
}
