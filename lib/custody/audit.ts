/**
 * Audits, not claims: possession of a core's blocks is shown by challenge. The auditor picks
 * block indices and a fresh nonce; the holder answers, per index, BLAKE2b-256(nonce ‖ the block's
 * bytes as stored) — ciphertext on an encrypted core, so a blind holder and the agency compute the
 * same value — read with `wait: false` (a holder never fetches a block to answer), and signs the
 * answer with its node key. The auditor computes the same values over its own copy and compares.
 *
 * This file: the values, the holder's side (ChallengeAnswerer), the auditor's side (Challenger),
 * the sampling plan (random samples + a rotating sweep per period) and the detection math.
 *
 * Owns: custody audits. May import: node/, data/, net/ (types), errors, ids, protocol/.
 */
import crypto from 'hypercore-crypto'
import sodium from 'sodium-universal'
import type Hypercore from 'hypercore'
import { keyZ32 } from '../ids.js'
import type { KeyPair } from '../node/node.js'
import type { Peer } from '../net/network.js'
import {
  AUDIT_NONCE_BYTES,
  AUDIT_VALUE_BYTES,
  AnswerStatus,
  MESSAGE_SINCE_MINOR,
  MAX_CHALLENGE_INDICES,
  answerSignable,
  type Answer,
  type Challenge
} from '../../protocol/index.js'

/** How audits run; every field is configurable (config.json `audit`, or the role's options). */
export interface AuditSettings {
  /**
   * Time between two audits of one embassy and core (ms). @default 600_000 — gentle at scale: the
   * bench measured ~0.5 ms of holder CPU per audited 64 KiB block, so 10,000 cores × 4 samples
   * every 10 min cost an embassy ~4 % of one core (every minute with 8 samples: ~60 %).
   */
  intervalMs: number
  /** Random samples per audit. @default 4 */
  samples: number
  /** Every claimed block of every core is challenged at least once per period (ms). @default 86_400_000 */
  periodMs: number
  /** An answer is due within this many ms per challenged block (at least `minDeadlineMs`). @default 250 */
  deadlinePerBlockMs: number
  /** Lower bound of a challenge's deadline (ms). @default 2_000 */
  minDeadlineMs: number
  /** A newly connected embassy is first audited this long after its first receipt (ms). @default 5_000 */
  firstAuditMs: number
}

export const AUDIT_DEFAULTS: Readonly<AuditSettings> = {
  intervalMs: 600_000,
  samples: 4,
  periodMs: 24 * 60 * 60_000,
  deadlinePerBlockMs: 250,
  minDeadlineMs: 2_000,
  firstAuditMs: 5_000
}

/** Challenges one challenger may have in flight at a holder; more are answered BUSY. */
export const MAX_CHALLENGES_IN_FLIGHT = 4
/** Nonces a holder remembers to refuse replays (oldest forgotten first). */
export const MAX_REMEMBERED_NONCES = 65_536

const ZERO_VALUE = Buffer.alloc(AUDIT_VALUE_BYTES)

/** BLAKE2b-256(nonce ‖ block) — 32 zero bytes for a block that is not there. */
export function auditValue(nonce: Uint8Array, block: Uint8Array | null): Buffer {
  if (!block) return Buffer.from(ZERO_VALUE)
  const out = Buffer.alloc(AUDIT_VALUE_BYTES)
  sodium.crypto_generichash_batch(out, [Buffer.from(nonce), Buffer.from(block)])
  return out
}

/** The block's bytes as stored (ciphertext on an encrypted core), never fetched from a peer. */
export async function storedBlock(core: Hypercore, index: number): Promise<Buffer | null> {
  if (index >= core.length) return null
  try {
    const b = (await core.get(index, { raw: true, wait: false } as Parameters<Hypercore['get']>[1])) as Buffer | null
    return b ? Buffer.from(b) : null
  } catch {
    return null
  }
}

export function randomNonce(): Buffer {
  return crypto.randomBytes(AUDIT_NONCE_BYTES)
}

export function verifyAnswerSignature(a: Answer, holder: Uint8Array, challenger: Uint8Array, ch: Pick<Challenge, 'core' | 'nonce' | 'indices'>): boolean {
  try {
    return crypto.verify(answerSignable(challenger, ch, a), a.signature, holder)
  } catch {
    return false
  }
}

/**
 * The holder's side: answers challenges for the cores `find` returns, from storage only, signed;
 * a replayed nonce is refused (REPLAYED), a flood is answered BUSY. Never throws on peer input.
 */
/** How an answerer finds the core a challenge names (see ChallengeAnswerer). */
export type AnswerLookup = (core: Uint8Array) => Hypercore | null | { core: Hypercore; release: () => void } | Promise<Hypercore | null | { core: Hypercore; release: () => void }>

export class ChallengeAnswerer {
  readonly #keyPair: KeyPair
  readonly #find: AnswerLookup
  #nonces = new Set<string>()
  #inFlight = new Map<string, number>()
  readonly stats = { answered: 0, replayed: 0, busy: 0, notHeld: 0 }
  /** For tests: holds an answer back (a slow holder). */
  delay: ((ch: Challenge) => Promise<void>) | null = null

  /**
   * @param find the held core a challenge names, or null when not held; it may open the core
   *   (a holder whose idle cores are closed) and may return `{ core, release }`, then release() is
   *   called once the answer is made (a session of its own, closed after)
   */
  constructor(keyPair: KeyPair, find: AnswerLookup) {
    this.#keyPair = keyPair
    this.#find = find
  }

  /** Answers `ch` from `peer` on its channel. */
  handle(peer: Peer, ch: Challenge): void {
    this.answer(peer.key, ch).then(
      (a) => {
        peer.channel.send('answer', a)
      },
      () => {}
    )
  }

  /** The signed answer to `ch` from `challenger`. */
  async answer(challenger: Uint8Array, ch: Challenge): Promise<Answer> {
    const who = Buffer.from(challenger).toString('hex')
    const nonce = Buffer.from(ch.nonce).toString('hex')
    if (this.#nonces.has(nonce)) {
      this.stats.replayed++
      return this.#sign(challenger, ch, AnswerStatus.REPLAYED, [])
    }
    const busy = this.#inFlight.get(who) ?? 0
    if (busy >= MAX_CHALLENGES_IN_FLIGHT) {
      this.stats.busy++
      return this.#sign(challenger, ch, AnswerStatus.BUSY, [])
    }
    this.#remember(nonce)
    this.#inFlight.set(who, busy + 1)
    let found: Awaited<ReturnType<AnswerLookup>> = null
    try {
      found = await this.#find(ch.core)
    } catch {
      found = null
    }
    const core = found && 'release' in found ? found.core : found
    if (!core || core.closing) {
      this.#done(who)
      if (found && 'release' in found) found.release()
      this.stats.notHeld++
      return this.#sign(challenger, ch, AnswerStatus.NOT_HELD, [])
    }
    try {
      const values: Buffer[] = []
      for (const i of ch.indices) values.push(auditValue(ch.nonce, await storedBlock(core, i)))
      if (this.delay) await this.delay(ch)
      this.stats.answered++
      return this.#sign(challenger, ch, AnswerStatus.OK, values)
    } finally {
      this.#done(who)
      if (found && 'release' in found) found.release()
    }
  }

  #done(who: string): void {
    const n = (this.#inFlight.get(who) ?? 1) - 1
    if (n <= 0) this.#inFlight.delete(who)
    else this.#inFlight.set(who, n)
  }

  #remember(nonce: string): void {
    this.#nonces.add(nonce)
    if (this.#nonces.size > MAX_REMEMBERED_NONCES) this.#nonces.delete(this.#nonces.values().next().value as string)
  }

  #sign(challenger: Uint8Array, ch: Challenge, status: number, values: Buffer[]): Answer {
    const body = { status, time: Date.now(), values }
    const signature = crypto.sign(answerSignable(challenger, ch, body), this.#keyPair.secretKey)
    return { id: ch.id, core: ch.core, nonce: ch.nonce, ...body, signature }
  }
}

/** The outcome of one challenge of one core at one holder. */
export interface AuditResult {
  /** Node key (z32) of the audited holder. */
  embassy: string
  /** Dataset name (or id), null for the catalog. */
  dataset: string | null
  core: string
  /** Blocks challenged and checked. */
  sampled: number
  passed: number
  failed: number
  ms: number
  /** When the audit ran (ms since epoch, the auditor's clock). */
  at: number
  error?: string
}

/** One challenge with its answer, as the audit log keeps it. */
export interface AuditExchange {
  result: AuditResult
  /** Block indices challenged. */
  indices: number[]
  /** Indices whose value was wrong or missing. */
  failedIndices: number[]
  challenge: { id: number; core: string; nonce: string; indices: number[] } | null
  answer: { status: number; time: number; values: string[]; signature: string } | null
}

const STATUS_TEXT: Record<number, string> = {
  [AnswerStatus.NOT_HELD]: 'the holder says it does not hold this core',
  [AnswerStatus.REPLAYED]: 'the holder refused the challenge as a replay',
  [AnswerStatus.BUSY]: 'the holder was busy'
}

interface Pending {
  peer: string
  ch: Challenge
  resolve: (a: Answer | null) => void
  timer: NodeJS.Timeout
}

/** Answers the auditor did not expect (unknown id, another peer's, a replay): counted, never trusted. */
export interface StrayAnswer {
  peer: string
  id: number
  reason: string
}

/**
 * The auditor's side: sends challenges, waits for answers up to a per-block deadline, checks each
 * answer's signature and values against the auditor's own copy (hash mode: the auditor holds the
 * blocks). One pending map; one timer per challenge in flight.
 */
export class Challenger {
  readonly #keyPair: KeyPair
  #nextId = 1
  #pending = new Map<number, Pending>()
  readonly stray: StrayAnswer[] = []
  onstray: ((s: StrayAnswer) => void) | null = null

  constructor(keyPair: KeyPair) {
    this.#keyPair = keyPair
  }

  /** An answer arrived from `peer`. */
  onanswer(peer: Peer, a: Answer): void {
    const p = this.#pending.get(a.id)
    if (!p || p.peer !== peer.id || !Buffer.from(p.ch.nonce).equals(Buffer.from(a.nonce)) || !Buffer.from(p.ch.core).equals(Buffer.from(a.core))) {
      const s = { peer: keyZ32(peer), id: a.id, reason: p ? 'an answer that does not match its challenge' : 'an answer to no pending challenge (late, replayed or unsolicited)' }
      this.stray.push(s)
      if (this.stray.length > 100) this.stray.shift()
      this.onstray?.(s)
      return
    }
    this.#pending.delete(a.id)
    clearTimeout(p.timer)
    p.resolve(a)
  }

  /**
   * Challenges `peer` for `indices` of `own` (the auditor's copy) and checks the answer. A holder
   * on a custody minor without challenges, or one that does not answer in time, fails every sample.
   */
  async audit(peer: Peer, own: Hypercore, indices: number[], opts: { dataset: string | null; settings: AuditSettings }): Promise<AuditExchange> {
    const started = Date.now()
    const core = keyZ32(own)
    const base = { embassy: keyZ32(peer), dataset: opts.dataset, core, at: started }
    const fail = (error: string, challenge: AuditExchange['challenge'] = null, answer: AuditExchange['answer'] = null): AuditExchange => ({
      result: { ...base, sampled: indices.length, passed: 0, failed: indices.length, ms: Date.now() - started, error },
      indices,
      failedIndices: indices,
      challenge,
      answer
    })
    if (indices.length === 0) return { result: { ...base, sampled: 0, passed: 0, failed: 0, ms: 0 }, indices, failedIndices: [], challenge: null, answer: null }
    if (!peer.channel.supports('challenge')) {
      return fail(`the holder speaks custody protocol 1.${peer.handshake?.minor ?? 0}, which has no audit challenge (needs 1.${MESSAGE_SINCE_MINOR.challenge}): it cannot show it holds the blocks`)
    }
    const nonce = randomNonce()
    const id = this.#nextId++
    const ch: Challenge = { id, core: own.key!, nonce, indices: indices.slice(0, MAX_CHALLENGE_INDICES) }
    const challenge = { id, core, nonce: nonce.toString('hex'), indices: ch.indices }
    // Our own values first (from storage): the deadline measures the holder only.
    const expected: Array<Buffer | null> = []
    for (const i of ch.indices) {
      const block = await storedBlock(own, i)
      expected.push(block ? auditValue(nonce, block) : null)
    }
    const deadline = Math.max(opts.settings.minDeadlineMs, opts.settings.deadlinePerBlockMs * ch.indices.length)
    const got = await new Promise<Answer | null>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        resolve(null)
      }, deadline)
      this.#pending.set(id, { peer: peer.id, ch, resolve, timer })
      if (!peer.channel.send('challenge', ch)) {
        this.#pending.delete(id)
        clearTimeout(timer)
        resolve(null)
      }
    })
    if (!got) return fail(peer.channel.closed ? 'the custody channel to the holder is closed' : `no answer within the deadline (${deadline} ms for ${ch.indices.length} block(s))`, challenge)
    const answer = { status: got.status, time: got.time, values: got.values.map((v) => Buffer.from(v).toString('hex')), signature: Buffer.from(got.signature).toString('hex') }
    if (!verifyAnswerSignature(got, peer.key, this.#keyPair.publicKey, ch)) return fail('the answer\'s signature does not verify with the holder\'s node key', challenge, answer)
    if (got.status !== AnswerStatus.OK) return fail(STATUS_TEXT[got.status] ?? `the holder answered with status ${got.status}`, challenge, answer)
    if (got.values.length !== ch.indices.length) return fail(`the answer has ${got.values.length} value(s) for ${ch.indices.length} block(s)`, challenge, answer)
    const failedIndices: number[] = []
    let checked = 0
    ch.indices.forEach((index, k) => {
      const want = expected[k]
      if (!want) return // we lack the block ourselves (restoring): not judged
      checked++
      if (!want.equals(Buffer.from(got.values[k]!))) failedIndices.push(index)
    })
    const result: AuditResult = { ...base, sampled: checked, passed: checked - failedIndices.length, failed: failedIndices.length, ms: Date.now() - started }
    if (failedIndices.length > 0) result.error = `${failedIndices.length} of ${checked} block(s) answered wrong or missing (first: block ${failedIndices[0]})`
    return { result, indices: ch.indices, failedIndices, challenge, answer }
  }

  /** Pending challenges fail now (closing). */
  close(): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.resolve(null)
    }
    this.#pending.clear()
  }
}

/** Where one (holder, core) stands in the current audit period. */
export interface SweepState {
  /** Start of the current period (ms since epoch). */
  periodStart: number
  /** Next block the rotating sweep challenges. */
  cursor: number
  /** True once the sweep reached the claimed length in this period. */
  swept: boolean
}

/**
 * The indices of one audit: the next slice of the rotating sweep (so that every block below
 * `claimed` is challenged once per period: what is left of the sweep over the audits left in the
 * period, at most MAX_CHALLENGE_INDICES − samples per audit) plus
 * `samples` random ones. `state` advances. At most MAX_CHALLENGE_INDICES.
 */
export function planAudit(state: SweepState, claimed: number, settings: AuditSettings, now: number, samples = settings.samples): number[] {
  if (claimed <= 0) return []
  if (now - state.periodStart >= settings.periodMs) {
    state.periodStart = now
    state.cursor = 0
    state.swept = false
  }
  const out = new Set<number>()
  // The audits left in this period share what is left of the sweep: an audit that runs late (a
  // busy node) takes a larger slice, so the sweep still ends within the period.
  const left = Math.max(1, Math.floor((state.periodStart + settings.periodMs - now) / Math.max(1, settings.intervalMs)))
  const perAudit = Math.min(MAX_CHALLENGE_INDICES - Math.min(samples, MAX_CHALLENGE_INDICES), Math.ceil(Math.max(0, claimed - state.cursor) / left))
  for (let i = 0; i < perAudit && state.cursor < claimed; i++) out.add(state.cursor++)
  // Not latched: a claim that grew since makes the sweep go on to the new end.
  state.swept = state.cursor >= claimed
  // Random samples on top (distinct from the sweep's, so `samples` more blocks are checked).
  const target = Math.min(claimed, out.size + Math.max(0, samples), MAX_CHALLENGE_INDICES)
  let guard = 0
  while (out.size < target && guard++ < 20 * MAX_CHALLENGE_INDICES) out.add(randomIndex(claimed))
  return [...out].sort((a, b) => a - b)
}

function randomIndex(n: number): number {
  return crypto.randomBytes(6).readUIntBE(0, 6) % n
}

/**
 * The detection math: `k` distinct blocks sampled uniformly at random and all answered right. A
 * holder missing a fraction x of the blocks escapes one sample with probability (1 − x), all k
 * with (1 − x)^k. So with confidence 1 − (1 − x)^k fewer than x of the blocks are missing; and for
 * a confidence c, the largest fraction that could still hide is x = 1 − (1 − c)^(1/k).
 */
export function auditConfidence(k: number, missing = 0.01): { samples: number; missingFraction: number; confidence: number; text: string } {
  const confidence = k <= 0 ? 0 : 1 - Math.pow(1 - missing, k)
  const pct = Math.floor(confidence * 1000) / 10
  const text = k <= 0 ? 'no blocks sampled yet' : `≥ ${pct} % that fewer than ${missing * 100} % of blocks are missing (${k} sampled)`
  return { samples: k, missingFraction: missing, confidence, text }
}

/** Samples needed for confidence `c` that fewer than a fraction `missing` of blocks are missing. */
export function samplesFor(c: number, missing = 0.01): number {
  return Math.ceil(Math.log(1 - c) / Math.log(1 - missing))
}
