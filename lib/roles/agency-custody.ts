/**
 * The agency's custody desk: everything the agency does with what its holders tell it — receipts
 * (checked against its own tree, kept in the ledger, custody-regressed / future-receipt /
 * not-an-embassy), witnessed heads (cosigners; a head its own tree contradicts is equivocation),
 * alarm reports (refused rewrites, equivocations with evidence), the holder list it sends its
 * embassies, and the custody status per dataset and embassy.
 *
 * Owns: agency custody. May import: custody/, data/, net/ (types), node/, errors, ids, protocol/.
 */
import type Hypercore from 'hypercore'
import { EmbassyError, withArticle } from '../errors.js'
import { parseKey as parseKeyZ, keyZ32, toZ32 } from '../ids.js'
import { byteLengthAt, treeHashAt, verifySignedHead } from '../data/tree.js'
import type { Catalog } from '../data/catalog.js'
import type { Datasets } from '../data/datasets.js'
import { AuditRunner, CustodyLedger, HeadBook, InOrder, checkReceipt, headEvidence, verifyWitnessSignature, type Alarm, type AuditSummary, type AuditableCore } from '../custody/index.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import { AlarmCode, type AlarmReport, type DatasetKindName, type Receipt, type WitnessedHead } from '../../protocol/index.js'
import type { Notice } from './role.js'
import { QuotaAlarmCode, alarmFromQuotaReport } from './quota.js'
import { CUSTODY_BEHIND_MS, CustodyMilestones } from './milestones.js'

/** One embassy's custody of one dataset, as `embassy status` shows it. */
export interface EmbassyCustody {
  nodeKey: string
  /** Blocks the embassy proved it holds (summed over the dataset's cores). */
  heldLength: number
  /** Blocks it lacks. */
  behindBlocks: number
  /** Bytes it lacks. */
  behindBytes: number
  /**
   * When the agency received and verified the embassy's newest receipt (ms since epoch, the
   * agency's clock; the oldest over the dataset's cores), null if none.
   */
  receiptAt: number | null
  /** Age of that receipt at the time of asking (ms, the agency's clock), null if none. */
  receiptAge: number | null
  connected: boolean
  /**
   * Cores of which the embassy holds history from before a rewrite (an older fork than the
   * agency's): it refused the rewrite and keeps what it verified. Such a core counts as not held.
   */
  preRewrite: Array<{ core: string; length: number; fork: number }>
  /** The embassy's audits of this dataset's cores (challenges it must answer from its own copy). */
  audit: AuditSummary
  /** False while the last audit of any of the dataset's cores failed (that core counts as not held). */
  held: boolean
}

export interface DatasetCustody {
  name: string
  kind: DatasetKindName
  /** Blocks, summed over the dataset's cores (a log: its records). */
  length: number
  byteLength: number
  embassies: EmbassyCustody[]
  /** Per core: the agency's head and how many holders cosigned exactly that head. */
  heads: Array<{ core: string; length: number; fork: number; cosigners: number }>
}

/** A receipt dated further ahead of the agency's clock than this is refused (future-receipt). */
export const MAX_RECEIPT_SKEW_MS = 5 * 60_000

/** Receipts kept while restoring (one per sender and core); more are dropped (they are re-sent). */
export const MAX_DEFERRED_RECEIPTS = 100_000
/**
 * Receipts of one holder for one core waiting to be judged at most: a holder sends a core's
 * receipts one per change, judged in well under a millisecond each; one that floods a core waits on
 * itself and is refused beyond this (counted, not judged).
 */
export const MAX_QUEUED_RECEIPTS = 64

export interface CustodyStatus {
  datasets: DatasetCustody[]
  alarms: Alarm[]
  alarmCounts: Record<string, number>
}

/** What the desk needs from its agency. */
export interface DeskAgency {
  readonly node: EmbassyNode
  readonly restoring: boolean
  readonly network: Network | null
  readonly catalog: Catalog
  readonly datasets: Datasets
  isAllowed(key: Buffer): boolean
  cores(): Promise<Map<string, { core: Hypercore; dataset: string | null }>>
  notice(level: Notice['level'], event: string, message: string, fields?: Record<string, unknown>): void
  emit(event: 'alarm' | 'receipt' | 'audit', value: unknown): boolean
  /** The restore gate: an embassy's report of a second live node goes to it. */
  readonly gate: { twinReported(reporter: string): boolean }
}

export class CustodyDesk {
  readonly ledger: CustodyLedger
  /** Heads holders witnessed, cross-checked against our own tree. */
  readonly heads = new HeadBook()
  /** Continuous audits of the embassies (challenges answered from their own copies). */
  readonly audits: AuditRunner
  /** Log lines when an embassy becomes fully held, falls behind, recovers (milestones.ts). */
  readonly milestones: CustodyMilestones
  readonly #agency: DeskAgency
  /** While restoring, receipts wait here (newest per sender and core) until our catalog is back. */
  #deferred = new Map<string, { peer: Peer; receipt: Receipt }>()
  /** Receipts being judged, in order per holder and core; a holder flooding one core is refused beyond MAX_QUEUED_RECEIPTS. */
  #judging = new InOrder(MAX_QUEUED_RECEIPTS)

  constructor(agency: DeskAgency) {
    this.#agency = agency
    this.ledger = new CustodyLedger(agency.node.dir)
    this.milestones = new CustodyMilestones(
      {
        embassies: () => agency.node.config.allow.filter((k) => this.ledger.role(k) === 'embassy'),
        cores: async () => (agency.restoring ? [] : [...(await agency.cores()).values()].map(({ core }) => ({ key: keyZ32(core), length: core.length, fork: core.fork }))),
        held: (embassy, core) => this.ledger.get(embassy, core),
        behindMs: () => (agency.node.config.custodyBehindSeconds ?? CUSTODY_BEHIND_MS / 1000) * 1000
      },
      (level, event, message, fields) => agency.notice(level, event, message, fields)
    )
    this.audits = new AuditRunner({
      dir: agency.node.dir,
      keyPair: agency.node.keyPair,
      settings: () => agency.node.config.audit,
      // A restoring agency lacks its own blocks: it audits once they are back.
      holders: () => (agency.restoring ? [] : [...(agency.network?.peers.values() ?? [])].filter((p) => p.role === 'embassy' && agency.isAllowed(p.key))),
      cores: () => this.#auditable(),
      claimed: (holder, core) => this.ledger.get(holder, core)?.length ?? 0,
      alarm: (a) => this.#alarm(a),
      onaudit: (x, state) => agency.emit('audit', { ...x, state }),
      onstray: (s) => agency.notice('warn', 'audit-stray-answer', `audit answer from ${s.peer} ignored: ${s.reason}`, { ...s })
    })
  }

  /** Every core of the agency, labelled by dataset name (null: the catalog). */
  async #auditable(): Promise<AuditableCore[]> {
    const names = new Map((await this.#agency.datasets.infos()).map((i) => [i.id, i.name ?? i.id]))
    return [...(await this.#agency.cores()).values()].map(({ core, dataset }) => ({ core, dataset: dataset === null ? null : (names.get(dataset) ?? dataset) }))
  }

  handlers(peer: Peer): CustodyHandlers {
    const fail = (what: string) => (err: unknown) => this.#agency.notice('error', 'error', `${what} from ${keyZ32(peer)}: ${(err as Error).message}`)
    return {
      receipt: (r) => {
        this.onreceipt(peer, r).catch(fail('receipt'))
      },
      head: (h) => {
        this.#onHead(peer, h).catch(fail('head'))
      },
      alarm: (r) => {
        this.#onReport(peer, r).catch(fail('alarm'))
      },
      answer: (a) => this.audits.onanswer(peer, a)
    }
  }

  /** The embassies this agency admitted (allowed, and known to be embassies). */
  #embassyKeys(): Buffer[] {
    return this.#agency.node.config.allow.filter((k) => this.ledger.role(k) === 'embassy').map((k) => parseKeyZ(k))
  }

  /** Tells every connected embassy who the other holders are, so they admit and cross-check each other. */
  sendHolders(): void {
    const holders = this.#embassyKeys()
    for (const p of this.#agency.network?.peers.values() ?? []) {
      // Auditors the agency admitted learn the list too: they audit the embassies while it is gone.
      if (p.role === 'embassy' || p.role === 'auditor') p.channel.send('holders', { catalog: this.#agency.catalog.key, holders })
    }
  }

  /**
   * A head a holder witnessed: a head signed with our key that our own tree contradicts means the
   * key signs histories we did not write (equivocation); a consistent one counts as a cosignature.
   */
  async #onHead(peer: Peer, h: WitnessedHead): Promise<void> {
    if (this.#agency.restoring) return
    const own = (await this.#agency.cores()).get(Buffer.from(h.core).toString('hex'))?.core
    if (!own) return
    const sender = keyZ32(peer)
    // A holder sends the heads it witnessed itself: one cosigned by any other key would count a
    // holder that never saw the head (any key can sign; only the connection's key is known here).
    if (!peer.key.equals(Buffer.from(h.witness))) {
      this.#alarm({ time: Date.now(), kind: 'bad-signature', peer: sender, core: toZ32(h.core), detail: `a witnessed head cosigned by ${toZ32(h.witness)}, not by the peer that sent it: not counted` })
      return
    }
    if (!verifyWitnessSignature(h) || !verifySignedHead(own, { ...h, signature: h.agencySignature })) {
      this.#alarm({ time: Date.now(), kind: 'bad-signature', peer: sender, core: toZ32(h.core), detail: 'a witnessed head whose signatures do not verify' })
      return
    }
    if (h.fork === own.fork && h.length <= own.length && h.length > 0) {
      const ours = await treeHashAt(own, h.length)
      if (!ours.equals(Buffer.from(h.treeHash))) {
        this.#alarm({
          time: Date.now(),
          kind: 'equivocation',
          peer: sender,
          core: toZ32(h.core),
          detail: `a head signed with this agency's key (length ${h.length}, fork ${h.fork}) contradicts the agency's own history: someone else holds the key`,
          evidence: [headEvidence(h), { length: h.length, fork: own.fork, treeHash: ours.toString('hex'), signature: null, witness: null }]
        })
        return
      }
    }
    this.heads.add(h)
  }

  /** An alarm an admitted holder reports (refused rewrite, equivocation with its evidence). */
  async #onReport(peer: Peer, r: AlarmReport): Promise<void> {
    const sender = keyZ32(peer)
    if (!this.#agency.isAllowed(peer.key)) return
    // An embassy near or over its quota for this agency (quota.ts).
    if (r.code === QuotaAlarmCode.NEAR || r.code === QuotaAlarmCode.EXCEEDED) {
      const quota = alarmFromQuotaReport(r, sender, this.#agency.catalog.key, peer.role)
      if (quota) this.#alarm(quota)
      return
    }
    const core = toZ32(r.core)
    if (r.code === AlarmCode.SECOND_LIVE_NODE) {
      if (peer.role !== 'embassy' || !Buffer.from(r.core).equals(this.#agency.catalog.key)) return
      const stopped = this.#agency.gate.twinReported(sender)
      this.#alarm({
        time: Date.now(),
        kind: 'second-live-node',
        peer: sender,
        core,
        detail: `embassy ${sender} sees two live nodes connecting with this agency's key (a kit imported while the original runs?)${stopped ? '; writes are refused here' : '; writes stop when more than half of the embassies report it'}: decide which one stands down`,
        reportedBy: sender
      })
      return
    }
    if (r.code === AlarmCode.DAMAGED_BLOCK) {
      const block = r.length
      if (r.offeredLength === 1) {
        if (this.ledger.resolveDamage(core, block, sender) > 0) {
          this.#agency.notice('info', 'block-repaired', `${peer.role} ${sender} repaired block ${block} of core ${core} from another holder`, { peer: sender, core, block })
        }
        return
      }
      this.#alarm({
        time: Date.now(),
        kind: 'damaged-block',
        peer: sender,
        core,
        block,
        detail: `${peer.role} ${sender} found block ${block} of core ${core} damaged in its storage; it does not serve it and fetches it again from another holder`,
        reportedBy: sender
      })
      return
    }
    if (r.code === AlarmCode.HISTORY_REWRITE) {
      this.#alarm({
        time: Date.now(),
        kind: 'history-rewrite',
        peer: r.offeredBy.every((x) => x === 0) ? sender : toZ32(r.offeredBy),
        core,
        detail: `${peer.role} ${sender} refused a rewrite of core ${core} (offered length ${r.offeredLength}, fork ${r.offeredFork}) and keeps the history it verified: length ${r.length}, fork ${r.fork}`,
        held: { length: r.length, fork: r.fork, treeHash: null },
        offered: { length: r.offeredLength, fork: r.offeredFork },
        reportedBy: sender
      })
      return
    }
    if (r.code === AlarmCode.EQUIVOCATION && r.heads.length >= 2) {
      const own = (await this.#agency.cores()).get(Buffer.from(r.core).toString('hex'))?.core
      const [a, b] = r.heads as [WitnessedHead, WitnessedHead]
      if (!own || ![a, b].every((h) => verifySignedHead(own, { ...h, signature: h.agencySignature }))) return
      if (a.length !== b.length || a.fork !== b.fork || Buffer.from(a.treeHash).equals(Buffer.from(b.treeHash))) return
      this.#alarm({
        time: Date.now(),
        kind: 'equivocation',
        peer: sender,
        core,
        detail: `two heads signed with this agency's key at length ${a.length} (fork ${a.fork}) differ: someone else holds the key`,
        evidence: [headEvidence(a), headEvidence(b)],
        reportedBy: sender
      })
    }
  }

  /**
   * A receipt from a peer: verified against our own tree, then kept (newest per embassy and core)
   * or turned into an alarm. Emits 'receipt' or 'alarm'. A holder's receipts of one core are judged
   * in the order they came: checking one below our signed length reads our tree from storage, one
   * at it does not, and a receipt kept after a newer one would read as custody that went back.
   */
  onreceipt(peer: Peer, r: Receipt): Promise<void> {
    return this.#judging.run(`${peer.id}/${Buffer.from(r.core).toString('hex')}`, () => this.#judge(peer, r))
  }

  async #judge(peer: Peer, r: Receipt): Promise<void> {
    const hex = Buffer.from(r.core).toString('hex')
    if (this.#agency.restoring) {
      // Our own cores are not back yet: we cannot judge the receipt now, so keep it for later.
      const id = `${peer.id}/${hex}`
      if (this.#deferred.size < MAX_DEFERRED_RECEIPTS || this.#deferred.has(id)) this.#deferred.set(id, { peer, receipt: r })
      return
    }
    const sender = keyZ32(peer)
    const core = toZ32(r.core)
    const now = Date.now()
    // Custody counts only from peers this agency admitted as embassies.
    if (peer.role !== 'embassy') {
      this.#alarm({ time: now, kind: 'not-an-embassy', peer: sender, core, detail: `a receipt from ${withArticle(peer.role)}, not an embassy: ignored (only embassies hold custody)` })
      return
    }
    if (r.time > now + MAX_RECEIPT_SKEW_MS) {
      this.#alarm({ time: now, kind: 'future-receipt', peer: sender, core, detail: `receipt dated ${new Date(r.time).toISOString()}, more than ${MAX_RECEIPT_SKEW_MS / 60_000} min ahead of this agency's clock: refused` })
      return
    }
    const own = (await this.#agency.cores()).get(hex)?.core ?? null
    const verdict = await checkReceipt(r, peer.key, own)
    if (!verdict.ok) {
      this.#alarm({ time: now, kind: verdict.kind, peer: sender, core, detail: verdict.detail })
      return
    }
    const prev = this.ledger.get(sender, core)
    const change = this.ledger.record(sender, core, r, now)
    if (change === 'regressed' && prev) {
      this.#alarm({ time: now, kind: 'custody-regressed', peer: sender, core, detail: `embassy now holds ${r.length} block(s) of core ${core}, down from ${prev.length}` })
    }
    this.#agency.emit('receipt', { embassy: sender, core, length: r.length, time: r.time, receivedAt: now, preRewrite: verdict.preRewrite })
    this.milestones.start()
  }

  /** Records an alarm; only a listed one (not a repeat inside the quiet window) is an event and a log line. */
  #alarm(a: Alarm): void {
    if (this.ledger.alarm(a)) this.#agency.emit('alarm', a)
  }

  /** Receipts that arrived while restoring, judged now that our own cores are back. */
  async replayDeferred(): Promise<void> {
    const deferred = [...this.#deferred.values()]
    this.#deferred.clear()
    for (const { peer, receipt } of deferred) await this.onreceipt(peer, receipt)
  }

  /** Records an alarm the agency itself raised (a malformed channel message). */
  alarm(a: Alarm): void {
    this.#alarm(a)
  }

  /** Per dataset and embassy: what it proved it holds, how far behind, how fresh the proof is. */
  async custody(now = Date.now()): Promise<CustodyStatus> {
    // Rows: every peer that proved custody, and every allowed peer not known to be a mirror.
    const embassies = [...new Set([...this.ledger.embassies(), ...this.#agency.node.config.allow.filter((k) => this.ledger.role(k) !== 'mirror')])]
    const datasets: DatasetCustody[] = []
    const infos = await this.#agency.datasets.infos()
    const cores = await this.#agency.cores()
    for (const info of infos) {
      const own = info.cores.map((k) => cores.get(k.toString('hex'))?.core).filter((c): c is Hypercore => !!c)
      const length = own.reduce((n, c) => n + c.length, 0)
      const byteLength = own.reduce((n, c) => n + c.byteLength, 0)
      const rows: EmbassyCustody[] = []
      for (const nodeKey of embassies) {
        let held = 0
        let behindBytes = 0
        let newest: number | null = null
        let any = false
        const preRewrite: EmbassyCustody['preRewrite'] = []
        const audit = this.audits.summary(nodeKey, own.map((c) => toZ32(c.key!)))
        for (const core of own) {
          const r = this.ledger.get(nodeKey, keyZ32(core))
          // History from before our rewrite is kept by the embassy, but it is not our history.
          const pre = !!r && r.fork < core.fork
          if (r && pre) preRewrite.push({ core: keyZ32(core), length: r.length, fork: r.fork })
          // A core whose last audit failed is not counted as held until an audit passes.
          const h = r && !pre && !this.audits.failing(nodeKey, keyZ32(core)) ? Math.min(r.length, core.length) : 0
          if (r) {
            any = true
            // Ages are the agency's: when it received and verified the receipt, never the sender's clock.
            newest = newest === null ? r.receivedAt : Math.min(newest, r.receivedAt)
          }
          held += h
          behindBytes += core.byteLength - (await byteLengthAt(core, h))
        }
        rows.push({
          nodeKey,
          heldLength: held,
          behindBlocks: length - held,
          behindBytes,
          receiptAt: any ? newest : null,
          receiptAge: any && newest !== null ? Math.max(0, now - newest) : null,
          connected: !!this.#agency.network?.connectedTo(parseKeyZ(nodeKey)),
          preRewrite,
          audit,
          held: audit.state !== 'failed'
        })
      }
      const heads: DatasetCustody['heads'] = []
      for (const core of own) {
        const n = this.heads.newest(core.key!)
        heads.push({ core: keyZ32(core), length: core.length, fork: core.fork, cosigners: n && n.length === core.length && n.fork === core.fork ? n.cosigners : 0 })
      }
      datasets.push({ name: info.name ?? info.id, kind: info.kind, length, byteLength, embassies: rows, heads })
    }
    return { datasets, alarms: [...this.ledger.alarms], alarmCounts: { ...this.ledger.alarmCounts } as Record<string, number> }
  }

  close(): void {
    this.milestones.close()
    this.audits.close()
    this.ledger.close()
  }
}
