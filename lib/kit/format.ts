/**
 * Recovery kit: everything needed to rebuild a node — an agency, an embassy, a mirror or an
 * auditor — sealed with a passphrase or split into m-of-n Shamir shares. A restored node has the
 * same node key (and, for an agency, catalog key) as the original; it holds no data: that comes
 * back by replicating (an agency from its embassies, an embassy from its agency and the other
 * holders, a mirror from its sources).
 *
 * ## Kit format, version 1 (text files, UTF-8 JSON, meant to be printable)
 *
 * Binary fields are standard base64 (RFC 4648, with padding). A base64 field longer than 64
 * characters is written as a JSON array of lines of at most 64 characters (readers accept a
 * string or an array of strings and join them); whitespace inside a base64 line is ignored.
 *
 * ### Payload (the secret, never written in the clear)
 *
 * UTF-8 JSON object:
 *
 *     { "v": 1,                    payload version
 *       "kit": "<32 hex>",         the kit id (16 random bytes), equal to the envelope's "kit"
 *       "role": "agency",
 *       "name": "<agency name>",
 *       "primaryKey": "<64 hex>",  the Corestore primary key (every core and the node key derive from it)
 *       "readKey": "<64 hex>",     the agency read key
 *       "catalogKey": "<z32>",     the catalog core key (checked after restore)
 *       "nodeKey": "<z32>",        the node (swarm) public key (checked after restore)
 *       "allow": ["<z32>", …],     config.allow: the agency's embassies and mirrors
 *       "bootstrap": ["host:port", …],  config.bootstrap
 *       "peers": ["<z32>", …],     config.peers
 *       "created": "<ISO 8601 UTC>" }
 *
 * Embassies, mirrors and auditors (payload version 2; agencies still write version 1, so older
 * readers open an agency's kit):
 *
 *     { "v": 2, "kit": "<32 hex>",
 *       "role": "embassy" | "mirror" | "auditor",
 *       "name": "<node name>",
 *       "primaryKey": "<64 hex>",  the Corestore primary key (the node key derives from it)
 *       "nodeKey": "<z32>",        checked after restore
 *       "config": { … },           the node's config.json (followed agencies, allowed peers and
 *                                  their scopes, sources, bootstrap, peers, settings), validated
 *                                  as config.json is on load
 *       "readKeys": { "<catalog z32>": "<64 hex>", … },  a mirror's read capabilities (keys.json)
 *       "created": "<ISO 8601 UTC>" }
 *
 * ### Passphrase kit
 *
 *     { "format": "data-embassy/kit",
 *       "version": 1,
 *       "note": "<human text, ignored>",
 *       "kit": "<32 hex>",
 *       "kdf": { "alg": "argon2id13", "opslimit": 4, "memlimit": 1073741824, "salt": "<base64, 16 bytes>" },
 *       "cipher": "xsalsa20poly1305",
 *       "nonce": "<base64, 24 bytes>",
 *       "ciphertext": "<base64>" }
 *
 * key = crypto_pwhash(32 bytes, UTF-8 of the passphrase in Unicode NFKC, salt, opslimit, memlimit,
 * Argon2id 1.3); ciphertext = crypto_secretbox_easy(payload, nonce, key) (Poly1305 tag first,
 * as libsodium writes it). Readers accept opslimit 1–20 and memlimit 8 KiB–1 GiB, so the cost can
 * grow in later kits without a format change. A failed secretbox open means a wrong passphrase
 * or damaged file; a payload whose "kit" differs from the envelope's is refused.
 *
 * ### Share kit (one file per share; any `threshold` of the `shares` files restore the kit)
 *
 *     { "format": "data-embassy/kit-share",
 *       "version": 1,
 *       "note": "<human text, ignored>",
 *       "kit": "<32 hex>",          same in every share of one kit
 *       "index": i,                 1 … shares (a label; the Shamir x-coordinate is inside "share")
 *       "threshold": m,             2 … shares
 *       "shares": n,                2 … 255
 *       "share": "<base64, 33 bytes>",
 *       "cipher": "xsalsa20poly1305",
 *       "nonce": "<base64, 24 bytes>",
 *       "ciphertext": "<base64>",   same in every share of one kit
 *       "checksum": "<32 hex>" }
 *
 * A random 32-byte kit key K seals the payload (crypto_secretbox_easy, as above); K is split with
 * Shamir's scheme over GF(2^8) (the audited `shamir-secret-sharing` library: each share is the 32
 * y-bytes followed by one x-coordinate byte). checksum = BLAKE2b-128 (crypto_generichash, 16 bytes,
 * unkeyed) of the UTF-8 lines `format, version, kit, index, threshold, shares, share, cipher,
 * nonce, ciphertext` (base64 fields unwrapped) joined with "\n": it catches a damaged or mistyped
 * share before combining. Fewer than `threshold` shares give a wrong K, which the secretbox tag
 * refuses; readers also refuse shares of different kits and shares that disagree on threshold,
 * shares, nonce or ciphertext.
 *
 * ## This file
 *
 * Owns the format: its constants, the KitContents type, the payload codec, base64 and JSON
 * helpers, the envelope parsers (with the share checksum) and inspectKit. Sealing lives in
 * passphrase.ts, Shamir shares in shares.ts, files and nodes in restore.ts.
 * May import: node/config, errors, ids (and sodium-universal) — never the daemon, the roles, the
 * gateway or the CLI.
 */
import sodium from 'sodium-universal'
import { parseHostPort, validateConfig, type NodeConfig, type RoleName } from '../node/config.js'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'

export const KIT_FORMAT = 'data-embassy/kit'
export const SHARE_FORMAT = 'data-embassy/kit-share'
export const KIT_VERSION = 1
export const PAYLOAD_VERSION = 1
/** Payload version of the kits of embassies, mirrors and auditors (agencies write PAYLOAD_VERSION). */
export const HOLDER_PAYLOAD_VERSION = 2
export const KDF_ALG = 'argon2id13'
export const CIPHER = 'xsalsa20poly1305'
/**
 * Argon2id costs by name: libsodium's "sensitive" (1 GiB, 4 passes: ~5 s on a 2-core server) is
 * the default for new kits — a kit guards the agency's root secret, is made rarely and opened
 * once in a crisis; "moderate" (256 MiB, 3 passes: ~0.7 s) is for a kit that must open on a
 * machine with less than ~1.5 GiB of free memory (`embassy kit export --kdf moderate`).
 */
export const KDF_PROFILES = {
  sensitive: { opslimit: 4, memlimit: 1024 * 1024 * 1024 },
  moderate: { opslimit: 3, memlimit: 256 * 1024 * 1024 }
} as const satisfies Record<string, KdfParams>
export type KdfProfile = keyof typeof KDF_PROFILES
/** Argon2id cost written into new kits unless told otherwise (the "sensitive" profile). */
export const KDF_OPSLIMIT = KDF_PROFILES.sensitive.opslimit
export const KDF_MEMLIMIT = KDF_PROFILES.sensitive.memlimit
/** Highest costs a reader accepts (a hostile file must not make us allocate without bound). */
export const MAX_OPSLIMIT = 20
export const MAX_MEMLIMIT = 1024 * 1024 * 1024
export const MIN_PASSPHRASE_LENGTH = 12
/** Largest kit file read (a kit is about 2 KiB). */
export const MAX_KIT_FILE_BYTES = 1024 * 1024
export const MAX_SHARES = 255

export const KIT_ID_BYTES = 16
export const KEY_BYTES = 32
export const SALT_BYTES = 16
export const CHECKSUM_BYTES = 16
const BASE64_LINE = 64

/** What a kit restores. Buffers are secrets or keys; lists are z32 keys or host:port. */
export interface KitContents {
  /** The node's role. @default 'agency' (kits of payload version 1) */
  role?: RoleName
  /** The agency's (or node's) name. */
  name: string
  /** Corestore primary key (32 bytes). */
  primaryKey: Buffer
  /** Agency read key (32 bytes); empty for other roles. */
  readKey: Buffer
  /** Catalog core key (32 bytes); empty for other roles. */
  catalogKey: Buffer
  /** Embassy, mirror, auditor: the node's whole config (its role, followed agencies, sources, allow list, settings). */
  config?: NodeConfig
  /** Mirror: read keys by catalog key (z32 → hex). */
  readKeys?: Record<string, string>
  /** Node (swarm) public key (32 bytes). */
  nodeKey: Buffer
  /** config.allow: the node keys (z32) of the agency's embassies and mirrors. */
  allow: string[]
  /** config.bootstrap: DHT bootstrap nodes (host:port). */
  bootstrap: string[]
  /** config.peers: node keys (z32) dialled on start. */
  peers: string[]
  /** When the kit was made (ms since the epoch). */
  created: number
}

/** What a kit file says about itself without any secret. */
export type KitFileInfo =
  | { type: 'passphrase'; version: number; kit: string; opslimit: number; memlimit: number }
  | { type: 'share'; version: number; kit: string; index: number; threshold: number; shares: number }

export interface KdfParams {
  opslimit: number
  memlimit: number
}

export interface PassphraseEnvelope {
  format: typeof KIT_FORMAT
  version: number
  kit: string
  kdf: { alg: string; opslimit: number; memlimit: number; salt: Buffer }
  cipher: string
  nonce: Buffer
  ciphertext: Buffer
}

export interface ShareEnvelope {
  format: typeof SHARE_FORMAT
  version: number
  kit: string
  index: number
  threshold: number
  shares: number
  share: Buffer
  cipher: string
  nonce: Buffer
  ciphertext: Buffer
  checksum: string
}

// ---- payload ----

export function encodePayload(c: KitContents, kit: string): Buffer {
  const role = c.role ?? 'agency'
  if (role !== 'agency') {
    if (!c.config || c.config.role !== role) throw EmbassyError.internal(`a ${role} kit needs the node's config`)
    return Buffer.from(
      JSON.stringify({
        v: HOLDER_PAYLOAD_VERSION,
        kit,
        role,
        name: c.name,
        primaryKey: c.primaryKey.toString('hex'),
        nodeKey: toZ32(c.nodeKey),
        config: c.config,
        readKeys: c.readKeys ?? {},
        created: new Date(c.created).toISOString()
      }),
      'utf8'
    )
  }
  return Buffer.from(
    JSON.stringify({
      v: PAYLOAD_VERSION,
      kit,
      role: 'agency',
      name: c.name,
      primaryKey: c.primaryKey.toString('hex'),
      readKey: c.readKey.toString('hex'),
      catalogKey: toZ32(c.catalogKey),
      nodeKey: toZ32(c.nodeKey),
      allow: c.allow,
      bootstrap: c.bootstrap,
      peers: c.peers,
      created: new Date(c.created).toISOString()
    }),
    'utf8'
  )
}

export function decodePayload(plain: Buffer, kit: string): KitContents {
  const bad = (msg: string): never => {
    throw EmbassyError.badInput(`the kit opened but its contents are invalid: ${msg}`)
  }
  let o: Record<string, unknown>
  try {
    o = JSON.parse(plain.toString('utf8')) as Record<string, unknown>
  } catch {
    return bad('not JSON')
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return bad('not an object')
  if (o.v !== PAYLOAD_VERSION && o.v !== HOLDER_PAYLOAD_VERSION) return bad(`payload version ${String(o.v)} is not supported (this program reads ${PAYLOAD_VERSION} and ${HOLDER_PAYLOAD_VERSION})`)
  if (o.kit !== kit) return bad('the sealed kit id differs from the file\'s (mixed or altered file)')
  if (o.v === PAYLOAD_VERSION && o.role !== 'agency') return bad(`a version ${PAYLOAD_VERSION} kit is an agency's`)
  if (o.v === HOLDER_PAYLOAD_VERSION && o.role !== 'embassy' && o.role !== 'mirror' && o.role !== 'auditor') return bad('"role" must be embassy, mirror or auditor')
  if (typeof o.name !== 'string') return bad('"name" must be a string')
  const secret = (field: string): Buffer => {
    const v = o[field]
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) return bad(`"${field}" must be 64 hex characters`)
    return Buffer.from(v, 'hex')
  }
  const key = (field: string): Buffer => {
    const v = o[field]
    if (typeof v !== 'string') return bad(`"${field}" must be a key`)
    try {
      return parseKey(v, field)
    } catch {
      return bad(`"${field}" is not a key`)
    }
  }
  const list = (field: string, check: (s: string) => void): string[] => {
    const v = o[field] ?? []
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) return bad(`"${field}" must be a list of strings`)
    for (const s of v as string[]) {
      try {
        check(s)
      } catch {
        bad(`"${field}" holds an invalid entry "${s.slice(0, 80)}"`)
      }
    }
    return [...(v as string[])]
  }
  const created = typeof o.created === 'string' ? Date.parse(o.created) : NaN
  if (o.v === HOLDER_PAYLOAD_VERSION) {
    const role = o.role as RoleName
    let config: NodeConfig
    try {
      config = validateConfig(o.config, 'the kit\'s config')
    } catch (err) {
      return bad((err as EmbassyError).text ?? (err as Error).message)
    }
    if (config.role !== role) return bad(`its config is a ${config.role}'s, the kit a ${role}'s`)
    delete config.restoring
    delete config.restore
    const rk = o.readKeys ?? {}
    if (rk === null || typeof rk !== 'object' || Array.isArray(rk)) return bad('"readKeys" must be an object')
    const readKeys: Record<string, string> = {}
    for (const [k, v] of Object.entries(rk as Record<string, unknown>)) {
      try {
        parseKey(k)
      } catch {
        return bad(`"readKeys" holds an invalid catalog key "${k.slice(0, 80)}"`)
      }
      if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) return bad('"readKeys" values must be 64 hex characters')
      readKeys[k] = v
    }
    return {
      role,
      name: o.name,
      primaryKey: secret('primaryKey'),
      readKey: Buffer.alloc(0),
      catalogKey: Buffer.alloc(0),
      nodeKey: key('nodeKey'),
      config,
      readKeys,
      allow: [...config.allow],
      bootstrap: [...config.bootstrap],
      peers: [...config.peers],
      created: Number.isFinite(created) ? created : 0
    }
  }
  return {
    role: 'agency',
    name: o.name,
    primaryKey: secret('primaryKey'),
    readKey: secret('readKey'),
    catalogKey: key('catalogKey'),
    nodeKey: key('nodeKey'),
    allow: list('allow', (s) => parseKey(s)),
    bootstrap: list('bootstrap', (s) => parseHostPort(s)),
    peers: list('peers', (s) => parseKey(s)),
    created: Number.isFinite(created) ? created : 0
  }
}

// ---- envelopes ----

export function b64(buf: Uint8Array): string | string[] {
  const s = Buffer.from(buf).toString('base64')
  if (s.length <= BASE64_LINE) return s
  const lines: string[] = []
  for (let i = 0; i < s.length; i += BASE64_LINE) lines.push(s.slice(i, i + BASE64_LINE))
  return lines
}

export function writeJson(o: Record<string, unknown>): string {
  return JSON.stringify(o, null, 2) + '\n'
}

function parseJson(text: string, label: string): Record<string, unknown> {
  let o: unknown
  try {
    o = JSON.parse(text)
  } catch {
    throw EmbassyError.badInput(`${label} is damaged or not a kit (not valid JSON)`)
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw EmbassyError.badInput(`${label} is not a kit (not a JSON object)`)
  return o as Record<string, unknown>
}

/** Reads the fields of an envelope; every failure is BAD_INPUT naming the file and the field. */
class FieldReader {
  constructor(
    readonly o: Record<string, unknown>,
    readonly label: string
  ) {}

  fail(msg: string): never {
    throw EmbassyError.badInput(`${this.label} is damaged: ${msg}`)
  }

  string(field: string): string {
    const v = this.o[field]
    if (typeof v !== 'string') return this.fail(`"${field}" is missing`)
    return v
  }

  int(field: string, min: number, max: number): number {
    const v = this.o[field]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) return this.fail(`"${field}" must be a whole number ${min}–${max}`)
    return v
  }

  hex(field: string, bytes: number): string {
    const v = this.string(field)
    if (v.length !== bytes * 2 || !/^[0-9a-f]+$/.test(v)) return this.fail(`"${field}" must be ${bytes * 2} hex characters`)
    return v
  }

  bytes(field: string, exact?: number, o = this.o): Buffer {
    const v = o[field]
    const text = typeof v === 'string' ? v : Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join('') : null
    if (text === null) return this.fail(`"${field}" is missing`)
    const clean = text.replace(/\s+/g, '')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 !== 0) return this.fail(`"${field}" is not base64`)
    const buf = Buffer.from(clean, 'base64')
    if (exact !== undefined && buf.byteLength !== exact) return this.fail(`"${field}" must be ${exact} bytes`)
    return buf
  }

  version(): number {
    const v = this.o.version
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) return this.fail('"version" is missing')
    if (v > KIT_VERSION) throw EmbassyError.badInput(`${this.label} is kit version ${v}; this program reads version ${KIT_VERSION} (upgrade it)`)
    return v
  }
}

/** Reads a passphrase kit's envelope (nothing secret); BAD_INPUT when it is damaged or not one. */
export function parsePassphraseKit(text: string, label = 'the kit file'): PassphraseEnvelope {
  const o = parseJson(text, label)
  if (o.format === SHARE_FORMAT) throw EmbassyError.badArgument(`${label} is a kit share, not a passphrase kit: import it together with the other shares`)
  if (o.format !== KIT_FORMAT) throw EmbassyError.badInput(`${label} is not a Data Embassy recovery kit`)
  const r = new FieldReader(o, label)
  const version = r.version()
  const kdfRaw = o.kdf
  if (kdfRaw === null || typeof kdfRaw !== 'object' || Array.isArray(kdfRaw)) return r.fail('"kdf" is missing')
  const k = new FieldReader(kdfRaw as Record<string, unknown>, label)
  const alg = k.string('alg')
  if (alg !== KDF_ALG) r.fail(`unknown key derivation "${alg}"`)
  const opslimit = k.int('opslimit', 1, MAX_OPSLIMIT)
  const memlimit = k.int('memlimit', sodium.crypto_pwhash_MEMLIMIT_MIN, MAX_MEMLIMIT)
  const cipher = r.string('cipher')
  if (cipher !== CIPHER) r.fail(`unknown cipher "${cipher}"`)
  return {
    format: KIT_FORMAT,
    version,
    kit: r.hex('kit', KIT_ID_BYTES),
    kdf: { alg, opslimit, memlimit, salt: k.bytes('salt', SALT_BYTES) },
    cipher,
    nonce: r.bytes('nonce', sodium.crypto_secretbox_NONCEBYTES),
    ciphertext: r.bytes('ciphertext')
  }
}

/** Reads a share's envelope and checks its checksum; BAD_INPUT when it is damaged or not one. */
export function parseShare(text: string, label: string): ShareEnvelope {
  const o = parseJson(text, label)
  if (o.format === KIT_FORMAT) throw EmbassyError.badArgument(`${label} is a passphrase kit, not a share: import it alone`)
  if (o.format !== SHARE_FORMAT) throw EmbassyError.badInput(`${label} is not a Data Embassy kit share`)
  const r = new FieldReader(o, label)
  const version = r.version()
  const shares = r.int('shares', 2, MAX_SHARES)
  const threshold = r.int('threshold', 2, shares)
  const env: ShareEnvelope = {
    format: SHARE_FORMAT,
    version,
    kit: r.hex('kit', KIT_ID_BYTES),
    index: r.int('index', 1, shares),
    threshold,
    shares,
    share: r.bytes('share', KEY_BYTES + 1),
    cipher: r.string('cipher'),
    nonce: r.bytes('nonce', sodium.crypto_secretbox_NONCEBYTES),
    ciphertext: r.bytes('ciphertext'),
    checksum: r.hex('checksum', CHECKSUM_BYTES)
  }
  if (shareChecksum(env) !== env.checksum) {
    throw EmbassyError.badInput(`${label} is damaged (its checksum does not match: a mistyped or altered share)`, {
      details: { index: env.index, kit: env.kit }
    })
  }
  if (env.cipher !== CIPHER) r.fail(`unknown cipher "${env.cipher}"`)
  return env
}

/** BLAKE2b-128 over the envelope fields of a share (see the format above). */
export function shareChecksum(s: Omit<ShareEnvelope, 'checksum'>): string {
  const text = [s.format, s.version, s.kit, s.index, s.threshold, s.shares, s.share.toString('base64'), s.cipher, s.nonce.toString('base64'), s.ciphertext.toString('base64')].join('\n')
  const out = Buffer.alloc(CHECKSUM_BYTES)
  sodium.crypto_generichash(out, Buffer.from(text, 'utf8'))
  return out.toString('hex')
}

/** What a kit file is, from its public envelope (no secret needed); BAD_INPUT when it is none. */
export function inspectKit(text: string, label = 'the kit file'): KitFileInfo {
  const o = parseJson(text, label)
  if (o.format === KIT_FORMAT) {
    const env = parsePassphraseKit(text, label)
    return { type: 'passphrase', version: env.version, kit: env.kit, opslimit: env.kdf.opslimit, memlimit: env.kdf.memlimit }
  }
  if (o.format === SHARE_FORMAT) {
    const s = parseShare(text, label)
    return { type: 'share', version: s.version, kit: s.kit, index: s.index, threshold: s.threshold, shares: s.shares }
  }
  throw EmbassyError.badInput(`${label} is not a Data Embassy recovery kit or kit share`)
}
