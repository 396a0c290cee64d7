/**
 * The node's configuration (config.json, editable by hand, validated on load) and its
 * secrets (keys.json, mode 0600). Both live in the node directory.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import { parseKey } from '../ids.js'
import { writePrivateFile } from './private.js'

export const CONFIG_FILE = 'config.json'
export const KEYS_FILE = 'keys.json'
export const CONFIG_VERSION = 1

export type RoleName = 'agency' | 'embassy' | 'mirror' | 'auditor'
export const ROLES: readonly RoleName[] = ['agency', 'embassy', 'mirror', 'auditor']

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
  /** When `embassy follow` added it (ms since epoch): status shows how long it has not been reached. */
  followedAt?: number
  /** Quota (`embassy follow --max-bytes`): bytes of this agency's data held at most. Omitted: no limit. */
  maxBytes?: number
  /** Quota (`--max-cores`): dataset cores of this agency held at most. Omitted: no limit. */
  maxCores?: number
  /** Fraction of a quota at which `quota-near` is raised (`--quota-warn`). @default 0.9 */
  quotaWarn?: number
}

/** How a mirror fetches what it does not hold yet (`embassy mirror --sparse --cache-bytes N --prefetch P`). */
export interface MirrorSettings {
  /**
   * What is fetched in the background besides what readers ask for: `newest` (logs from their end
   * back, files whole), `oldest` (every block, from the start), `off` (only what is asked for).
   * @default 'newest'
   */
  prefetch?: 'newest' | 'oldest' | 'off'
  /** Keep only what readers asked for (no prefetch), at most `cacheBytes` of dataset blocks. @default false */
  sparse?: boolean
  /** Sparse: dataset block bytes kept at most; the least recently fetched go first. @default 1 GiB */
  cacheBytes?: number
}

export const MIRROR_PREFETCH = ['newest', 'oldest', 'off'] as const

/** How a restored agency takes writes and backfills (config `restore`). */
export interface RestoreSettings {
  /** Embassies whose heads are needed before writes. @default more than half of the kit's embassies */
  quorum?: number
  /** Take writes with fewer embassies than the quorum, on a new fork of every core (cleared once done). @default false */
  force?: boolean
  /** Backfill throttle in blocks per second; 0 pauses it. @default unlimited */
  backfillRate?: number
}

/** An agency a mirror reads (its read key is in keys.json). */
export interface SourceEntry {
  catalogKey: string
  agencyNodeKey: string
  /**
   * The holders (embassies, node keys z32) the agency listed for this catalog: admitted both
   * ways and dialled, also once the agency is gone. Omitted when none.
   */
  holders?: string[]
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
  /**
   * Embassy, mirror: allowed peers scoped to some agencies (`embassy allow KEY --agency AGENCY`):
   * peer node key (z32) → agency node keys (z32). Such a peer sees and replicates only those
   * agencies' catalogs here; an allowed peer without an entry, every catalog held here.
   * Omitted when empty.
   */
  allowScopes?: Record<string, string[]>
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
   * Agency: how a restore takes writes (`embassy kit import` / `embassy run --quorum N --force
   * --backfill-rate N`). Omitted when the defaults.
   */
  restore?: RestoreSettings
  /**
   * Holders (embassy, mirror): rewrites of history the operator accepted, core key (z32) → the
   * highest fork taken (`embassy accept-rewrite`). A rewrite is never taken otherwise. Omitted when empty.
   */
  acceptRewrites?: Record<string, number>
  /** Mirror: how it fetches (on demand, prefetch, sparse cache). Omitted when the defaults. */
  mirror?: MirrorSettings
  /**
   * Embassy: seconds after `embassy follow` that an agency never reached raises a `never-reached`
   * alarm. Omitted for the default. @default 600
   */
  neverReachedAlarmSeconds?: number
  /**
   * Agency: seconds an embassy that held everything may stay behind before the log says it fell
   * behind (`custody-behind`; `custody-recovered` when it holds everything again). @default 30
   */
  custodyBehindSeconds?: number
  /**
   * Agency: seconds between samples of the custody history (custody-series.json: lag per dataset
   * and embassy, recovery point, alarms; the dashboard at /custody and `status --since`). @default 60
   */
  custodySampleSeconds?: number
  /**
   * Embassy: at most one `caught-up` log line per core per this many seconds while appends keep
   * coming (the first at once); 0 logs every catch-up (for measurements). @default 5
   */
  caughtUpLogSeconds?: number
  /**
   * Embassy: held dataset cores kept open at once at most, over all followed agencies' holders
   * each; beyond it idle ones that are caught up and receipted are closed (a record of their
   * figures stays) and opened again when the agency says they grew, a peer asks for one, or an
   * audit does. Each open core costs ~60–70 KiB of memory. @default DEFAULT_MAX_OPEN_CORES (512)
   */
  maxOpenCores?: number
  /**
   * Agency, auditor: how audits run (ms and counts, each optional; custody/audit.ts has the
   * defaults): intervalMs, samples, periodMs, deadlinePerBlockMs, minDeadlineMs, firstAuditMs.
   */
  audit?: Partial<Record<AuditSettingName, number>>
  /**
   * `embassy run` warns (log, status `disk.low`, metric) when the node directory's disk has fewer
   * free bytes than this. @default the smaller of 256 MiB and 5 % of the disk (node/disk.ts)
   */
  lowSpaceBytes?: number
  /** The same as a fraction of the disk (0 < f < 1); with both set, the larger threshold counts. */
  lowSpaceFraction?: number
  /**
   * Scheduled continuity drills, as `embassy run --schedule INTERVAL --drill-kit FILE |
   * --drill-capability FILE` (the flags win): `{ "schedule": "24h", "kit": "/path" }` or
   * `{ "schedule": "24h", "capability": "/path" }` (absolute paths).
   */
  drill?: { schedule: string; kit?: string; capability?: string }
  /**
   * The bulk lane (off when absent): a direct TCP listener for admitted peers, same Noise keys and
   * admission as the swarm (lib/net/lane-link.ts). `listen` is host:port (port 0: any free one);
   * `advertise`, the host:port peers dial (default: `listen`, or the host peers see our swarm
   * connection come from when `listen` is 0.0.0.0 / ::). `{}` (no `listen`): no listener, but
   * dial the lanes admitted peers offer; `"dial": false`: never dial.
   */
  lane?: LaneSettings
}

/** config.json `lane`. */
export interface LaneSettings {
  listen?: string
  advertise?: string
  /** Dial lanes peers offer. @default true */
  dial?: boolean
}

/** The audit settings config.json may carry (custody/audit.ts AuditSettings). */
export const AUDIT_SETTING_NAMES = ['intervalMs', 'samples', 'periodMs', 'deadlinePerBlockMs', 'minDeadlineMs', 'firstAuditMs'] as const
export type AuditSettingName = (typeof AUDIT_SETTING_NAMES)[number]

/** Default of `neverReachedAlarmSeconds`: ten minutes. */
export const NEVER_REACHED_ALARM_SECONDS = 600

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

const FIELDS = new Set(['version', 'role', 'name', 'bootstrap', 'allow', 'allowScopes', 'follow', 'sources', 'peers', 'restoring', 'restore', 'acceptRewrites', 'mirror', 'neverReachedAlarmSeconds', 'custodyBehindSeconds', 'custodySampleSeconds', 'caughtUpLogSeconds', 'maxOpenCores', 'audit', 'lowSpaceBytes', 'lowSpaceFraction', 'drill', 'lane'])

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
    if (f.followedAt !== undefined) {
      if (typeof f.followedAt !== 'number' || !Number.isSafeInteger(f.followedAt) || f.followedAt < 0) return bad(`"follow[${i}].followedAt" must be a time in ms`)
      entry.followedAt = f.followedAt
    }
    for (const field of ['maxBytes', 'maxCores'] as const) {
      const v = f[field]
      if (v === undefined) continue
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return bad(`"follow[${i}].${field}" must be a whole number ≥ 1 (omit it for no limit)`)
      entry[field] = v
    }
    if (f.quotaWarn !== undefined) {
      if (typeof f.quotaWarn !== 'number' || !(f.quotaWarn > 0 && f.quotaWarn <= 1)) return bad(`"follow[${i}].quotaWarn" must be a fraction in (0, 1]`)
      entry.quotaWarn = f.quotaWarn
    }
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
    const entry: SourceEntry = { catalogKey: s.catalogKey, agencyNodeKey: s.agencyNodeKey }
    if (s.holders !== undefined) {
      if (!Array.isArray(s.holders)) return bad(`"sources[${i}].holders" must be an array`)
      entry.holders = s.holders.map((h, j) => {
        if (typeof h !== 'string') return bad(`"sources[${i}].holders[${j}]" must be a string`)
        checkKey(h, `sources[${i}].holders[${j}]`, bad)
        return h
      })
    }
    return entry
  })
  if (o.restoring !== undefined && typeof o.restoring !== 'boolean') bad('"restoring" must be true or false')
  const config: NodeConfig = { version: CONFIG_VERSION, role: o.role as RoleName, name: name as string, bootstrap, allow, follow, sources, peers }
  if (o.restoring === true) config.restoring = true
  if (o.allowScopes !== undefined) {
    const a = o.allowScopes
    if (a === null || typeof a !== 'object' || Array.isArray(a)) return bad('"allowScopes" must be an object of node key → agency node keys')
    const out: Record<string, string[]> = {}
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) {
      checkKey(k, `allowScopes["${k.slice(0, 60)}"]`, bad)
      if (!Array.isArray(v) || v.length === 0) return bad(`"allowScopes" values must be non-empty arrays of agency node keys`)
      out[k] = v.map((h, j) => {
        if (typeof h !== 'string') return bad(`"allowScopes[...][${j}]" must be a string`)
        checkKey(h, `allowScopes[...][${j}]`, bad)
        return h
      })
    }
    if (Object.keys(out).length > 0) config.allowScopes = out
  }
  if (o.restore !== undefined) config.restore = restoreSettings(o.restore, bad)
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
  if (o.audit !== undefined) {
    const a = o.audit
    if (a === null || typeof a !== 'object' || Array.isArray(a)) return bad('"audit" must be an object of settings')
    const out: Partial<Record<AuditSettingName, number>> = {}
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) {
      if (!(AUDIT_SETTING_NAMES as readonly string[]).includes(k)) return bad(`unknown field "audit.${k.slice(0, 60)}" (known: ${AUDIT_SETTING_NAMES.join(', ')})`)
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad(`"audit.${k}" must be a whole number ≥ 0`)
      out[k as AuditSettingName] = v
    }
    config.audit = out
  }
  if (o.mirror !== undefined) config.mirror = mirrorSettings(o.mirror, bad)
  if (o.lowSpaceBytes !== undefined) {
    const v = o.lowSpaceBytes
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad('"lowSpaceBytes" must be a whole number of bytes ≥ 0')
    config.lowSpaceBytes = v
  }
  if (o.lowSpaceFraction !== undefined) {
    const v = o.lowSpaceFraction
    if (typeof v !== 'number' || !(v > 0 && v < 1)) return bad('"lowSpaceFraction" must be a fraction in (0, 1)')
    config.lowSpaceFraction = v
  }
  if (o.neverReachedAlarmSeconds !== undefined) {
    const v = o.neverReachedAlarmSeconds
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) return bad('"neverReachedAlarmSeconds" must be a number of seconds > 0')
    config.neverReachedAlarmSeconds = v
  }
  if (o.custodyBehindSeconds !== undefined) {
    const v = o.custodyBehindSeconds
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) return bad('"custodyBehindSeconds" must be a number of seconds > 0')
    config.custodyBehindSeconds = v
  }
  if (o.custodySampleSeconds !== undefined) {
    const v = o.custodySampleSeconds
    if (typeof v !== 'number' || !(v >= 0.05 && v <= 86_400)) return bad('"custodySampleSeconds" must be a number of seconds from 0.05 to 86400')
    config.custodySampleSeconds = v
  }
  if (o.caughtUpLogSeconds !== undefined) {
    const v = o.caughtUpLogSeconds
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) return bad('"caughtUpLogSeconds" must be a number of seconds ≥ 0')
    config.caughtUpLogSeconds = v
  }
  if (o.maxOpenCores !== undefined) {
    const v = o.maxOpenCores
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1_000_000) return bad('"maxOpenCores" must be a whole number from 1 to 1000000')
    config.maxOpenCores = v
  }
  if (o.drill !== undefined) {
    const d = o.drill as Record<string, unknown> | null
    if (d === null || typeof d !== 'object' || Array.isArray(d)) return bad('"drill" must be an object: { "schedule": "24h", "kit" or "capability": "/absolute/path" }')
    const extra = Object.keys(d).find((k) => !['schedule', 'kit', 'capability'].includes(k))
    if (extra !== undefined) return bad(`"drill": unknown field "${extra}"`)
    if (typeof d.schedule !== 'string' || !/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$/.test(d.schedule)) return bad('"drill.schedule" must be an interval like "24h", "30m" or "90s"')
    const paths = (['kit', 'capability'] as const).filter((k) => d[k] !== undefined)
    if (paths.length !== 1) return bad('"drill" needs exactly one of "kit" and "capability"')
    const file = d[paths[0]!]
    if (typeof file !== 'string' || !file.startsWith('/')) return bad(`"drill.${paths[0]}" must be an absolute path`)
    config.drill = { schedule: d.schedule, [paths[0]!]: file }
  }
  if (o.lane !== undefined) config.lane = laneSettings(o.lane, bad)
  return config
}

function laneSettings(v: unknown, bad: (msg: string) => never): LaneSettings {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('"lane" must be an object: { "listen": "0.0.0.0:7100", "advertise": "host:port" }')
  const o = v as Record<string, unknown>
  const extra = Object.keys(o).find((k) => !['listen', 'advertise', 'dial'].includes(k))
  if (extra !== undefined) return bad(`unknown field "lane.${extra.slice(0, 60)}"`)
  const out: LaneSettings = {}
  for (const k of ['listen', 'advertise'] as const) {
    if (o[k] === undefined) continue
    if (typeof o[k] !== 'string') return bad(`"lane.${k}" must be a string host:port`)
    try {
      parseHostPort(o[k] as string, { allowZero: k === 'listen' })
    } catch {
      return bad(`"lane.${k}": "${(o[k] as string).slice(0, 80)}" is not host:port`)
    }
    out[k] = o[k] as string
  }
  if (o.dial !== undefined) {
    if (typeof o.dial !== 'boolean') return bad('"lane.dial" must be true or false')
    out.dial = o.dial
  }
  if (out.advertise !== undefined && out.listen === undefined) return bad('"lane.advertise" needs "lane.listen"')
  if (out.advertise) {
    const host = parseHostPort(out.advertise).host
    // What a peer accepts in a lane offer (protocol/custody.ts laneOffer).
    if (host.length > 253 || /[\s/@]/.test(host)) return bad('"lane.advertise": the host must be at most 253 characters, without spaces, "/" or "@"')
  }
  return out
}

function mirrorSettings(m: unknown, bad: (msg: string) => never): MirrorSettings {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return bad('"mirror" must be an object')
  const out: MirrorSettings = {}
  for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
    if (k === 'prefetch') {
      if (!MIRROR_PREFETCH.includes(v as 'off')) return bad(`"mirror.prefetch" must be one of ${MIRROR_PREFETCH.join(', ')}`)
      out.prefetch = v as MirrorSettings['prefetch']
    } else if (k === 'sparse') {
      if (typeof v !== 'boolean') return bad('"mirror.sparse" must be true or false')
      out.sparse = v
    } else if (k === 'cacheBytes') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return bad('"mirror.cacheBytes" must be a whole number of bytes ≥ 1')
      out.cacheBytes = v
    } else return bad(`unknown field "mirror.${k.slice(0, 60)}"`)
  }
  return out
}

function restoreSettings(v: unknown, bad: (m: string) => never): RestoreSettings {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad('"restore" must be an object')
  const o = v as Record<string, unknown>
  const out: RestoreSettings = {}
  for (const k of Object.keys(o)) if (!['quorum', 'force', 'backfillRate'].includes(k)) bad(`unknown field "restore.${k}"`)
  if (o.quorum !== undefined) {
    if (typeof o.quorum !== 'number' || !Number.isSafeInteger(o.quorum) || o.quorum < 1) bad('"restore.quorum" must be a whole number ≥ 1')
    out.quorum = o.quorum as number
  }
  if (o.force !== undefined) {
    if (typeof o.force !== 'boolean') bad('"restore.force" must be true or false')
    if (o.force) out.force = true
  }
  if (o.backfillRate !== undefined) {
    if (typeof o.backfillRate !== 'number' || !Number.isFinite(o.backfillRate) || o.backfillRate < 0) bad('"restore.backfillRate" must be a number of blocks per second ≥ 0')
    out.backfillRate = o.backfillRate as number
  }
  return out
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
 * told otherwise: everything in a node directory is its owner's only (config.json, keys.json;
 * the custody documents are written by lib/custody/json-file.ts).
 */
export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  writePrivateFile(file, JSON.stringify(value, null, 2) + '\n', mode)
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
