/**
 * The node's configuration (config.json, editable by hand, validated on load) and its
 * secrets (keys.json, mode 0600). Both live in the node directory.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import { parseKey } from '../ids.js'

export const CONFIG_FILE = 'config.json'
export const KEYS_FILE = 'keys.json'
export const CONFIG_VERSION = 1

export type RoleName = 'agency' | 'embassy' | 'mirror'
export const ROLES: readonly RoleName[] = ['agency', 'embassy', 'mirror']

/** An agency an embassy follows. */
export interface FollowEntry {
  /** The agency's node key (z32). */
  nodeKey: string
  /** Its catalog key (z32), learnt from the agency over the custody channel; null until then. */
  catalogKey: string | null
  /**
   * The other holders of its data the agency listed (node keys, z32): admitted, dialled and
   * cross-checked (witnessed heads). Omitted when none.
   */
  holders?: string[]
}

/** An agency a mirror reads (its read key is in keys.json). */
export interface SourceEntry {
  catalogKey: string
  agencyNodeKey: string
}

export interface NodeConfig {
  /** Config format version. @default 1 */
  version: number
  /** What this node is. */
  role: RoleName
  /** Human name (an agency's name; shown to mirrors). @default '' */
  name: string
  /** DHT bootstrap nodes as host:port; the public DHT is never used. @default [] */
  bootstrap: string[]
  /** Node keys (z32) allowed to connect, besides followed agencies. @default [] */
  allow: string[]
  /** Embassy: the agencies it holds. @default [] */
  follow: FollowEntry[]
  /** Mirror: the agencies it reads. @default [] */
  sources: SourceEntry[]
  /** Node keys (z32) dialled directly on start (embassies a mirror reads from, say). @default [] */
  peers: string[]
  /**
   * Agency restored from a recovery kit and not yet synced from its embassies: appends are
   * refused until `embassy run` has downloaded every core (appending earlier would fork them).
   * Omitted when false.
   */
  restoring?: boolean
  /**
   * Holders (embassy, mirror): rewrites of history the operator accepted, core key (z32) → the
   * highest fork taken (`embassy accept-rewrite`). A rewrite is never taken otherwise. Omitted when empty.
   */
  acceptRewrites?: Record<string, number>
}

export interface NodeKeys {
  /** Agency: its read key (hex). */
  readKey?: string
  /** Mirror: read keys by catalog key (z32 → hex). */
  readKeys?: Record<string, string>
}

/** Where nodes live when neither --dir nor $EMBASSY_DIR says. */
export function defaultDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EMBASSY_DIR) return path.resolve(env.EMBASSY_DIR)
  const home = os.homedir()
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'data-embassy')
  if (process.platform === 'win32') return path.join(env.APPDATA || path.join(home, 'AppData', 'Roaming'), 'data-embassy')
  return path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'data-embassy')
}

export function defaultConfig(role: RoleName, name = ''): NodeConfig {
  return { version: CONFIG_VERSION, role, name, bootstrap: [], allow: [], follow: [], sources: [], peers: [] }
}

const FIELDS = new Set(['version', 'role', 'name', 'bootstrap', 'allow', 'follow', 'sources', 'peers', 'restoring', 'acceptRewrites'])

/** Validates a parsed config object; throws BAD_CONFIG naming the field. */
export function validateConfig(raw: unknown, file = CONFIG_FILE): NodeConfig {
  const bad = (msg: string): never => {
    throw EmbassyError.badConfig(`${file}: ${msg}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('must be a JSON object')
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) bad(`unknown field "${k}"`)
  if (o.version !== CONFIG_VERSION) bad(`"version" must be ${CONFIG_VERSION}`)
  if (!ROLES.includes(o.role as RoleName)) bad(`"role" must be one of ${ROLES.join(', ')}`)
  const name = o.name ?? ''
  if (typeof name !== 'string') bad('"name" must be a string')
  const strings = (field: string, check: (s: string) => void): string[] => {
    const v = o[field] ?? []
    if (!Array.isArray(v)) return bad(`"${field}" must be an array`)
    return v.map((s, i) => {
      if (typeof s !== 'string') return bad(`"${field}[${i}]" must be a string`)
      try {
        check(s)
      } catch (err) {
        bad(`"${field}[${i}]": ${(err as EmbassyError).text ?? (err as Error).message}`)
      }
      return s
    })
  }
  const key = (s: string) => {
    parseKey(s)
  }
  const bootstrap = strings('bootstrap', (s) => {
    parseHostPort(s)
  })
  const allow = strings('allow', key)
  const peers = strings('peers', key)
  const follow = objects(o, 'follow', bad).map((f, i) => {
    if (typeof f.nodeKey !== 'string') return bad(`"follow[${i}].nodeKey" must be a string`)
    checkKey(f.nodeKey, `follow[${i}].nodeKey`, bad)
    const catalogKey = f.catalogKey ?? null
    if (catalogKey !== null) {
      if (typeof catalogKey !== 'string') return bad(`"follow[${i}].catalogKey" must be a string or null`)
      checkKey(catalogKey, `follow[${i}].catalogKey`, bad)
    }
    const entry: FollowEntry = { nodeKey: f.nodeKey, catalogKey: catalogKey as string | null }
    if (f.holders !== undefined) {
      if (!Array.isArray(f.holders)) return bad(`"follow[${i}].holders" must be an array`)
      entry.holders = f.holders.map((h, j) => {
        if (typeof h !== 'string') return bad(`"follow[${i}].holders[${j}]" must be a string`)
        checkKey(h, `follow[${i}].holders[${j}]`, bad)
        return h
      })
    }
    return entry
  })
  const sources = objects(o, 'sources', bad).map((s, i) => {
    if (typeof s.catalogKey !== 'string') return bad(`"sources[${i}].catalogKey" must be a string`)
    if (typeof s.agencyNodeKey !== 'string') return bad(`"sources[${i}].agencyNodeKey" must be a string`)
    checkKey(s.catalogKey, `sources[${i}].catalogKey`, bad)
    checkKey(s.agencyNodeKey, `sources[${i}].agencyNodeKey`, bad)
    return { catalogKey: s.catalogKey, agencyNodeKey: s.agencyNodeKey }
  })
  if (o.restoring !== undefined && typeof o.restoring !== 'boolean') bad('"restoring" must be true or false')
  const config: NodeConfig = { version: CONFIG_VERSION, role: o.role as RoleName, name: name as string, bootstrap, allow, follow, sources, peers }
  if (o.restoring === true) config.restoring = true
  if (o.acceptRewrites !== undefined) {
    const a = o.acceptRewrites
    if (a === null || typeof a !== 'object' || Array.isArray(a)) return bad('"acceptRewrites" must be an object of core key → fork')
    const out: Record<string, number> = {}
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) {
      checkKey(k, `acceptRewrites["${k.slice(0, 60)}"]`, bad)
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad(`"acceptRewrites" values must be fork numbers ≥ 0`)
      out[k] = v
    }
    if (Object.keys(out).length > 0) config.acceptRewrites = out
  }
  return config
}

function objects(o: Record<string, unknown>, field: string, bad: (m: string) => never): Record<string, unknown>[] {
  const v = o[field] ?? []
  if (!Array.isArray(v)) return bad(`"${field}" must be an array`)
  return v.map((x, i) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) return bad(`"${field}[${i}]" must be an object`)
    return x as Record<string, unknown>
  })
}

function checkKey(s: string, field: string, bad: (m: string) => never) {
  try {
    parseKey(s)
  } catch {
    bad(`"${field}" is not a 32-byte key`)
  }
}

export interface HostPort {
  host: string
  port: number
}

/** Parses `host:port` (IPv6 as `[::1]:port`); port 0 only with `allowZero` (any free port). */
export function parseHostPort(text: string, opts: { allowZero?: boolean } = {}): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  const port = m ? Number(m[3]) : NaN
  if (!m || !((port > 0 || (opts.allowZero && port === 0)) && port < 65536)) {
    throw EmbassyError.badArgument(`"${text}" is not host:port`)
  }
  return { host: (m[1] ?? m[2]) as string, port }
}

export function readConfig(dir: string): NodeConfig {
  const file = path.join(dir, CONFIG_FILE)
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw EmbassyError.notInitialised(dir)
    throw EmbassyError.badConfig(`cannot read ${file}: ${(err as Error).message}`, err)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw EmbassyError.badConfig(`${file} is not valid JSON: ${(err as Error).message}`, err)
  }
  return validateConfig(parsed, file)
}

/**
 * Writes atomically (temp file + rename), so a crash never leaves half a config. Mode 0600 unless
 * told otherwise: everything in a node directory is its owner's only (config.json, keys.json,
 * custody.json).
 */
export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`
  const fd = fs.openSync(tmp, 'w', mode)
  try {
    // A temp file left by a crash keeps its old mode on open: set it.
    if (process.platform !== 'win32') fs.fchmodSync(fd, mode)
    fs.writeSync(fd, JSON.stringify(value, null, 2) + '\n')
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
}

export function writeConfig(dir: string, config: NodeConfig): void {
  writeJsonAtomic(path.join(dir, CONFIG_FILE), config)
}

export function readKeys(dir: string): NodeKeys {
  const file = path.join(dir, KEYS_FILE)
  let parsed: unknown
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw EmbassyError.badConfig(`${file} is unreadable or not JSON: ${(err as Error).message}`, err)
  }
  if (parsed === null || typeof parsed !== 'object') throw EmbassyError.badConfig(`${file} must be a JSON object`)
  const k = parsed as NodeKeys
  if (k.readKey !== undefined && !/^[0-9a-f]{64}$/.test(k.readKey)) throw EmbassyError.badConfig(`${file}: "readKey" must be 64 hex characters`)
  for (const [cat, v] of Object.entries(k.readKeys ?? {})) {
    if (!/^[0-9a-f]{64}$/.test(v)) throw EmbassyError.badConfig(`${file}: "readKeys.${cat}" must be 64 hex characters`)
  }
  return k
}

export function writeKeys(dir: string, keys: NodeKeys): void {
  writeJsonAtomic(path.join(dir, KEYS_FILE), keys, 0o600)
}
