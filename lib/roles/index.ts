/**
 * roles/: what a node does — Agency (the only writer), Embassy (blind, append-only holder),
 * Mirror (reads in a crisis, append-only holder), Auditor (blind auditor of embassies, holds nothing) behind the Role interface (role.ts), the Holder
 * of one agency's cores, the HistoryGuard that makes holders witnesses, and the agency's custody
 * desk. This file: the factory that picks a role and initNode().
 * May import: node/, data/, net/, custody/, verify/, kit/; never gateway/ or daemon/.
 */
import { EmbassyNode, type InitOptions, type NodeIdentity } from '../node/node.js'
import { Agency } from './agency.js'
import { Embassy } from './embassy.js'
import { Mirror } from './mirror.js'
import { Auditor } from './auditor.js'
import type { Role } from './role.js'

export { Agency, Embassy, Mirror, Auditor }
export { BaseRole, type Role, type Notice, type PairingResult, type RoleEvents } from './role.js'

/** The role object for an (unopened or open) node, by its configured role. */
export function createRole(node: EmbassyNode): Agency | Embassy | Mirror | Auditor {
  const role = node.role
  return role === 'agency' ? new Agency(node) : role === 'embassy' ? new Embassy(node) : role === 'auditor' ? new Auditor(node) : new Mirror(node)
}

/**
 * Creates a node directory and opens its role once, so it is complete on disk (an agency's
 * catalog starts with its header). Throws ALREADY_INITIALISED when one is there.
 */
export async function initNode(dir: string, opts: InitOptions): Promise<NodeIdentity> {
  const identity = await EmbassyNode.init(dir, opts)
  const node = new EmbassyNode(dir)
  const role: Role = (await node.ready(), createRole(node))
  try {
    await role.ready()
  } finally {
    await role.close()
    await node.close()
  }
  return identity
}
