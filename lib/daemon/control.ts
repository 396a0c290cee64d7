/**
 * The control socket: a running node (`embassy run`) serves CLI commands on a Unix socket in its
 * directory, running the same command records (commands/served.ts) the CLI runs on a node it opens
 * itself. Framing (protocol/SPEC.md §7): one JSON request line; JSON event lines back (progress,
 * line, result or error).
 *
 * Where it lives, and why a client can trust it: in the node directory (private, 0700, checked at
 * every open) when the path fits a Unix socket (< 100 bytes); else in a private folder of this
 * user in the temp directory, `$TMPDIR/data-embassy-UID/` (0700, made and checked by the server,
 * checked again by every client). Node has no SO_PEERCRED, so both ends check ownership instead:
 * the server listens only in a folder no other user can write (under umask 077, then chmod 0600);
 * a client connects only to a socket (lstat: no symlink) owned by the owner of its folder, in a
 * folder that no other user can write, owned by us (or, for root, by the node's owner). Whoever
 * can connect could read the node directory anyway.
 *
 * Owns: the socket, both ends. May import: errors, command, host (types), commands/served (lookup),
 * node/private.
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
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, modeText } from '../node/private.js'

export const CONTROL_SOCKET = 'control.sock'
/**
 * Largest request line accepted (bytes, newline included). An NDJSON import travels in one
 * request, so this bounds `embassy append < file` through a running node (split larger input);
 * every record (at most 8 MiB, twice that JSON-escaped) fits. A request over it gets
 * REQUEST_TOO_LARGE and its connection is closed; nothing more of it is buffered.
 */
export const MAX_REQUEST_BYTES = 64 * 1024 * 1024

/** Control connections served at once; one more is answered BUSY and closed (each may buffer a request). */
export const MAX_CONTROL_CONNECTIONS = 64

/** Unix socket paths are limited (~107 bytes): a direct path must be shorter than this. */
export const MAX_SOCKET_PATH_BYTES = 100

/**
 * Where the control socket of the node in `dir` lives: DIR/control.sock, or, for a long path,
 * `<hash>.sock` in this user's private folder (privateSocketDir). `env` gives TMPDIR.
 */
export function controlSocketPath(dir: string, env: NodeJS.ProcessEnv = process.env): string {
  const direct = path.join(path.resolve(dir), CONTROL_SOCKET)
  if (process.platform === 'win32') return `\\\\.\\pipe\\data-embassy-${hash(dir)}`
  if (Buffer.byteLength(direct) < MAX_SOCKET_PATH_BYTES) return direct
  return path.join(privateSocketDir(env), `${hash(dir)}.sock`)
}

/**
 * This user's private folder for control sockets of long node paths: `$TMPDIR/data-embassy-UID`.
 * Not $XDG_RUNTIME_DIR: a service and a login shell of one user see different ones, and the CLI
 * must find the socket its daemon made.
 */
export function privateSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = (env.TMPDIR || env.TMP || env.TEMP || os.tmpdir()).replace(/(.)\/+$/, '$1')
  return path.join(base, `data-embassy-${uid()}`)
}

function uid(): number {
  return process.getuid?.() ?? 0
}

/** The server's side: makes the private socket folder (0700) and refuses one that is not ours alone. */
function preparePrivateDir(socketPath: string, dir: string): void {
  const folder = path.dirname(socketPath)
  if (folder === path.resolve(dir)) return // the node directory: checked at every open (node/private)
  try {
    fs.mkdirSync(folder, { mode: PRIVATE_DIR_MODE })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw EmbassyError.badConfig(`cannot create ${folder}: ${(err as Error).message}`, err)
  }
  const st = fs.lstatSync(folder)
  if (!st.isDirectory() || st.uid !== uid() || (st.mode & 0o077) !== 0) {
    throw unsafeSocket(folder, `${describe(st)}; it must be a folder of uid ${uid()} with mode 0700 (another user may have made it to catch the control socket): remove it, then start again`)
  }
}

/**
 * The client's side, before connecting: false when there is no socket (no node runs); else
 * `socketPath` must be a socket (not a symlink) whose owner
 * owns its folder, in a folder no other user can write, owned by us (root: by anyone), and for
 * the private folder in the temp directory, ours alone (0700). INSECURE_PERMISSIONS otherwise.
 */
export function checkControlSocket(socketPath: string, dir: string): boolean {
  if (process.platform === 'win32') return true
  const folder = path.dirname(socketPath)
  const inNodeDir = folder === path.resolve(dir)
  let fst: fs.Stats
  let sst: fs.Stats
  try {
    // The node directory may be a symlink an operator made; the private folder may not.
    fst = inNodeDir ? fs.statSync(folder) : fs.lstatSync(folder)
    sst = fs.lstatSync(socketPath)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw EmbassyError.badConfig(`cannot inspect ${socketPath}: ${(err as Error).message}`, err)
  }
  const me = uid()
  const folderOk = fst.isDirectory() && (fst.uid === me || me === 0) && (fst.mode & 0o022) === 0 && (inNodeDir || (fst.uid === me && (fst.mode & 0o077) === 0))
  if (!folderOk) throw unsafeSocket(folder, `${describe(fst)}; a control socket is trusted only in a folder no other user can write, owned by uid ${me}`)
  if (!sst.isSocket() || sst.uid !== fst.uid) {
    throw unsafeSocket(socketPath, `${describe(sst)}; expected a socket owned by uid ${fst.uid}, like its folder: remove it if no node runs there`)
  }
  return true
}

function describe(st: fs.Stats): string {
  const kind = st.isSymbolicLink() ? 'a symlink' : st.isDirectory() ? 'a folder' : st.isSocket() ? 'a socket' : 'a file'
  return `it is ${kind} of uid ${st.uid}, mode ${modeText(st.mode)}`
}

function unsafeSocket(p: string, why: string): EmbassyError {
  return EmbassyError.insecurePermissions(`refusing the control socket at ${p}: ${why}`, { path: p })
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
  readonly dir: string
  readonly host: Host
  /** Largest request line accepted (bytes). @default MAX_REQUEST_BYTES */
  readonly maxRequestBytes: number
  #server: net.Server | null = null
  #sockets = new Set<net.Socket>()

  constructor(dir: string, host: Host, opts: { maxRequestBytes?: number } = {}) {
    this.path = controlSocketPath(dir)
    this.dir = path.resolve(dir)
    this.host = host
    this.maxRequestBytes = opts.maxRequestBytes ?? MAX_REQUEST_BYTES
  }

  async listen(): Promise<void> {
    preparePrivateDir(this.path, this.dir)
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
    // Created under umask 077 (node/private); 0600 in any case.
    if (process.platform !== 'win32') fs.chmodSync(this.path, PRIVATE_FILE_MODE)
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
    socket.on('error', () => {})
    if (this.#sockets.size >= MAX_CONTROL_CONNECTIONS) {
      const e = EmbassyError.busy(`the node serves at most ${MAX_CONTROL_CONNECTIONS} control connections at once; try again`)
      socket.end(JSON.stringify({ t: 'error', error: e.toJSON() } satisfies Event) + '\n', () => socket.destroy())
      return
    }
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
    const chunks: Buffer[] = []
    let size = 0
    let started = false
    socket.on('data', (chunk: Buffer) => {
      if (started) return // one request per connection: the rest is ignored
      const nl = chunk.indexOf(0x0a)
      const upTo = nl === -1 ? chunk.byteLength : nl + 1
      if (size + upTo > this.maxRequestBytes) {
        started = true
        chunks.length = 0
        const e = EmbassyError.requestTooLarge(
          `a control request is limited to ${this.maxRequestBytes} bytes; this one is longer (split the input, e.g. append NDJSON in parts)`,
          { limit: this.maxRequestBytes }
        )
        // Say why, then close: the client may still be writing, so do not wait for it.
        socket.end(JSON.stringify({ t: 'error', error: e.toJSON() } satisfies Event) + '\n', () => socket.destroy())
        return
      }
      size += upTo
      chunks.push(nl === -1 ? chunk : chunk.subarray(0, nl))
      if (nl === -1) return
      started = true
      const line = Buffer.concat(chunks).toString('utf8')
      chunks.length = 0
      void this.#serve(socket, line)
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
      const e = err instanceof EmbassyError ? err : EmbassyError.from(err)
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
    let present: boolean
    try {
      present = checkControlSocket(socketPath, dir)
    } catch (err) {
      reject(err)
      return
    }
    if (!present) {
      resolve({ running: false })
      return
    }
    // Checked here too, so the CLI says why before sending anything (the node would refuse it).
    const request = JSON.stringify({ command, input, json: io.json }) + '\n'
    const bytes = Buffer.byteLength(request)
    if (bytes > MAX_REQUEST_BYTES) {
      reject(
        EmbassyError.requestTooLarge(
          `this request is ${bytes} bytes; a running node takes at most ${MAX_REQUEST_BYTES} in one command: split the input (e.g. append NDJSON in parts)`,
          { bytes, limit: MAX_REQUEST_BYTES }
        )
      )
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
      socket.write(request)
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
          const e = EmbassyError.fromJSON(ev.error)
          settle(() => reject(e))
        }
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ECONNREFUSED' || err.code === 'ENOENT')) settle(() => resolve({ running: false }))
      else settle(() => reject(EmbassyError.peerUnreachable(`lost the running node's control socket: ${err.message}`, err)))
    })
    socket.on('close', () => settle(() => reject(EmbassyError.internal('the running node closed the control socket without a reply'))))
  })
}
