/**
 * Real processes: the compiled CLI run to completion (`cli()`), `embassy bootstrap` and
 * `embassy run` as tracked children with teardown, and JSON-line events read from their output.
 * The benchmarks (bench/harness.ts) use the same pieces.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type test from 'brittle'

type Test = test.Assert

const here = path.dirname(fileURLToPath(import.meta.url))
/** The compiled CLI (tests run from OUT/test, the CLI is OUT/bin). */
export const CLI = path.resolve(here, '..', '..', 'bin', 'embassy.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
  /** stdout parsed as JSON when it is JSON, else null. */
  json: any
  /** Wall time of the command. */
  ms: number
}

export interface CliOptions {
  input?: string | Buffer | NodeJS.ReadableStream
  env?: NodeJS.ProcessEnv
  /** SIGKILL after this many ms. @default 60000 */
  timeout?: number
  /** Extra node flags before the CLI script (e.g. `--import` of a patch). */
  nodeArgs?: string[]
  /** Own process group (the bench kills whole groups). @default false */
  detached?: boolean
  /** Called with the child right after spawn (the bench registers it for cleanup). */
  onChild?: (child: ChildProcess) => void
  /** Keep only the last ~64 KiB of stderr (chatty commands). @default false */
  trimStderr?: boolean
}

/** Kills a child (its whole process group when it has one); a gone process is fine. */
export function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', group = false): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    if (group) process.kill(-child.pid, signal)
    else child.kill(signal)
  } catch {
    try {
      child.kill(signal)
    } catch {}
  }
}

/** Runs the CLI to completion. Never rejects: the exit code is in the result. */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const start = performance.now()
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, ...args], {
      env: { ...process.env, CI: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: opts.detached ?? false
    })
    opts.onChild?.(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d: string) => (stdout += d))
    child.stderr.on('data', (d: string) => {
      stderr += d
      if (opts.trimStderr && stderr.length > 65536) stderr = stderr.slice(-32768)
    })
    const timer = setTimeout(() => killChild(child, 'SIGKILL', opts.detached), opts.timeout ?? 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      let json: any = null
      try {
        json = JSON.parse(stdout)
      } catch {}
      resolve({ code: code ?? -1, stdout, stderr, json, ms: performance.now() - start })
    })
    child.stdin.on('error', () => {})
    const input = opts.input
    if (input && typeof input === 'object' && 'pipe' in input) input.pipe(child.stdin)
    else child.stdin.end(input ?? '')
  })
}

/** Like cli(), but throws with the command's stderr unless it exits 0. */
export async function cliOk(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const r = await cli(args, opts)
  if (r.code !== 0) throw new Error(`embassy ${args.slice(0, 3).join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`)
  return r
}

/** `node ...args` to completion; never rejects. */
export function execNode(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }))
  })
}

/**
 * Splits `stream` into lines: each line that is a JSON object goes to `onJson`, any other line to
 * `onText`. `embassy run --log-format json` logs on stderr; bench workers print on stdout.
 */
export function jsonLines(stream: NodeJS.ReadableStream | null, onJson: (e: Record<string, any>) => void, onText: (line: string) => void = () => {}): void {
  if (!stream) return
  let buf = ''
  stream.setEncoding('utf8')
  stream.on('data', (d: string) => {
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let e: Record<string, any> | null = null
      if (line.startsWith('{')) {
        try {
          e = JSON.parse(line)
        } catch {}
      }
      if (e) onJson(e)
      else onText(line)
    }
  })
}

/** Pairs two node directories through the CLI, as operators do: the agency allows, the embassy follows. */
export async function pairDirs(agency: { dir: string; nodeKey: string }, embassy: { dir: string; nodeKey: string }, opts: CliOptions = {}): Promise<void> {
  await cliOk(['allow', embassy.nodeKey, '--dir', agency.dir, '--json'], opts)
  await cliOk(['follow', agency.nodeKey, '--dir', embassy.dir, '--json'], opts)
}

/** Arguments of `embassy bootstrap` printing its address as JSON (port 0: any free port). */
export function bootstrapArgs(nodes = 5, where: { host?: string; port?: number } = {}): string[] {
  return ['bootstrap', '--port', String(where.port ?? 0), '--nodes', String(nodes), '--json', ...(where.host ? ['--host', where.host] : [])]
}

/** Arguments of `embassy run` on `dir` logging JSON lines on stderr. */
export function runArgs(dir: string, bootstrap: string[], extra: string[] = []): string[] {
  return ['run', '--dir', dir, '--bootstrap', bootstrap.join(','), '--log-format', 'json', ...extra]
}

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
  child.stderr?.on('data', (d: Buffer | string) => (proc.stderr += d))
  jsonLines(child.stderr, (e) => {
    events.push(e)
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pred(e)) {
        waiters[i]!.resolve(e)
        waiters.splice(i, 1)
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
  const child = spawnCli(bootstrapArgs(nodes, where), where.netns)
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
  const child = spawnCli(runArgs(dir, bootstrap, extra), netns)
  const proc = track(t, child)
  await proc.waitEvent((e) => e.event === 'started')
  return proc
}
