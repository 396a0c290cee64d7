/**
 * Lab: test hosts made of network namespaces on one bridge, created by the suite itself and
 * removed even when a scenario fails. Traffic stays inside them (a private /24 on our own bridge).
 */
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import type test from 'brittle'
import { spawnBootstrap, spawnRun, type Proc } from '../helpers/index.js'

type Test = test.Assert

export interface Host {
  name: string
  ns: string
  ip: string
  /** Our side of its veth pair (on the bridge): down = the host's link is cut. */
  veth: string
}

const live = new Set<Lab>()
process.on('exit', () => {
  for (const lab of live) lab.destroySync()
})

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export function canRunLab(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)'
  try {
    sh('ip', ['-V'])
  } catch {
    return 'needs iproute2 (apt-get install iproute2)'
  }
  return null
}

export class Lab {
  readonly id = crypto.randomBytes(2).toString('hex')
  readonly subnet = `10.201.${1 + crypto.randomInt(250)}`
  readonly bridge = `deb${this.id}`
  readonly hosts = new Map<string, Host>()
  #procs: Proc[] = []

  constructor(t: Test) {
    sh('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    sh('ip', ['link', 'set', this.bridge, 'up'])
    live.add(this)
    t.teardown(() => this.destroy(), { force: true, order: 100 })
  }

  addHost(name: string): Host {
    const n = this.hosts.size + 1
    const host: Host = { name, ns: `de${this.id}-${name}`, ip: `${this.subnet}.${n}`, veth: `dv${this.id}${n}` }
    sh('ip', ['netns', 'add', host.ns])
    sh('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns])
    sh('ip', ['link', 'set', host.veth, 'master', this.bridge, 'up'])
    sh('ip', ['netns', 'exec', host.ns, 'ip', 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0'])
    sh('ip', ['netns', 'exec', host.ns, 'ip', 'link', 'set', 'eth0', 'up'])
    sh('ip', ['netns', 'exec', host.ns, 'ip', 'link', 'set', 'lo', 'up'])
    this.hosts.set(name, host)
    return host
  }

  host(name: string): Host {
    const h = this.hosts.get(name)
    if (!h) throw new Error(`no host ${name}`)
    return h
  }

  /** Cuts a host's link (its packets go nowhere) or heals it. */
  link(name: string, up: boolean): void {
    sh('ip', ['link', 'set', this.host(name).veth, up ? 'up' : 'down'])
  }

  /** Random packet loss on a host, both directions (nftables inside its namespace); 0 clears it. */
  loss(name: string, percent: number): void {
    const ns = this.host(name).ns
    try {
      sh('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'lossy'])
    } catch {}
    if (percent <= 0) return
    sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'lossy'])
    for (const [hook, dir] of [['input', 'iifname'], ['output', 'oifname']] as const) {
      sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'lossy', hook, `{ type filter hook ${hook} priority 0; }`])
      sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'rule', 'inet', 'lossy', hook, dir, 'eth0', 'numgen', 'random', 'mod', '100', '<', String(percent), 'drop'])
    }
  }

  /** Caps what a host receives at `mbytes` MB/s (nftables drops the excess, like a thin WAN link); 0 clears it. */
  rateLimit(name: string, mbytes: number): void {
    const ns = this.host(name).ns
    try {
      sh('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'thin'])
    } catch {}
    if (mbytes <= 0) return
    sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'thin'])
    sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'thin', 'input', '{ type filter hook input priority 0; }'])
    sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'rule', 'inet', 'thin', 'input', 'iifname', 'eth0', 'limit', 'rate', 'over', `${mbytes}`, 'mbytes/second', 'drop'])
  }

  /** `embassy bootstrap` on `name`, port 49737; resolves with the bootstrap list. */
  async bootstrap(t: Test, name: string, nodes = 5): Promise<{ proc: Proc; bootstrap: string[] }> {
    const h = this.host(name)
    const started = await spawnBootstrap(t, nodes, { netns: h.ns, host: h.ip, port: 49737 })
    this.#procs.push(started.proc)
    return started
  }

  /** `embassy run --dir DIR` on host `name`. */
  async run(t: Test, name: string, dir: string, bootstrap: string[], extra: string[] = []): Promise<Proc> {
    const proc = await spawnRun(t, dir, bootstrap, extra, this.host(name).ns)
    this.#procs.push(proc)
    return proc
  }

  async destroy(): Promise<void> {
    for (const p of this.#procs) await p.kill().catch(() => {})
    this.destroySync()
  }

  destroySync(): void {
    if (!live.has(this)) return
    live.delete(this)
    for (const h of this.hosts.values()) {
      try {
        sh('ip', ['netns', 'pids', h.ns])
          .split('\n')
          .filter(Boolean)
          .forEach((pid) => {
            try {
              process.kill(Number(pid), 'SIGKILL')
            } catch {}
          })
      } catch {}
      try {
        sh('ip', ['netns', 'del', h.ns])
      } catch {}
    }
    try {
      sh('ip', ['link', 'del', this.bridge])
    } catch {}
  }
}
