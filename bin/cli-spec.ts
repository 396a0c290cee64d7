/** The CLI's commands, their options and help text. Names are part of the product: extend, don't rename. */
import type { ParseArgsConfig } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

export interface CommandSpec {
  usage: string
  summary: string
  /** Longer help: arguments and options, one per line. */
  details?: string[]
  options: Options
  /** Allowed number of positional arguments. */
  args: [min: number, max: number]
}

export const GLOBAL_OPTIONS: Options = {
  dir: { type: 'string' },
  json: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

export const COMMANDS: Record<string, CommandSpec> = {
  init: {
    usage: 'embassy init --role agency|embassy|mirror [--name NAME] [--bootstrap HOST:PORT,…]',
    summary: 'create a node in the data directory',
    details: [
      '--role R              agency (publishes), embassy (holds blind copies) or mirror (reads in a crisis)',
      '--name NAME           a human name (an agency\'s name is sealed into its catalog)',
      '--bootstrap LIST      DHT bootstrap nodes saved in config.json (the public DHT is never used)'
    ],
    options: { role: { type: 'string' }, name: { type: 'string' }, bootstrap: { type: 'string' } },
    args: [0, 0]
  },
  id: {
    usage: 'embassy id',
    summary: 'print this node\'s role, node key and catalog key',
    options: {},
    args: [0, 0]
  },
  'dataset create': {
    usage: 'embassy dataset create NAME [--kind log|files] [--description TEXT] [--content-type TYPE]',
    summary: 'add a dataset to the agency\'s catalog',
    details: ['--kind K          log (records, the default) or files (a versioned file tree)', '--description T   free text, sealed with the read key', '--content-type T   media type of a log\'s records (default application/json)'],
    options: { kind: { type: 'string' }, description: { type: 'string' }, 'content-type': { type: 'string' } },
    args: [1, 1]
  },
  append: {
    usage: 'embassy append NAME [JSON …]   (or NDJSON on stdin)',
    summary: 'append JSON records to a log dataset; a bad line appends nothing',
    options: {},
    args: [1, Infinity]
  },
  publish: {
    usage: 'embassy publish NAME PATH',
    summary: 'publish a folder (the dataset becomes it) or one file into a files dataset; only changes are appended',
    options: {},
    args: [2, 2]
  },
  list: {
    usage: 'embassy list',
    summary: 'list datasets with their size',
    options: {},
    args: [0, 0]
  },
  read: {
    usage: 'embassy read NAME [--start N] [--end N]',
    summary: 'print a log\'s records as NDJSON (with --json: one document with seq and time)',
    options: { start: { type: 'string' }, end: { type: 'string' } },
    args: [1, 1]
  },
  export: {
    usage: 'embassy export NAME DIR',
    summary: 'write a dataset to DIR: a log as DIR/NAME.ndjson, files as the tree, byte-identical',
    options: {},
    args: [2, 2]
  },
  allow: {
    usage: 'embassy allow NODE_KEY',
    summary: 'admit a peer (an agency allows its embassies and mirrors; an embassy allows mirrors)',
    options: {},
    args: [1, 1]
  },
  deny: {
    usage: 'embassy deny NODE_KEY',
    summary: 'stop admitting a peer (a live connection from it is closed)',
    options: {},
    args: [1, 1]
  },
  follow: {
    usage: 'embassy follow AGENCY_NODE_KEY',
    summary: 'embassy: hold every dataset of an agency (allows it, dials it, learns its catalog)',
    options: {},
    args: [1, 1]
  },
  mirror: {
    usage: 'embassy mirror READ_CAPABILITY',
    summary: 'mirror: read an agency\'s data (from `embassy capability` on the agency)',
    options: {},
    args: [1, 1]
  },
  status: {
    usage: 'embassy status [--watch] [--interval SECONDS]',
    summary: 'what this node holds, who it is connected to; on an agency, custody per dataset and embassy',
    details: ['--watch           redraw until Ctrl-C (with --json: one JSON document per line)', '--interval S       seconds between redraws (default 1)'],
    options: { watch: { type: 'boolean' }, interval: { type: 'string' } },
    args: [0, 0]
  },
  run: {
    usage: 'embassy run [--bootstrap HOST:PORT,…] [--port N] [--http HOST:PORT] [--log-format text|json]',
    summary: 'run the node: replicate, serve peers and the control socket until SIGINT/SIGTERM',
    details: [
      '--bootstrap LIST      DHT bootstrap nodes (overrides config.json); required one way or the other',
      '--port N              UDP port of this node (default: any free port)',
      '--http HOST:PORT      serve the read-only web gateway (mirror or agency); use 127.0.0.1 unless it must be reachable',
      '--log-format F        text (default) or json: one event per line on stderr'
    ],
    options: { bootstrap: { type: 'string' }, port: { type: 'string' }, http: { type: 'string' }, 'log-format': { type: 'string' } },
    args: [0, 0]
  },
  bootstrap: {
    usage: 'embassy bootstrap [--host IP] [--port N] [--nodes N]',
    summary: 'run DHT bootstrap node(s) until SIGINT/SIGTERM; prints the bootstrap address',
    details: ['--host IP     IPv4 address to bind and advertise (default 127.0.0.1)', '--port N      UDP port (default 49737; 0 = any)', '--nodes N     DHT nodes to run, the bootstrapper included (default 5; ≥ 4 makes first dials reliable)'],
    options: { host: { type: 'string' }, port: { type: 'string' }, nodes: { type: 'string' } },
    args: [0, 0]
  },
  demo: {
    usage: 'embassy demo',
    summary: 'the whole story on loopback: agency → two embassies → agency gone → mirror reads',
    options: {},
    args: [0, 0]
  },
  verify: {
    usage: 'embassy verify [NAME]',
    summary: 're-check every held block against the signed Merkle tree (works blind on an embassy); exit 1 on any failure',
    details: ['NAME   a dataset name (agency, mirror), a core or catalog key, or "catalog"; default: everything held'],
    options: {},
    args: [0, 1]
  },
  'kit export': {
    usage: 'embassy kit export --out FILE [--shares M/N]',
    summary: 'agency: write a recovery kit (sealed with a passphrase from $EMBASSY_PASSPHRASE or a prompt, or split into N shares of which any M restore it)',
    details: ['--out FILE     where to write it (FILE.1 … FILE.N with --shares); never overwrites', '--shares M/N   Shamir shares instead of a passphrase'],
    options: { out: { type: 'string' }, shares: { type: 'string' } },
    args: [0, 0]
  },
  'kit import': {
    usage: 'embassy kit import FILE… --dir DIR',
    summary: 'rebuild an agency from a kit (or M shares); `embassy run` then syncs it from its embassies',
    options: {},
    args: [1, Infinity]
  },
  capability: {
    usage: 'embassy capability',
    summary: 'print the read capability a mirror needs (agency only; it holds the read key: share it carefully)',
    options: {},
    args: [0, 0]
  }
}

/** Commands spelled as two words. */
export const GROUPS = new Set(['dataset', 'kit'])

export function commandHelp(name: string, spec: CommandSpec): string {
  const lines = [`usage: ${spec.usage}`, '', spec.summary]
  if (spec.details?.length) lines.push('', ...spec.details.map((d) => '  ' + d))
  lines.push('', 'common options:', '  --dir DIR   node directory (default $EMBASSY_DIR, else the platform data directory)', '  --json      print one JSON document on stdout', '  --debug     show stacks of unexpected errors', '  -h, --help  this help')
  return lines.join('\n') + '\n'
}

export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length))
  const rows = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
  return [
    'embassy — keep a state\'s critical data alive abroad',
    '',
    'usage: embassy COMMAND [ARGS] [--dir DIR] [--json]',
    '',
    'commands:',
    ...rows,
    '',
    'Run `embassy COMMAND --help` for a command\'s options.',
    'Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 peer unreachable or timeout.',
    ''
  ].join('\n')
}
