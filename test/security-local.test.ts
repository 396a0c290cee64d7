/**
 * Local security: what other accounts on the same machine can reach. Node directories are private
 * (0700, files 0600) and a loosened one is refused; the control socket of a long node path lives
 * in a private folder and both ends refuse a socket another user could have put there; the kit
 * passphrase never crosses the socket; secrets do not have to be command-line arguments; text
 * from peers and catalogs reaches terminals and logs with its control characters escaped.
 *
 * Tests run as root: root reads anything, so these assert modes, owners and refusals, not access.
 * The "other user" is uid 65534 (nobody): a child process that drops to it, or a file chowned to it.
 */
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import test from 'brittle'
import { EmbassyNode, NodeHost } from '../lib/index.js'
import { formatLogEvent } from '../lib/daemon/index.js'
import { openKit } from '../lib/kit/index.js'
import { cli, cliOk, initNode, startDaemon, testnet, type Test } from './helpers/index.js'

const NOBODY = 65534
const PASSPHRASE = 'a passphrase that must stay home'

/** Every path under `dir` (itself included) with its permission bits. */
function modes(dir: string): Array<{ path: string; mode: number }> {
  const out = [{ path: dir, mode: fs.statSync(dir).mode & 0o777 }]
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, name)
    out.push({ path: p, mode: fs.lstatSync(p).mode & 0o777 })
  }
  return out
}

/** A folder in the system temp directory that every user may write (like /tmp itself). */
function sharedTmp(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'embassy-shared-'))
  fs.chmodSync(d, 0o1777)
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }))
  return d
}

/** A node directory path of ≥ 100 bytes (its control socket cannot live in it). */
async function longDir(t: Test): Promise<string> {
  const dir = path.join(await t.tmp(), 'a-node-directory-with-a-long-name-'.padEnd(90, 'x'), 'agency')
  t.ok(Buffer.byteLength(path.join(dir, 'control.sock')) >= 100, 'the path is too long for a socket in the directory')
  return dir
}

function hashOf(dir: string): string {
  return crypto.createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 24)
}

/**
 * Another local user (uid 65534) listening on `paths` (making their folders), answering every
 * request with `reply`; resolves once it listens. `received()` is what it was sent.
 */
async function squatter(t: Test, shared: string, paths: string[], reply: unknown): Promise<{ received(): Promise<string> }> {
  const script = path.join(shared, 'squat.cjs')
  fs.writeFileSync(
    script,
    `const fs = require('fs'), net = require('net'), path = require('path')
process.setgid(${NOBODY}); process.setuid(${NOBODY})
let pending = ${paths.length}
for (const p of ${JSON.stringify(paths)}) {
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 })
  net.createServer((s) => {
    s.on('data', (d) => process.stdout.write('GOT ' + JSON.stringify(String(d)) + '\\n'))
    s.write(JSON.stringify(${JSON.stringify(reply)}) + '\\n')
  }).listen(p, () => { if (--pending === 0) process.stdout.write('READY\\n') })
}`,
    { mode: 0o644 }
  )
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d: string) => (err += d))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
  })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: string) => {
      out += d
      if (out.includes('READY\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`squatter exited ${code}: ${err}`)))
  })
  for (const p of paths) t.is(fs.lstatSync(p).uid, NOBODY, `the other user owns ${path.basename(p)}`)
  return {
    async received() {
      child.kill('SIGKILL')
      await exited
      return out.replace('READY\n', '')
    }
  }
}

/** A fake node on a socket we own: records the request line, answers `reply`. */
async function fakeNode(t: Test, socketPath: string, reply: unknown): Promise<{ requests: string[] }> {
  const requests: string[] = []
  const server = net.createServer((s) => {
    let buf = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => {
      buf += d
      if (!buf.includes('\n')) return
      requests.push(buf)
      s.end(JSON.stringify(reply) + '\n')
    })
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { requests }
}

// ---- 1. private node directories ----

test('security: a fresh `embassy init` leaves nothing under DIR that group or others can reach', async (t) => {
  // An ordinary shell's umask: the node must not depend on it.
  const old = process.umask(0o022)
  t.teardown(() => {
    process.umask(old)
  })
  const dir = path.join(await t.tmp(), 'agency')
  await cliOk(['init', '--role', 'agency', '--name', 'Land Board', '--dir', dir])
  await cliOk(['dataset', 'create', 'land', '--dir', dir])
  await cliOk(['append', 'land', '--dir', dir], { input: '{"parcel":1}\n{"parcel":2}\n' })
  const all = modes(dir)
  t.ok(all.some((m) => m.path.endsWith('.sst')), 'RocksDB files are among them')
  t.ok(all.some((m) => m.path.endsWith('config.json')) && all.some((m) => m.path.endsWith('custody.json')), 'config.json and custody.json too')
  const open = all.filter((m) => (m.mode & 0o077) !== 0)
  t.alike(open, [], 'no file or folder under DIR is group/other-accessible')
  t.is(fs.statSync(dir).mode & 0o777, 0o700, 'DIR is 0700')
  t.is(fs.statSync(path.join(dir, 'config.json')).mode & 0o777, 0o600, 'config.json is 0600')
})

test('security: a node refuses to open a directory or store others can reach (exit 2, the fix named), and changes nothing', async (t) => {
  const dir = await initNode(t, 'agency', 'Land Board')
  fs.chmodSync(dir, 0o755)
  const status = await cli(['status', '--dir', dir, '--json'])
  t.is(status.code, 2, 'exit 2')
  t.is(status.json?.error?.code, 'INSECURE_PERMISSIONS')
  t.ok(status.stderr.includes(`chmod -R go= ${dir}`), `names the fix: ${status.stderr.trim()}`)
  t.is(fs.statSync(dir).mode & 0o777, 0o755, 'refused, not silently changed')
  const run = await cli(['run', '--dir', dir, '--bootstrap', '127.0.0.1:9', '--json'], { timeout: 30_000 })
  t.is(run.code, 2, '`embassy run` refuses to start too')
  t.is(run.json?.error?.code, 'INSECURE_PERMISSIONS')

  fs.chmodSync(dir, 0o700)
  fs.chmodSync(path.join(dir, 'store'), 0o750)
  const node = new EmbassyNode(dir)
  const err = await node.ready().then(
    () => null,
    (e) => e
  )
  await node.close().catch(() => {})
  t.is(err?.code, 'INSECURE_PERMISSIONS', 'a group-readable store/ is refused by the library as well')
  t.ok(/store/.test(err?.message ?? ''), 'and named')

  fs.chmodSync(path.join(dir, 'store'), 0o700)
  const host = new NodeHost(dir)
  await host.ready()
  t.pass('opens once private again')
  await host.close()

  const loose = path.join(await t.tmp(), 'loose')
  fs.mkdirSync(loose, { mode: 0o755 })
  fs.chmodSync(loose, 0o755)
  const init = await cli(['init', '--role', 'embassy', '--dir', loose, '--json'])
  t.is(init.json?.error?.code, 'INSECURE_PERMISSIONS', 'init refuses an existing folder others can enter')
  t.absent(fs.existsSync(path.join(loose, 'config.json')), 'and writes nothing')
})

// ---- 2. the control socket ----

test('security: a squatted control socket for a long node path gets neither the kit passphrase nor a command', async (t) => {
  const dir = await longDir(t)
  await EmbassyNode.init(dir, { role: 'agency', name: 'Land Board' })
  const out = path.join(await t.tmp(), 'agency.kit')
  const shared = sharedTmp(t)
  // What another user can make in a shared temp directory: the old hashed socket name, and a
  // folder with the name of our private one, each with a socket that answers "done".
  const fake = { t: 'result', value: { kit: '00', protection: 'passphrase', files: [out], name: '', nodeKey: 'x', catalogKey: 'x', allow: [], readCapability: 'attacker-chosen' } }
  const squat = await squatter(t, shared, [path.join(shared, `data-embassy-${hashOf(dir)}.sock`), path.join(shared, 'data-embassy-0', `${hashOf(dir)}.sock`)], fake)
  const env = { TMPDIR: shared, EMBASSY_PASSPHRASE: PASSPHRASE }

  const cap = await cli(['capability', '--dir', dir, '--json'], { env })
  t.is(cap.json?.error?.code, 'INSECURE_PERMISSIONS', `capability refuses the socket: ${cap.stderr.trim()}`)
  t.is(cap.code, 2)
  t.absent(cap.stdout.includes('attacker-chosen'), 'no attacker-chosen capability printed')

  const kit = await cli(['kit', 'export', '--out', out, '--dir', dir, '--json'], { env })
  t.is(kit.json?.error?.code, 'INSECURE_PERMISSIONS', `kit export refuses the socket: ${kit.stderr.trim()}`)
  t.not(kit.code, 0, 'no success printed')
  t.absent(fs.existsSync(out), 'no kit (and no claim of one)')

  const run = await cli(['run', '--dir', dir, '--bootstrap', '127.0.0.1:9', '--json'], { env, timeout: 30_000 })
  t.is(run.json?.error?.code, 'INSECURE_PERMISSIONS', '`embassy run` will not serve commands in a folder another user made')

  const got = await squat.received()
  t.is(got, '', 'the other user received nothing')
  t.absent(got.includes(PASSPHRASE), 'in particular not the passphrase')
})

test('security: a long node path serves its control socket from a private folder; a socket owned by another user is refused', async (t) => {
  const bootstrap = await testnet(t)
  const dir = await longDir(t)
  await EmbassyNode.init(dir, { role: 'agency', name: 'Land Board' })
  const daemon = await startDaemon(t, dir, bootstrap)
  const socket = daemon.control!.path
  const folder = path.dirname(socket)
  t.ok(folder.startsWith(os.tmpdir()) && path.basename(folder) === `data-embassy-${process.getuid!()}`, `a per-user folder: ${folder}`)
  t.is(fs.lstatSync(folder).mode & 0o777, 0o700, 'the folder is 0700')
  t.is(fs.lstatSync(folder).uid, process.getuid!(), 'and ours')
  t.is(fs.lstatSync(socket).mode & 0o777, 0o600, 'the socket is 0600')
  const cap = await cliOk(['capability', '--dir', dir, '--json'])
  t.is(cap.json.readCapability, (await daemon.host.agency()).capability(), 'commands reach the running node')

  // A short path: the socket is in the node directory. One chowned to another user is refused.
  const short = await initNode(t, 'agency', 'Other')
  const fakePath = path.join(short, 'control.sock')
  const fake = await fakeNode(t, fakePath, { t: 'result', value: { readCapability: 'attacker-chosen' } })
  fs.chownSync(fakePath, NOBODY, NOBODY)
  const r = await cli(['capability', '--dir', short, '--json'])
  t.is(r.json?.error?.code, 'INSECURE_PERMISSIONS', `refused: ${r.stderr.trim()}`)
  t.is(fake.requests.length, 0, 'nothing was sent to it')
})

test('security: kit export through a running node: the passphrase never crosses the socket; a claimed kit that is not there is an error', async (t) => {
  const dir = await initNode(t, 'agency', 'Land Board')
  const out = path.join(await t.tmp(), 'agency.kit')
  const socket = path.join(dir, 'control.sock')
  const fake = await fakeNode(t, socket, { t: 'result', value: { kit: '00', protection: 'passphrase', files: [out], name: 'Land Board', nodeKey: 'x', catalogKey: 'x', allow: [] } })
  // The default (sensitive) Argon2id profile: ~5 s, derived here, in the CLI process.
  const r = await cli(['kit', 'export', '--out', out, '--dir', dir, '--json'], { env: { EMBASSY_PASSPHRASE: PASSPHRASE } })
  t.is(fake.requests.length, 1, 'the request went to the (fake) running node')
  const request = fake.requests[0] ?? ''
  t.absent(request.includes(PASSPHRASE), 'the passphrase is not in the request')
  t.ok(/"seal-key":"[0-9a-f]{64}"/.test(request), 'only the derived sealing key of this kit is')
  t.not(r.code, 0, `a reported kit that was not written is not a success (${r.stderr.trim()})`)
  t.absent(fs.existsSync(out))
})

test('security: kit export through a real running node writes a kit that opens with the passphrase', async (t) => {
  const bootstrap = await testnet(t)
  const dir = await initNode(t, 'agency', 'Land Board')
  const daemon = await startDaemon(t, dir, bootstrap)
  const out = path.join(await t.tmp(), 'agency.kit')
  const r = await cliOk(['kit', 'export', '--out', out, '--kdf', 'moderate', '--dir', dir, '--json'], { env: { EMBASSY_PASSPHRASE: PASSPHRASE } })
  t.alike(r.json.files, [out])
  t.is(fs.statSync(out).mode & 0o777, 0o600)
  const contents = await openKit(fs.readFileSync(out, 'utf8'), PASSPHRASE)
  t.ok(contents.nodeKey.equals(daemon.host.node.nodeKey), 'the kit of this agency, sealed with the passphrase')
})

// ---- 3. secrets off the command line ----

test('security: `embassy mirror` takes the capability from a file, stdin or the prompt; as an argument it warns', async (t) => {
  const agencyDir = await initNode(t, 'agency', 'Land Board')
  const host = new NodeHost(agencyDir)
  await host.ready()
  const capability = (await host.agency()).capability()
  const catalogKey = (await host.node.identity()).catalogKey
  await host.close()
  const capFile = path.join(await t.tmp(), 'cap.txt')
  fs.writeFileSync(capFile, capability + '\n', { mode: 0o600 })

  const m1 = await initNode(t, 'mirror')
  const fromFile = await cli(['mirror', '--capability-file', capFile, '--dir', m1, '--json'])
  t.is(fromFile.code, 0, fromFile.stderr)
  t.is(fromFile.json?.catalogKey, catalogKey, 'from --capability-file')
  t.absent(/warning/.test(fromFile.stderr), 'no warning')

  const m2 = await initNode(t, 'mirror')
  const fromStdin = await cli(['mirror', '--dir', m2, '--json'], { input: capability + '\n' })
  t.is(fromStdin.code, 0, fromStdin.stderr)
  t.is(fromStdin.json?.catalogKey, catalogKey, 'from stdin')

  const m3 = await initNode(t, 'mirror')
  const fromArg = await cli(['mirror', capability, '--dir', m3, '--json'])
  t.is(fromArg.code, 0, 'an argument still works')
  t.ok(/warning: a read capability on the command line can be read by every local user/.test(fromArg.stderr), 'with a warning on stderr')
  t.is(fromArg.json?.catalogKey, catalogKey, 'stdout stays one JSON document')

  const none = await cli(['mirror', '--dir', m3, '--json'], { input: '' })
  t.is(none.code, 2, 'nothing on stdin: a usage error')
  t.is(none.json?.error?.code, 'BAD_ARGUMENT')

  await cliOk(['dataset', 'create', 'land', '--dir', agencyDir])
  const arg = await cliOk(['append', 'land', '{"parcel":1}', '--dir', agencyDir])
  t.ok(/warning: records on the command line/.test(arg.stderr), 'records as arguments: a warning')
  const piped = await cliOk(['append', 'land', '--dir', agencyDir], { input: '{"parcel":2}\n' })
  t.absent(/warning/.test(piped.stderr), 'records on stdin: none')
})

// ---- 10. control characters ----

test('security: control characters from peers and catalogs are escaped in text logs and human output, not in JSON', async (t) => {
  const evil = 'remote says: ok\x1b[2J\x1b]0;owned\x07\r\n2026-01-01T00:00:00.000Z info  forged line \u202egnp.exe\u009b31m'
  const event = { time: 0, level: 'warn' as const, event: 'channel-error', message: `custody channel with x: ${evil}` }
  const line = formatLogEvent('text', event)
  t.absent(/[\x00-\x1f\x7f-\x9f\u202e]/.test(line), `no control character in the text log line: ${line}`)
  t.ok(line.includes('\\x1b[2J') && line.includes('\\r\\n') && line.includes('\\u202e') && line.includes('\\x9b'), 'they are shown escaped')
  t.is(JSON.parse(formatLogEvent('json', event)).message, event.message, 'JSON log lines keep the text (JSON escapes it)')

  const dir = await initNode(t, 'agency', 'Land Board')
  const description = 'parcels\x1b[31m RED \x1b]0;pwned\x07 \u202eevil'
  await cliOk(['dataset', 'create', 'land', '--description', description, '--dir', dir])
  const list = await cliOk(['list', '--dir', dir])
  t.absent(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/.test(list.stdout), `list prints no control character: ${JSON.stringify(list.stdout)}`)
  t.ok(list.stdout.includes('parcels\\x1b[31m RED'), 'the description is shown escaped')
  const json = await cliOk(['list', '--dir', dir, '--json'])
  t.is(json.json.datasets[0].description, description, '--json keeps it exactly')

  const unknown = await cli(['read', 'no\x1b[31mpe', '--dir', dir])
  t.is(unknown.code, 1)
  t.absent(/\x1b/.test(unknown.stderr), `error lines are escaped too: ${JSON.stringify(unknown.stderr)}`)
})
