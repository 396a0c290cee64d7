/**
 * Role: what every node role (agency, embassy, mirror) offers the layers above it — the daemon,
 * the control host, the gateway and status — so none of them branches on classes.
 * BaseRole holds what the three share: the node, admission (allow/deny), the custody handshake
 * and the network they are attached to.
 *
 * Owns: roles/ (may import node/, data/, net/, custody/, verify/, kit/, html; never gateway/ or daemon/).
 */
import ReadyResource from 'ready-resource'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'
import type { DatasetReader } from '../data/datasets.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Network, Peer } from '../net/network.js'
import { parseHostPort, type RoleName } from '../node/config.js'
import type { EmbassyNode } from '../node/node.js'
import { agencyTopic } from '../node/caps.js'
import type { Holder } from './holder.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, PeerRole, type Handshake, type PeerRoleCode } from '../../protocol/index.js'

/** An event worth an operator's attention; the daemon logs it, the library never prints. */
export interface Notice {
  level: 'info' | 'warn' | 'error'
  /** Stable event name (log field `event`). */
  event: string
  message: string
  fields?: Record<string, unknown>
}

/** The result of `allow` / `deny`. */
export interface PairingResult {
  nodeKey: Buffer
  allowed: boolean
  /** True when the allowlist changed. */
  changed: boolean
  /** The allowlist after the change. */
  allow: Buffer[]
  /** The agencies (node keys) the peer is scoped to here; null: every catalog held here. */
  scope: Buffer[] | null
  /** Something the operator should know (an unscoped allow on a node holding several agencies). */
  warning?: string
}

/** Options of `allow`. */
export interface AllowOptions {
  /**
   * Scope the peer to this agency (its node key): it sees and replicates only that agency's
   * catalog here. Repeated allows add agencies; an unscoped allow removes the scope.
   */
  agency?: Buffer
}

export interface RoleEvents {
  notice: [notice: Notice]
}

/** The interface the daemon, host, gateway and status code use. */
export interface Role {
  readonly name: RoleName
  readonly node: EmbassyNode
  ready(): Promise<void>
  close(): Promise<void>
  /** Our custody handshake, built for each new connection. */
  handshake(): Handshake
  /** Admission: may `key` connect to us (and may we dial it)? */
  isAllowed(key: Buffer): boolean
  /**
   * What `key` may see here: the catalogs named in our handshake to it and replicated with it,
   * both ways (`true`: everything this node holds — an agency's admitted peers). Empty: nothing.
   */
  entitledCatalogs(key: Buffer): Buffer[] | true
  /**
   * True when this role also connects to peers found on its agencies' topics that it does not
   * admit otherwise — download only: it fetches verified blocks from them and serves them none
   * (mirrors read from any holder, also one the agency never listed to them).
   */
  readonly dialsAnyone: boolean
  /** What this role does with each custody message `peer` sends. */
  handlers(peer: Peer): CustodyHandlers
  /** Goes online: dials, announces, starts its live work. */
  attach(network: Network): Promise<void>
  /** Pairing: admit or stop admitting a peer (persisted; live connections follow). */
  allow(nodeKey: Buffer, opts?: AllowOptions): PairingResult
  deny(nodeKey: Buffer): PairingResult
  /** What `embassy status` shows for this role (merged into the node's status). */
  status(): Promise<Record<string, unknown>>
  /** Every core this node holds, with what it belongs to. */
  heldCores(): Promise<HeldCoreRef[]>
  /** Who reads datasets on this node; null on a blind holder. */
  reader(): DatasetReader | null
  on<E extends keyof RoleEvents>(event: E, listener: (...args: RoleEvents[E]) => void): this
}

const PEER_ROLE: Record<RoleName, PeerRoleCode> = { agency: PeerRole.AGENCY, embassy: PeerRole.EMBASSY, mirror: PeerRole.MIRROR, auditor: PeerRole.AUDITOR }

export abstract class BaseRole extends ReadyResource implements Role {
  abstract readonly name: RoleName
  readonly node: EmbassyNode
  readonly dialsAnyone: boolean = false
  /** The network this role is attached to (null until `attach`). */
  network: Network | null = null

  constructor(node: EmbassyNode) {
    super()
    this.node = node
  }

  /** Opens the node and checks it has this role. */
  protected async openNode(): Promise<void> {
    await this.node.ready()
    if (this.node.role !== this.name) throw EmbassyError.wrongRole('this', this.node.role, this.name)
  }

  /** Catalog keys named in our handshake. */
  protected abstract handshakeCatalogs(): Buffer[]

  /** Optional features named in our handshake (the agency: its instance). */
  protected handshakeCapabilities(): string[] {
    return []
  }

  /** Peers this role trusts beyond the allowlist (followed agencies, the agencies a mirror reads). */
  protected trusts(key: Buffer): boolean {
    return this.trustedCatalogs(key).length > 0
  }

  /**
   * The catalogs `key` is entitled to by this role's own relations, whatever the allowlist says
   * (an embassy: a followed agency and the holders it listed get that agency's catalog).
   */
  protected trustedCatalogs(_key: Buffer): Buffer[] {
    return []
  }

  /** The catalog held here for agency `agencyNodeKey` (z32), if any (`allow --agency`). */
  protected catalogOfAgency(_agencyNodeKey: string): Buffer | null {
    return null
  }

  /** Agencies (node keys, z32) whose data this node holds: what `allow --agency` may name. */
  protected scopeableAgencies(): string[] {
    return []
  }

  handshake(): Handshake {
    return { major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PEER_ROLE[this.name], capabilities: this.handshakeCapabilities(), catalogs: this.handshakeCatalogs() }
  }

  /** Allowed, dialled directly (`peers`), or trusted by the role. */
  isAllowed(key: Buffer): boolean {
    const z = toZ32(key)
    return this.node.config.allow.includes(z) || this.node.config.peers.includes(z) || this.trusts(key)
  }

  /**
   * Entitlement, by key only (so the handshake we send and the cores we replicate agree):
   * the role's own relations, plus for an allowed (or `peers`) key every catalog held here — or,
   * when `allow --agency` scoped it, only those agencies' catalogs. Never a catalog not held.
   */
  entitledCatalogs(key: Buffer): Buffer[] | true {
    const z = toZ32(key)
    const held = new Map(this.handshakeCatalogs().map((k) => [k.toString('hex'), k] as const))
    const out = new Map<string, Buffer>()
    const add = (k: Buffer) => {
      const hex = k.toString('hex')
      const have = held.get(hex)
      if (have) out.set(hex, have)
    }
    for (const k of this.trustedCatalogs(key)) add(k)
    if (this.node.config.allow.includes(z) || this.node.config.peers.includes(z)) {
      const scope = this.node.config.allowScopes?.[z]
      if (!scope) for (const k of held.values()) add(k)
      else
        for (const agency of scope) {
          const k = this.catalogOfAgency(agency)
          if (k) add(k)
        }
    }
    return [...out.values()]
  }

  /**
   * Binds this role to `network`: admission and the per-connection replication scope. Every
   * role's attach() calls it first. Cores reach the network only through offer (offerHeld).
   */
  protected bindNetwork(network: Network): void {
    this.network = network
    this.#bindLane(network)
    network.setScope({
      entitled: (key) => this.entitledCatalogs(key),
      catalogOfTopic: (topic) => this.handshakeCatalogs().find((k) => agencyTopic(k).equals(topic)) ?? null
    })
  }

  /**
   * The bulk lane (config `lane`; off when absent): listens and offers its address to admitted
   * peers, dials the lanes they offer (net/lane-link.ts). A listener that cannot start is logged
   * and the node runs on the swarm alone. Opens, closes and failed dials are logged.
   */
  #bindLane(network: Network): void {
    const lane = this.node.config.lane
    if (!lane || network.lane) return
    const z = (key: Buffer) => toZ32(key)
    network.on('lane-open', (p, i) =>
      this.notice('info', 'lane-open', `bulk lane with ${p.role} ${z(p.key)} open (${i.initiator ? `dialled ${i.host}:${i.port}` : `from ${i.host}:${i.port}`})`, { nodeKey: z(p.key), initiator: i.initiator, host: i.host, port: i.port })
    )
    network.on('lane-close', (p, i) =>
      this.notice('info', 'lane-close', `bulk lane with ${p.role} ${z(p.key)} closed after ${Math.round(i.ms / 1000)} s (${i.bytesIn} bytes in, ${i.bytesOut} out); replication goes on over the swarm connection`, { nodeKey: z(p.key), ...i })
    )
    network.on('lane-failed', (p, err) => this.notice('warn', 'lane-failed', `bulk lane to ${p.role} ${z(p.key)}: ${err.message}; replication goes on over the swarm connection`, { nodeKey: z(p.key), code: (err as EmbassyError).code ?? null }))
    const listen = lane.listen ? parseHostPort(lane.listen, { allowZero: true }) : null
    const advertise = lane.advertise ? parseHostPort(lane.advertise) : null
    network.useLane({ listen, advertise, dial: lane.dial !== false }).then(
      () => {
        const port = network.lane?.server?.port
        if (listen) this.notice('info', 'lane-listening', `bulk lane listening on ${listen.host}:${port} (admitted peers only); offered as ${advertise ? `${advertise.host}:${advertise.port}` : `${listen.host}:${port}`}`, { host: listen.host, port })
      },
      (err: Error) => this.notice('error', 'lane-listen-failed', `bulk lane: cannot listen on ${lane.listen}: ${err.message}; this node offers no lane (replication runs on the swarm connections${lane.dial === false ? '' : ', and on lanes its peers offer'})`, { listen: lane.listen })
    )
  }

  #offered = new WeakSet<Holder>()

  /**
   * Offers every core `holder` holds to the network — now, and each core it picks up later — and
   * re-scopes live connections (a new catalog is held: peers entitled to it get it).
   */
  protected offerHeld(holder: Holder): void {
    const network = this.network
    if (!network || this.#offered.has(holder)) return
    this.#offered.add(holder)
    for (const core of holder.allCores()) network.offer(holder.key, core)
    holder.on('core-opened', (_key, core) => this.network?.offer(holder.key, core))
    network.rescope()
  }

  handlers(_peer: Peer): CustodyHandlers {
    return {}
  }

  abstract attach(network: Network): Promise<void>
  abstract status(): Promise<Record<string, unknown>>
  abstract heldCores(): Promise<HeldCoreRef[]>
  abstract reader(): DatasetReader | null

  /**
   * Admits `nodeKey` (persisted); a peer the firewall refused earlier may connect again at once.
   * With `agency`, scoped to that agency's catalog (added to any scope it has); without, an
   * existing scope is removed: the peer sees every catalog held here.
   */
  allow(nodeKey: Buffer, opts: AllowOptions = {}): PairingResult {
    const z = toZ32(nodeKey)
    const listed = this.node.config.allow.includes(z)
    const scope = this.node.config.allowScopes?.[z]
    let next: string[] | null = null
    if (opts.agency) {
      const agency = toZ32(opts.agency)
      const known = this.scopeableAgencies()
      if (!known.includes(agency)) {
        throw EmbassyError.unknownAgency(
          known.length === 0 ? `this ${this.name} holds no agency's data to scope a peer to` : `this ${this.name} holds no data of agency ${agency}; --agency takes one of: ${known.join(', ')}`
        )
      }
      next = listed && scope ? [...new Set([...scope, agency])] : [agency]
    }
    const changed = !listed || JSON.stringify(scope ?? null) !== JSON.stringify(next)
    if (changed) {
      this.node.updateConfig((c) => {
        if (!c.allow.includes(z)) c.allow.push(z)
        const scopes = { ...(c.allowScopes ?? {}) }
        if (next) scopes[z] = next
        else delete scopes[z]
        if (Object.keys(scopes).length > 0) c.allowScopes = scopes
        else delete c.allowScopes
      })
    }
    this.network?.readmit(nodeKey)
    this.network?.rescope()
    const result = this.#pairing(nodeKey, true, changed)
    if (!next && this.scopeableAgencies().length > 1) {
      result.warning = `this ${this.name} holds data of ${this.scopeableAgencies().length} agencies and ${z} now sees every one of them; \`embassy allow ${z} --agency AGENCY_NODE_KEY\` limits it to one`
    }
    return result
  }

  /** Stops admitting `nodeKey` (and drops its scope); its live connection closes unless this role trusts it otherwise. */
  deny(nodeKey: Buffer): PairingResult {
    const z = toZ32(nodeKey)
    const changed = this.node.config.allow.includes(z) || !!this.node.config.allowScopes?.[z]
    if (changed) {
      this.node.updateConfig((c) => {
        c.allow = c.allow.filter((k) => k !== z)
        if (c.allowScopes) {
          const scopes = { ...c.allowScopes }
          delete scopes[z]
          if (Object.keys(scopes).length > 0) c.allowScopes = scopes
          else delete c.allowScopes
        }
      })
    }
    const peer = this.network?.connectedTo(nodeKey)
    if (peer && !this.isAllowed(nodeKey)) peer.conn.destroy()
    this.network?.rescope()
    return this.#pairing(nodeKey, false, changed)
  }

  #pairing(nodeKey: Buffer, allowed: boolean, changed: boolean): PairingResult {
    const scope = this.node.config.allowScopes?.[toZ32(nodeKey)]
    return { nodeKey, allowed, changed, allow: this.node.config.allow.map((k) => parseKey(k)), scope: allowed && scope ? scope.map((k) => parseKey(k)) : null }
  }

  /** Emits a notice (the daemon logs it). */
  notice(level: Notice['level'], event: string, message: string, fields: Record<string, unknown> = {}): void {
    this.emit('notice', { level, event, message, fields })
  }
}
