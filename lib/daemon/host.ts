/**
 * NodeHost: an open node plus its role object, opened on demand. The CLI uses one for a single
 * command; `embassy run` keeps one for its lifetime (with the network up) and serves commands on it.
 */
import ReadyResource from 'ready-resource'
import type Hypercore from 'hypercore'
import { toZ32 } from '../ids.js'
import { Agency } from '../roles/agency.js'
import type { Host } from './commands.js'
import { Embassy } from '../roles/embassy.js'
import { EmbassyError } from '../errors.js'
import { Mirror } from '../roles/mirror.js'
import type { Network } from '../net/network.js'
import { EmbassyNode } from '../node/node.js'
import type { DatasetReader } from '../data/reader.js'

type RoleObject = Agency | Embassy | Mirror

/** One held core and what it belongs to. */
export interface HeldCoreRef {
  /** Catalog key (z32) of the agency it belongs to. */
  catalog: string
  /** Dataset id (hex); null for the catalog itself. */
  dataset: string | null
  /** Human label: 'catalog', the dataset name (agency), or the core key (blind holders). */
  name: string
  core: Hypercore
}

export class NodeHost extends ReadyResource implements Host {
  readonly node: EmbassyNode
  network: Network | null = null
  #role: Promise<RoleObject> | null = null

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

  /** The node's role object, opened once. */
  role(): Promise<RoleObject> {
    if (!this.#role) {
      const role = this.node.role
      const obj: RoleObject = role === 'agency' ? new Agency(this.node) : role === 'embassy' ? new Embassy(this.node) : new Mirror(this.node)
      this.#role = obj.ready().then(() => obj)
      this.#role.catch(() => {})
    }
    return this.#role
  }

  async agency(): Promise<Agency> {
    if (this.node.role !== 'agency') throw EmbassyError.wrongRole('this command', this.node.role, 'agency')
    return (await this.role()) as Agency
  }

  async embassy(): Promise<Embassy> {
    if (this.node.role !== 'embassy') throw EmbassyError.wrongRole('this command', this.node.role, 'embassy')
    return (await this.role()) as Embassy
  }

  async mirror(): Promise<Mirror> {
    if (this.node.role !== 'mirror') throw EmbassyError.wrongRole('this command', this.node.role, 'mirror')
    return (await this.role()) as Mirror
  }

  /**
   * Every core this node holds, with what it belongs to: the catalog(s) and every dataset core.
   * Works on every role (an embassy's are ciphertext: fine for verification).
   */
  async heldCores(): Promise<HeldCoreRef[]> {
    const role = await this.role()
    const out: HeldCoreRef[] = []
    if (role instanceof Agency) {
      out.push({ catalog: role.catalogKey, dataset: null, name: 'catalog', core: role.catalog.core })
      for (const info of await role.datasets.infos()) {
        const ds = await role.datasets.open(info)
        if ('drive' in ds) {
          const blobs = await ds.drive.getBlobs()
          out.push({ catalog: role.catalogKey, dataset: info.id, name: `${info.name}/index`, core: ds.drive.core })
          if (blobs) out.push({ catalog: role.catalogKey, dataset: info.id, name: `${info.name}/content`, core: blobs.core })
        } else {
          out.push({ catalog: role.catalogKey, dataset: info.id, name: info.name ?? info.id, core: ds.core })
        }
      }
      return out
    }
    const holders = role instanceof Embassy ? [...role.holders.values()] : [...(role as Mirror).sources.values()].map((s) => s.holder)
    for (const h of holders) {
      const catalog = toZ32(h.key)
      out.push({ catalog, dataset: null, name: 'catalog', core: h.catalog.core })
      for (const { core, dataset } of h.cores.values()) out.push({ catalog, dataset, name: toZ32(core.key!), core })
    }
    return out
  }

  async reader(): Promise<DatasetReader> {
    const role = this.node.role
    if (role === 'agency') return (await this.agency()).datasets
    if (role === 'mirror') return this.mirror()
    throw new EmbassyError('WRONG_ROLE', 'an embassy is blind: it holds ciphertext only and cannot read datasets (use a mirror)')
  }
}
