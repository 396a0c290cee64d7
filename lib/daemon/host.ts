/**
 * NodeHost: an open node plus its role object, opened on demand. The CLI uses one for a single
 * command; `embassy run` keeps one for its lifetime (with the network up) and serves commands on it.
 */
import ReadyResource from 'ready-resource'
import { EmbassyError } from '../errors.js'
import type { HeldCoreEntry, HeldCoreRef, WindowRef } from '../data/held-core.js'
import type { DatasetReader } from '../data/datasets.js'
import type { Network } from '../net/network.js'
import { EmbassyNode } from '../node/node.js'
import type { RoleName } from '../node/config.js'
import { createRole, type Agency, type Auditor, type Embassy, type Mirror } from '../roles/index.js'
import type { Role } from '../roles/role.js'
import type { DrillSchedule } from '../roles/drill-schedule.js'

/** What a command handler gets: the open node, its role, and the network when running. */
export interface Host {
  node: EmbassyNode
  /** The node's role object, opened once. */
  role(): Promise<Role>
  /** The role objects by class, for commands only one role has (each throws WRONG_ROLE on other nodes). */
  agency(): Promise<Agency>
  embassy(): Promise<Embassy>
  mirror(): Promise<Mirror>
  auditor(): Promise<Auditor>
  /** Whoever reads datasets on this node: the agency or the mirror (WRONG_ROLE on an embassy). */
  reader(): Promise<DatasetReader>
  /** True inside a running node (the network is up). */
  online: boolean
  /** The network, inside a running node. */
  network: Network | null
  /** The continuity drill schedule, inside a running node that has one (status reports it). */
  drills: DrillSchedule | null
  /** Every core this node holds (catalogs and dataset cores), on every role. */
  heldCores(): Promise<HeldCoreRef[]>
  /**
   * Runs `fn` over the held cores `select` picks from every held core (described, not opened),
   * in windows, each window's cores kept open while its `fn` runs: on an embassy a bounded number
   * at a time (it keeps at most `maxOpenCores` open, plus one window), elsewhere one window of
   * every selected core. A core that cannot be opened reaches `fn` described, with why. Returns
   * each window's result, in order (at least one).
   */
  forHeldCores<T>(select: (entries: HeldCoreEntry[]) => HeldCoreEntry[], fn: (refs: WindowRef[]) => Promise<T>): Promise<T[]>
}

export class NodeHost extends ReadyResource implements Host {
  readonly node: EmbassyNode
  network: Network | null = null
  drills: DrillSchedule | null = null
  #role: Promise<Agency | Embassy | Mirror | Auditor> | null = null

  constructor(dir: string) {
    super()
    this.node = new EmbassyNode(dir)
  }

  get online(): boolean {
    return this.network !== null
  }

  override async _open(): Promise<void> {
    await this.node.ready()
  }

  override async _close(): Promise<void> {
    if (this.#role) {
      const role = await this.#role.catch(() => null)
      if (role) await role.close()
    }
    await this.node.close()
  }

  role(): Promise<Agency | Embassy | Mirror | Auditor> {
    if (!this.#role) {
      const obj = createRole(this.node)
      this.#role = obj.ready().then(() => obj)
      this.#role.catch(() => {})
    }
    return this.#role
  }

  async #as<R extends Role>(name: RoleName): Promise<R> {
    if (this.node.role !== name) throw EmbassyError.wrongRole('this command', this.node.role, name)
    return (await this.role()) as unknown as R
  }

  agency(): Promise<Agency> {
    return this.#as<Agency>('agency')
  }

  embassy(): Promise<Embassy> {
    return this.#as<Embassy>('embassy')
  }

  mirror(): Promise<Mirror> {
    return this.#as<Mirror>('mirror')
  }

  auditor(): Promise<Auditor> {
    return this.#as<Auditor>('auditor')
  }

  async heldCores(): Promise<HeldCoreRef[]> {
    return (await this.role()).heldCores()
  }

  async forHeldCores<T>(select: (entries: HeldCoreEntry[]) => HeldCoreEntry[], fn: (refs: WindowRef[]) => Promise<T>): Promise<T[]> {
    const role = await this.role()
    if ('forHeldCores' in role) return role.forHeldCores(select, fn)
    // Every core is open already (agency, mirror): one window, labelled as the selection says.
    const cores = new Map<string, HeldCoreRef['core']>()
    const entries: HeldCoreEntry[] = []
    for (const { catalog, dataset, name, core } of await role.heldCores()) {
      cores.set(core.key!.toString('hex'), core)
      entries.push({ catalog, dataset, name, key: core.key!, length: core.length })
    }
    const refs = select(entries).map(({ catalog, dataset, name, key }) => ({ catalog, dataset, name, core: cores.get(key.toString('hex'))! }))
    return [await fn(refs)]
  }

  async reader(): Promise<DatasetReader> {
    const reader = (await this.role()).reader()
    if (!reader) throw EmbassyError.blindHolder()
    return reader
  }
}
