/**
 * Full disk (issue 15 item 5): a write on a full disk fails with DISK_FULL (free/needed bytes), is
 * alarmed, loses nothing acknowledged, and the node works again once space is freed; a low-space
 * warning shows in status, the log and /metrics before the disk is full.
 * The disk is a small tmpfs mounted here (we run as root, as CI does); no mount → the test fails.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'brittle'
import { Daemon, EmbassyError, EmbassyNode, NodeHost, type LogEvent } from '../lib/index.js'
import { nodeStatus } from '../lib/daemon/commands/node.js'
import { diskSpace, isNoSpace, lowSpaceThreshold, toDiskFull } from '../lib/node/disk.js'
import { testnet, type Test } from './helpers/index.js'

const TMPFS_BYTES = 24 * 1024 * 1024
/** What is left free for the node after the filler file: enough to open, too little for the appends below. */
const HEADROOM_BYTES = 3 * 1024 * 1024
const RECORD_BYTES = 48 * 1024

/** Mounts a tmpfs of `bytes` on a fresh folder; unmounted at teardown (after everything on it closed). */
function mountTmpfs(t: Test, bytes: number): string {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'embassy-disk-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', mnt], { stdio: 'pipe' })
  } catch (err) {
    fs.rmdirSync(mnt)
    throw new Error(`disk.test needs to mount a small tmpfs (run as root, as CI does): mount -t tmpfs failed: ${(err as Error).message}`)
  }
  t.teardown(() => {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' })
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' })
    }
    fs.rmdirSync(mnt)
  }, { order: Infinity })
  return mnt
}

/** Fills the disk of `dir` with one file, leaving `leave` bytes free; returns its path. */
async function fill(dir: string, leave: number): Promise<string> {
  const file = path.join(dir, 'filler.bin')
  const { free } = await diskSpace(dir)
  const fd = fs.openSync(file, 'w')
  const chunk = Buffer.alloc(1024 * 1024, 0xaa)
  let left = free - leave
  while (left > 0) {
    const n = Math.min(left, chunk.byteLength)
    fs.writeSync(fd, chunk, 0, n)
    left -= n
  }
  fs.closeSync(fd)
  return file
}

function record(i: number): string {
  return JSON.stringify({ i, pad: String(i % 10).repeat(RECORD_BYTES) })
}

async function readAll(host: NodeHost): Promise<string[]> {
  const agency = await host.agency()
  const out: string[] = []
  for await (const rec of agency.datasets.read('events')) out.push(rec.text)
  return out
}

test('disk: a full disk refuses an append with DISK_FULL, keeps what was acknowledged, and works again once space is freed', async (t) => {
  const mnt = mountTmpfs(t, TMPFS_BYTES)
  const dir = path.join(mnt, 'agency')
  await EmbassyNode.init(dir, { role: 'agency', name: 'Disk Agency' })
  let host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close(), { order: 0 })
  const agency = await host.agency()
  await agency.createDataset('events')
  const notices: Array<{ event: string; message: string }> = []
  agency.on('notice', (n: { event: string; message: string }) => notices.push(n))

  const filler = await fill(mnt, HEADROOM_BYTES)
  const acknowledged: string[] = []
  let err: unknown = null
  // Far more than the headroom holds: the loop must end with an error, not by running out of records.
  for (let i = 0; i < 4 * (HEADROOM_BYTES / RECORD_BYTES) && err === null; i++) {
    const text = record(i)
    try {
      await agency.appendJson('events', [text])
      acknowledged.push(text)
    } catch (e) {
      err = e
    }
  }
  t.ok(err instanceof EmbassyError, `the append on a full disk fails with an EmbassyError (got ${String(err)})`)
  const e = err as EmbassyError
  t.is(e.code, 'DISK_FULL')
  t.ok(/^DISK_FULL: no space left on the disk of .* \(free: \d+ byte\(s\), about \d+ byte\(s\) needed\)/.test(e.message), `clear message: ${e.message}`)
  t.is(typeof e.details.free, 'number', 'free bytes reported')
  t.ok((e.details.needed as number) > RECORD_BYTES, 'needed bytes reported')
  t.ok(acknowledged.length > 0, `${acknowledged.length} append(s) acknowledged before the disk filled`)
  t.ok(notices.some((n) => n.event === 'disk-full'), 'a disk-full notice for the daemon log')
  const status = await agency.status()
  t.ok((status.alarms as Array<{ kind: string }>).some((a) => a.kind === 'disk-full'), 'a disk-full alarm on the node')

  // Nothing acknowledged is lost, and nothing unacknowledged is visible, while the disk is still full.
  t.alike(await readAll(host), acknowledged, 'exactly the acknowledged records, in order, on the full disk')

  // Free the space: the node works again (reopened, as an operator's next command or restart would).
  fs.unlinkSync(filler)
  const live = await agency.appendJson('events', [record(-1)]).then(
    (r) => r,
    (e: Error) => e
  )
  // The open store (RocksDB) keeps its no-space error until it is reopened: the error says so.
  if (live instanceof EmbassyError) {
    t.is(live.code, 'DISK_FULL')
    t.ok(live.details.reopen === true && /refuses writes until it is reopened: restart the node/.test(live.message), `the error tells to restart: ${live.message}`)
  } else {
    t.comment(`the open node took an append again after space was freed (length ${(live as { length: number }).length})`)
    acknowledged.push(record(-1))
  }
  await host.close()
  host = new NodeHost(dir)
  await host.ready()
  t.alike(await readAll(host), acknowledged, 'after reopening: every acknowledged record, in order')
  const again = await (await host.agency()).appendJson('events', [record(1000)])
  t.is(again.length, acknowledged.length + 1, 'appends work again once space is freed')
  acknowledged.push(record(1000))
  t.alike(await readAll(host), acknowledged)
})

test('disk: a publish cut short by a full disk fails with DISK_FULL; every listed file is whole; publishing again completes it', async (t) => {
  const mnt = mountTmpfs(t, TMPFS_BYTES)
  const dir = path.join(mnt, 'agency')
  await EmbassyNode.init(dir, { role: 'agency', name: 'Disk Agency' })
  let host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close(), { order: 0 })
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'src')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'a.txt'), 'first version\n')
  await agency.publish('laws', src)
  const files = async (): Promise<string[]> => {
    const out: string[] = []
    for await (const f of (await (await host.agency()).datasets.openFiles('laws')).list()) out.push(`${f.path}:${f.size}`)
    return out.sort()
  }
  /** Every listed file exported byte-identical to the source (no file indexed without all its bytes). */
  const wholeFiles = async (): Promise<number> => {
    const out = path.join(await t.tmp(), 'export')
    const ds = await (await host.agency()).datasets.openFiles('laws')
    await ds.exportTo(out)
    let n = 0
    for await (const f of ds.list()) {
      t.alike(fs.readFileSync(path.join(out, f.path)), fs.readFileSync(path.join(src, f.path)), `${f.path} whole`)
      n++
    }
    return n
  }
  t.alike(await files(), ['/a.txt:14'])

  const filler = await fill(mnt, HEADROOM_BYTES)
  // Six 1 MiB files into 3 MiB of headroom: the disk fills part way through the tree.
  const tree = ['/a.txt:14']
  for (let i = 0; i < 6; i++) {
    fs.writeFileSync(path.join(src, `m${i}.bin`), Buffer.alloc(1024 * 1024, i + 1))
    tree.push(`/m${i}.bin:1048576`)
  }
  const err = await agency.publish('laws', src).then(() => null, (e: unknown) => e)
  t.ok(err instanceof EmbassyError && err.code === 'DISK_FULL', `publish on a full disk: ${String(err)}`)
  t.ok(/the files written before it are published \(each whole\), the rest are not; publish again/.test((err as Error).message), 'the error says what landed')
  const partial = await files()
  t.ok(partial.length < tree.length && partial.includes('/a.txt:14'), `part of the tree is published: ${partial.join(' ')}`)
  t.is(await wholeFiles(), partial.length, 'every file the index lists is whole')
  const cores = await (await host.agency()).datasets.openFiles('laws').then((ds) => ds.cores())
  t.comment(`after the failed publish: ${cores.map((c) => `${c.part} core ${c.core.length} block(s)`).join(', ')}`)

  fs.unlinkSync(filler)
  await host.close()
  host = new NodeHost(dir)
  await host.ready()
  t.alike(await files(), partial, 'after reopening: the same files')
  await (await host.agency()).publish('laws', src)
  t.alike(await files(), tree.sort(), 'publishing again once space is freed completes the tree')
  t.is(await wholeFiles(), tree.length)
})

test('disk: ENOSPC and RocksDB batch failures map to DISK_FULL; other errors pass unchanged', async (t) => {
  const dir = await t.tmp()
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
  t.ok(isNoSpace(enospc))
  t.ok(isNoSpace(new AggregateError([new Error('x'), enospc], 'Batch was not applied')), 'ENOSPC inside a RocksDB AggregateError')
  t.ok(isNoSpace(new Error('Batch was not applied', { cause: new Error('IO error: No space left on device') })), 'RocksDB IO error as the cause')
  const mapped = await toDiskFull(new Error('Batch was not applied', { cause: enospc }), dir, 'appending to x', 10)
  t.ok(mapped instanceof EmbassyError && mapped.code === 'DISK_FULL')
  t.is((mapped as EmbassyError).details.needed, 10)
  t.is((mapped as EmbassyError).exitCode, 1)
  // A batch that failed for another reason on a disk with room is not a full disk.
  const other = new Error('Batch was not applied')
  t.is(await toDiskFull(other, dir, 'x'), other)
  const bad = EmbassyError.badRecord(1, 'not JSON')
  t.is(await toDiskFull(bad, dir, 'x'), bad, 'an EmbassyError that is not about space passes unchanged')
  t.ok(lowSpaceThreshold(1000) <= 50, 'default threshold on a small disk: at most 5 %')
  t.is(lowSpaceThreshold(10 ** 12), 256 * 1024 * 1024, 'default threshold on a large disk: 256 MiB')
  t.is(lowSpaceThreshold(1000, { lowSpaceBytes: 10, lowSpaceFraction: 0.5 }), 500, 'both set: the larger')
})

test('disk: low space shows in status, the log and /metrics; a bad threshold is refused', async (t) => {
  const bootstrap = await testnet(t)
  const dir = path.join(await t.tmp(), 'agency')
  await EmbassyNode.init(dir, { role: 'agency', name: 'Low Agency' })
  const configFile = path.join(dir, 'config.json')
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'))

  // Malformed thresholds: refused at open with BAD_CONFIG, naming the field.
  for (const [field, value] of [['lowSpaceBytes', -1], ['lowSpaceBytes', '1GB'], ['lowSpaceFraction', 1.5], ['lowSpaceFraction', 0]] as const) {
    fs.writeFileSync(configFile, JSON.stringify({ ...config, [field]: value }))
    const host = new NodeHost(dir)
    const err = await host.ready().then(() => null, (e: unknown) => e)
    await host.close().catch(() => {})
    t.ok(err instanceof EmbassyError && err.code === 'BAD_CONFIG' && err.message.includes(field), `${field}=${JSON.stringify(value)} refused: ${String(err)}`)
  }

  // A threshold above the disk's free space: the warning is on from the first check.
  fs.writeFileSync(configFile, JSON.stringify({ ...config, lowSpaceBytes: Number.MAX_SAFE_INTEGER }))
  const logs: LogEvent[] = []
  const daemon = new Daemon({ dir, bootstrap, http: '127.0.0.1:0', log: (e) => logs.push(e) })
  t.teardown(() => daemon.close(), { order: 0 })
  await daemon.ready()
  const low = logs.find((e) => e.event === 'disk-low')
  t.ok(low, 'a disk-low log line at start')
  t.is(low?.level, 'warn')
  const status = (await nodeStatus(daemon.host)) as unknown as { disk: { free: number; total: number; low: boolean } }
  t.ok(status.disk.low, 'status: disk.low')
  t.ok(status.disk.free > 0 && status.disk.total >= status.disk.free, `status: disk free ${status.disk.free} of ${status.disk.total}`)
  const res = await fetch(`${daemon.gateway!.url}/metrics`)
  const text = await res.text()
  t.ok(/^embassy_disk_low 1$/m.test(text), 'metrics: embassy_disk_low 1')
  t.ok(/^embassy_disk_free_bytes \d+$/m.test(text), 'metrics: embassy_disk_free_bytes')
})
