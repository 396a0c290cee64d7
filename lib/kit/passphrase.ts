/**
 * Passphrase kits: the payload sealed with a key derived from a passphrase (Argon2id 1.3, then
 * XSalsa20-Poly1305 secretbox; the format is specified in format.ts). Owns the KDF limits check,
 * the passphrase rule (checkPassphrase), the secretbox primitives shares.ts also uses, and
 * sealKit / openKit — each also in two halves, so that the passphrase stays with the person who
 * types it: deriveSealingKey (the caller's side: Argon2id) and sealKitWithKey (the node's side:
 * only a key good for this one kit crosses the control socket), openKitWithKey (the caller
 * checks the file the node wrote).
 * May import: kit/format, errors (and sodium-universal) — never the daemon, the roles, the gateway
 * or the CLI.
 */
import sodium from 'sodium-universal'
import { EmbassyError } from '../errors.js'
import {
  CIPHER,
  KDF_ALG,
  KDF_MEMLIMIT,
  KDF_OPSLIMIT,
  KEY_BYTES,
  KIT_FORMAT,
  KIT_ID_BYTES,
  KIT_VERSION,
  MAX_MEMLIMIT,
  MAX_OPSLIMIT,
  MIN_PASSPHRASE_LENGTH,
  SALT_BYTES,
  b64,
  decodePayload,
  encodePayload,
  parsePassphraseKit,
  writeJson,
  type KdfParams,
  type KitContents
} from './format.js'

/** `bytes` random bytes (kit ids, salts, nonces, share kit keys). */
export function random(bytes: number): Buffer {
  const b = Buffer.alloc(bytes)
  sodium.randombytes_buf(b)
  return b
}

/** crypto_secretbox_easy: the sealed payload, Poly1305 tag first. */
export function secretbox(plain: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(plain.byteLength + sodium.crypto_secretbox_MACBYTES)
  sodium.crypto_secretbox_easy(out, plain, nonce, key)
  return out
}

/** Opens a secretbox; null when the tag does not verify (wrong key or damaged ciphertext). */
export function secretboxOpen(cipher: Uint8Array, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  if (cipher.byteLength < sodium.crypto_secretbox_MACBYTES) return null
  const out = Buffer.alloc(cipher.byteLength - sodium.crypto_secretbox_MACBYTES)
  return sodium.crypto_secretbox_open_easy(out, cipher, nonce, key) ? out : null
}

/** Argon2id 1.3 over the NFKC-normalised passphrase: the 32-byte secretbox key. */
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

/**
 * The key one passphrase kit is sealed with: Argon2id over the passphrase with a fresh salt. It
 * opens only a kit sealed with this salt, and does not reveal the passphrase.
 */
export interface SealingKey extends KdfParams {
  key: Buffer
  salt: Buffer
}

/** Derives a fresh sealing key from a passphrase (checked) with a new salt; zero `key` after use. */
export async function deriveSealingKey(passphrase: string, kdf: KdfParams = { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }): Promise<SealingKey> {
  checkPassphrase(passphrase)
  checkKdf(kdf.opslimit, kdf.memlimit)
  const salt = random(SALT_BYTES)
  const key = await passphraseKey(passphrase, salt, kdf.opslimit, kdf.memlimit)
  return { key, salt, opslimit: kdf.opslimit, memlimit: kdf.memlimit }
}

/** Seals `contents` with a key from deriveSealingKey: the text of a passphrase kit file. */
export function sealKitWithKey(contents: KitContents, sealing: SealingKey): string {
  checkKdf(sealing.opslimit, sealing.memlimit)
  if (sealing.key.byteLength !== KEY_BYTES) throw EmbassyError.badArgument(`a kit sealing key is ${KEY_BYTES} bytes`)
  if (sealing.salt.byteLength !== SALT_BYTES) throw EmbassyError.badArgument(`a kit salt is ${SALT_BYTES} bytes`)
  const kit = random(KIT_ID_BYTES).toString('hex')
  const nonce = random(sodium.crypto_secretbox_NONCEBYTES)
  const plain = encodePayload(contents, kit)
  const ciphertext = secretbox(plain, nonce, sealing.key)
  sodium.sodium_memzero(plain)
  return writeJson({
    format: KIT_FORMAT,
    version: KIT_VERSION,
    note: 'Data Embassy recovery kit: restores an agency node (its keys, not its data). Keep it offline. Restore with `embassy kit import FILE --dir DIR` and the passphrase.',
    kit,
    kdf: { alg: KDF_ALG, opslimit: sealing.opslimit, memlimit: sealing.memlimit, salt: b64(sealing.salt) },
    cipher: CIPHER,
    nonce: b64(nonce),
    ciphertext: b64(ciphertext)
  })
}

/** Seals `contents` with a passphrase (Argon2id + secretbox): the text of a kit file. */
export async function sealKit(contents: KitContents, passphrase: string, kdf: KdfParams = { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }): Promise<string> {
  const sealing = await deriveSealingKey(passphrase, kdf)
  try {
    return sealKitWithKey(contents, sealing)
  } finally {
    sodium.sodium_memzero(sealing.key)
  }
}

/** Opens a passphrase kit; BAD_INPUT on a wrong passphrase or a damaged file. */
export async function openKit(text: string, passphrase: string): Promise<KitContents> {
  const env = parsePassphraseKit(text)
  if (typeof passphrase !== 'string' || passphrase === '') throw EmbassyError.badArgument('a passphrase is needed to open this kit')
  const key = await passphraseKey(passphrase, env.kdf.salt, env.kdf.opslimit, env.kdf.memlimit)
  try {
    return openEnvelope(env, key)
  } finally {
    sodium.sodium_memzero(key)
  }
}

/** Opens a passphrase kit with its sealing key (no KDF): the caller's check of a kit it had written. */
export function openKitWithKey(text: string, key: Uint8Array, label?: string): KitContents {
  return openEnvelope(parsePassphraseKit(text, label), key)
}

function openEnvelope(env: ReturnType<typeof parsePassphraseKit>, key: Uint8Array): KitContents {
  const plain = secretboxOpen(env.ciphertext, env.nonce, key)
  if (!plain) throw EmbassyError.badInput('wrong passphrase or damaged kit (the kit does not open)', { details: { kit: env.kit } })
  try {
    return decodePayload(plain, env.kit)
  } finally {
    sodium.sodium_memzero(plain)
  }
}

/** Refuses KDF costs outside what readers accept (MAX_OPSLIMIT, MAX_MEMLIMIT). */
function checkKdf(opslimit: number, memlimit: number): void {
  if (!Number.isSafeInteger(opslimit) || opslimit < 1 || opslimit > MAX_OPSLIMIT) throw EmbassyError.badInput(`kit KDF opslimit ${opslimit} is outside 1–${MAX_OPSLIMIT}`)
  if (!Number.isSafeInteger(memlimit) || memlimit < sodium.crypto_pwhash_MEMLIMIT_MIN || memlimit > MAX_MEMLIMIT) {
    throw EmbassyError.badInput(`kit KDF memlimit ${memlimit} is outside ${sodium.crypto_pwhash_MEMLIMIT_MIN}–${MAX_MEMLIMIT} bytes`)
  }
}
