/**
 * Auditor: a blind auditor of an agency's embassies (another state's, a parliament's, the agency's
 * own staff abroad while the agency is down). It holds a verify capability per agency (catalog key
 * + agency node key, no read key), finds the embassies on the agency's topic (where they announce)
 * and from the holder list the agency signs over its connection, and audits each one directly with
 * Merkle-proven samples fetched from that embassy alone (custody/blind-audit.ts). It stores no
 * dataset block beyond the samples in flight, replicates nothing on its own network scope and
 * serves nothing, so it can never repair the embassy it audits. Embassies admit it like a mirror
 * (`embassy allow AUDITOR_NODE_KEY`).
 *
 * Config: `sources` (the verify capabilities followed: catalog key + agency node key), `peers`
 * (the holders learnt, dialled directly), `audit` (the schedule).
 */
import { agencyTopic } from '../node/caps.js'
import { EmbassyError } from '../errors.js'
import { parseKey, keyZ32, toZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { parseVerifyCapability } from '../data/verify-capability.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Network, Peer } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import { AUDIT_DEFAULTS, AlarmLog, AuditBook, AuditLog, auditConfidence, blindAudit, type AuditResult } from '../custody/index.js'
import type { HolderList } from '../../protocol/index.js'
import { BaseRole } from './role.js'

export interface AuditorFollowResult {
  auditing: string
  catalogKey: string
  added: boolean
}

export class Auditor extends BaseRole {
  readonly name = 'auditor'
  /** Dials the embassies it finds on the agency's topic (connections it makes only download). */
  override readonly dialsAnyone: boolean = true
  #book: AuditBook | null = null
  #log: AuditLog | null = null
  #alarms: AlarmLog | null = null
  #timer: NodeJS.Timeout | null = null
  #running = new Set<string>()

  constructor(node: EmbassyNode) {
    super(node)
  }

  override async _open(): Promise<void> {
    await this.openNode()
    this.#book = new AuditBook(this.node.dir)
    this.#log = new AuditLog(this.node.dir, this.node.keyPair)
    this.#alarms = new AlarmLog(this.node.dir)
  }

  override async _close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#book?.close()
    this.#alarms?.close()
  }

  get log(): AuditLog {
    if (!this.#log) throw EmbassyError.closed()
    return this.#log
  }

  /** Follows a verify capability: audits that agency's embassies from now on (persisted). */
  follow(text: string): AuditorFollowResult {
    const cap = parseVerifyCapability(text)
    const catalogKey = toZ32(cap.catalogKey)
    const agency = toZ32(cap.agencyNodeKey)
    const added = !this.node.config.sources.some((s) => s.catalogKey === catalogKey)
    if (added) this.node.updateConfig((c) => c.sources.push({ catalogKey, agencyNodeKey: agency }))
    if (this.network) {
      void this.network.join(agencyTopic(Buffer.from(cap.catalogKey)), { server: false, client: true })
      this.network.joinPeer(Buffer.from(cap.agencyNodeKey))
    }
    return { auditing: agency, catalogKey, added }
  }

  /** Holds nothing: names no catalog, so nothing is replicated on its connections' scope. */
  protected handshakeCatalogs(): Buffer[] {
    return []
  }

  /** The agencies it audits may connect (they send the holder list). */
  protected override trusts(key: Buffer): boolean {
    const z = toZ32(key)
    return this.node.config.sources.some((s) => s.agencyNodeKey === z)
  }

  override handlers(peer: Peer): CustodyHandlers {
    return { holders: (list) => this.#onHolders(peer, list) }
  }

  /** The agency lists its embassies: remember them (config `peers`) and dial them. */
  #onHolders(peer: Peer, list: HolderList): void {
    const z = keyZ32(peer)
    const source = this.node.config.sources.find((s) => s.agencyNodeKey === z)
    if (!source || !parseKey(source.catalogKey).equals(Buffer.from(list.catalog))) return
    const known = new Set(this.node.config.peers)
    const fresh = list.holders.map((k) => toZ32(k)).filter((k) => !known.has(k))
    if (fresh.length > 0) this.node.updateConfig((c) => c.peers.push(...fresh))
    for (const k of fresh) this.network?.joinPeer(parseKey(k))
  }

  override async attach(network: Network): Promise<void> {
    this.bindNetwork(network)
    for (const s of this.node.config.sources) {
      network.joinPeer(parseKey(s.agencyNodeKey))
      void network.join(agencyTopic(parseKey(s.catalogKey)), { server: false, client: true })
    }
    for (const p of this.node.config.peers) network.joinPeer(parseKey(p))
    const arm = () => {
      const every = Math.max(100, Math.min(5_000, Math.floor(this.#settings().intervalMs / 4)))
      this.#timer = setTimeout(() => void this.#tick().finally(() => (this.closing ? null : arm())), every)
      this.#timer.unref?.()
    }
    arm()
  }

  #settings() {
    return { ...AUDIT_DEFAULTS, ...(this.node.config.audit ?? {}) }
  }

  /** Connected embassies holding a followed catalog, with that catalog. */
  #targets(embassy?: string): Array<{ peer: Peer; catalogKey: Buffer }> {
    const out: Array<{ peer: Peer; catalogKey: Buffer }> = []
    for (const peer of this.network?.peers.values() ?? []) {
      if (peer.role !== 'embassy' || (embassy && keyZ32(peer) !== embassy)) continue
      const offered = new Set((peer.handshake?.catalogs ?? []).map((k) => toZ32(k)))
      for (const s of this.node.config.sources) if (offered.has(s.catalogKey)) out.push({ peer, catalogKey: parseKey(s.catalogKey) })
    }
    return out
  }

  async #tick(): Promise<void> {
    const s = this.#settings()
    const now = Date.now()
    for (const { peer, catalogKey } of this.#targets()) {
      const id = `${peer.id}/${catalogKey.toString('hex')}`
      if (this.#running.has(id)) continue
      const last = this.#book?.get(keyZ32(peer), toZ32(catalogKey))
      if (last && now - last.at < s.intervalMs) continue
      this.#running.add(id)
      try {
        await this.#audit(peer, catalogKey)
      } catch {
        // a closing connection: the next tick tries again
      } finally {
        this.#running.delete(id)
      }
    }
  }

  async #audit(peer: Peer, catalogKey: Buffer, samples?: number): Promise<AuditResult[]> {
    const results = await blindAudit(peer, { dir: this.node.dir, catalogKey, samples, settings: this.#settings() })
    if (this.closing) return results
    const now = Date.now()
    for (const r of results) {
      const state = this.#book!.sweep(r.embassy, r.core, now)
      const entry = this.#book!.record(r.embassy, r, state)
      this.#log!.append({ result: r, indices: [], failedIndices: [], challenge: null, answer: null })
      if (entry.state === 'failed') {
        const a = { time: r.at, kind: 'audit-failed' as const, peer: r.embassy, core: r.core, detail: `blind audit of core ${r.core}: ${r.error ?? `${r.failed} block(s) failed`}` }
        if (this.#alarms!.add(a)) this.notice('error', 'custody-alarm', `custody alarm (audit-failed) from ${a.peer}: ${a.detail}`, { ...a })
      }
    }
    return results
  }

  /** One audit now of every connected embassy (or `embassy`); PEER_UNREACHABLE when none. */
  async auditNow(opts: { embassy?: string; blocks?: number } = {}): Promise<AuditResult[]> {
    const targets = this.#targets(opts.embassy)
    if (targets.length === 0) throw EmbassyError.peerUnreachable(opts.embassy ? `embassy ${opts.embassy} is not connected` : 'no embassy of a followed agency is connected: nothing to audit')
    const all = await Promise.all(targets.map(({ peer, catalogKey }) => this.#audit(peer, catalogKey, opts.blocks)))
    return all.flat()
  }

  /** Blind: reads nothing. */
  reader(): null {
    return null
  }

  /** Holds nothing (samples in flight live in a temporary store, deleted after each audit). */
  async heldCores(): Promise<HeldCoreRef[]> {
    return []
  }

  async status(): Promise<Record<string, unknown>> {
    const embassies = [...(this.network?.peers.values() ?? [])].filter((p) => p.role === 'embassy').map((p) => toZ32(p.key))
    return {
      sources: this.node.config.sources.map((s) => ({ agencyNodeKey: s.agencyNodeKey, catalogKey: s.catalogKey })),
      embassies: [...new Set([...this.node.config.peers, ...embassies])].map((e) => {
        const audits = Object.values(this.#book?.cores(e) ?? {})
        if (audits.length === 0) return { nodeKey: e, connected: embassies.includes(e), audit: { state: 'never', at: null, sampled: 0, failed: 0, cores: 0 } }
        const failed = audits.filter((a) => a.state === 'failed').length
        const sampled = audits.reduce((n, a) => n + a.sampled, 0)
        return {
          nodeKey: e,
          connected: embassies.includes(e),
          audit: {
            state: failed > 0 ? 'failed' : 'passed',
            at: Math.max(...audits.map((a) => a.at)),
            sampled,
            failed: audits.reduce((n, a) => n + a.failed, 0),
            cores: audits.length,
            confidence: failed > 0 ? 'failed: blocks are missing or not served' : auditConfidence(Math.min(...audits.map((a) => a.sampled))).text
          }
        }
      }),
      alarms: [...(this.#alarms?.alarms ?? [])],
      alarmCounts: { ...(this.#alarms?.counts ?? {}) }
    }
  }
}
