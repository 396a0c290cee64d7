#!/usr/bin/env node
/** The `embassy` CLI: parses arguments and wires them to lib/. */
import path from 'node:path'
import { parseArgs } from 'node:util'
import {
  callControl,
  Daemon,
  defaultDir,
  EmbassyError,
  EmbassyNode,
  handlers,
  LocalDHT,
  NodeHost,
  parseHostPort,
  ROLES,
  runDemo,
  kitImport,
  kitNeedsPassphrase,
  type CommandInput,
  type CommandIO,
  type LogEvent,
  type Role
} from '../lib/index.js'
import { COMMANDS, GLOBAL_OPTIONS, GROUPS, commandHelp, mainHelp, type CommandSpec } from './cli-spec.js'
import { formatters, formatVerifyFailures } from './format.js'
import { ProgressBar } from './progress.js'

interface Parsed {
  name: string
  spec: CommandSpec
  args: string[]
  opts: Record<string, string | boolean | undefined>
}

function usageError(msg: string, name?: string): EmbassyError {
  return EmbassyError.badArgument(`${msg}${name ? ` (see \`embassy ${name} --help\`)` : ' (see `embassy --help`)'}`)
}

function parse(argv: string[]): Parsed | 'help' {
  const words = argv.filter((a) => !a.startsWith('-'))
  let name = words[0]
  if (name === undefined) return 'help'
  if (GROUPS.has(name)) {
    const sub = words[1]
    if (sub === undefined) throw usageError(`"${name}" needs a subcommand: ${Object.keys(COMMANDS).filter((c) => c.startsWith(name + ' ')).map((c) => c.split(' ')[1]).join(', ')}`)
    name = `${name} ${sub}`
  }
  const spec = COMMANDS[name]
  if (!spec) throw usageError(`unknown command "${name}"`)
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
  return { name, spec, args, opts: values }
}

/** Reads NDJSON from stdin: non-blank lines and their 1-based line numbers. */
async function readNdjson(): Promise<{ texts: string[]; lines: number[] }> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  const all = Buffer.concat(chunks).toString('utf8').split('\n')
  const texts: string[] = []
  const lines: number[] = []
  all.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line.trim() === '') return
    texts.push(line)
    lines.push(i + 1)
  })
  return { texts, lines }
}

function bootstrapList(p: Parsed): string[] | undefined {
  const v = p.opts.bootstrap
  if (typeof v !== 'string') return undefined
  const list = v.split(',').map((x) => x.trim()).filter(Boolean)
  if (list.length === 0) throw usageError('--bootstrap needs host:port[,host:port…]', p.name)
  for (const hp of list) parseHostPort(hp)
  return list
}

function portOpt(p: Parsed, name: string, fallback?: number): number | undefined {
  const v = p.opts[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n > 65535) throw usageError(`--${name} must be a port number (0-65535)`, p.name)
  return n
}

/**
 * A kit passphrase: $EMBASSY_PASSPHRASE, else a prompt on the terminal (no echo; asked twice when
 * creating a kit). Without either, a usage error — never an empty passphrase.
 */
async function passphraseFor(command: string, confirm: boolean): Promise<string> {
  const env = process.env.EMBASSY_PASSPHRASE
  if (env !== undefined && env !== '') return env
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw usageError('set EMBASSY_PASSPHRASE or run on a terminal to be asked for the passphrase', command)
  const first = await askHidden('passphrase: ')
  if (confirm) {
    const second = await askHidden('passphrase again: ')
    if (first !== second) throw usageError('the two passphrases differ', command)
  }
  return first
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin
    process.stderr.write(prompt)
    let text = ''
    stdin.setRawMode(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (err: Error | null) => {
      stdin.setRawMode(false)
      stdin.pause()
      stdin.off('data', ondata)
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(text)
    }
    const ondata = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null)
        if (ch === '\u0003') return done(usageError('cancelled'))
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
        else text += ch
      }
    }
    stdin.on('data', ondata)
  })
}

/** Longest a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 20_000

/**
 * Resolves once SIGINT or SIGTERM arrived and `close` ran: a stop asked for is a clean exit (0).
 * A second signal, or a shutdown that hangs, exits at once with 1.
 */
function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let closing = false
    const onsignal = (name: string) => {
      if (closing) {
        process.stderr.write(`embassy: ${name} again: exiting without a clean shutdown\n`)
        process.exit(1)
      }
      closing = true
      const timer = setTimeout(() => {
        process.stderr.write('embassy: shutdown took too long: exiting\n')
        process.exit(1)
      }, SHUTDOWN_TIMEOUT_MS)
      timer.unref()
      close().then(
        () => resolve(),
        (err) => {
          process.stderr.write(`embassy: error while stopping: ${(err as Error).message}\n`)
          process.exitCode = 1
          resolve()
        }
      )
    }
    process.on('SIGINT', () => onsignal('SIGINT'))
    process.on('SIGTERM', () => onsignal('SIGTERM'))
  })
}

function printEvent(format: string, e: LogEvent): void {
  if (format === 'json') process.stderr.write(JSON.stringify(e) + '\n')
  else process.stderr.write(`${new Date(e.time).toISOString()} ${e.level.padEnd(5)} ${e.message}\n`)
}

async function runDaemon(p: Parsed, dir: string): Promise<unknown> {
  const format = typeof p.opts['log-format'] === 'string' ? p.opts['log-format'] : 'text'
  if (format !== 'text' && format !== 'json') throw usageError('--log-format must be text or json', 'run')
  if (!EmbassyNode.exists(dir)) throw EmbassyError.notInitialised(dir)
  const already = await callControl(dir, 'id', { args: [], opts: {} }, { json: true, progress() {}, line() {} })
  if (already.running) throw new EmbassyError('DIR_LOCKED', `a node is already running in ${path.resolve(dir)}`, { details: { dir: path.resolve(dir) } })
  const bootstrap = bootstrapList(p)
  const daemon = new Daemon({
    dir,
    ...(bootstrap ? { bootstrap } : {}),
    ...(portOpt(p, 'port') !== undefined ? { port: portOpt(p, 'port') as number } : {}),
    ...(typeof p.opts.http === 'string' ? { http: p.opts.http } : {}),
    log: (e) => printEvent(format, e)
  })
  try {
    await daemon.ready()
  } catch (err) {
    await daemon.close().catch(() => {})
    throw err
  }
  await untilSignal(() => daemon.close())
  return { stopped: true }
}

async function runBootstrap(p: Parsed, wantsJson: boolean): Promise<unknown> {
  const host = typeof p.opts.host === 'string' ? p.opts.host : '127.0.0.1'
  const nodesText = p.opts.nodes
  const nodes = nodesText === undefined ? undefined : Number(nodesText)
  if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= 1 && nodes <= 64)) throw usageError('--nodes must be 1 to 64', 'bootstrap')
  const dht = new LocalDHT({ host, ...(portOpt(p, 'port') !== undefined ? { port: portOpt(p, 'port') as number } : {}), ...(nodes ? { nodes } : {}) })
  try {
    await dht.ready()
  } catch (err) {
    await dht.close().catch(() => {})
    throw new EmbassyError('BAD_ARGUMENT', `cannot start the bootstrap node on ${host}:${dht.port}: ${(err as Error).message}`, { cause: err })
  }
  const info = { bootstrap: dht.bootstrap, nodes: dht.nodes.length }
  if (wantsJson) process.stdout.write(JSON.stringify(info) + '\n')
  else process.stdout.write(`${dht.bootstrap.join(',')}\n`)
  process.stderr.write(`DHT bootstrap on ${dht.bootstrap.join(',')} with ${dht.nodes.length} node(s); pass --bootstrap ${dht.bootstrap.join(',')} to embassy run. Ctrl-C stops it.\n`)
  await untilSignal(() => dht.close())
  return null
}

async function run(p: Parsed, io: CommandIO): Promise<unknown> {
  const dir = typeof p.opts.dir === 'string' ? p.opts.dir : defaultDir()
  if (p.name === 'init') {
    const role = p.opts.role
    if (typeof role !== 'string' || !ROLES.includes(role as Role)) throw usageError('--role must be agency, embassy or mirror', 'init')
    const bootstrap = bootstrapList(p)
    const id = await EmbassyNode.init(dir, { role: role as Role, ...(typeof p.opts.name === 'string' ? { name: p.opts.name } : {}) })
    if (bootstrap) {
      const host = new NodeHost(dir)
      await host.ready()
      host.node.updateConfig((c) => (c.bootstrap = bootstrap))
      await host.close()
    }
    return { ...id, dir: path.resolve(dir) }
  }
  if (p.name === 'run') return runDaemon(p, dir)
  if (p.name === 'bootstrap') return runBootstrap(p, io.json)
  if (p.name === 'demo') return runDemo({ log: (line) => process.stderr.write(line + '\n'), progress: io.progress })
  if (p.name === 'status' && p.opts.watch) return watchStatus(p, dir, io)
  if (p.name === 'kit import') {
    const files = p.args.map((f) => path.resolve(f))
    const passphrase = kitNeedsPassphrase(files) ? await passphraseFor('kit import', false) : undefined
    return kitImport(dir, files, passphrase)
  }
  const input: CommandInput = { args: p.args, opts: { ...p.opts } }
  // Paths are the caller's: a running node may have another working directory.
  if (p.name === 'publish' && p.args[1]) input.args = [p.args[0]!, path.resolve(p.args[1])]
  if (p.name === 'export' && p.args[1]) input.args = [p.args[0]!, path.resolve(p.args[1])]
  if (p.name === 'kit export') {
    if (typeof p.opts.out === 'string') input.opts.out = path.resolve(p.opts.out)
    if (p.opts.shares === undefined) input.opts.passphrase = await passphraseFor('kit export', true)
  }
  if (p.name === 'append' && p.args.length === 1) {
    if (process.stdin.isTTY) throw usageError('no records: pass JSON arguments or pipe NDJSON on stdin', 'append')
    input.records = await readNdjson()
  }
  return dispatch(p.name, dir, input, io)
}

/** Runs a handler: through the running node's control socket, or on the directory directly. */
async function dispatch(name: string, dir: string, input: CommandInput, io: CommandIO): Promise<unknown> {
  const handler = handlers[name]
  if (!handler) throw usageError(`unknown command "${name}"`)
  if (!EmbassyNode.exists(dir)) throw EmbassyError.notInitialised(dir)
  const remote = await callControl(dir, name, input, io)
  if (remote.running) return remote.value
  const host = new NodeHost(dir)
  try {
    await host.ready()
  } catch (err) {
    await host.close().catch(() => {})
    // A node that is starting holds the directory before its control socket listens: wait for it.
    if ((err as EmbassyError).code !== 'DIR_LOCKED') throw err
    if (process.stderr.isTTY) process.stderr.write(`waiting for the node starting in ${dir}…\n`)
    const deadline = Date.now() + STARTING_NODE_WAIT_MS
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      const again = await callControl(dir, name, input, io)
      if (again.running) return again.value
    }
    throw err
  }
  try {
    return await handler(host, input, io)
  } finally {
    await host.close()
  }
}

/** How long a command waits for a node that holds the directory but is still starting. */
const STARTING_NODE_WAIT_MS = 15_000

async function watchStatus(p: Parsed, dir: string, io: CommandIO): Promise<null> {
  const seconds = p.opts.interval === undefined ? 1 : Number(p.opts.interval)
  if (!(seconds >= 0.1 && seconds <= 3600)) throw usageError('--interval must be 0.1 to 3600 seconds', 'status')
  let stop = false
  process.once('SIGINT', () => (stop = true))
  process.once('SIGTERM', () => (stop = true))
  const tty = !!process.stdout.isTTY
  while (!stop) {
    const s = await dispatch('status', dir, { args: [], opts: {} }, io)
    if (io.json) process.stdout.write(JSON.stringify(s) + '\n')
    else process.stdout.write((tty ? '\x1b[2J\x1b[H' : '\n') + `${new Date().toISOString()}\n` + (formatters.status as (r: unknown) => string)(s))
    const until = Date.now() + seconds * 1000
    while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
  }
  return null
}

async function main(argv: string[]): Promise<number> {
  const wantsJson = argv.includes('--json')
  const debug = argv.includes('--debug')
  const progress = new ProgressBar(!wantsJson && !!process.stderr.isTTY && !process.env.CI)
  try {
    const p = parse(argv)
    if (p === 'help') {
      process.stdout.write(mainHelp())
      return 0
    }
    if (p.opts.help) {
      process.stdout.write(commandHelp(p.name, p.spec))
      return 0
    }
    const io: CommandIO = {
      json: wantsJson,
      progress: (label, done, total) => progress.update(label, done, total, label === 'append' || label === 'verify' ? 'items' : 'bytes'),
      line: (text) => {
        process.stdout.write(text + '\n')
      }
    }
    const result = await run(p, io)
    progress.done()
    if (result === null) return 0
    if (wantsJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else process.stdout.write((formatters[p.name] ?? ((r) => JSON.stringify(r, null, 2) + '\n'))(result))
    return 0
  } catch (err) {
    progress.done()
    const e = err instanceof EmbassyError ? err : null
    if (wantsJson) {
      const body = e ? e.toJSON() : { code: 'INTERNAL', message: (err as Error)?.message ?? String(err), details: {} }
      process.stdout.write(JSON.stringify({ error: body }, null, 2) + '\n')
    }
    if (e) {
      process.stderr.write(`embassy: ${e.message}\n`)
      if (e.code === 'VERIFY_FAILED' && !wantsJson) process.stderr.write(formatVerifyFailures(e.details))
      if (debug && e.cause) process.stderr.write(`cause: ${(e.cause as Error)?.stack ?? String(e.cause)}\n`)
      return e.exitCode
    }
    process.stderr.write(`embassy: INTERNAL: ${(err as Error)?.message ?? String(err)}\n`)
    if (debug) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    else process.stderr.write('(run again with --debug for the stack)\n')
    return 1
  }
}

const code = await main(process.argv.slice(2))
// Let stdout drain before exiting, even when piped.
process.stdout.write('', () => {
  process.exitCode = code
})
