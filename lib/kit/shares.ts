/**
 * Share kits: the payload sealed with a random kit key that is split m-of-n with Shamir's scheme
 * (the audited `shamir-secret-sharing` library); the file format, the envelope parser and the
 * share checksum are in format.ts. Owns splitKit / combineShares and the M/N share counts.
 * May import: kit/format, kit/passphrase, errors (and sodium-universal, shamir-secret-sharing) —
 * never the daemon, the roles, the gateway or the CLI.
 */
import sodium from 'sodium-universal'
import { combine, split } from 'shamir-secret-sharing'
import { EmbassyError } from '../errors.js'
import {
  CIPHER,
  KEY_BYTES,
  KIT_ID_BYTES,
  KIT_VERSION,
  MAX_SHARES,
  SHARE_FORMAT,
  b64,
  decodePayload,
  encodePayload,
  parseShare,
  shareChecksum,
  writeJson,
  type KitContents,
  type ShareEnvelope
} from './format.js'
import { random, secretbox, secretboxOpen } from './passphrase.js'

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
    throw EmbassyError.badInput(`these shares belong to ${kits.length} different kits (${kits.map((k) => k.slice(0, 8)).join(', ')}); give shares of one kit only`, { details: { kits } })
  }
  const distinct = new Map<number, ShareEnvelope>()
  shares.forEach((s, i) => {
    const label = labels[i] ?? `share #${i + 1}`
    if (s.threshold !== first.threshold || s.shares !== first.shares || !s.nonce.equals(first.nonce) || !s.ciphertext.equals(first.ciphertext)) {
      throw EmbassyError.badInput(`${label} disagrees with the other shares of kit ${s.kit.slice(0, 8)} (damaged or altered)`)
    }
    const same = distinct.get(s.index)
    if (same && !same.share.equals(s.share)) throw EmbassyError.badInput(`two different shares claim index ${s.index} of kit ${s.kit.slice(0, 8)} (damaged or altered)`)
    distinct.set(s.index, s)
  })
  const have = distinct.size
  if (have < first.threshold) {
    throw EmbassyError.badInput(`kit ${first.kit.slice(0, 8)} needs ${first.threshold} of its ${first.shares} shares; ${have === 1 ? 'only 1 was' : `only ${have} were`} given`, {
      details: { kit: first.kit, need: first.threshold, have }
    })
  }
  const xs = new Set([...distinct.values()].map((s) => s.share[s.share.byteLength - 1]))
  if (xs.size !== distinct.size) throw EmbassyError.badInput(`shares of kit ${first.kit.slice(0, 8)} repeat a coordinate (damaged or altered)`)
  let key: Uint8Array
  try {
    key = await combine([...distinct.values()].map((s) => new Uint8Array(s.share)))
  } catch (err) {
    throw EmbassyError.badInput(`the shares of kit ${first.kit.slice(0, 8)} do not combine: ${(err as Error).message}`, { cause: err })
  }
  const plain = key.byteLength === KEY_BYTES ? secretboxOpen(first.ciphertext, first.nonce, key) : null
  sodium.sodium_memzero(key)
  if (!plain) throw EmbassyError.badInput(`the shares of kit ${first.kit.slice(0, 8)} do not open it (a damaged share, or shares altered together)`)
  try {
    return decodePayload(plain, first.kit)
  } finally {
    sodium.sodium_memzero(plain)
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

/** 2 ≤ m ≤ n ≤ MAX_SHARES, else BAD_ARGUMENT. */
function checkShareCounts(m: number, n: number): void {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 2 || n < m || n > MAX_SHARES) {
    throw EmbassyError.badArgument(`--shares M/N needs 2 ≤ M ≤ N ≤ ${MAX_SHARES} (got ${m}/${n}); for a single file use a passphrase kit`)
  }
}
