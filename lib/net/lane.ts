/**
 * Direct lane: a TCP connection between two peers that already know each other's address, with
 * the same Noise keys and firewall as the swarm (`@hyperswarm/secret-stream` over the TCP socket),
 * for bulk replication without UDP hole-punching. The stream it yields is a NoiseSecretStream
 * like a swarm connection's: `store.replicate(stream)` multiplexes replication on it as today.
 *
 * Running nodes use it through lane-link.ts (config `lane`, off by default): offers over the
 * custody channel, one lane per peer pair, the lane an extra replication connection of the peer.
 *
 *   const server = new LaneServer({ keyPair, host: '0.0.0.0', port: 7100, firewall: (key) => !allowed(key) })
 *   server.on('connection', (stream) => store.replicate(stream))
 *   await server.ready()
 *   const stream = await dialLane(host, server.port, { keyPair, remotePublicKey })
 *   store.replicate(stream)
 */
import net from 'node:net'
import ReadyResource from 'ready-resource'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { EmbassyError } from '../errors.js'
import { toZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'

/** A Noise handshake not finished this long after the TCP connection opened is dropped (ms). */
export const LANE_HANDSHAKE_TIMEOUT_MS = 10_000

/** Incoming connections still in their handshake at once; more are closed on arrival. */
export const MAX_PENDING_HANDSHAKES = 64

/**
 * Largest frame accepted before the Noise handshake is done (bytes). Noise XX messages are under
 * 100 bytes; secret-stream's framing admits up to 16 MiB, which a client could otherwise make the
 * server buffer for the whole handshake timeout on every pending connection.
 */
export const MAX_HANDSHAKE_FRAME = 1024

/** Keep-alive on an open lane (ms), as the swarm's connections (network.ts KEEP_ALIVE_MS). */
export const LANE_KEEP_ALIVE_MS = 1000

/** An open lane that received nothing (not even a keep-alive) this long is closed (ms). */
export const LANE_TIMEOUT_MS = 6000

/**
 * The firewall: true REFUSES `remoteKey` (Hyperswarm's firewall shape). Called once per incoming
 * lane, after the Noise handshake proved the key and before anything else is read or replicated.
 */
export type LaneFirewall = (remoteKey: Buffer) => boolean

export interface LaneServerOptions {
  /** This node's Noise key pair (the same as its swarm's). */
  keyPair: KeyPair
  /** Host to listen on (explicit: a lane is for peers that know our address). */
  host: string
  /** TCP port, or 0 for any free one (then read `port` after ready()). */
  port: number
  firewall: LaneFirewall
  /** @default LANE_HANDSHAKE_TIMEOUT_MS */
  handshakeTimeout?: number
  /** @default LANE_KEEP_ALIVE_MS */
  keepAlive?: number
  /** @default LANE_TIMEOUT_MS */
  timeout?: number
  /** TCP_NODELAY on each lane (false: Nagle's algorithm coalesces small writes). @default true */
  noDelay?: boolean
}

export interface LaneServerEvents {
  /** A peer the firewall admits opened a lane: replicate on it (`store.replicate(stream)`). */
  connection: [stream: NoiseSecretStream]
  /** The firewall refused this key; its lane was closed before anything was read. */
  refused: [remoteKey: Buffer]
  /** A connection closed before it finished a Noise handshake (garbage, a scan, a timeout). */
  'handshake-failed': [err: Error | null]
}

export interface LaneStats {
  accepted: number
  refused: number
  failedHandshakes: number
  /** Connections closed on arrival because MAX_PENDING_HANDSHAKES were in progress. */
  overflow: number
  /** Connections closed for a frame over MAX_HANDSHAKE_FRAME during the handshake (counted in failedHandshakes too). */
  oversized: number
}

export interface DialLaneOptions {
  keyPair: KeyPair
  /** The key the peer at host:port must prove; anything else fails with WRONG_PEER. */
  remotePublicKey: Uint8Array
  /** @default LANE_HANDSHAKE_TIMEOUT_MS (TCP connect + Noise handshake) */
  handshakeTimeout?: number
  /** @default LANE_KEEP_ALIVE_MS */
  keepAlive?: number
  /** @default LANE_TIMEOUT_MS */
  timeout?: number
  /** TCP_NODELAY (false: Nagle's algorithm coalesces small writes). @default true */
  noDelay?: boolean
}

export class LaneServer extends ReadyResource {
  readonly opts: LaneServerOptions
  readonly stats: LaneStats = { accepted: 0, refused: 0, failedHandshakes: 0, overflow: 0, oversized: 0 }
  #server: net.Server | null = null
  #pending = new Set<NoiseSecretStream>()
  #open = new Set<NoiseSecretStream>()
  #port = 0

  constructor(opts: LaneServerOptions) {
    super()
    if (typeof opts.firewall !== 'function') throw EmbassyError.badArgument('a lane server needs a firewall')
    this.opts = opts
  }

  /** The TCP port listened on (after ready()). */
  get port(): number {
    return this.#port
  }

  /** Lanes open now (admitted by the firewall). */
  get connections(): number {
    return this.#open.size
  }

  override async _open(): Promise<void> {
    const server = net.createServer((socket) => this.#onsocket(socket))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      const onerror = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' ? EmbassyError.portInUse(this.opts.host, this.opts.port, err, 'set another port in `lane.listen` (config.json)') : EmbassyError.internal(`lane: cannot listen on ${this.opts.host}:${this.opts.port}`, err))
      }
      server.once('error', onerror)
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', onerror)
        resolve()
      })
    })
    server.on('error', () => {}) // after listen: per-connection errors arrive on the sockets
    const addr = server.address()
    this.#port = typeof addr === 'object' && addr ? addr.port : this.opts.port
  }

  override async _close(): Promise<void> {
    const server = this.#server
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve()
    for (const s of [...this.#pending, ...this.#open]) s.destroy()
    await closed
  }

  #onsocket(socket: net.Socket): void {
    if (this.closing || this.#pending.size >= MAX_PENDING_HANDSHAKES) {
      if (!this.closing) this.stats.overflow++
      socket.destroy()
      return
    }
    socket.setNoDelay(this.opts.noDelay ?? true)
    const stream = new NoiseSecretStream(false, socket as unknown as ConstructorParameters<typeof NoiseSecretStream>[1], { keyPair: this.opts.keyPair })
    let error: Error | null = null
    stream.on('error', (err: Error) => {
      error = err
    })
    this.#pending.add(stream)
    guardHandshake(socket, stream, () => this.stats.oversized++)
    const timer = setTimeout(() => stream.destroy(), this.opts.handshakeTimeout ?? LANE_HANDSHAKE_TIMEOUT_MS)
    void stream.opened.then((opened) => {
      clearTimeout(timer)
      this.#pending.delete(stream)
      if (!opened || stream.destroying || this.closing) {
        this.stats.failedHandshakes++
        stream.destroy()
        this.emit('handshake-failed', error)
        return
      }
      const remoteKey = stream.remotePublicKey!
      let refuse = true
      try {
        refuse = this.opts.firewall(remoteKey)
      } catch {
        refuse = true // a firewall that throws admits no one
      }
      if (refuse) {
        this.stats.refused++
        stream.destroy()
        this.emit('refused', remoteKey)
        return
      }
      this.stats.accepted++
      this.#open.add(stream)
      stream.once('close', () => this.#open.delete(stream))
      stream.setKeepAlive(this.opts.keepAlive ?? LANE_KEEP_ALIVE_MS)
      stream.setTimeout(this.opts.timeout ?? LANE_TIMEOUT_MS)
      this.emit('connection', stream)
    })
  }
}

/**
 * Opens a lane to `host:port` and proves both keys (Noise XX). Resolves once the peer proved
 * `remotePublicKey`; rejects PEER_UNREACHABLE (no TCP connection, no handshake in time) or
 * WRONG_PEER (another key answered: closed before anything was sent). A peer whose firewall
 * refuses us closes the stream right after the handshake: it ends without a byte of data.
 */
export async function dialLane(host: string, port: number, opts: DialLaneOptions): Promise<NoiseSecretStream> {
  if (!opts.remotePublicKey || opts.remotePublicKey.byteLength !== 32) throw EmbassyError.badArgument('dialLane: remotePublicKey must be 32 bytes')
  const socket = net.connect({ host, port })
  socket.setNoDelay(opts.noDelay ?? true)
  const stream = new NoiseSecretStream(true, socket as unknown as ConstructorParameters<typeof NoiseSecretStream>[1], { keyPair: opts.keyPair })
  let error: Error | null = null
  stream.on('error', (err: Error) => {
    error = err
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    stream.destroy()
  }, opts.handshakeTimeout ?? LANE_HANDSHAKE_TIMEOUT_MS)
  const opened = await stream.opened
  clearTimeout(timer)
  if (!opened || stream.destroying) {
    stream.destroy()
    const why = timedOut ? `no Noise handshake within ${opts.handshakeTimeout ?? LANE_HANDSHAKE_TIMEOUT_MS} ms` : error ? (error as Error).message : 'closed during the handshake'
    throw EmbassyError.laneUnreachable(host, port, why, error ?? undefined)
  }
  const got = stream.remotePublicKey!
  if (!Buffer.from(got).equals(Buffer.from(opts.remotePublicKey))) {
    stream.destroy()
    throw EmbassyError.wrongPeer(host, port, toZ32(opts.remotePublicKey), toZ32(got))
  }
  stream.setKeepAlive(opts.keepAlive ?? LANE_KEEP_ALIVE_MS)
  stream.setTimeout(opts.timeout ?? LANE_TIMEOUT_MS)
  return stream
}

/**
 * Closes `socket` when one of the dialler's two Noise XX messages (the only frames it sends before
 * the handshake is done) is framed over MAX_HANDSHAKE_FRAME. Frames are secret-stream's: a 3-byte
 * little-endian length, then that many bytes. Only those two frame headers are read here, so the
 * order of this listener and secret-stream's does not matter, and frames after the handshake (which
 * may be large) are never looked at.
 */
function guardHandshake(socket: net.Socket, stream: NoiseSecretStream, onoversized: () => void): void {
  const HANDSHAKE_FRAMES = 2
  let frames = 0
  let header = 0
  let headerBytes = 0
  let skip = 0
  const stop = () => socket.off('data', ondata)
  const ondata = (data: Buffer) => {
    let i = 0
    while (i < data.length) {
      if (skip > 0) {
        const n = Math.min(skip, data.length - i)
        skip -= n
        i += n
        continue
      }
      header += data[i++]! * 256 ** headerBytes
      if (++headerBytes < 3) continue
      if (header > MAX_HANDSHAKE_FRAME) {
        stop()
        onoversized()
        socket.destroy()
        return
      }
      if (++frames === HANDSHAKE_FRAMES) return stop()
      skip = header
      header = 0
      headerBytes = 0
    }
  }
  stream.once('close', stop)
  socket.on('data', ondata)
}
