/**
 * NodeHost: an open node plus its role object, opened on demand. The CLI uses one for a single
 * command; `embassy run` keeps one for its lifetime (with the network up) and serves commands on it.
 */
import ReadyResource from 'ready-resource'
import { Agency } from './agency.js'
import type { Host } from './commands.js'
import { Embassy } from './embassy.js'
import { EmbassyError } from './errors.js'
import { Mirror } from './mirror.js'
import type { Network } from './network.js'
import { EmbassyNode } from './node.js'
import type { DatasetReader } from './reader.js'

type RoleObject = Agency | Embassy | Mirror

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

  async reader(): Promise<DatasetReader> {
    const role = this.node.role
    if (role === 'agency') return (await this.agency()).datasets
    if (role === 'mirror') return this.mirror()
    throw new EmbassyError('WRONG_ROLE', 'an embassy is blind: it holds ciphertext only and cannot read datasets (use a mirror)')
  }
}
