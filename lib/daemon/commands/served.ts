/**
 * The commands a running node serves over its control socket: every command that runs on an open
 * node (init, run, bootstrap, demo and kit import run in the caller's process only). The records
 * are the ones in COMMANDS (commands/index.ts); this list is apart from it so that the control
 * socket (and so the daemon) does not depend on the commands that start a daemon.
 *
 * Owns: the served list. May import: command, the command groups that hold node commands.
 */
import type { NodeCommand } from '../command.js'
import { append, datasetCreate, exportDataset, list, publish, read } from './data.js'
import { kitExport } from './kit.js'
import { id, status } from './node.js'
import { allow, capability, deny, follow, mirror } from './peers.js'
import { verify } from './verify.js'
import { repair } from './repair.js'
import { acceptRewrite } from './history.js'
import { audit } from './audit.js'
import { alarms, alarmsAck } from './alarms.js'

export const NODE_COMMANDS: readonly NodeCommand<unknown, unknown>[] = [
  id,
  datasetCreate,
  append,
  publish,
  list,
  read,
  exportDataset,
  allow,
  deny,
  follow,
  mirror,
  status,
  verify,
  repair,
  kitExport,
  capability,
  acceptRewrite,
  alarms,
  alarmsAck,
  audit
]

const BY_NAME = new Map(NODE_COMMANDS.map((c) => [c.name, c]))

/** The node command named `name`, if there is one. */
export function findNodeCommand(name: string): NodeCommand<unknown, unknown> | undefined {
  return BY_NAME.get(name)
}
