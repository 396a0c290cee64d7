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
import { Network } from '../net/network.js'

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
}

export class Daemon extends ReadyResource {
  host: NodeHost
  readonly opts: DaemonOptions
  network: Network | null = null
  control: ControlServer | null = null
  gateway: Gateway | null = null

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
    await network.ready()
    this.network = network
    this.host.network = network

    role.on('notice', (n) => this.#log(n.level, n.event, n.message, n.fields))
    await role.attach(network)

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
        ...(this.opts.httpStatus ? { publishStatus: true } : {})
      })
      gateway.on('internal-error', (err: Error, route: string | null) => this.#log('error', 'http-error', `HTTP ${route ?? ''}: ${err.message}`, { route }))
      await gateway.ready()
      this.gateway = gateway
      this.#log('info', 'http', `serving ${gateway.url}/ (read-only)`, { url: gateway.url })
    }
    const id = await node.identity()
    this.#log('info', 'started', `${id.role} ${id.nodeKey} running (bootstrap ${bootstrapText.join(',')})`, { ...id, bootstrap: bootstrapText })
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
    if (this.gateway) await this.gateway.close().catch(() => {})
    if (this.control) await this.control.close().catch(() => {})
    if (this.network) await this.network.close().catch(() => {})
    await this.host.close().catch(() => {})
  }
}
