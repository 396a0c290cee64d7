/**
 * Command-line parsing against the command specs (lib/daemon/commands/): which command, its
 * options (the global --dir, --json, --debug, --help included) and its positional arguments.
 *
 * Owns: argv → Parsed. May import: lib/index.ts.
 */
import { parseArgs } from 'node:util'
import * as cli from '../lib/daemon/index.js'

const { COMMANDS, GLOBAL_OPTIONS, GROUPS, findCommand, usageError } = cli

export interface Parsed {
  command: cli.AnyCommand
  args: string[]
  opts: Record<string, string | boolean | undefined>
}

/** The command line parsed; 'help' for no command at all. Usage errors are BAD_ARGUMENT. */
export function parse(argv: string[]): Parsed | 'help' {
  const words = argv.filter((a) => !a.startsWith('-'))
  let name = words[0]
  if (name === undefined) return 'help'
  if (GROUPS.has(name)) {
    const group = name
    const sub = words[1]
    if (sub === undefined) {
      const subs = COMMANDS.map((c) => c.name).filter((c) => c.startsWith(group + ' ')).map((c) => c.split(' ')[1])
      throw usageError(`"${group}" needs a subcommand: ${subs.join(', ')}`)
    }
    name = `${name} ${sub}`
  }
  const command = findCommand(name)
  if (!command) throw usageError(`unknown command "${name}"`)
  const { spec } = command
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: true, strict: true }) as {
      values: Record<string, string | boolean | undefined>
      positionals: string[]
    })
  } catch (err) {
    throw usageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''), name)
  }
  const args = positionals.slice(name.split(' ').length)
  if (!values.help) {
    const [min, max] = spec.args
    if (args.length < min) throw usageError(`missing argument: ${spec.usage}`, name)
    if (args.length > max) throw usageError(`unexpected argument "${args[max]}"`, name)
  }
  return { command, args, opts: values }
}
