/**
 * LocalDHT: a DHT bootstrap node plus a few persistent DHT nodes in one process (`embassy bootstrap`,
 * the demo and benchmarks). HyperDHT classifies NAT only with answers from ≥ 3 nodes; with a lone
 * bootstrapper, separate processes lose their first dial (~15 s). With ≥ 4 nodes they connect at once.
 */
import dgram from 'node:dgram'
import ReadyResource from 'ready-resource'
import DHT from 'hyperdht'

/** DHT nodes started by default (the bootstrapper included). */
export const DEFAULT_DHT_NODES = 5
export const DEFAULT_BOOTSTRAP_PORT = 49737

export interface LocalDHTOptions {
  /** IPv4 address to bind and advertise. @default '127.0.0.1' */
  host?: string
  /** UDP port of the bootstrap node; 0 picks a free one. @default 49737 */
  port?: number
  /** How many DHT nodes to run, the bootstrapper included (≥ 1). @default 5 */
  nodes?: number
}

export class LocalDHT extends ReadyResource {
  readonly host: string
  port: number
  readonly size: number
  readonly nodes: DHT[] = []

  constructor(opts: LocalDHTOptions = {}) {
    super()
    this.host = opts.host ?? '127.0.0.1'
    this.port = opts.port ?? DEFAULT_BOOTSTRAP_PORT
    this.size = Math.max(1, opts.nodes ?? DEFAULT_DHT_NODES)
  }

  /** The bootstrap list to hand to nodes: `host:port`. */
  get bootstrap(): string[] {
    return [`${this.host}:${this.port}`]
  }

  override async _open(): Promise<void> {
    if (this.port === 0) this.port = await freeUdpPort(this.host)
    const first = DHT.bootstrapper(this.port, this.host)
    this.nodes.push(first)
    await first.fullyBootstrapped()
    const bootstrap = [{ host: this.host, port: this.port }]
    while (this.nodes.length < this.size) {
      const node = new DHT({ bootstrap, ephemeral: false, firewalled: false, host: this.host })
      this.nodes.push(node)
      await node.fullyBootstrapped()
    }
  }

  override async _close(): Promise<void> {
    for (let i = this.nodes.length - 1; i >= 0; i--) await this.nodes[i]!.destroy()
  }
}

async function freeUdpPort(host: string): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, host, () => resolve())
  })
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}
