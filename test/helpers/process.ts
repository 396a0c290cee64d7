/** Real processes: `embassy bootstrap` and `embassy run` as children, with teardown. */
import { spawn, type ChildProcess } from 'node:child_process'
import type test from 'brittle'
import { CLI } from './helpers.js'

type Test = test.Assert

export interface Proc {
  child: ChildProcess
  events: Array<Record<string, any>>
  stderr: string
  /** Resolves with the first event (past or future) matching `pred`. */
  waitEvent(pred: (e: Record<string, any>) => boolean, timeout?: number): Promise<Record<string, any>>
  /** SIGTERM, and wait for exit (SIGKILL after 10 s). */
  stop(): Promise<number | null>
  kill(): Promise<void>
}

export function track(t: Test, child: ChildProcess): Proc {
  const events: Array<Record<string, any>> = []
  const waiters: Array<{ pred: (e: Record<string, any>) => boolean; resolve: (e: Record<string, any>) => void }> = []
  let buf = ''
  const proc: Proc = {
    child,
    events,
    stderr: '',
    waitEvent(pred, timeout = 30_000) {
      const hit = events.find(pred)
      if (hit) return Promise.resolve(hit)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event in ${timeout} ms; stderr:\n${proc.stderr.slice(-2000)}`)), timeout)
        waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) })
      })
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        child.once('exit', (code) => {
          clearTimeout(timer)
          resolve(code)
        })
        child.kill('SIGTERM')
      })
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
    }
  }
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (d: string) => {
    proc.stderr += d
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let e: Record<string, any>
      try {
        e = JSON.parse(line)
      } catch {
        continue
      }
      events.push(e)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.pred(e)) {
          waiters[i]!.resolve(e)
          waiters.splice(i, 1)
        }
      }
    }
  })
  t.teardown(() => proc.kill(), { force: true, order: 0 })
  return proc
}

/** Runs `node CLI ...args`, inside network namespace `netns` when given. */
function spawnCli(args: string[], netns?: string): ChildProcess {
  const opts = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } }
  return netns ? spawn('ip', ['netns', 'exec', netns, process.execPath, CLI, ...args], opts) : spawn(process.execPath, [CLI, ...args], opts)
}

/**
 * `embassy bootstrap` (default: a free loopback port); resolves with its bootstrap list.
 * `netns`/`host`/`port`: run it on a lab host.
 */
export async function spawnBootstrap(
  t: Test,
  nodes = 5,
  where: { netns?: string; host?: string; port?: number } = {}
): Promise<{ proc: Proc; bootstrap: string[] }> {
  const args = ['bootstrap', '--port', String(where.port ?? 0), '--nodes', String(nodes), '--json', ...(where.host ? ['--host', where.host] : [])]
  const child = spawnCli(args, where.netns)
  const proc = track(t, child)
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (d: string) => {
      out += d
      const nl = out.indexOf('\n')
      if (nl !== -1) resolve(out.slice(0, nl))
    })
    child.once('exit', (code) => reject(new Error(`bootstrap exited ${code}: ${proc.stderr}`)))
  })
  return { proc, bootstrap: JSON.parse(line).bootstrap }
}

/** `embassy run` on `dir`; resolves once it logged 'started'. `netns`: run inside that namespace. */
export async function spawnRun(t: Test, dir: string, bootstrap: string[], extra: string[] = [], netns?: string): Promise<Proc> {
  const child = spawnCli(['run', '--dir', dir, '--bootstrap', bootstrap.join(','), '--log-format', 'json', ...extra], netns)
  const proc = track(t, child)
  await proc.waitEvent((e) => e.event === 'started')
  return proc
}
