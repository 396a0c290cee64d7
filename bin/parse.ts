/**
 * Command-line parsing against the command specs (lib/daemon/commands/): which command, its
 * options (the global --dir, --json, --debug, --help included, before or after the command) and
 * its positional arguments.
 *
 * Owns: argv → Parsed. May import: lib/index.ts.
 */
import { parseArgs } from 'node:util'
import * as cli from '../lib/daemon/index.js'

const { COMMANDS, GLOBAL_OPTIONS, GROUPS, commandHelp, findCommand, usageError } = cli

/** Help for a two-word group (`embassy kit --help`): its subcommands with their summaries. */
function groupHelp(group: string): string {
  const subs = COMMANDS.filter((c) => c.name.startsWith(group + ' '))
  const width = Math.max(...subs.map((c) => c.name.length))
  return [`usage: embassy ${group} SUBCOMMAND …`, '', 'subcommands:', ...subs.map((c) => `  ${c.name.padEnd(width)}  ${c.spec.summary}`), '', `Run \`embassy ${group} SUBCOMMAND --help\` for its options.`, ''].join('\n')
}

export interface Parsed {
  command: cli.AnyCommand
  args: string[]
  opts: Record<string, string | boolean | undefined>
}

/** What the CLI prints instead of running a command: help text (exit 0). */
export interface HelpText {
  help: string
}

/**
 * The words of `argv` that name the command (`id`, `dataset create`), found past the global
 * options before it (`embassy --dir D id`): a global option that takes a value takes the next
 * word with it. Stops at `--`.
 */
function commandWords(argv: string[], count: number): string[] {
  const words: string[] = []
  for (let i = 0; i < argv.length && words.length < count; i++) {
    const a = argv[i]!
    if (a === '--') break
    if (a.startsWith('-') && a !== '-') {
      if (a.includes('=')) continue
      const long = a.startsWith('--') ? a.slice(2) : null
      const opt = long !== null ? GLOBAL_OPTIONS[long] : Object.values(GLOBAL_OPTIONS).find((o) => o.short === a.slice(1))
      if (opt?.type === 'string') i++
      continue
    }
    words.push(a)
  }
  return words
}

/** `--opt` without a number after it becomes `--opt=DEFAULT` (options whose value may be left out). */
function withOptionalValues(argv: string[], defaults: Record<string, string>): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') return [...out, ...argv.slice(i)]
    const d = a.startsWith('--') ? defaults[a.slice(2)] : undefined
    if (d !== undefined && !/^\d+$/.test(argv[i + 1] ?? '')) out.push(`${a}=${d}`)
    else out.push(a)
  }
  return out
}

/** The command line parsed; help text for no command, `help [COMMAND]` or a group's --help. Usage errors are BAD_ARGUMENT. */
export function parse(argv: string[]): Parsed | HelpText {
  const words = commandWords(argv, 3)
  const wantsHelp = argv.includes('--help') || argv.includes('-h')
  let name = words[0]
  if (name === undefined) return { help: cli.mainHelp() }
  if (name === 'help') {
    // `embassy help`, `embassy help status`, `embassy help dataset create`
    const topic = words.slice(1)
    if (topic.length === 0) return { help: cli.mainHelp() }
    if (GROUPS.has(topic[0]!) && topic.length === 1) return { help: groupHelp(topic[0]!) }
    const c = findCommand(topic.join(' ')) ?? findCommand(topic[0]!)
    if (!c) throw usageError(`no command "${cli.redactSecret(topic.join(' '))}"`)
    return { help: commandHelp(c.spec) }
  }
  if (GROUPS.has(name)) {
    const group = name
    const sub = words[1]
    if (sub === undefined) {
      if (wantsHelp) return { help: groupHelp(group) }
      const subs = COMMANDS.map((c) => c.name).filter((c) => c.startsWith(group + ' ')).map((c) => c.split(' ')[1])
      throw usageError(`"${group}" needs a subcommand: ${subs.join(', ')}`)
    }
    name = `${name} ${sub}`
  } else if (words[1] !== undefined && findCommand(`${name} ${words[1]}`)) {
    // A command with subcommands of its own: `alarms` and `alarms ack`.
    name = `${name} ${words[1]}`
  }
  const command = findCommand(name)
  if (!command) throw usageError(`unknown command "${cli.redactSecret(name)}"`)
  const { spec } = command
  argv = withOptionalValues(argv, spec.optionalValues ?? {})
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
    if (args.length > max) throw usageError(`unexpected argument "${cli.redactSecret(args[max]!)}"`, name)
  }
  return { command, args, opts: values }
}
