/**
 * The control socket: a running node (`embassy run`) serves CLI commands on a Unix socket in its
 * directory, running the same command records (commands/served.ts) the CLI runs on a node it opens
 * itself. Framing (protocol/SPEC.md §7): one JSON request line; JSON event lines back (progress,
 * line, result or error).
 *
 * Owns: the socket, both ends. May import: errors, command, host (types), commands/served (lookup).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { EmbassyError, type ErrorCode } from '../errors.js'
import { runOnHost, type CommandInput, type CommandIO } from './command.js'
import { findNodeCommand } from './commands/served.js'
import type { Host } from './host.js'

export const CONTROL_SOCKET = 'control.sock'
/** Largest request accepted (an NDJSON import travels in one request). */
export const MAX_REQUEST_BYTES = 1024 * 1024 * 1024

/** Unix socket paths are limited (~107 bytes): long node paths use a hashed name in the temp dir. */
export function controlSocketPath(dir: string): string {
  const direct = path.join(path.resolve(dir), CONTROL_SOCKET)
  if (process.platform === 'win32') return `\\\\.\\pipe\\data-embassy-${hash(dir)}`
  if (Buffer.byteLength(direct) < 100) return direct
  return path.join(os.tmpdir(), `data-embassy-${hash(dir)}.sock`)
}

function hash(dir: string): string {
  return crypto.createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 24)
}

interface Request {
  command: string
  input: CommandInput
  json: boolean
}

type Event =
  | { t: 'progress'; label: string; done: number; total: number }
  | { t: 'line'; text: string }
  | { t: 'result'; value: unknown }
  | { t: 'error'; error: { code: ErrorCode; message: string; details: Record<string, unknown> } }

export class ControlServer {
  readonly path: string
  readonly host: Host
  #server: net.Server | null = null
  #sockets = new Set<net.Socket>()

  constructor(dir: string, host: Host) {
    this.path = controlSocketPath(dir)
    this.host = host
  }

  async listen(): Promise<void> {
    // A socket file left by a crashed run is stale (we hold the directory lock): remove it.
    try {
      fs.unlinkSync(this.path)
    } catch {}
    const server = net.createServer((socket) => this.#onsocket(socket))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.path, () => {
        server.off('error', reject)
        resolve()
      })
    })
    try {
      fs.chmodSync(this.path, 0o600)
    } catch {}
  }

  async close(): Promise<void> {
    const server = this.#server
    if (!server) return
    this.#server = null
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    try {
      fs.unlinkSync(this.path)
    } catch {}
  }

  #onsocket(socket: net.Socket): void {
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = ''
    let size = 0
    let started = false
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      if (started) return
      size += chunk.length
      if (size > MAX_REQUEST_BYTES) {
        started = true
        this.#send(socket, { t: 'error', error: EmbassyError.badArgument('request too large').toJSON() })
        socket.end()
        return
      }
      buffered += chunk
      const nl = buffered.indexOf('\n')
      if (nl === -1) return
      started = true
      void this.#serve(socket, buffered.slice(0, nl))
    })
  }

  async #serve(socket: net.Socket, line: string): Promise<void> {
    let req: Request
    try {
      req = JSON.parse(line) as Request
      if (typeof req.command !== 'string' || !req.input || !Array.isArray(req.input.args)) throw new Error('bad shape')
    } catch {
      this.#send(socket, { t: 'error', error: EmbassyError.badMessage('malformed control request').toJSON() })
      socket.end()
      return
    }
    const command = findNodeCommand(req.command)
    const io: CommandIO = {
      json: !!req.json,
      progress: (label, done, total) => this.#send(socket, { t: 'progress', label, done, total }),
      line: (text) => this.#send(socket, { t: 'line', text })
    }
    try {
      if (!command) throw EmbassyError.badArgument(`unknown command "${req.command}"`)
      const value = await runOnHost(command, this.host, req.input, io)
      this.#send(socket, { t: 'result', value })
    } catch (err) {
      const e = err instanceof EmbassyError ? err : new EmbassyError('INTERNAL', (err as Error)?.message ?? String(err), { cause: err })
      this.#send(socket, { t: 'error', error: e.toJSON() })
    }
    socket.end()
  }

  #send(socket: net.Socket, event: Event): void {
    if (!socket.destroyed) socket.write(JSON.stringify(event) + '\n')
  }
}

/**
 * Runs `command` on the node running in `dir`. Resolves `{ running: false }` when no node runs
 * there (no socket, or a stale one), so the caller opens the directory itself.
 */
export function callControl(
  dir: string,
  command: string,
  input: CommandInput,
  io: CommandIO
): Promise<{ running: false } | { running: true; value: unknown }> {
  const socketPath = controlSocketPath(dir)
  return new Promise((resolve, reject) => {
    if (process.platform !== 'win32' && !fs.existsSync(socketPath)) {
      resolve({ running: false })
      return
    }
    const socket = net.connect(socketPath)
    let connected = false
    let settled = false
    let buffered = ''
    const settle = (fn: () => void) => {
      if (settled) return
      settled = true
      fn()
    }
    socket.setEncoding('utf8')
    socket.on('connect', () => {
      connected = true
      socket.write(JSON.stringify({ command, input, json: io.json }) + '\n')
    })
    socket.on('data', (chunk: string) => {
      buffered += chunk
      let nl: number
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        let ev: Event
        try {
          ev = JSON.parse(line) as Event
        } catch {
          settle(() => reject(EmbassyError.badMessage('malformed reply from the running node')))
          socket.destroy()
          return
        }
        if (ev.t === 'progress') io.progress(ev.label, ev.done, ev.total)
        else if (ev.t === 'line') io.line(ev.text)
        else if (ev.t === 'result') settle(() => resolve({ running: true, value: ev.value }))
        else if (ev.t === 'error') {
          const e = new EmbassyError(ev.error.code, ev.error.message, { details: ev.error.details })
          settle(() => reject(e))
        }
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) settle(() => resolve({ running: false }))
      else settle(() => reject(new EmbassyError('PEER_UNREACHABLE', `lost the running node's control socket: ${err.message}`, { cause: err })))
    })
    socket.on('close', () => settle(() => reject(new EmbassyError('INTERNAL', 'the running node closed the control socket without a reply'))))
  })
}
