// Ambient types for @hyperswarm/secret-stream v6 (CommonJS: `module.exports = class NoiseSecretStream`).
// Not a direct dependency, but it is the socket type Hyperswarm/HyperDHT hand out and what
// Hypercore/Corestore replicate over. Written against its index.js (6.9.x).

declare module '@hyperswarm/secret-stream' {
  import { Duplex } from 'streamx'

  /**
   * Encrypted (Noise XX + secretstream) framed duplex. Event names beyond streamx's
   * typed ones: 'open' (stream opened), 'connect' (handshake done), 'handshake',
   * 'message' (unordered datagram, see send()). Inherits streamx: 'data', 'end',
   * 'close', 'error', 'drain', 'finish'.
   */
  class NoiseSecretStream extends Duplex {
    constructor(isInitiator: boolean, rawStream?: Duplex | null, opts?: NoiseSecretStream.Options)

    static keyPair(seed?: Uint8Array): NoiseSecretStream.KeyPair
    static id(handshakeHash: Uint8Array, isInitiator: boolean, id?: Uint8Array): Buffer

    /** Always `this` (lets code accept either a noise stream or a wrapper). */
    noiseStream: NoiseSecretStream
    isInitiator: boolean
    /** Underlying transport (a UDX stream for DHT connections). */
    rawStream: Duplex | null
    /** Local public key (set once the key pair is known). */
    publicKey: Buffer | null
    /** Remote public key; set after the handshake (before 'connection' is emitted by Hyperswarm). */
    remotePublicKey: Buffer | null
    /** Unique hash of this session, identical on both sides; set after the handshake. */
    handshakeHash: Buffer | null
    connected: boolean
    keepAlive: number
    timeout: number
    /** Resolves true when opened, false if it was destroyed first. */
    opened: Promise<boolean>
    rawBytesWritten: number
    rawBytesRead: number
    /** Slot used by Protomux/Hypercore to store the muxer for this stream. */
    userData: any
    relay: unknown
    puncher: unknown

    start(rawStream?: Duplex | null, opts?: NoiseSecretStream.Options): void
    /** Destroy the stream if no data arrives within `ms`. */
    setTimeout(ms: number): void
    setKeepAlive(ms: number): void
    sendKeepAlive(): void
    /** Resolves when pending writes are flushed to the raw stream (false if destroyed). */
    flush(): Promise<boolean>
    /** Unordered encrypted datagram (UDX raw streams only; silently ignored otherwise). */
    send(buffer: Uint8Array): Promise<void> | undefined
    trySend(buffer: Uint8Array): void
    alloc(len: number): Buffer
    toJSON(): Record<string, unknown>
  }

  namespace NoiseSecretStream {
    interface KeyPair {
      publicKey: Buffer
      secretKey: Buffer
    }

    interface Options {
      pattern?: string
      remotePublicKey?: Uint8Array | null
      publicKey?: Uint8Array | null
      keyPair?: { publicKey: Uint8Array; secretKey: Uint8Array } | Promise<{ publicKey: Uint8Array; secretKey: Uint8Array }>
      handshake?: { tx: Uint8Array; rx: Uint8Array; hash: Uint8Array; publicKey: Uint8Array; remotePublicKey: Uint8Array } | null
      keepAlive?: number
      autoStart?: boolean
      enableSend?: boolean
      data?: Uint8Array
      ended?: boolean
      [option: string]: unknown
    }
  }

  export = NoiseSecretStream
}
