/**
 * JsonFile (custody.json, audits.json, alarms.json): background writes leave the event loop free
 * (fsync on the thread pool), one at a time, the latest state landing last; flush() and close()
 * stay synchronous and win over a write in flight; a failed background write is kept in
 * lastError, never thrown; a damaged file is set aside.
 *
 * A write is held in flight by holding its fsync (fs.fsync patched for the test): no timing.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { JsonFile } from '../lib/custody/json-file.js'
import type { Test } from './helpers/index.js'

interface Doc {
  version: 1
  n: number
}

const empty = (): Doc => ({ version: 1, n: 0 })
const valid = (p: Doc): boolean => p.version === 1 && typeof p.n === 'number'

function open(file: string, flushMs = 1): JsonFile<Doc> {
  return new JsonFile<Doc>(file, empty, valid, flushMs)
}

function onDisk(file: string): Doc {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Doc
}

function tempFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))
}

/**
 * Holds every background fsync until released (or fails it with `fail`): `reached` resolves at
 * the first one, so the test acts while a write is in flight.
 */
function holdFsync(t: { teardown: (fn: () => void) => void }, fail?: NodeJS.ErrnoException) {
  const original = fs.fsync
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let reached!: () => void
  const hold = { calls: 0, reached: new Promise<void>((resolve) => (reached = resolve)), release, restore: () => {} }
  const patched = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => {
    hold.calls++
    reached()
    void released.then(() => (fail ? cb(fail) : original(fd, cb)))
  }
  ;(fs as { fsync: unknown }).fsync = patched
  hold.restore = (): void => {
    ;(fs as { fsync: unknown }).fsync = original
  }
  t.teardown(hold.restore)
  return hold
}

/**
 * Waits until the background write of the latest change reached its (held) fsync: fails the test,
 * instead of waiting forever, when the write landed without one (written on the event loop).
 */
async function inFlight(t: { is: (a: unknown, b: unknown, msg: string) => void }, doc: JsonFile<Doc>, hold: { calls: number; reached: Promise<void> }): Promise<void> {
  // flushed() cannot resolve first while the write is held (it also keeps the unref'd timer alive).
  await Promise.race([hold.reached, doc.flushed()])
  t.is(hold.calls, 1, 'the write is in flight, its fsync held on the thread pool')
}

/** Fails the test on an unhandled rejection while `fn` runs. */
async function noUnhandled(t: { absent: (v: unknown, msg: string) => void }, fn: () => Promise<void>): Promise<void> {
  const seen: unknown[] = []
  const on = (err: unknown): void => {
    seen.push(err)
  }
  process.on('unhandledRejection', on)
  try {
    await fn()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('unhandledRejection', on)
  }
  t.absent(seen.length, `no unhandled rejection (${seen.map(String).join(', ')})`)
}

test('json-file: a change is written in the background (no fsync on the event loop), 0600, and survives a reload', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, 'doc.json')
  const doc = open(file)
  const fsyncSync = fs.fsyncSync
  let syncCalls = 0
  ;(fs as { fsyncSync: unknown }).fsyncSync = (fd: number) => {
    syncCalls++
    fsyncSync(fd)
  }
  t.teardown(() => {
    ;(fs as { fsyncSync: unknown }).fsyncSync = fsyncSync
  })
  doc.data.n = 7
  doc.changed()
  await doc.flushed()
  ;(fs as { fsyncSync: unknown }).fsyncSync = fsyncSync
  t.is(syncCalls, 0, 'the background write did not fsync on the event loop')
  t.is(doc.lastError, null)
  t.is(onDisk(file).n, 7, 'written')
  if (process.platform !== 'win32') t.is(fs.statSync(file).mode & 0o777, 0o600, 'mode 0600')
  t.alike(tempFiles(dir), [], 'no temp file left')
  t.is(open(file).data.n, 7, 'a reload reads it back')
  doc.close()
  t.is(open(file).data.n, 7)
})

/** A document in a fresh directory whose background write of n = 1 is in flight (its fsync held). */
async function writeInFlight(t: Test) {
  const dir = await t.tmp()
  const file = path.join(dir, 'doc.json')
  const doc = open(file)
  const hold = holdFsync(t)
  doc.data.n = 1
  doc.changed()
  await inFlight(t, doc, hold)
  return { dir, file, doc, hold }
}

test('json-file: a change while a write is in flight is written after it: the file ends with the latest state', async (t) => {
  const { dir, file, doc, hold } = await writeInFlight(t)
  doc.data.n = 2
  doc.changed()
  const done = doc.flushed()
  // A timer set after the flush timer (1 ms) runs after it: the change's timer has fired.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.is(hold.calls, 1, 'one write in flight at a time')
  t.is(tempFiles(dir).length, 1, 'one temp file: no second writer started')
  t.absent(fs.existsSync(file), 'nothing landed yet')
  hold.release()
  await done
  t.is(hold.calls, 2, 'the change was written in a second write, after the first')
  t.is(doc.lastError, null)
  t.is(onDisk(file).n, 2, 'the file holds the latest state')
  t.alike(tempFiles(dir), [], 'no temp file left')
  doc.close()
  t.is(onDisk(file).n, 2)
})

test('json-file: flush() while a write is in flight lands last; the stale write is discarded, no temp file left', async (t) => {
  const { dir, file, doc, hold } = await writeInFlight(t)
  doc.data.n = 2
  doc.flush()
  t.is(onDisk(file).n, 2, 'flush() is synchronous and durable')
  hold.release()
  await doc.flushed()
  t.is(onDisk(file).n, 2, 'the older write in flight did not land over it')
  t.is(doc.lastError, null)
  t.alike(tempFiles(dir), [], 'no temp file left')
  doc.close()
})

test('json-file: close() while a write is in flight lands last and nothing touches the directory afterwards', async (t) => {
  const { dir, file, doc, hold } = await writeInFlight(t)
  doc.data.n = 2
  doc.close()
  t.is(onDisk(file).n, 2, 'close() wrote the latest state')
  const afterClose = fs.readdirSync(dir).sort()
  t.alike(afterClose, ['doc.json'], 'no temp file left at close')
  const mtime = fs.statSync(file).mtimeMs
  doc.data.n = 3
  doc.changed() // after close: not written
  hold.release()
  await doc.flushed()
  t.alike(fs.readdirSync(dir).sort(), afterClose, 'the stale write created and renamed nothing')
  t.is(onDisk(file).n, 2, 'the file still holds the state written at close')
  t.is(fs.statSync(file).mtimeMs, mtime)
  t.is(hold.calls, 1, 'no write after close')
})

test('json-file: a failing background write sets lastError (no throw, no unhandled rejection); a later good write clears it', async (t) => {
  const root = await t.tmp()
  const dir = path.join(root, 'node')
  fs.mkdirSync(dir)
  const file = path.join(dir, 'doc.json')
  const doc = open(file)
  await noUnhandled(t, async () => {
    // The directory is gone: the temp file cannot be created.
    fs.rmSync(dir, { recursive: true })
    doc.data.n = 1
    doc.changed()
    await doc.flushed()
  })
  t.ok(doc.lastError, `lastError: ${doc.lastError?.message}`)
  t.is((doc.lastError as NodeJS.ErrnoException | null)?.code, 'ENOENT')

  fs.mkdirSync(dir)
  doc.data.n = 2
  doc.changed()
  await doc.flushed()
  t.is(doc.lastError, null, 'a good write clears it')
  t.is(onDisk(file).n, 2)

  // The disk fails the fsync (on the thread pool): the file keeps its last good state.
  const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }) as NodeJS.ErrnoException
  const hold = holdFsync(t, eio)
  await noUnhandled(t, async () => {
    doc.data.n = 3
    doc.changed()
    await inFlight(t, doc, hold)
    hold.release()
    await doc.flushed()
  })
  hold.restore()
  t.is(doc.lastError, eio, 'the failed fsync is kept')
  t.is(onDisk(file).n, 2, 'the file keeps its last good state')
  t.alike(tempFiles(dir), [], 'the failed write removed its temp file')

  doc.data.n = 4
  doc.changed()
  await doc.flushed()
  t.is(doc.lastError, null, 'cleared again')
  t.is(onDisk(file).n, 4)
  doc.close()
})

test('json-file: a damaged file is set aside, not overwritten; the document starts empty', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, 'doc.json')
  fs.writeFileSync(file, '{"version": 1, "n": ')
  const doc = open(file)
  t.is(doc.data.n, 0, 'starts from empty()')
  const aside = fs.readdirSync(dir).filter((f) => f.startsWith('doc.json.damaged-'))
  t.is(aside.length, 1, 'set aside')
  t.is(fs.readFileSync(path.join(dir, aside[0]!), 'utf8'), '{"version": 1, "n": ', 'kept as it was')
  fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ version: 2 }))
  t.is(open(path.join(dir, 'other.json')).data.n, 0, 'a document valid() refuses is set aside too')
  t.ok(fs.readdirSync(dir).some((f) => f.startsWith('other.json.damaged-')))
  doc.close()
  t.is(onDisk(file).n, 0)
})

test('json-file: temp files a killed writer left behind are removed at open; a running process\'s are kept', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, 'doc.json')
  fs.writeFileSync(file, JSON.stringify({ version: 1, n: 3 }))
  // A process id that surely no longer runs: a child that has exited (and was reaped).
  const child = spawn(process.execPath, ['-e', '0'])
  await new Promise((resolve) => child.once('exit', resolve))
  const dead = child.pid!
  const stale = [`doc.json.${dead}.tmp`, `doc.json.${dead}-0123456789ab.tmp`]
  const live = [`doc.json.${process.pid}-0123456789ab.tmp`, `doc.json.${process.ppid}.tmp`]
  const unrelated = ['doc.json.notes.tmp', `other.json.${dead}.tmp`]
  for (const name of [...stale, ...live, ...unrelated]) fs.writeFileSync(path.join(dir, name), 'partial')
  const doc = open(file)
  t.is(doc.data.n, 3)
  const left = fs.readdirSync(dir)
  for (const name of stale) t.absent(left.includes(name), `${name} removed`)
  for (const name of [...live, ...unrelated]) t.ok(left.includes(name), `${name} kept`)
  doc.close()
})
