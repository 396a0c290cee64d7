/**
 * Full disk (issue 15 item 5): a write on a full disk fails with DISK_FULL (free/needed bytes), is
 * alarmed, loses nothing acknowledged, and the node works again once space is freed; a publish
 * lands whole or not at all (refused before it writes when it cannot fit; cut short, no file of it
 * is visible) and succeeds on the same open node once space is freed; a low-space warning shows
 * in status, the log and /metrics before the disk is full.
 * The disk is a small tmpfs mounted here (we run as root, as CI does); no mount → the test fails.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { Daemon, EmbassyError, EmbassyNode, NodeHost, type LogEvent } from '../lib/index.js'
import { nodeStatus } from '../lib/daemon/commands/node.js'
import { isNoSpace, lowSpaceThreshold, toDiskFull } from '../lib/node/disk.js'
import { APPEND_GROUP_BYTES } from '../lib/data/files-dataset.js'
import { testnet, type Test } from './helpers/index.js'
import { fillDisk, mountTmpfs } from './helpers/disk.js'

const TMPFS_BYTES = 24 * 1024 * 1024
/** What is left free for the node after the filler file: enough to open, too little for the appends below. */
const HEADROOM_BYTES = 3 * 1024 * 1024
const RECORD_BYTES = 48 * 1024



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

  const filler = fillDisk(mnt, HEADROOM_BYTES)
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


/** A files dataset 'laws' on a fresh agency in `mnt`, with a.txt published; helpers to look at it. */
async function lawsAgency(t: Test, mnt: string) {
  const dir = path.join(mnt, 'agency')
  await EmbassyNode.init(dir, { role: 'agency', name: 'Disk Agency' })
  const host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close(), { order: 0 })
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'src')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'a.txt'), 'first version\n')
  await agency.publish('laws', src)
  const ds = await agency.datasets.openFiles('laws')
  const files = async (): Promise<string[]> => {
    const out: string[] = []
    for await (const f of ds.list()) out.push(`${f.path}:${f.size}`)
    return out.sort()
  }
  /** Every listed file exported byte-identical to the source (no file indexed without all its bytes). */
  const wholeFiles = async (): Promise<number> => {
    const out = path.join(await t.tmp(), 'export')
    await ds.exportTo(out)
    let n = 0
    for await (const f of ds.list()) {
      t.alike(fs.readFileSync(path.join(out, f.path)), fs.readFileSync(path.join(src, f.path)), `${f.path} whole`)
      n++
    }
    return n
  }
  const lengths = async () => Object.fromEntries((await ds.cores()).map((c) => [c.part, c.core.length])) as Record<string, number>
  return { dir, host, agency, ds, src, files, wholeFiles, lengths }
}

test('disk: a publish that does not fit is refused with DISK_FULL before anything is written, and succeeds once space is freed, without a restart', async (t) => {
  const mnt = mountTmpfs(t, TMPFS_BYTES)
  const { agency, ds, src, files, wholeFiles, lengths } = await lawsAgency(t, mnt)
  const notices: Array<{ event: string }> = []
  agency.on('notice', (n: { event: string }) => notices.push(n))
  t.alike(await files(), ['/a.txt:14'])
  const before = await lengths()
  const version = ds.version

  const filler = fillDisk(mnt, HEADROOM_BYTES)
  // Six 1 MiB files into 3 MiB of headroom.
  const tree = ['/a.txt:14']
  for (let i = 0; i < 6; i++) {
    fs.writeFileSync(path.join(src, `m${i}.bin`), Buffer.alloc(1024 * 1024, i + 1))
    tree.push(`/m${i}.bin:1048576`)
  }
  const err = await agency.publish('laws', src).then(() => null, (e: unknown) => e)
  t.ok(err instanceof EmbassyError && err.code === 'DISK_FULL', `publish on a full disk: ${String(err)}`)
  const e = err as EmbassyError
  t.ok(/refused before anything was written: free some space and retry \(no restart needed\)/.test(e.message), `the error says nothing was written: ${e.message}`)
  t.ok((e.details.needed as number) > 6 * 1024 * 1024 && (e.details.free as number) < (e.details.needed as number), `free ${e.details.free} < needed ${e.details.needed}`)
  t.ok(notices.some((n) => n.event === 'disk-full'), 'a disk-full notice for the daemon log')
  t.ok(((await agency.status()).alarms as Array<{ kind: string }>).some((a) => a.kind === 'disk-full'), 'a disk-full alarm')
  t.alike(await files(), ['/a.txt:14'], 'no file of the refused publish is visible')
  t.alike(await lengths(), before, 'nothing appended to the index or the content core')
  t.is(ds.version, version)

  // Free the space: the same open node publishes (the store never saw the full disk).
  fs.unlinkSync(filler)
  const r = await agency.publish('laws', src)
  t.is(r.added, 6)
  t.alike(await files(), tree.sort(), 'the whole tree once space is freed, on the same open node')
  t.is(await wholeFiles(), tree.length)
})

test('disk: a disk that fills during a publish: DISK_FULL, no file of it visible; once space is freed (and the store reopened if it says so) publishing again completes it', async (t) => {
  // Large next to the publish: RocksDB's own transient use (WAL, memtable flushes: tens of MiB) stays small beside it.
  const mnt = mountTmpfs(t, 512 * 1024 * 1024)
  const { dir, host: first, agency, ds, src, files, wholeFiles, lengths } = await lawsAgency(t, mnt)
  const before = await lengths()
  const version = ds.version
  // More than one append group (APPEND_GROUP_BYTES): the first group lands, then the disk fills.
  const count = Math.ceil(APPEND_GROUP_BYTES / (1024 * 1024)) + 8
  const tree = ['/a.txt:14']
  for (let i = 0; i < count; i++) {
    fs.writeFileSync(path.join(src, `m${String(i).padStart(2, '0')}.bin`), Buffer.alloc(1024 * 1024, i + 1))
    tree.push(`/m${String(i).padStart(2, '0')}.bin:1048576`)
  }
  const content = (await ds.cores()).find((c) => c.part === 'content')!.core
  let filler: string | null = null
  const onAppend = (): void => {
    if (filler === null) filler = fillDisk(mnt, 2 * 1024 * 1024) // right after the first group landed
  }
  content.on('append', onAppend)
  const err = await agency.publish('laws', src).then(() => null, (e: unknown) => e)
  content.off('append', onAppend)
  t.ok(filler !== null, 'the disk filled after the first content append of the publish')
  t.ok(err instanceof EmbassyError && err.code === 'DISK_FULL', `publish cut short: ${String(err)}`)
  const e = err as EmbassyError
  t.ok(/nothing of it was published \(no file of it is in the index; content blocks appended before the disk filled stay in the content core, unreferenced\)/.test(e.message), `the error says what landed: ${e.message}`)
  const after = await lengths()
  t.is(after.index, before.index!, 'the index did not change: no file of the publish is visible')
  t.is(ds.version, version)
  t.alike(await files(), ['/a.txt:14'])
  t.is(await wholeFiles(), 1)
  t.comment(`met by ${e.details.checked ? 'the check before an append' : 'the store'}; ${after.content! - before.content!} content block(s) of the cut publish stay unreferenced`)

  fs.unlinkSync(filler!)
  // RocksDB keeps a "no space" error met by its background work (flushing what the first group
  // wrote) even once space is free: then the error says to reopen, and reopening is the recovery.
  let r = await agency.publish('laws', src).then((x) => x, (x: unknown) => x)
  let host: NodeHost | null = null
  if (r instanceof EmbassyError) {
    t.is(r.code, 'DISK_FULL')
    t.ok(r.details.reopen === true && /restart the node/.test(r.message), `the open store refuses until reopened, and says so: ${r.message}`)
    await first.close()
    const h = new NodeHost(dir)
    host = h
    t.teardown(() => h.close(), { order: 0 })
    await h.ready()
    r = await (await h.agency()).publish('laws', src)
  } else {
    t.comment('the open node published again without reopening')
  }
  t.is((r as { added: number }).added, count, 'publishing again writes every file')
  const ds2 = host ? await (await host.agency()).datasets.openFiles('laws') : ds
  const listed: string[] = []
  for await (const f of ds2.list()) listed.push(`${f.path}:${f.size}`)
  t.alike(listed.sort(), tree.sort(), 'the whole tree')
  const out = path.join(await t.tmp(), 'export2')
  await ds2.exportTo(out)
  for (const name of fs.readdirSync(src)) t.ok(fs.readFileSync(path.join(out, name)).equals(fs.readFileSync(path.join(src, name))), `${name} whole`)
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

test('disk: an embassy whose disk is full raises disk-full (its downloads stop silently otherwise)', async (t) => {
  const bootstrap = await testnet(t)
  const mnt = mountTmpfs(t, TMPFS_BYTES)
  const dir = path.join(mnt, 'embassy')
  await EmbassyNode.init(dir, { role: 'embassy' })
  // Open it once so the store's files exist, then fill the disk around them.
  const first = new Daemon({ dir, bootstrap, log: () => {} })
  await first.ready()
  await first.close()
  const filler = fillDisk(mnt, 1024 * 1024)
  const logs: LogEvent[] = []
  const daemon = new Daemon({ dir, bootstrap, log: (e) => logs.push(e) })
  t.teardown(() => daemon.close(), { order: 0 })
  await daemon.ready()
  const full = logs.find((e) => e.event === 'disk-full')
  t.ok(full, 'a disk-full log line at start')
  t.is(full?.level, 'error')
  const status = (await nodeStatus(daemon.host)) as unknown as { alarms: Array<{ kind: string; detail: string }> }
  const alarm = status.alarms.find((a) => a.kind === 'disk-full')
  t.ok(alarm && /downloads of new blocks stop/.test(alarm.detail), `the embassy's alarms list disk-full: ${alarm?.detail}`)
  fs.unlinkSync(filler)
})
