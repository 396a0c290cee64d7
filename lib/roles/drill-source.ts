/**
 * Where a continuity drill (drill.ts) gets its keys: a passphrase recovery kit or a read
 * capability, and the drill's own keys derived from them — its swarm identity (from the read key
 * and catalog key: one key per agency, admitted once by each embassy) and, for a kit, its report
 * signing key (from the agency's primary key), each under its own namespace.
 *
 * Owns: DrillSource and the drill key derivations. May import: kit/, data/read-capability, node/ (types), errors, ids.
 */
import fs from 'node:fs'
import crypto from 'hypercore-crypto'
import sodium from 'sodium-universal'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import { parseReadCapability } from '../data/read-capability.js'
import type { KeyPair } from '../node/node.js'
import { inspectKit, openKit, wipeKit } from '../kit/index.js'

/** Derivation namespaces of the drill's keys (BLAKE2b keyed with the secret, as in node/caps.ts). */
const [NS_DRILL_IDENTITY, NS_DRILL_SIGNER] = crypto.namespace('data-embassy/drill', 2) as [Buffer, Buffer]

/** A kit file larger than this is not a kit. */
const MAX_KIT_BYTES = 1024 * 1024

/** What a drill runs from: the agency's keys, the embassies it knows of, and the drill's keys. */
export interface DrillSource {
  kind: 'kit' | 'capability'
  catalogKey: Buffer
  readKey: Buffer
  agencyNodeKey: Buffer
  /** Node keys the kit lists (the agency's allow list and peers): its embassies and mirrors. */
  known: Buffer[]
  /** The kit's bootstrap list (a capability has none). */
  bootstrap: string[]
  /** The drill's own swarm identity (what embassies admit). */
  identity: KeyPair
  /** Signs the report: the kit's drill key, or a fresh key. */
  signer: KeyPair
  signerKind: 'kit' | 'fresh'
}

function keyed(parts: Uint8Array[], key: Uint8Array): Buffer {
  const out = Buffer.alloc(32)
  sodium.crypto_generichash_batch(out, parts, key)
  return out
}

/** The drill's swarm identity for one agency: from its read key and catalog key (kit or capability alike). */
export function drillIdentity(readKey: Uint8Array, catalogKey: Uint8Array): KeyPair {
  const seed = keyed([NS_DRILL_IDENTITY, catalogKey], readKey)
  const kp = crypto.keyPair(seed)
  seed.fill(0)
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) }
}

/** The kit's drill signing key: from the agency's primary key, domain-separated from every other use of it. */
export function drillSigner(primaryKey: Uint8Array): KeyPair {
  const seed = keyed([NS_DRILL_SIGNER], primaryKey)
  const kp = crypto.keyPair(seed)
  seed.fill(0)
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) }
}

/** A file's text for a drill source; BAD_INPUT when missing, not a file, or too large. */
export function readSourceFile(file: string, what: string): string {
  let st: fs.Stats
  try {
    st = fs.statSync(file)
  } catch (err) {
    throw EmbassyError.badInput(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { details: { file }, cause: err })
  }
  if (!st.isFile()) throw EmbassyError.badInput(`the ${what} ${file} is not a file`, { details: { file } })
  if (st.size > MAX_KIT_BYTES) throw EmbassyError.badInput(`the ${what} ${file} is too large (${st.size} bytes)`, { details: { file } })
  return fs.readFileSync(file, 'utf8')
}

/** True when the kit text is a passphrase kit (a drill needs its passphrase); BAD_INPUT when it is no kit. */
export function kitIsSealed(text: string, label: string): boolean {
  const info = inspectKit(text, label)
  if (info.type !== 'passphrase') throw EmbassyError.badArgument(`${label} is one share of a kit: a drill runs from a passphrase kit (or --capability-file)`)
  return true
}

/** Opens a passphrase kit for drills; the primary key is used for the signing key only and wiped. */
export async function drillSourceFromKit(text: string, passphrase: string, label = 'the kit file'): Promise<DrillSource> {
  kitIsSealed(text, label)
  const contents = await openKit(text, passphrase)
  try {
    if ((contents.role ?? 'agency') !== 'agency' || contents.readKey.byteLength !== 32 || contents.catalogKey.byteLength !== 32) {
      throw EmbassyError.badArgument(`${label} is the kit of ${contents.role ?? 'a node'} ${toZ32(contents.nodeKey)}, not of an agency: a drill runs from an agency's kit (or --capability-file)`)
    }
    const readKey = Buffer.from(contents.readKey)
    const catalogKey = Buffer.from(contents.catalogKey)
    const known = [...new Set([...contents.allow, ...contents.peers])].map((k) => parseKey(k))
    return {
      kind: 'kit',
      catalogKey,
      readKey,
      agencyNodeKey: Buffer.from(contents.nodeKey),
      known,
      bootstrap: [...contents.bootstrap],
      identity: drillIdentity(readKey, catalogKey),
      signer: drillSigner(contents.primaryKey),
      signerKind: 'kit'
    }
  } finally {
    wipeKit(contents)
  }
}

/** A read capability's text as a drill source (BAD_CAPABILITY when damaged); the report key is fresh. */
export function drillSourceFromCapability(text: string): DrillSource {
  const cap = parseReadCapability(text.trim())
  const readKey = Buffer.from(cap.readKey)
  const catalogKey = Buffer.from(cap.catalogKey)
  const kp = crypto.keyPair()
  return {
    kind: 'capability',
    catalogKey,
    readKey,
    agencyNodeKey: Buffer.from(cap.agencyNodeKey),
    known: [],
    bootstrap: [],
    identity: drillIdentity(readKey, catalogKey),
    signer: { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) },
    signerKind: 'fresh'
  }
}
