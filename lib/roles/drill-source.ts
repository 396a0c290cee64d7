/**
 * Where a continuity drill (drill.ts) gets its keys: a passphrase recovery kit, M shares of a kit
 * split with `kit export --shares M/N`, or a read capability, and the drill's own keys derived from them — its swarm identity (from the read key
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
import { combineSharesReport, inspectKit, openKit, wipeKit, type KitContents } from '../kit/index.js'

/** Derivation namespaces of the drill's keys (BLAKE2b keyed with the secret, as in node/caps.ts). */
const [NS_DRILL_IDENTITY, NS_DRILL_SIGNER] = crypto.namespace('data-embassy/drill', 2) as [Buffer, Buffer]

/** A kit file larger than this is not a kit. */
const MAX_KIT_BYTES = 1024 * 1024

/** What a drill runs from: the agency's keys, the embassies it knows of, and the drill's keys. */
export interface DrillSource {
  /** A passphrase kit, shares of a kit, or a read capability. */
  kind: 'kit' | 'shares' | 'capability'
  catalogKey: Buffer
  readKey: Buffer
  agencyNodeKey: Buffer
  /** Node keys the kit lists (the agency's allow list and peers): its embassies and mirrors. */
  known: Buffer[]
  /** The kit's bootstrap list (a capability has none). */
  bootstrap: string[]
  /** The drill's own swarm identity (what embassies admit). */
  identity: KeyPair
  /** Signs the report: the kit's drill key (a passphrase kit or shares of one agency: the same key), or a fresh key. */
  signer: KeyPair
  signerKind: 'kit' | 'fresh'
  /** Shares: the ones given that are damaged or altered and were not used (labels: file names). */
  damagedShares?: string[]
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
  if (info.type !== 'passphrase') throw EmbassyError.badArgument(`${label} is one share of a kit: give the shares with --share FILE (one per share, at least as many as the kit needs), not --kit`)
  return true
}

/** Opens a passphrase kit for drills; the primary key is used for the signing key only and wiped. */
export async function drillSourceFromKit(text: string, passphrase: string, label = 'the kit file'): Promise<DrillSource> {
  kitIsSealed(text, label)
  return fromKitContents(await openKit(text, passphrase), 'kit', label)
}

/**
 * Opens a kit from M of its N shares (`kit export --shares M/N`) for drills, like `kit import`
 * does: a damaged or altered share is named in `damagedShares` and left out while enough good
 * ones remain; too few shares, shares of two kits, or a passphrase kit among them: BAD_INPUT /
 * BAD_ARGUMENT. The drill key and the report signing key are the agency's, as from its
 * passphrase kit.
 */
export async function drillSourceFromShares(texts: readonly string[], labels: readonly string[]): Promise<DrillSource> {
  if (texts.length === 0) throw EmbassyError.badArgument('no share given: --share FILE, once per share')
  texts.forEach((text, i) => {
    let type: string
    try {
      type = inspectKit(text, labels[i]).type
    } catch (err) {
      // A share whose checksum fails is still a share: combining names it (and leaves it out).
      if (err instanceof EmbassyError && err.details.index !== undefined) return
      throw err
    }
    if (type !== 'share') throw EmbassyError.badArgument(`${labels[i] ?? `share #${i + 1}`} is a passphrase kit, not a share: give it with --kit FILE`)
  })
  const report = await combineSharesReport(texts, labels)
  return { ...fromKitContents(report.contents, 'shares', labels.join(', ')), damagedShares: report.damaged }
}

/** The drill source of an opened kit (an agency's only); wipes the contents. */
function fromKitContents(contents: KitContents, kind: 'kit' | 'shares', label: string): DrillSource {
  try {
    if ((contents.role ?? 'agency') !== 'agency' || contents.readKey.byteLength !== 32 || contents.catalogKey.byteLength !== 32) {
      throw EmbassyError.badArgument(`${label} ${kind === 'shares' ? 'open' : 'is'} the kit of ${contents.role ?? 'a node'} ${toZ32(contents.nodeKey)}, not of an agency: a drill runs from an agency's kit (or --capability-file)`)
    }
    const readKey = Buffer.from(contents.readKey)
    const catalogKey = Buffer.from(contents.catalogKey)
    const known = [...new Set([...contents.allow, ...contents.peers])].map((k) => parseKey(k))
    return {
      kind,
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
