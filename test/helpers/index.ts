/** Test helpers: temporary nodes and a CLI runner, each registering its own teardown. */
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type test from 'brittle'

type Test = test.Assert
import { EmbassyNode, NodeHost, type Role } from '../lib/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
/** The compiled CLI (tests run from dist/test). */
export const CLI = path.resolve(here, '..', 'bin', 'embassy.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
  /** stdout parsed as JSON when it is JSON, else null. */
  json: any
}

export interface CliOptions {
  input?: string | Buffer
  env?: NodeJS.ProcessEnv
  timeout?: number
}

/** Runs the CLI to completion. Never rejects: the exit code is in the result. */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, CI: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      let json: any = null
      try {
        json = JSON.parse(stdout)
      } catch {}
      resolve({ code: code ?? -1, stdout, stderr, json })
    })
    child.stdin.end(opts.input ?? '')
  })
}

/** A fresh node directory for `role`, initialised through the library. */
export async function initNode(t: Test, role: Role, name = ''): Promise<string> {
  const dir = path.join(await t.tmp(), role)
  await EmbassyNode.init(dir, { role, name })
  return dir
}

/** An open NodeHost on a fresh agency directory, closed at teardown. */
export async function openAgency(t: Test, name = 'Test Agency'): Promise<{ dir: string; host: NodeHost }> {
  const dir = await initNode(t, 'agency', name)
  const host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close())
  return { dir, host }
}

/** Writes a nested folder with text files and one large pseudo-random file. */
export function makeTree(root: string, bigBytes = 3 * 1024 * 1024 + 17): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'README.txt': Buffer.from('Laws of the land, consolidated.\n'),
    'acts/2024/act-1.txt': Buffer.from('Act 1: everyone keeps a copy abroad.\n'),
    'acts/2024/act-2.txt': Buffer.from('Act 2: copies are encrypted.\n'),
    'acts/2025/deep/nested/act-3.json': Buffer.from(JSON.stringify({ act: 3, text: 'nested' })),
    'empty.txt': Buffer.alloc(0),
    'big/registry.bin': pseudoRandom(bigBytes, 7)
  }
  for (const [rel, data] of Object.entries(files)) {
    const p = path.join(root, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, data)
  }
  return files
}

/** Deterministic bytes (xorshift), fast enough for hundreds of MiB. */
export function pseudoRandom(bytes: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(bytes)
  let x = seed >>> 0 || 1
  let i = 0
  for (; i + 4 <= bytes; i += 4) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    buf.writeUInt32LE(x, i)
  }
  for (; i < bytes; i++) buf[i] = i & 0xff
  return buf
}

/** Every file below `root`, as relative path → bytes. */
export function readTree(root: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  for (const e of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const full = path.join(e.parentPath, e.name)
    out[path.relative(root, full).split(path.sep).join('/')] = fs.readFileSync(full)
  }
  return out
}

export function execNode(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }))
  })
}

/** Polls `check` until it returns a truthy value; throws after `timeout` ms with `what`. */
export async function eventually<T>(what: string, check: () => T | Promise<T>, timeout = 30_000, every = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout
  let last: unknown = null
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    await new Promise((r) => setTimeout(r, every))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}
