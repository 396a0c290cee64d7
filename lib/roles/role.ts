/**
 * Role: what every node role (agency, embassy, mirror) offers the layers above it — the daemon,
 * the control host, the gateway and status — so none of them branches on classes.
 * BaseRole holds what the three share: the node, admission (allow/deny), the custody handshake
 * and the network they are attached to.
 *
 * Owns: roles/ (may import node/, data/, net/, custody/, verify/, kit/; never gateway/ or daemon/).
 */
import ReadyResource from 'ready-resource'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'
import type { DatasetReader } from '../data/datasets.js'
import type { CustodyHandlers } from '../net/custody-channel.js'
import type { Network, Peer } from '../net/network.js'
import type { RoleName } from '../node/config.js'
import type { EmbassyNode } from '../node/node.js'
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
  /** Admission: may `key` connect to us? */
  isAllowed(key: Buffer): boolean
  /** True when this role dials holders it was not told about (mirrors read from any holder). */
  readonly dialsAnyone: boolean
  /** What this role does with each custody message `peer` sends. */
  handlers(peer: Peer): CustodyHandlers
  /** Goes online: dials, announces, starts its live work. */
  attach(network: Network): Promise<void>
  /** Pairing: admit or stop admitting a peer (persisted; live connections follow). */
  allow(nodeKey: Buffer): PairingResult
  deny(nodeKey: Buffer): PairingResult
  /** What `embassy status` shows for this role (merged into the node's status). */
  status(): Promise<Record<string, unknown>>
  /** Every core this node holds, with what it belongs to. */
  heldCores(): Promise<HeldCoreRef[]>
  /** Who reads datasets on this node; null on a blind holder. */
  reader(): DatasetReader | null
  on<E extends keyof RoleEvents>(event: E, listener: (...args: RoleEvents[E]) => void): this
}

const PEER_ROLE: Record<RoleName, PeerRoleCode> = { agency: PeerRole.AGENCY, embassy: PeerRole.EMBASSY, mirror: PeerRole.MIRROR }

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

  /** Peers this role trusts beyond the allowlist (followed agencies, the agencies a mirror reads). */
  protected trusts(_key: Buffer): boolean {
    return false
  }

  handshake(): Handshake {
    return { major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PEER_ROLE[this.name], capabilities: [], catalogs: this.handshakeCatalogs() }
  }

  isAllowed(key: Buffer): boolean {
    return this.node.config.allow.includes(toZ32(key)) || this.trusts(key)
  }

  handlers(_peer: Peer): CustodyHandlers {
    return {}
  }

  abstract attach(network: Network): Promise<void>
  abstract status(): Promise<Record<string, unknown>>
  abstract heldCores(): Promise<HeldCoreRef[]>
  abstract reader(): DatasetReader | null

  /** Admits `nodeKey` (persisted); a peer the firewall refused earlier may connect again at once. */
  allow(nodeKey: Buffer): PairingResult {
    const z = toZ32(nodeKey)
    const changed = !this.node.config.allow.includes(z)
    if (changed) this.node.updateConfig((c) => c.allow.push(z))
    this.network?.readmit(nodeKey)
    return this.#pairing(nodeKey, true, changed)
  }

  /** Stops admitting `nodeKey`; its live connection closes unless this role trusts it otherwise. */
  deny(nodeKey: Buffer): PairingResult {
    const z = toZ32(nodeKey)
    const changed = this.node.config.allow.includes(z)
    if (changed) this.node.updateConfig((c) => (c.allow = c.allow.filter((k) => k !== z)))
    const peer = this.network?.connectedTo(nodeKey)
    if (peer && !this.trusts(nodeKey)) peer.conn.destroy()
    return this.#pairing(nodeKey, false, changed)
  }

  #pairing(nodeKey: Buffer, allowed: boolean, changed: boolean): PairingResult {
    return { nodeKey, allowed, changed, allow: this.node.config.allow.map((k) => parseKey(k)) }
  }

  /** Emits a notice (the daemon logs it). */
  notice(level: Notice['level'], event: string, message: string, fields: Record<string, unknown> = {}): void {
    this.emit('notice', { level, event, message, fields })
  }
}
