/**
 * Daemon: `embassy run`. Opens the node, brings its role online over Hyperswarm, serves the
 * control socket, and reports every event that matters to an operator. Closes in reverse order.
 */
import ReadyResource from 'ready-resource'
import { nodeStatus } from './commands/node.js'
import { Gateway } from '../gateway/index.js'
import { parseHostPort } from '../node/config.js'
import { ControlServer } from './control.js'
import { EmbassyError } from '../errors.js'
import { NodeHost } from './host.js'
import { LOCK_WAIT_MS, openHost, waitForDirectory } from './lock-wait.js'
import { toZ32 } from '../ids.js'
import { MIN_DHT_NODES, Network } from '../net/network.js'
import { NET_MEMORY_FILE } from '../net/net-memory.js'
import { DISK_CHECK_INTERVAL_MS, diskSpace, type DiskSpace } from '../node/disk.js'
import type { Alarm } from '../custody/receipts.js'

/** Below this many free bytes a holder's disk counts as full (its downloads have stopped). */
const HOLDER_FULL_BYTES = 4 * 1024 * 1024
import { DrillSchedule } from '../roles/drill-schedule.js'
import type { DrillSource } from '../roles/drill.js'
import { CustodySampler, SAMPLE_MS } from '../custody/timeseries.js'
import type { CustodyNow } from '../gateway/index.js'

export interface LogEvent {
  time: number
  level: 'info' | 'warn' | 'error'
  event: string
  message: string
  [field: string]: unknown
}

export interface DaemonOptions {
  dir: string
  /** Overrides the config's bootstrap list (host:port strings). */
  bootstrap?: string[]
  /** UDP port of this node's DHT socket. @default 0 */
  port?: number
  /** Serve the read-only web gateway on host:port (mirror or agency; port 0 picks one). */
  http?: string
  /** Publish the node status at /api/status also when the gateway is bound beyond loopback. @default false */
  httpStatus?: boolean
  /** Receives operator events (the CLI prints them). */
  log?: (event: LogEvent) => void
  /** Continuity drills every `intervalMs` from `source` (`embassy run --schedule`); reports in DIR/drills/. */
  drill?: { source: DrillSource; intervalMs: number; firstDelayMs?: number; connectTimeoutMs?: number; stallMs?: number }
}

export class Daemon extends ReadyResource {
  host: NodeHost
  readonly opts: DaemonOptions
  network: Network | null = null
  control: ControlServer | null = null
  gateway: Gateway | null = null
  /** The last free-space check of the node directory's disk (every DISK_CHECK_INTERVAL_MS). */
  disk: DiskSpace | null = null
  #diskTimer: ReturnType<typeof setInterval> | null = null
  /** Scheduled continuity drills (`--schedule`), null without. */
  drills: DrillSchedule | null = null
  /** An agency's custody history (custody-series.json), sampled every `custodySampleSeconds`. */
  sampler: CustodySampler | null = null

  constructor(opts: DaemonOptions) {
    super()
    this.opts = opts
    this.host = new NodeHost(opts.dir)
  }

  #log(level: LogEvent['level'], event: string, message: string, fields: Record<string, unknown> = {}): void {
    this.opts.log?.({ time: Date.now(), level, event, message, ...fields })
  }

  override async _open(): Promise<void> {
    try {
      await this.#start()
    } catch (err) {
      // ReadyResource does not call _close() after a failed _open(): release what was opened here,
      // or a refused start would keep the process alive.
      await this.#stop()
      throw err
    }
  }

  async #start(): Promise<void> {
    await this.#openHost()
    const node = this.host.node
    const bootstrapText = this.opts.bootstrap && this.opts.bootstrap.length > 0 ? this.opts.bootstrap : node.config.bootstrap
    if (bootstrapText.length === 0) throw EmbassyError.noBootstrap()
    const bootstrap = bootstrapText.map((hp) => parseHostPort(hp))
    const role = await this.host.role()
    // Refuse a gateway the role cannot serve before going online (an embassy is blind).
    if (this.opts.http && !role.reader()) throw EmbassyError.blindHolder()

    const network = new Network({
      keyPair: node.keyPair,
      bootstrap,
      store: node.store,
      port: this.opts.port ?? 0,
      // Same UDP ports and peers' last addresses across restarts (reconnection without the DHT).
      memoryFile: `${node.dir}/${NET_MEMORY_FILE}`,
      handshake: () => role.handshake(),
      isAllowed: (key) => role.isAllowed(key),
      dialAnyone: role.dialsAnyone,
      handlers: (peer) => role.handlers(peer)
    })
    network.on('peer', (p) => this.#log('info', 'peer-connected', `connected to ${p.role} ${toZ32(p.key)}`, { nodeKey: toZ32(p.key), role: p.role }))
    network.on('peer-lost', (p, reason) => this.#log('warn', 'peer-lost', `lost ${p.role} ${toZ32(p.key)}: ${reason}`, { nodeKey: toZ32(p.key), role: p.role }))
    network.on('refused', (key) => this.#log('warn', 'peer-refused', `refused ${toZ32(key)}: not allowed (embassy allow NODE_KEY admits it)`, { nodeKey: toZ32(key) }))
    network.on('channel-error', (p, err) => this.#log('warn', 'channel-error', `custody channel with ${toZ32(p.key)}: ${err.message}`, { nodeKey: toZ32(p.key) }))
    network.on('offline', () => this.#log('warn', 'network-offline', 'the DHT does not answer: our network may be down; connected peers keep replicating'))
    network.on('online', () => this.#log('info', 'network-online', 'the DHT answers again: dialling known peers'))
    network.on('dht-back', () => this.#log('info', 'dht-back', 'DHT reachable again: announced and looked up again'))
    network.on('few-dht-nodes', (nodes) =>
      this.#log(
        'warn',
        'few-dht-nodes',
        `only ${nodes} DHT node(s) answered (fewer than ${MIN_DHT_NODES}): first connections and reconnections can take minutes; run four or more DHT nodes in all (\`embassy bootstrap\` runs five; embassies make good permanent DHT nodes) and list them in --bootstrap`,
        { nodes, minimum: MIN_DHT_NODES }
      )
    )
    network.on('port-changed', (was, now) => this.#log('warn', 'port-changed', `UDP port ${was} (used before) is busy: bound ${now}; peers find this node through the DHT until they reconnect`, { remembered: was, port: now }))
    network.on('memory-error', (file, reason) => this.#log('warn', 'network-memory', `${file}: ${reason} (ports and peer addresses are only a help to reconnect; the node runs without them)`, { file, reason }))
    network.on('looking-for', (key, attempt, nextInMs) =>
      this.#log('info', 'looking-for', `looking for ${toZ32(key)} (attempt ${attempt}, next in ${Math.max(1, Math.round(nextInMs / 1000))} s)`, { nodeKey: toZ32(key), attempt, nextInMs })
    )
    await network.ready()
    this.network = network
    this.host.network = network

    role.on('notice', (n) => this.#log(n.level, n.event, n.message, n.fields))
    await role.attach(network)

    await this.#checkDisk()
    this.#diskTimer = setInterval(() => void this.#checkDisk(), DISK_CHECK_INTERVAL_MS)
    this.#diskTimer.unref()

    if (node.role === 'agency') {
      const agency = await this.host.agency()
      this.sampler = new CustodySampler({
        dir: node.dir,
        intervalMs: () => (node.config.custodySampleSeconds ?? SAMPLE_MS / 1000) * 1000,
        read: () => agency.custody(),
        onerror: (err) => this.#log('warn', 'custody-sample-failed', `custody history: sample not recorded: ${err.message}`),
        ondamaged: (aside, reason) => this.#log('warn', 'custody-history-damaged', `custody history unreadable (${reason}): set aside as ${aside}, starting a new one`, { file: aside })
      })
      this.sampler.start()
    }

    if (this.opts.drill) {
      const d = this.opts.drill
      this.drills = new DrillSchedule({
        dir: node.dir,
        source: d.source,
        bootstrap,
        intervalMs: d.intervalMs,
        ...(d.firstDelayMs !== undefined ? { firstDelayMs: d.firstDelayMs } : {}),
        ...(d.connectTimeoutMs !== undefined ? { connectTimeoutMs: d.connectTimeoutMs } : {}),
        ...(d.stallMs !== undefined ? { stallMs: d.stallMs } : {}),
        onReport: (r) =>
          r.ok
            ? this.#log('info', 'drill-passed', `continuity drill passed: embassy ${r.embassy}, first record ${r.rto.firstRecordMs} ms, full copy ${r.rto.fullCopyMs} ms, ${r.rpo.blocksBehind} block(s) behind (${r.reportFile})`, { report: r.reportFile, embassy: r.embassy })
            : this.#log('error', 'drill-failed', `continuity drill FAILED: ${r.error ?? r.datasets.filter((x) => !x.ok).map((x) => `${x.name}: ${x.error ?? 'failed'}`).join('; ')} (${r.reportFile})`, { report: r.reportFile, embassy: r.embassy }),
        onError: (err) => this.#log('error', 'drill-error', `continuity drill could not run: ${err.message}`)
      })
      this.drills.start()
      this.host.drills = this.drills
    }

    const control = new ControlServer(node.dir, this.host)
    await control.listen()
    this.control = control
    if (this.opts.http) {
      const { host, port } = parseHostPort(this.opts.http, { allowZero: true })
      const gateway = new Gateway({
        reader: await this.host.reader(),
        host,
        port,
        status: () => nodeStatus(this.host),
        peers: () => network.peers.size,
        ...(this.sampler ? { custody: { dir: node.dir, now: async () => (await nodeStatus(this.host)) as unknown as CustodyNow, series: () => this.sampler!.series.data } } : {}),
        ...(this.opts.httpStatus ? { publishStatus: true } : {})
      })
      gateway.on('internal-error', (err: Error, route: string | null) => this.#log('error', 'http-error', `HTTP ${route ?? ''}: ${err.message}`, { route }))
      await gateway.ready()
      this.gateway = gateway
      this.#log('info', 'http', `serving ${gateway.url}/ (read-only)`, { url: gateway.url })
    }
    const id = await node.identity()
    const dht = network.dhtStatus()
    this.#log('info', 'started', `${id.role} ${id.nodeKey} running (DHT on ${dht.address ?? '?'}, ${dht.nodes} DHT node(s) answered; bootstrap ${bootstrapText.join(',')})`, {
      ...id,
      bootstrap: bootstrapText,
      dhtAddress: dht.address,
      dhtNodes: dht.nodes
    })
  }

  /** Checks free space; logs when it falls below the threshold (`disk-low`) and when it recovers (`disk-ok`). */
  async #checkDisk(): Promise<void> {
    const { lowSpaceBytes, lowSpaceFraction } = this.host.node.config
    const d = await diskSpace(this.host.node.dir, { lowSpaceBytes, lowSpaceFraction }).catch(() => null)
    if (!d) return
    const was = this.disk
    this.disk = d
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`
    const fields = { free: d.free, total: d.total, threshold: d.threshold }
    if (d.low && (was === null || !was.low)) {
      this.#log('warn', 'disk-low', `low disk space: ${mib(d.free)} free of ${mib(d.total)} (below ${mib(d.threshold)}; lowSpaceBytes/lowSpaceFraction in config.json): writes and downloads fail with DISK_FULL when it runs out`, fields)
    } else if (!d.low && was !== null && was.low) {
      this.#log('info', 'disk-ok', `disk space back above the threshold: ${mib(d.free)} free of ${mib(d.total)}`, fields)
    }
    // A holder's downloads stop without an error when the disk is full (the store refuses the
    // write, hypercore just does not get the block): the free space is the only sign, so a
    // holder raises `disk-full` itself. An agency raises it on its own writes (agency.ts).
    const role = this.host.node.config.role
    const full = d.free < HOLDER_FULL_BYTES
    const wasFull = was !== null && was.free < HOLDER_FULL_BYTES
    if ((role === 'embassy' || role === 'mirror') && full && !wasFull) {
      const detail = `the disk of ${this.host.node.dir} is full (${mib(d.free)} free of ${mib(d.total)}): downloads of new blocks stop; what is held is still served. Free space, then restart the node (the store keeps its write error)`
      const holder = (await this.host.role().catch(() => null)) as { guard?: { alarms: { add(a: Alarm): boolean } } } | null
      holder?.guard?.alarms.add({ time: Date.now(), kind: 'disk-full', peer: '', core: null, detail })
      this.#log('error', 'disk-full', `disk-full: ${detail}`, { ...fields, needed: HOLDER_FULL_BYTES })
    }
  }

  /** Opens the node directory, waiting a little while a one-shot command holds it (each try on a new host). */
  async #openHost(): Promise<void> {
    await waitForDirectory(
      () => {
        if (this.host.closing) this.host = new NodeHost(this.opts.dir)
        return openHost(this.host)
      },
      { waitMs: LOCK_WAIT_MS }
    )
  }

  override async _close(): Promise<void> {
    await this.#stop()
    this.#log('info', 'stopped', 'node stopped')
  }

  /** Reverse order: stop serving HTTP and commands, close connections and the swarm, then storage. */
  async #stop(): Promise<void> {
    if (this.#diskTimer) clearInterval(this.#diskTimer)
    this.#diskTimer = null
    if (this.gateway) await this.gateway.close().catch(() => {})
    if (this.control) await this.control.close().catch(() => {})
    if (this.drills) await this.drills.stop().catch(() => {})
    if (this.sampler) await this.sampler.close().catch(() => {})
    if (this.network) await this.network.close().catch(() => {})
    await this.host.close().catch(() => {})
  }
}
