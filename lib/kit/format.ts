/**
 * Recovery kit: everything needed to rebuild an agency node, sealed with a passphrase or split
 * into m-of-n Shamir shares. A restored node has the same node key and catalog key as the
 * original; its data comes back by replicating from any embassy.
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
 * ### Passphrase kit
 *
 *     { "format": "data-embassy/kit",
 *       "version": 1,
 *       "note": "<human text, ignored>",
 *       "kit": "<32 hex>",
 *       "kdf": { "alg": "argon2id13", "opslimit": 3, "memlimit": 268435456, "salt": "<base64, 16 bytes>" },
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
 */
import fs from 'node:fs'
import path from 'node:path'
import sodium from 'sodium-universal'
import { combine, split } from 'shamir-secret-sharing'
import type { CommandInput, Handler, Host } from '../daemon/commands.js'
import { parseHostPort } from '../node/config.js'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import { EmbassyNode, STORE_DIR, type NodeIdentity } from '../node/node.js'

export const KIT_FORMAT = 'data-embassy/kit'
export const SHARE_FORMAT = 'data-embassy/kit-share'
export const KIT_VERSION = 1
export const PAYLOAD_VERSION = 1
export const KDF_ALG = 'argon2id13'
export const CIPHER = 'xsalsa20poly1305'
/** Argon2id cost written into new kits (libsodium's "moderate": ~0.4 s and 256 MiB here). */
export const KDF_OPSLIMIT = 3
export const KDF_MEMLIMIT = 256 * 1024 * 1024
/** Highest costs a reader accepts (a hostile file must not make us allocate without bound). */
export const MAX_OPSLIMIT = 20
export const MAX_MEMLIMIT = 1024 * 1024 * 1024
export const MIN_PASSPHRASE_LENGTH = 12
/** Largest kit file read (a kit is about 2 KiB). */
export const MAX_KIT_FILE_BYTES = 1024 * 1024
export const MAX_SHARES = 255

const KIT_ID_BYTES = 16
const KEY_BYTES = 32
const SALT_BYTES = 16
const CHECKSUM_BYTES = 16
const BASE64_LINE = 64

/** What a kit restores. Buffers are secrets or keys; lists are z32 keys or host:port. */
export interface KitContents {
  /** The agency's name. */
  name: string
  /** Corestore primary key (32 bytes). */
  primaryKey: Buffer
  /** Agency read key (32 bytes). */
  readKey: Buffer
  /** Catalog core key (32 bytes). */
  catalogKey: Buffer
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

interface PassphraseEnvelope {
  format: typeof KIT_FORMAT
  version: number
  kit: string
  kdf: { alg: string; opslimit: number; memlimit: number; salt: Buffer }
  cipher: string
  nonce: Buffer
  ciphertext: Buffer
}

interface ShareEnvelope {
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

function badInput(msg: string, details?: Record<string, unknown>, cause?: unknown): EmbassyError {
  return new EmbassyError('BAD_INPUT', msg, { ...(details ? { details } : {}), ...(cause !== undefined ? { cause } : {}) })
}

// ---- building a kit ----

/** Reads what a kit holds from an open agency node. */
export async function kitFromNode(node: EmbassyNode): Promise<KitContents> {
  await node.ready()
  if (node.role !== 'agency') throw EmbassyError.wrongRole('a recovery kit', node.role, 'agency')
  const primaryKey = node.store.primaryKey
  if (!primaryKey || primaryKey.byteLength !== KEY_BYTES) throw new EmbassyError('INTERNAL', 'the store has no primary key')
  const hex = node.keys.readKey
  if (!hex) throw EmbassyError.badConfig(`${node.dir}/keys.json has no read key`)
  const catalogKey = await node.catalogKey()
  if (!catalogKey) throw new EmbassyError('INTERNAL', 'the agency has no catalog key')
  const config = node.config
  return {
    name: config.name,
    primaryKey: Buffer.from(primaryKey),
    readKey: Buffer.from(hex, 'hex'),
    catalogKey: Buffer.from(catalogKey),
    nodeKey: Buffer.from(node.nodeKey),
    allow: [...config.allow],
    bootstrap: [...config.bootstrap],
    peers: [...config.peers],
    created: Date.now()
  }
}

function encodePayload(c: KitContents, kit: string): Buffer {
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

function decodePayload(plain: Buffer, kit: string): KitContents {
  const bad = (msg: string): never => {
    throw badInput(`the kit opened but its contents are invalid: ${msg}`)
  }
  let o: Record<string, unknown>
  try {
    o = JSON.parse(plain.toString('utf8')) as Record<string, unknown>
  } catch {
    return bad('not JSON')
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return bad('not an object')
  if (o.v !== PAYLOAD_VERSION) return bad(`payload version ${String(o.v)} is not supported (this program reads ${PAYLOAD_VERSION})`)
  if (o.kit !== kit) return bad('the sealed kit id differs from the file\'s (mixed or altered file)')
  if (o.role !== 'agency') return bad('only agency kits exist')
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
  return {
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

function random(bytes: number): Buffer {
  const b = Buffer.alloc(bytes)
  sodium.randombytes_buf(b)
  return b
}

function secretbox(plain: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(plain.byteLength + sodium.crypto_secretbox_MACBYTES)
  sodium.crypto_secretbox_easy(out, plain, nonce, key)
  return out
}

function secretboxOpen(cipher: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  if (cipher.byteLength < sodium.crypto_secretbox_MACBYTES) return null
  const out = Buffer.alloc(cipher.byteLength - sodium.crypto_secretbox_MACBYTES)
  return sodium.crypto_secretbox_open_easy(out, cipher, nonce, key) ? out : null
}

async function passphraseKey(passphrase: string, salt: Uint8Array, opslimit: number, memlimit: number): Promise<Buffer> {
  const key = Buffer.alloc(KEY_BYTES)
  const pw = Buffer.from(passphrase.normalize('NFKC'), 'utf8')
  try {
    await sodium.crypto_pwhash_async(key, pw, salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13)
  } finally {
    sodium.sodium_memzero(pw)
  }
  return key
}

/** Refuses passphrases too short to stand an offline guessing attack. */
export function checkPassphrase(passphrase: unknown): string {
  if (typeof passphrase !== 'string' || passphrase === '') {
    throw EmbassyError.badArgument('a passphrase is needed: set EMBASSY_PASSPHRASE or type it at the prompt')
  }
  if ([...passphrase.normalize('NFKC')].length < MIN_PASSPHRASE_LENGTH) {
    throw EmbassyError.badArgument(`the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters (a few random words is best)`)
  }
  return passphrase
}

/** Seals `contents` with a passphrase (Argon2id + secretbox): the text of a kit file. */
export async function sealKit(contents: KitContents, passphrase: string, kdf: KdfParams = { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }): Promise<string> {
  checkPassphrase(passphrase)
  checkKdf(kdf.opslimit, kdf.memlimit)
  const kit = random(KIT_ID_BYTES).toString('hex')
  const salt = random(SALT_BYTES)
  const nonce = random(sodium.crypto_secretbox_NONCEBYTES)
  const key = await passphraseKey(passphrase, salt, kdf.opslimit, kdf.memlimit)
  const plain = encodePayload(contents, kit)
  const ciphertext = secretbox(plain, nonce, key)
  sodium.sodium_memzero(key)
  sodium.sodium_memzero(plain)
  return writeJson({
    format: KIT_FORMAT,
    version: KIT_VERSION,
    note: 'Data Embassy recovery kit: restores an agency node (its keys, not its data). Keep it offline. Restore with `embassy kit import FILE --dir DIR` and the passphrase.',
    kit,
    kdf: { alg: KDF_ALG, opslimit: kdf.opslimit, memlimit: kdf.memlimit, salt: b64(salt) },
    cipher: CIPHER,
    nonce: b64(nonce),
    ciphertext: b64(ciphertext)
  })
}

/** Opens a passphrase kit; BAD_INPUT on a wrong passphrase or a damaged file. */
export async function openKit(text: string, passphrase: string): Promise<KitContents> {
  const env = parsePassphraseKit(text)
  if (typeof passphrase !== 'string' || passphrase === '') throw EmbassyError.badArgument('a passphrase is needed to open this kit')
  const key = await passphraseKey(passphrase, env.kdf.salt, env.kdf.opslimit, env.kdf.memlimit)
  const plain = secretboxOpen(env.ciphertext, env.nonce, key)
  sodium.sodium_memzero(key)
  if (!plain) throw badInput('wrong passphrase or damaged kit (the kit does not open)', { kit: env.kit })
  try {
    return decodePayload(plain, env.kit)
  } finally {
    sodium.sodium_memzero(plain)
  }
}

/** Splits `contents` into `n` share files of which any `m` restore it. */
export async function splitKit(contents: KitContents, m: number, n: number): Promise<string[]> {
  checkShareCounts(m, n)
  const kit = random(KIT_ID_BYTES).toString('hex')
  const key = random(KEY_BYTES)
  const nonce = random(sodium.crypto_secretbox_NONCEBYTES)
  const plain = encodePayload(contents, kit)
  const ciphertext = secretbox(plain, nonce, key)
  sodium.sodium_memzero(plain)
  // The library checks `constructor === Uint8Array`: a Buffer is refused.
  const secret = new Uint8Array(key)
  sodium.sodium_memzero(key)
  const parts = await split(secret, n, m)
  sodium.sodium_memzero(secret)
  return parts.map((part, i) => {
    const env: Omit<ShareEnvelope, 'checksum'> = {
      format: SHARE_FORMAT,
      version: KIT_VERSION,
      kit,
      index: i + 1,
      threshold: m,
      shares: n,
      share: Buffer.from(part),
      cipher: CIPHER,
      nonce,
      ciphertext
    }
    return writeJson({
      format: env.format,
      version: env.version,
      note: `Data Embassy recovery kit share ${i + 1} of ${n}: any ${m} shares of kit ${kit.slice(0, 8)}... restore an agency node. Keep it offline, apart from the other shares. Restore with \`embassy kit import FILE... --dir DIR\`.`,
      kit,
      index: env.index,
      threshold: m,
      shares: n,
      share: b64(env.share),
      cipher: CIPHER,
      nonce: b64(nonce),
      ciphertext: b64(ciphertext),
      checksum: shareChecksum(env)
    })
  })
}

/**
 * Restores kit contents from share files (texts); `labels` name them in errors (file names).
 * BAD_INPUT when a share is damaged, shares of different kits are mixed, or too few are given.
 */
export async function combineShares(texts: readonly string[], labels: readonly string[] = texts.map((_, i) => `share #${i + 1}`)): Promise<KitContents> {
  if (texts.length === 0) throw EmbassyError.badArgument('no shares given')
  const shares = texts.map((t, i) => parseShare(t, labels[i] ?? `share #${i + 1}`))
  const first = shares[0]!
  const kits = [...new Set(shares.map((s) => s.kit))]
  if (kits.length > 1) {
    throw badInput(`these shares belong to ${kits.length} different kits (${kits.map((k) => k.slice(0, 8)).join(', ')}); give shares of one kit only`, { kits })
  }
  const distinct = new Map<number, ShareEnvelope>()
  shares.forEach((s, i) => {
    const label = labels[i] ?? `share #${i + 1}`
    if (s.threshold !== first.threshold || s.shares !== first.shares || !s.nonce.equals(first.nonce) || !s.ciphertext.equals(first.ciphertext)) {
      throw badInput(`${label} disagrees with the other shares of kit ${s.kit.slice(0, 8)} (damaged or altered)`)
    }
    const same = distinct.get(s.index)
    if (same && !same.share.equals(s.share)) throw badInput(`two different shares claim index ${s.index} of kit ${s.kit.slice(0, 8)} (damaged or altered)`)
    distinct.set(s.index, s)
  })
  const have = distinct.size
  if (have < first.threshold) {
    throw badInput(`kit ${first.kit.slice(0, 8)} needs ${first.threshold} of its ${first.shares} shares; ${have === 1 ? 'only 1 was' : `only ${have} were`} given`, {
      kit: first.kit,
      need: first.threshold,
      have
    })
  }
  const xs = new Set([...distinct.values()].map((s) => s.share[s.share.byteLength - 1]))
  if (xs.size !== distinct.size) throw badInput(`shares of kit ${first.kit.slice(0, 8)} repeat a coordinate (damaged or altered)`)
  let key: Uint8Array
  try {
    key = await combine([...distinct.values()].map((s) => new Uint8Array(s.share)))
  } catch (err) {
    throw badInput(`the shares of kit ${first.kit.slice(0, 8)} do not combine: ${(err as Error).message}`, undefined, err)
  }
  const plain = key.byteLength === KEY_BYTES ? secretboxOpen(first.ciphertext, first.nonce, key) : null
  sodium.sodium_memzero(key)
  if (!plain) throw badInput(`the shares of kit ${first.kit.slice(0, 8)} do not open it (a damaged share, or shares altered together)`)
  try {
    return decodePayload(plain, first.kit)
  } finally {
    sodium.sodium_memzero(plain)
  }
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
  throw badInput(`${label} is not a Data Embassy recovery kit or kit share`)
}

// ---- restoring ----

/**
 * Rebuilds an agency node in `dir` from kit contents: same primary key (so the same node key and
 * catalog key), same read key, the same allow list, bootstrap list and peers. The catalog and
 * datasets are empty until the node replicates them back from an embassy.
 */
export async function restoreNode(dir: string, contents: KitContents): Promise<NodeIdentity> {
  dir = path.resolve(dir)
  checkRestoreDir(dir)
  const created = !fs.existsSync(dir)
  let id: NodeIdentity
  try {
    await EmbassyNode.init(dir, { role: 'agency', name: contents.name, primaryKey: contents.primaryKey, readKey: contents.readKey })
    const node = new EmbassyNode(dir)
    try {
      await node.ready()
      node.updateConfig((c) => {
        c.allow = [...contents.allow]
        c.bootstrap = [...contents.bootstrap]
        c.peers = [...contents.peers]
      })
      id = await node.identity()
    } finally {
      await node.close()
    }
    if (id.nodeKey !== toZ32(contents.nodeKey) || id.catalogKey !== toZ32(contents.catalogKey)) {
      throw badInput(
        `the restored node does not match the kit (node key ${id.nodeKey} vs ${toZ32(contents.nodeKey)}, catalog ${id.catalogKey} vs ${toZ32(contents.catalogKey)})`
      )
    }
  } catch (err) {
    // Leave no half-restored node behind: remove only what the restore wrote.
    if (created) fs.rmSync(dir, { recursive: true, force: true })
    else for (const f of ['config.json', 'keys.json', STORE_DIR]) fs.rmSync(path.join(dir, f), { recursive: true, force: true })
    throw err
  }
  return id
}

function checkRestoreDir(dir: string): void {
  if (EmbassyNode.exists(dir)) throw EmbassyError.alreadyInitialised(dir)
  const store = path.join(dir, STORE_DIR)
  if (fs.existsSync(store) && fs.readdirSync(store).length > 0) {
    throw new EmbassyError('ALREADY_INITIALISED', `${dir} already holds node storage (${STORE_DIR}/); restore into an empty directory`, { details: { dir } })
  }
}

export interface KitImportResult extends NodeIdentity {
  dir: string
  kit: string
  from: 'passphrase' | 'shares'
  files: string[]
  allow: string[]
  bootstrap: string[]
  created: string | null
}

/**
 * `embassy kit import FILE… --dir DIR`: restores an agency from one passphrase kit (needs
 * `passphrase`) or from share files (no passphrase). Runs without a node open.
 */
export async function kitImport(dir: string, files: readonly string[], passphrase?: string): Promise<KitImportResult> {
  dir = path.resolve(dir)
  if (files.length === 0) throw EmbassyError.badArgument('no kit file given: embassy kit import FILE… --dir DIR')
  checkRestoreDir(dir)
  const paths = files.map((f) => path.resolve(f))
  const texts = paths.map(readKitFile)
  const infos = texts.map((t, i) => inspectKit(t, paths[i]))
  let contents: KitContents
  let from: KitImportResult['from']
  if (infos.every((i) => i.type === 'share')) {
    contents = await combineShares(texts, paths)
    from = 'shares'
  } else if (infos.length === 1) {
    if (passphrase === undefined || passphrase === '') throw EmbassyError.badArgument('this kit is sealed with a passphrase: set EMBASSY_PASSPHRASE or type it at the prompt')
    contents = await openKit(texts[0]!, passphrase)
    from = 'passphrase'
  } else {
    throw EmbassyError.badArgument('give either one passphrase kit or share files of one kit, not a mix')
  }
  const id = await restoreNode(dir, contents)
  return {
    ...id,
    dir,
    kit: infos[0]!.kit,
    from,
    files: paths,
    allow: contents.allow,
    bootstrap: contents.bootstrap,
    created: contents.created ? new Date(contents.created).toISOString() : null
  }
}

/** True when importing these files needs a passphrase (one passphrase kit); the CLI prompts then. */
export function kitNeedsPassphrase(files: readonly string[]): boolean {
  return files.length === 1 && inspectKit(readKitFile(path.resolve(files[0]!)), files[0]).type === 'passphrase'
}

function readKitFile(file: string): string {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (err) {
    throw badInput(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file }, err)
  }
  if (!stat.isFile()) throw badInput(`${file} is not a file`, { file })
  if (stat.size > MAX_KIT_FILE_BYTES) throw badInput(`${file} is too large to be a kit (${stat.size} bytes)`, { file })
  return fs.readFileSync(file, 'utf8')
}

// ---- CLI handler: `embassy kit export --out FILE [--shares M/N]` ----

export interface KitExportResult {
  kit: string
  protection: 'passphrase' | 'shares'
  files: string[]
  threshold?: number
  shares?: number
  name: string
  nodeKey: string
  catalogKey: string
  allow: string[]
}

/**
 * input.opts: out (path, required), shares ('M/N', optional), passphrase (filled by the CLI from
 * EMBASSY_PASSPHRASE or a prompt; not used with --shares). Writes FILE, or FILE.1 … FILE.N, mode 0600,
 * never over an existing file. The result holds no secret.
 */
export const kitExportHandler: Handler = async (host: Host, input: CommandInput): Promise<KitExportResult> => {
  const agency = await host.agency()
  const out = input.opts.out
  if (typeof out !== 'string' || out === '') throw EmbassyError.badArgument('missing --out FILE')
  const file = path.resolve(out)
  const sharesOpt = input.opts.shares
  const counts = typeof sharesOpt === 'string' ? parseShareCounts(sharesOpt) : null
  if (sharesOpt !== undefined && typeof sharesOpt !== 'string') throw EmbassyError.badArgument('--shares needs M/N, e.g. --shares 3/5')
  const passphrase = counts ? null : checkPassphrase(input.opts.passphrase)
  const targets = counts ? Array.from({ length: counts.n }, (_, i) => `${file}.${i + 1}`) : [file]
  for (const t of targets) {
    if (fs.existsSync(t)) throw EmbassyError.badArgument(`${t} already exists; remove it or choose another --out (a kit is never overwritten)`)
  }
  const dirOf = path.dirname(file)
  if (!fs.existsSync(dirOf)) throw EmbassyError.badArgument(`the folder ${dirOf} does not exist`)
  const contents = await kitFromNode(agency.node)
  const texts = counts ? await splitKit(contents, counts.m, counts.n) : [await sealKit(contents, passphrase!)]
  wipe(contents)
  const written: string[] = []
  try {
    targets.forEach((t, i) => {
      writeSecretFile(t, texts[i]!)
      written.push(t)
    })
  } catch (err) {
    for (const w of written) fs.rmSync(w, { force: true })
    throw new EmbassyError('BAD_INPUT', `cannot write ${targets[written.length]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  const info = inspectKit(texts[0]!)
  return {
    kit: info.kit,
    protection: counts ? 'shares' : 'passphrase',
    files: written,
    ...(counts ? { threshold: counts.m, shares: counts.n } : {}),
    name: contents.name,
    nodeKey: toZ32(contents.nodeKey),
    catalogKey: toZ32(contents.catalogKey),
    allow: contents.allow
  }
}

/** Parses `M/N` (2 ≤ M ≤ N ≤ 255). */
export function parseShareCounts(text: string): { m: number; n: number } {
  const match = /^\s*(\d{1,3})\s*\/\s*(\d{1,3})\s*$/.exec(text)
  if (!match) throw EmbassyError.badArgument(`--shares must be M/N (any M of N shares restore the kit), not "${text.slice(0, 20)}"`)
  const m = Number(match[1])
  const n = Number(match[2])
  checkShareCounts(m, n)
  return { m, n }
}

function checkShareCounts(m: number, n: number): void {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 2 || n < m || n > MAX_SHARES) {
    throw EmbassyError.badArgument(`--shares M/N needs 2 ≤ M ≤ N ≤ ${MAX_SHARES} (got ${m}/${n}); for a single file use a passphrase kit`)
  }
}

function checkKdf(opslimit: number, memlimit: number): void {
  if (!Number.isSafeInteger(opslimit) || opslimit < 1 || opslimit > MAX_OPSLIMIT) throw badInput(`kit KDF opslimit ${opslimit} is outside 1–${MAX_OPSLIMIT}`)
  if (!Number.isSafeInteger(memlimit) || memlimit < sodium.crypto_pwhash_MEMLIMIT_MIN || memlimit > MAX_MEMLIMIT) {
    throw badInput(`kit KDF memlimit ${memlimit} is outside ${sodium.crypto_pwhash_MEMLIMIT_MIN}–${MAX_MEMLIMIT} bytes`)
  }
}

function writeSecretFile(file: string, text: string): void {
  const fd = fs.openSync(file, 'wx', 0o600)
  try {
    fs.writeSync(fd, text)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.chmodSync(file, 0o600)
}

function wipe(c: KitContents): void {
  sodium.sodium_memzero(c.primaryKey)
  sodium.sodium_memzero(c.readKey)
}

// ---- envelopes ----

function b64(buf: Uint8Array): string | string[] {
  const s = Buffer.from(buf).toString('base64')
  if (s.length <= BASE64_LINE) return s
  const lines: string[] = []
  for (let i = 0; i < s.length; i += BASE64_LINE) lines.push(s.slice(i, i + BASE64_LINE))
  return lines
}

function writeJson(o: Record<string, unknown>): string {
  return JSON.stringify(o, null, 2) + '\n'
}

function parseJson(text: string, label: string): Record<string, unknown> {
  let o: unknown
  try {
    o = JSON.parse(text)
  } catch {
    throw badInput(`${label} is damaged or not a kit (not valid JSON)`)
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw badInput(`${label} is not a kit (not a JSON object)`)
  return o as Record<string, unknown>
}

class FieldReader {
  constructor(
    readonly o: Record<string, unknown>,
    readonly label: string
  ) {}

  fail(msg: string): never {
    throw badInput(`${this.label} is damaged: ${msg}`)
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
    if (v > KIT_VERSION) throw badInput(`${this.label} is kit version ${v}; this program reads version ${KIT_VERSION} (upgrade it)`)
    return v
  }
}

function parsePassphraseKit(text: string, label = 'the kit file'): PassphraseEnvelope {
  const o = parseJson(text, label)
  if (o.format === SHARE_FORMAT) throw EmbassyError.badArgument(`${label} is a kit share, not a passphrase kit: import it together with the other shares`)
  if (o.format !== KIT_FORMAT) throw badInput(`${label} is not a Data Embassy recovery kit`)
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

function parseShare(text: string, label: string): ShareEnvelope {
  const o = parseJson(text, label)
  if (o.format === KIT_FORMAT) throw EmbassyError.badArgument(`${label} is a passphrase kit, not a share: import it alone`)
  if (o.format !== SHARE_FORMAT) throw badInput(`${label} is not a Data Embassy kit share`)
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
    throw badInput(`${label} is damaged (its checksum does not match: a mistyped or altered share)`, { index: env.index, kit: env.kit })
  }
  if (env.cipher !== CIPHER) r.fail(`unknown cipher "${env.cipher}"`)
  return env
}

function shareChecksum(s: Omit<ShareEnvelope, 'checksum'>): string {
  const text = [s.format, s.version, s.kit, s.index, s.threshold, s.shares, s.share.toString('base64'), s.cipher, s.nonce.toString('base64'), s.ciphertext.toString('base64')].join('\n')
  const out = Buffer.alloc(CHECKSUM_BYTES)
  sodium.crypto_generichash(out, Buffer.from(text, 'utf8'))
  return out.toString('hex')
}
