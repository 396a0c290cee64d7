/**
 * Embassy: holds blind, full, live copies of every dataset of the agencies it follows, and serves
 * them to allowed peers (mirrors, other embassies) — also when the agency is gone.
 */
import ReadyResource from 'ready-resource'
import { agencyTopic } from './caps.js'
import { EmbassyError } from './errors.js'
import { Holder, type HeldCore } from './holder.js'
import { parseKey, toZ32 } from './ids.js'
import type { Network, Peer } from './network.js'
import type { EmbassyNode } from './node.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, PeerRole, type Handshake } from '../protocol/index.js'

export interface AgencyHolding {
  nodeKey: string
  catalogKey: string | null
  connected: boolean
  complete: boolean
  cores: HeldCore[]
  problems: string[]
}

export interface EmbassyEvents {
  /** Learnt an agency's catalog key from the agency itself. */
  'catalog-learnt': [agencyKey: string, catalogKey: string]
  'core-added': [catalogKey: string, coreKey: string]
  'caught-up': [catalogKey: string, coreKey: string, length: number]
  error: [err: Error]
}

export class Embassy extends ReadyResource {
  readonly node: EmbassyNode
  readonly holders = new Map<string, Holder>()
  #network: Network | null = null
  #problems = new Map<string, string[]>()

  constructor(node: EmbassyNode) {
    super()
    this.node = node
  }

  override async _open(): Promise<void> {
    await this.node.ready()
    if (this.node.role !== 'embassy') throw EmbassyError.wrongRole('this', this.node.role, 'embassy')
    for (const f of this.node.config.follow) if (f.catalogKey) await this.#hold(f.nodeKey, f.catalogKey)
  }

  override async _close(): Promise<void> {
    for (const h of this.holders.values()) await h.close()
    this.holders.clear()
  }

  /** Follows an agency by node key: allows it, dials it, learns its catalog key from it. */
  async follow(agencyNodeKey: string): Promise<{ nodeKey: string; catalogKey: string | null; added: boolean }> {
    const key = parseKey(agencyNodeKey, 'agency node key')
    const z = toZ32(key)
    const existing = this.node.config.follow.find((f) => f.nodeKey === z)
    if (!existing) this.node.updateConfig((c) => c.follow.push({ nodeKey: z, catalogKey: null }))
    this.#network?.joinPeer(key)
    return { nodeKey: z, catalogKey: existing?.catalogKey ?? null, added: !existing }
  }

  /** Admission rule: followed agencies and explicitly allowed peers. */
  isAllowed(key: Buffer): boolean {
    const z = toZ32(key)
    return this.node.config.follow.some((f) => f.nodeKey === z) || this.node.config.allow.includes(z)
  }

  handshake(): Handshake {
    return {
      major: CUSTODY_MAJOR,
      minor: CUSTODY_MINOR,
      role: PeerRole.EMBASSY,
      capabilities: [],
      catalogs: [...this.holders.values()].map((h) => h.key)
    }
  }

  /** Goes online: dials followed agencies, announces every held catalog's topic. */
  async attach(network: Network): Promise<void> {
    this.#network = network
    network.on('peer', (peer) => this.#onpeer(peer))
    for (const f of this.node.config.follow) network.joinPeer(parseKey(f.nodeKey))
    for (const h of this.holders.values()) void network.join(agencyTopic(h.key), { server: true, client: true })
  }

  #onpeer(peer: Peer): void {
    if (peer.role !== 'agency' || !peer.handshake) return
    const z = toZ32(peer.key)
    const f = this.node.config.follow.find((x) => x.nodeKey === z)
    const catalog = peer.handshake.catalogs[0]
    if (!f || !catalog) return
    const catalogKey = toZ32(catalog)
    if (f.catalogKey === catalogKey) return
    if (f.catalogKey !== null) {
      this.#problem(z, `agency now names catalog ${catalogKey}, but ${f.catalogKey} is held; keeping the held one`)
      return
    }
    this.node.updateConfig((c) => {
      const entry = c.follow.find((x) => x.nodeKey === z)
      if (entry) entry.catalogKey = catalogKey
    })
    this.emit('catalog-learnt', z, catalogKey)
    this.#hold(z, catalogKey).catch((err) => this.emit('error', err))
  }

  async #hold(agencyKey: string, catalogKey: string): Promise<Holder> {
    const key = parseKey(catalogKey, 'catalog key')
    const hex = key.toString('hex')
    const have = this.holders.get(hex)
    if (have) return have
    const holder = new Holder(this.node.store, key)
    this.holders.set(hex, holder)
    holder.on('core-added', (k) => this.emit('core-added', catalogKey, toZ32(k)))
    holder.on('caught-up', (core) => this.emit('caught-up', catalogKey, toZ32(core.key!), core.length))
    holder.on('error', (err) => this.emit('error', err))
    await holder.open()
    this.#checkHeader(agencyKey, holder).catch(() => {})
    if (this.#network) void this.#network.join(agencyTopic(key), { server: true, client: true })
    return holder
  }

  /** The catalog header must name the agency we follow; otherwise we record a problem. */
  async #checkHeader(agencyKey: string, holder: Holder): Promise<void> {
    const header = await holder.catalog.header({ wait: true, timeout: 0 })
    if (toZ32(header.agencyNodeKey) !== agencyKey) {
      this.#problem(agencyKey, `catalog header names agency ${toZ32(header.agencyNodeKey)}, not the followed ${agencyKey}`)
    }
  }

  #problem(agencyKey: string, text: string): void {
    const list = this.#problems.get(agencyKey) ?? []
    list.push(text)
    this.#problems.set(agencyKey, list)
    this.emit('error', new EmbassyError('BAD_CATALOG', text))
  }

  /** What is held, per followed agency. */
  holdings(): AgencyHolding[] {
    return this.node.config.follow.map((f) => {
      const holder = f.catalogKey ? this.holders.get(parseKey(f.catalogKey).toString('hex')) : undefined
      const problems = [...(this.#problems.get(f.nodeKey) ?? []), ...(holder?.catalog.problems ?? []).map((p) => `catalog block ${p.seq}: ${p.error}`)]
      return {
        nodeKey: f.nodeKey,
        catalogKey: f.catalogKey,
        connected: !!this.#network?.connectedTo(parseKey(f.nodeKey)),
        complete: holder ? holder.complete : false,
        cores: holder ? holder.held() : [],
        problems
      }
    })
  }
}
