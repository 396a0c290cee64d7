/**
 * NetMemory: what a node remembers about the network across restarts, in one small file of its
 * node directory (NET_MEMORY_FILE, mode 0600, written atomically): the UDP ports its DHT node had
 * (so a restarted node answers at the address its peers remember) and the last known address of
 * each peer it connected to (so a restarted node dials its configured peers directly, beside the
 * DHT — with one DHT node, or none answering, the only way back).
 *
 * Written rarely: when an address was learnt or changed, at most once per SAVE_DELAY_MS, and at
 * close; never per packet. A damaged or tampered file is ignored (the node starts with an empty
 * memory and says why); nothing in it is trusted beyond "try this address": every connection is
 * still authenticated by the peer's Noise key.
 *
 * Owns: net/ (imports nothing above net/).
 */
import fs from 'node:fs'
import type { PeerAddress } from './reconnect.js'
import { writePrivateFile } from '../node/private.js'

/** The file, in the node directory. */
export const NET_MEMORY_FILE = 'network.json'

/** Addresses remembered at most (the least recently seen are dropped). */
export const MAX_REMEMBERED_PEERS = 1024

/** Largest file read (bytes): 1024 peers take ~130 KiB; anything far larger is not ours. */
export const MAX_NET_MEMORY_BYTES = 1024 * 1024

/** A change is written at most this often (ms). */
export const SAVE_DELAY_MS = 5000

const VERSION = 1
const HEX_KEY = /^[0-9a-f]{64}$/

export interface NetMemoryData {
  /** UDP port of the DHT server socket (the one peers dial), 0 if never bound. */
  serverPort: number
  /** UDP port of the DHT client socket (a firewalled node's connections use it), 0 if never bound. */
  clientPort: number
  /** Last known address per peer (hex key), least recently seen first. */
  peers: Map<string, PeerAddress>
}

/** Result of reading the file: its content, or why it was ignored (null: no file yet). */
export interface NetMemoryLoad {
  data: NetMemoryData
  ignored: string | null
}

export class NetMemory {
  readonly file: string
  readonly maxPeers: number
  data: NetMemoryData = { serverPort: 0, clientPort: 0, peers: new Map() }
  #timer: NodeJS.Timeout | null = null
  #dirty = false
  #closed = false
  /** Called when a write failed (the node runs on; the memory is only a help). */
  onerror: (err: Error) => void = () => {}

  constructor(file: string, opts: { maxPeers?: number } = {}) {
    this.file = file
    this.maxPeers = opts.maxPeers ?? MAX_REMEMBERED_PEERS
  }

  /** Reads the file; a missing one is an empty memory, a damaged one is ignored (the reason is returned). */
  load(): NetMemoryLoad {
    const res = readNetMemory(this.file, this.maxPeers)
    this.data = res.data
    return res
  }

  /** Records our bound ports (written soon when they changed). */
  setPorts(serverPort: number, clientPort: number): void {
    if (serverPort === this.data.serverPort && clientPort === this.data.clientPort) return
    this.data.serverPort = serverPort
    this.data.clientPort = clientPort
    this.#changed()
  }

  /** Records where `hex` was last seen (written soon when it is new or changed). */
  setPeer(hex: string, address: PeerAddress): void {
    // Only what the file can hold (IPv4 host:port); anything else is not remembered.
    if (!HEX_KEY.test(hex) || !parseAddress(`${address.host}:${address.port}`)) return
    const old = this.data.peers.get(hex)
    this.data.peers.delete(hex)
    this.data.peers.set(hex, { host: address.host, port: address.port })
    while (this.data.peers.size > this.maxPeers) {
      const oldest = this.data.peers.keys().next().value
      if (oldest === undefined) break
      this.data.peers.delete(oldest)
    }
    if (!old || old.host !== address.host || old.port !== address.port) this.#changed()
  }

  /** Writes now if anything changed (atomically: a temp file renamed over the old one). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (!this.#dirty) return
    this.#dirty = false
    try {
      writeNetMemory(this.file, this.data)
    } catch (err) {
      this.onerror(err as Error)
    }
  }

  /** Writes what is pending and stops writing. */
  close(): void {
    if (this.#closed) return
    this.flush()
    this.#closed = true
  }

  #changed(): void {
    this.#dirty = true
    if (this.#closed || this.#timer) return
    this.#timer = setTimeout(() => this.flush(), SAVE_DELAY_MS)
    this.#timer.unref()
  }
}

/** Reads and validates a memory file. Never throws. */
export function readNetMemory(file: string, maxPeers = MAX_REMEMBERED_PEERS): NetMemoryLoad {
  const empty = (): NetMemoryData => ({ serverPort: 0, clientPort: 0, peers: new Map() })
  let text: string
  try {
    const st = fs.statSync(file)
    if (!st.isFile()) return { data: empty(), ignored: 'not a regular file' }
    if (st.size > MAX_NET_MEMORY_BYTES) return { data: empty(), ignored: `too large (${st.size} bytes)` }
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return { data: empty(), ignored: null }
    return { data: empty(), ignored: `unreadable (${(err as Error).message})` }
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return { data: empty(), ignored: 'not JSON' }
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { data: empty(), ignored: 'not an object' }
  const d = doc as Record<string, unknown>
  if (d.version !== VERSION) return { data: empty(), ignored: `unknown version ${JSON.stringify(d.version)?.slice(0, 20)}` }
  const port = (v: unknown) => (v === undefined || v === 0 ? 0 : isPort(v) ? (v as number) : -1)
  const serverPort = port(d.serverPort)
  const clientPort = port(d.clientPort)
  if (serverPort < 0 || clientPort < 0) return { data: empty(), ignored: 'bad port' }
  const peers = new Map<string, PeerAddress>()
  if (d.peers !== undefined) {
    if (!d.peers || typeof d.peers !== 'object' || Array.isArray(d.peers)) return { data: empty(), ignored: 'peers is not an object' }
    const entries = Object.entries(d.peers as Record<string, unknown>)
    if (entries.length > maxPeers * 2) return { data: empty(), ignored: `too many peers (${entries.length})` }
    for (const [hex, value] of entries) {
      const a = parseAddress(value)
      if (!HEX_KEY.test(hex) || !a) return { data: empty(), ignored: 'bad peer entry' }
      peers.set(hex, a)
    }
    // Keep the most recent (the file lists them oldest first).
    while (peers.size > maxPeers) peers.delete(peers.keys().next().value!)
  }
  return { data: { serverPort, clientPort, peers }, ignored: null }
}

/** Writes `data` to `file` (0600) through a temp file and a rename: a reader sees the old or the new, never half. */
export function writeNetMemory(file: string, data: NetMemoryData): void {
  const peers: Record<string, string> = {}
  for (const [hex, a] of data.peers) peers[hex] = `${a.host}:${a.port}`
  const text = JSON.stringify({ version: VERSION, serverPort: data.serverPort, clientPort: data.clientPort, peers }, null, 1) + '\n'
  writePrivateFile(file, text)
}

function isPort(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536
}

/** "host:port" with an IPv4 host (what UDX connections report), or null. */
function parseAddress(v: unknown): PeerAddress | null {
  if (typeof v !== 'string' || v.length > 64) return null
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(v)
  if (!m) return null
  const host = m[1]!
  if (host.split('.').some((o) => Number(o) > 255)) return null
  const a = { host, port: Number(m[2]) }
  return usableAddress(a) ? a : null
}

function usableAddress(a: PeerAddress): boolean {
  return typeof a.host === 'string' && a.host.length > 0 && a.host !== '0.0.0.0' && a.host !== '::' && isPort(a.port)
}
