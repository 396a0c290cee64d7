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

/** Most share subsets tried when looking for the damaged ones (a bound on hostile input). */
export const MAX_SHARE_SUBSETS = 20_000

/** Kit contents restored from shares, and the shares that were not part of the kit. */
export interface CombineReport {
  contents: KitContents
  /** Labels of shares that are damaged or altered (a bad checksum, or not on the kit's polynomial); unused. */
  damaged: string[]
}

/**
 * Restores kit contents from share files (texts); `labels` name them in errors (file names).
 * BAD_INPUT when a share is damaged, shares of different kits are mixed, or too few are given.
 */
export async function combineShares(texts: readonly string[], labels: readonly string[] = texts.map((_, i) => `share #${i + 1}`)): Promise<KitContents> {
  return (await combineSharesReport(texts, labels)).contents
}

interface Candidate {
  env: ShareEnvelope
  label: string
}

/**
 * Like combineShares, and names the damaged shares: a share whose checksum was recomputed after it
 * was altered passes the checksum but does not lie on the kit's polynomial. When the shares given
 * do not open the kit together, every subset of `threshold` of them is tried; the kit opens when
 * any `threshold` good shares are among them, and each other share is then tested against the
 * good ones. With exactly `threshold` shares a damaged one cannot be singled out (the error says
 * so: give one more share).
 */
export async function combineSharesReport(texts: readonly string[], labels: readonly string[] = texts.map((_, i) => `share #${i + 1}`)): Promise<CombineReport> {
  if (texts.length === 0) throw EmbassyError.badArgument('no shares given')
  const label = (i: number) => labels[i] ?? `share #${i + 1}`
  const damaged: string[] = []
  const parsed: Candidate[] = []
  let firstError: unknown = null
  texts.forEach((t, i) => {
    try {
      parsed.push({ env: parseShare(t, label(i)), label: label(i) })
    } catch (err) {
      // A share whose checksum fails is damaged; the others may still restore the kit.
      if (!(err instanceof EmbassyError) || err.code !== 'BAD_INPUT' || err.details.index === undefined) throw err
      firstError ??= err
      damaged.push(label(i))
    }
  })
  if (parsed.length === 0) throw firstError ?? EmbassyError.badArgument('no shares given')
  const kits = [...new Set(parsed.map((s) => s.env.kit))]
  if (kits.length > 1) {
    throw EmbassyError.badInput(`these shares belong to ${kits.length} different kits (${kits.map((k) => k.slice(0, 8)).join(', ')}); give shares of one kit only`, { details: { kits } })
  }
  // Shares of one kit agree on everything but index and share bytes: the largest group that does
  // is the kit; a share that disagrees was altered.
  const groups = new Map<string, Candidate[]>()
  for (const c of parsed) {
    const e = c.env
    const key = `${e.threshold}/${e.shares}/${e.nonce.toString('hex')}/${e.ciphertext.toString('hex')}`
    groups.set(key, [...(groups.get(key) ?? []), c])
  }
  const group = [...groups.values()].sort((a, b) => b.length - a.length)[0]!
  for (const c of parsed) if (!group.includes(c)) damaged.push(c.label)
  // One candidate per distinct (index, share bytes); the same file given twice counts once.
  const candidates: Candidate[] = []
  for (const c of group) if (!candidates.some((d) => d.env.index === c.env.index && d.env.share.equals(c.env.share))) candidates.push(c)
  const first = group[0]!.env
  const kitId = first.kit.slice(0, 8)
  const indexes = new Set(candidates.map((c) => c.env.index))
  if (indexes.size < first.threshold) {
    if (firstError && damaged.length > 0 && parsed.length < texts.length) throw firstError
    const have = indexes.size
    throw EmbassyError.badInput(
      `kit ${kitId} needs ${first.threshold} of its ${first.shares} shares; ${have === 1 ? 'only 1 was' : `only ${have} were`} given${damaged.length ? ` intact (damaged: ${damaged.join(', ')})` : ''}`,
      { details: { kit: first.kit, need: first.threshold, have, damaged } }
    )
  }
  const found = await findOpeningSubset(candidates, first.threshold)
  if (!found) {
    const exact = candidates.length === first.threshold
    throw EmbassyError.badInput(
      exact
        ? `the shares of kit ${kitId} do not open it: one of them is damaged or altered (a share's checksum can be recomputed by whoever altered it); with exactly ${first.threshold} shares the bad one cannot be singled out: add another share of this kit`
        : `no ${first.threshold} of the ${candidates.length} shares given open kit ${kitId}: too many of them are damaged or altered (a damaged share, or shares altered together)`,
      { details: { kit: first.kit, need: first.threshold, have: candidates.length, damaged } }
    )
  }
  // Every other candidate either lies on the kit's polynomial (good) or not (damaged).
  for (const c of candidates) {
    if (found.subset.includes(c)) continue
    const sameX = found.subset.findIndex((s) => xOf(s) === xOf(c))
    const others = found.subset.filter((_, i) => i !== (sameX === -1 ? 0 : sameX))
    const key = await combineKey([...others, c])
    const ok = key !== null && key.equals(found.key)
    if (key) sodium.sodium_memzero(key)
    if (!ok) damaged.push(c.label)
  }
  sodium.sodium_memzero(found.key)
  return { contents: found.contents, damaged }
}

function xOf(c: Candidate): number {
  return c.env.share[c.env.share.byteLength - 1]!
}

/** Combines the shares' key; null when the library refuses them. */
async function combineKey(subset: readonly Candidate[]): Promise<Buffer | null> {
  if (new Set(subset.map(xOf)).size !== subset.length) return null
  try {
    const key = await combine(subset.map((c) => new Uint8Array(c.env.share)))
    const out = Buffer.from(key)
    sodium.sodium_memzero(key)
    return out.byteLength === KEY_BYTES ? out : null
  } catch {
    return null
  }
}

/** The first set of shares that opens the kit: all of them, else each subset of `m` (bounded). */
async function findOpeningSubset(candidates: readonly Candidate[], m: number): Promise<{ subset: Candidate[]; key: Buffer; contents: KitContents } | null> {
  const attempt = async (subset: Candidate[]) => {
    const key = await combineKey(subset)
    if (!key) return null
    const env = subset[0]!.env
    const plain = secretboxOpen(env.ciphertext, env.nonce, key)
    if (!plain) {
      sodium.sodium_memzero(key)
      return null
    }
    try {
      return { subset, key, contents: decodePayload(plain, env.kit) }
    } finally {
      sodium.sodium_memzero(plain)
    }
  }
  const all = await attempt([...candidates])
  if (all || candidates.length === m) return all
  let tried = 0
  for (const subset of combinations(candidates, m)) {
    if (++tried > MAX_SHARE_SUBSETS) return null
    const r = await attempt(subset)
    if (r) return r
  }
  return null
}

/** Every `k`-element subset of `items`, in order. */
function* combinations<T>(items: readonly T[], k: number, from = 0, acc: T[] = []): Generator<T[]> {
  if (acc.length === k) {
    yield [...acc]
    return
  }
  for (let i = from; i <= items.length - (k - acc.length); i++) {
    acc.push(items[i]!)
    yield* combinations(items, k, i + 1, acc)
    acc.pop()
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
