/**
 * Commands that run until they are stopped, without a node host of their own: `embassy run` (the
 * daemon), `embassy bootstrap` (DHT bootstrap nodes) and `embassy demo`. Signals are the caller's
 * (Caller.untilSignal); output goes through Caller.io.
 *
 * Owns: these records and the text of run's log lines. May import: command, control (client),
 * daemon, demo, node/, net/local-dht. The daemon, the demo, the DHT and the node are imported when
 * the command runs (import()), not when the CLI loads the command table.
 */
import path from 'node:path'
import v8 from 'node:v8'
import { EmbassyError } from '../../errors.js'
import { defineLocalCommand, noInput, parseBootstrap, parsePort, strOpt, usageError } from '../command.js'
import { callControl } from '../control.js'
import type { LogEvent } from '../daemon.js'
import type { DemoResult } from '../demo.js'
import { escapeText } from '../text.js'
import { readConfig, writeConfig } from '../../node/config.js'
import { RESTORE_OPTIONS, RESTORE_OPTION_DETAILS, confirmForce, restoreSettingsFrom } from './kit.js'
import { loadDrillSource } from './drill.js'

/**
 * One operator event as a line on stderr: text, or one JSON object. A message can carry a peer's
 * words ("remote says: …"): in text its control characters are escaped (one event, one line, no
 * terminal sequences); JSON escapes them itself.
 */
export function formatLogEvent(format: 'text' | 'json', e: LogEvent): string {
  return format === 'json' ? JSON.stringify(e) : `${new Date(e.time).toISOString()} ${escapeText(e.level.padEnd(5))} ${escapeText(e.message)}`
}

const quiet = { json: true, progress() {}, line() {} }

export const run = defineLocalCommand({
  name: 'run',
  spec: {
    usage: 'embassy run [--bootstrap HOST:PORT,…] [--port N] [--http HOST:PORT [--http-status]] [--log-format text|json] [--quorum N] [--force] [--backfill-rate N] [--schedule INTERVAL --drill-kit FILE|--drill-capability FILE]',
    summary: 'run the node: replicate, serve peers and the control socket until SIGINT/SIGTERM',
    details: [
      '--bootstrap LIST      DHT bootstrap nodes (overrides config.json); required one way or the other',
      '--port N              UDP port of this node (default: any free port)',
      '--http HOST:PORT      serve the read-only web gateway (mirror or agency); use 127.0.0.1 unless it must be reachable',
      '--http-status         also publish /api/status (peers, custody, alarms) on a gateway bound beyond loopback',
      '--log-format F        text (default) or json: one event per line on stderr',
      ...RESTORE_OPTION_DETAILS,
      '--schedule INTERVAL   run a continuity drill (embassy drill) every INTERVAL (24h, 30m, 90s); reports in DIR/drills/ (newest 50)',
      '--drill-kit FILE      the drills\' passphrase kit ($EMBASSY_PASSPHRASE or a prompt, once at start), or',
      '--drill-capability FILE  a read capability for the drills'
    ],
    options: {
      bootstrap: { type: 'string' },
      port: { type: 'string' },
      http: { type: 'string' },
      'http-status': { type: 'boolean' },
      'log-format': { type: 'string' },
      schedule: { type: 'string' },
      'drill-kit': { type: 'string' },
      'drill-capability': { type: 'string' },
      ...RESTORE_OPTIONS
    },
    args: [0, 0]
  },
  /** --bootstrap and --port are checked once the directory is known to be free (run()). */
  input(line) {
    const format = strOpt(line, 'log-format') ?? 'text'
    if (format !== 'text' && format !== 'json') throw usageError('--log-format must be text or json', 'run')
    const httpStatus = line.opts['http-status'] === true
    if (httpStatus && strOpt(line, 'http') === undefined) throw usageError('--http-status needs --http HOST:PORT', 'run')
    const scheduleText = strOpt(line, 'schedule')
    const drillKit = strOpt(line, 'drill-kit')
    const drillCapability = strOpt(line, 'drill-capability')
    if (scheduleText !== undefined && drillKit === undefined && drillCapability === undefined) throw usageError('--schedule needs --drill-kit FILE or --drill-capability FILE', 'run')
    if (scheduleText === undefined && (drillKit !== undefined || drillCapability !== undefined)) throw usageError('--drill-kit and --drill-capability go with --schedule INTERVAL', 'run')
    if (drillKit !== undefined && drillCapability !== undefined) throw usageError('give one of --drill-kit and --drill-capability', 'run')
    // The interval is read in run(): parseInterval lives with the drill schedule, loaded only to run.
    const drill =
      scheduleText === undefined
        ? undefined
        : { schedule: scheduleText, kit: drillKit === undefined ? undefined : path.resolve(drillKit), capability: drillCapability === undefined ? undefined : path.resolve(drillCapability) }
    return { logFormat: format as 'text' | 'json', bootstrap: strOpt(line, 'bootstrap'), port: strOpt(line, 'port'), http: strOpt(line, 'http'), httpStatus, restore: restoreSettingsFrom(line, 'run'), drill }
  },
  async run(input, caller): Promise<{ stopped: true }> {
    const { dir, io, untilSignal } = caller
    const [{ parseInterval }, { EmbassyNode }, { Daemon }] = await Promise.all([import('../../roles/drill-schedule.js'), import('../../node/node.js'), import('../daemon.js')])
    const drillFlags = input.drill ? { intervalMs: parseInterval(input.drill.schedule), kit: input.drill.kit, capability: input.drill.capability } : undefined
    if (!EmbassyNode.exists(dir)) throw EmbassyError.notInitialised(dir)
    const already = await callControl(dir, 'id', { args: [], opts: {} }, quiet)
    if (already.running) throw EmbassyError.alreadyRunning(path.resolve(dir))
    if (Object.keys(input.restore).length > 0) {
      // Restore settings live in config.json (the agency reads them when it opens); kept for the next start.
      const config = readConfig(dir)
      if (config.role !== 'agency') throw usageError('--quorum, --force and --backfill-rate are for a restored agency', 'run')
      if (input.restore.force) await confirmForce(caller, 'run')
      writeConfig(dir, { ...config, restore: { ...config.restore, ...input.restore } })
    }
    const bootstrap = parseBootstrap(input.bootstrap, 'run')
    const port = parsePort(input.port, 'run')
    // Drills: the flags, else config.json "drill". The kit is opened once, here (its passphrase never reaches the node's files).
    const runConfig = readConfig(dir)
    // This process is the node: an embassy tunes its heap for holding (see EMBASSY_HEAP_GROWING_PERCENT).
    if (runConfig.role === 'embassy') v8.setFlagsFromString(`--heap-growing-percent=${EMBASSY_HEAP_GROWING_PERCENT}`)
    const configured = runConfig.drill
    const drill = drillFlags ?? (configured ? { intervalMs: parseInterval(configured.schedule, 'config.json "drill.schedule"'), kit: configured.kit, capability: configured.capability } : undefined)
    const drillSource = drill ? await loadDrillSource(drill.kit, drill.capability, caller) : undefined
    const daemon = new Daemon({
      dir,
      ...(bootstrap ? { bootstrap } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(input.http !== undefined ? { http: input.http } : {}),
      ...(input.httpStatus ? { httpStatus: true } : {}),
      ...(drill && drillSource ? { drill: { source: drillSource, intervalMs: drill.intervalMs } } : {}),
      log: (e) => io.notice(formatLogEvent(input.logFormat, e))
    })
    try {
      await daemon.ready()
    } catch (err) {
      await daemon.close().catch(() => {})
      throw err
    }
    await untilSignal(() => daemon.close())
    return { stopped: true }
  },
  format: (r) => JSON.stringify(r, null, 2) + '\n'
})

/**
 * How much an embassy's V8 heap may grow past what its last full GC kept, in percent. An embassy
 * holding thousands of cores opens and closes them continually (the bound of open cores): with
 * V8's own growth (up to 4×) ~100 MiB of dead objects stayed resident at 10,010 held cores; with
 * this, the heap stays near what is live, for some more GC work (BENCHMARKS.md, "Holding
 * thousands of cores"). Set by `embassy run` only — the process it owns — never by the library.
 */
export const EMBASSY_HEAP_GROWING_PERCENT = 50

export interface BootstrapInfo {
  bootstrap: string[]
  nodes: number
}

export const bootstrap = defineLocalCommand({
  name: 'bootstrap',
  spec: {
    usage: 'embassy bootstrap [--host IP] [--port N] [--nodes N]',
    summary: 'run DHT bootstrap node(s) until SIGINT/SIGTERM; prints the bootstrap address',
    details: ['--host IP     IPv4 address to bind and advertise (default 127.0.0.1)', '--port N      UDP port (default 49737; 0 = any)', '--nodes N     DHT nodes to run, the bootstrapper included (default 5; ≥ 4 makes first dials reliable)'],
    options: { host: { type: 'string' }, port: { type: 'string' }, nodes: { type: 'string' } },
    args: [0, 0]
  },
  input(line) {
    const host = strOpt(line, 'host') ?? '127.0.0.1'
    const nodesText = line.opts.nodes
    const nodes = nodesText === undefined ? undefined : Number(nodesText)
    if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= 1 && nodes <= 64)) throw usageError('--nodes must be 1 to 64', 'bootstrap')
    return { host, nodes, port: parsePort(strOpt(line, 'port'), 'bootstrap') }
  },
  /** Shows the address as soon as the nodes are up (stdout), then serves until a signal. */
  async run({ host, nodes, port }, { io, untilSignal }): Promise<BootstrapInfo | null> {
    const { LocalDHT } = await import('../../net/local-dht.js')
    const dht = new LocalDHT({ host, ...(port !== undefined ? { port } : {}), ...(nodes ? { nodes } : {}) })
    try {
      await dht.ready()
    } catch (err) {
      await dht.close().catch(() => {})
      throw EmbassyError.badArgument(`cannot start the bootstrap node on ${host}:${dht.port}: ${(err as Error).message}`, err)
    }
    const info: BootstrapInfo = { bootstrap: dht.bootstrap, nodes: dht.nodes.length }
    io.write(io.json ? JSON.stringify(info) + '\n' : `${dht.bootstrap.join(',')}\n`)
    io.notice(`DHT bootstrap on ${dht.bootstrap.join(',')} with ${dht.nodes.length} node(s); pass --bootstrap ${dht.bootstrap.join(',')} to embassy run. Ctrl-C stops it.`)
    await untilSignal(() => dht.close())
    return null
  },
  format: (r) => `${r.bootstrap.join(',')}\n`
})

export const demo = defineLocalCommand({
  name: 'demo',
  spec: {
    usage: 'embassy demo',
    summary: 'the whole story on loopback: agency → two embassies → agency gone → mirror reads',
    options: {},
    args: [0, 0]
  },
  input: noInput,
  async run(_input, { io }): Promise<DemoResult> {
    const { runDemo } = await import('../demo.js')
    return runDemo({ log: (line) => io.notice(line), progress: (label, done, total) => io.progress(label, done, total) })
  },
  format: (r) =>
    `demo complete: ${r.records} records and ${r.files} files replicated to two blind embassies in ${(r.replicationMs / 1000).toFixed(1)} s, ` +
    `live append held in ${r.liveAppendMs} ms, read back through the embassies by a mirror in ${(r.mirrorReadMs / 1000).toFixed(1)} s; ` +
    `plaintext in embassy storage: ${r.plaintextHits}\n`
})
