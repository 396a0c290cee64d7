/**
 * Every CLI command, in the order `embassy --help` lists them, and the help text built from their
 * specs. The CLI parses against this table and runCommand() looks commands up in it; the control
 * socket serves its node commands (commands/served.ts). Names are part of the product: extend,
 * don't rename.
 *
 * Owns: the table, the global options, help text. May import: command, the command groups, served.
 */
import type { AnyCommand, CommandSpec, Options } from '../command.js'
import { append, datasetCreate, exportDataset, list, publish, read } from './data.js'
import { kitExport, kitImport } from './kit.js'
import { id, init, status } from './node.js'
import { allow, capability, deny, follow, mirror } from './peers.js'
import { bootstrap, demo, run } from './run.js'
import { NODE_COMMANDS } from './served.js'
import { verify } from './verify.js'
import { repair } from './repair.js'
import { acceptRewrite } from './history.js'
import { audit } from './audit.js'
import { drill } from './drill.js'
import { alarms, alarmsAck } from './alarms.js'

export const COMMANDS: readonly AnyCommand[] = [
  init,
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
  acceptRewrite,
  status,
  alarms,
  alarmsAck,
  run,
  bootstrap,
  demo,
  verify,
  repair,
  kitExport,
  kitImport,
  capability,
  audit,
  drill
]

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]))

// A node command the control socket did not serve would work only while no node runs.
for (const c of COMMANDS) if (c.kind === 'node' && !NODE_COMMANDS.includes(c)) throw new Error(`${c.name} is missing from NODE_COMMANDS (commands/served.ts)`)

/** The command named `name` (`status`, `dataset create`), if there is one. */
export function findCommand(name: string): AnyCommand | undefined {
  return BY_NAME.get(name)
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: Options = {
  dir: { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

/** Commands spelled as two words. */
export const GROUPS: ReadonlySet<string> = new Set(['dataset', 'kit'])

export function commandHelp(spec: CommandSpec): string {
  const lines = [`usage: ${spec.usage}`, '', spec.summary]
  if (spec.details?.length) lines.push('', ...spec.details.map((d) => '  ' + d))
  lines.push('', 'common options:', '  --dir DIR   node directory (default $EMBASSY_DIR, else the platform data directory)', '  --json      print one JSON document on stdout', '  --debug     show stacks of unexpected errors', '  -h, --help  this help')
  return lines.join('\n') + '\n'
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  const rows = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.spec.summary}`)
  return [
    'embassy — keep a state\'s critical data alive abroad',
    '',
    'usage: embassy COMMAND [ARGS] [--dir DIR] [--json]',
    '',
    'commands:',
    ...rows,
    '',
    'Run `embassy help COMMAND` (or `embassy COMMAND --help`) for a command\'s options; global options go before or after the command.',
    'Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 peer unreachable or timeout.',
    ''
  ].join('\n')
}
