/**
 * Publish edges of the one-pass publish (lib/data/files-dataset.ts, blob-writer.ts, the walk in
 * local-folder.ts): same-size changes found by content, a change of the executable bit only,
 * entries that are neither files, folders nor links, names the policy refuses, a link to a folder,
 * a file that becomes a folder, more blocks than one append group holds, a file that shrinks
 * while it is published (refused whole, nothing visible), and a folder swapped for a link that
 * leads outside while the walk lists it (refused, never listed through).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { EmbassyError } from '../lib/index.js'
import { WALK_SLICE, walkFolder, type LocalTree, type WalkOptions } from '../lib/data/local-folder.js'
import { APPEND_GROUP_BLOCKS } from '../lib/data/files-dataset.js'
import { openAgency, readTree, type Test } from './helpers/index.js'
import { pseudoRandom } from './helpers/files.js'

async function filesAgency(t: Test) {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const ds = await agency.datasets.openFiles('laws')
  const src = path.join(await t.tmp(), 'src')
  fs.mkdirSync(src, { recursive: true })
  const content = async () => (await ds.cores()).find((c) => c.part === 'content')!.core
  const exported = async () => {
    const out = path.join(await t.tmp(), 'out')
    await ds.exportTo(out)
    return out
  }
  return { agency, ds, src, content, exported }
}

test('publish: same-size changes are found by content (one byte deep in a multi-block file); equal files append nothing', async (t) => {
  const { agency, src, content, exported } = await filesAgency(t)
  const big = pseudoRandom(3 * 1024 * 1024 + 5, 3)
  fs.writeFileSync(path.join(src, 'big.bin'), big)
  fs.writeFileSync(path.join(src, 'a.txt'), 'aaaa')
  fs.writeFileSync(path.join(src, 'b.txt'), 'bbbb')
  const first = await agency.publish('laws', src)
  t.is(first.added, 3)
  const length = (await content()).length

  const same = await agency.publish('laws', src)
  t.is(same.added + same.changed + same.removed, 0, 'nothing changed')
  t.is((await content()).length, length, 'no block appended')

  big[2 * 1024 * 1024 + 100] = big[2 * 1024 * 1024 + 100]! ^ 0xff // inside the third block
  fs.writeFileSync(path.join(src, 'big.bin'), big)
  fs.writeFileSync(path.join(src, 'b.txt'), 'BBBB') // same size, other bytes
  const changed = await agency.publish('laws', src)
  t.is(changed.changed, 2, 'both same-size changes found')
  t.is(changed.added, 0)
  t.is(changed.bytesAdded, big.byteLength + 4)
  t.is(changed.bytesRemoved, big.byteLength + 4)
  t.alike(readTree(await exported()), readTree(src), 'byte-identical export')
})

test('publish: only the executable bit changed: a new index entry over the same content blocks', async (t) => {
  const { agency, src, content, exported } = await filesAgency(t)
  fs.writeFileSync(path.join(src, 'run.sh'), '#!/bin/sh\necho hi\n')
  await agency.publish('laws', src)
  const length = (await content()).length
  fs.chmodSync(path.join(src, 'run.sh'), 0o755)
  const r = await agency.publish('laws', src)
  t.is(r.changed, 1)
  t.is(r.bytesAdded, 0, 'no content bytes')
  t.is((await content()).length, length, 'no block appended')
  const out = await exported()
  t.ok(fs.statSync(path.join(out, 'run.sh')).mode & 0o100, 'exported executable')
  t.is(fs.readFileSync(path.join(out, 'run.sh'), 'utf8'), '#!/bin/sh\necho hi\n')
})

test('publish: a FIFO and a socket are left out and listed (the publish does not block on them); a backslash name too', async (t) => {
  const { agency, src, exported } = await filesAgency(t)
  fs.writeFileSync(path.join(src, 'ok.txt'), 'ok')
  let fifo = true
  try {
    execFileSync('mkfifo', [path.join(src, 'pipe')])
  } catch {
    fifo = false
    t.comment('mkfifo not available: FIFO case not run')
  }
  const net = await import('node:net')
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(path.join(src, 'sock'), resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  fs.writeFileSync(path.join(src, 'back\\slash.txt'), 'x')
  const r = await agency.publish('laws', src)
  const skipped = new Map(r.skipped.map((s) => [s.path, s.reason]))
  if (fifo) t.ok(/not a regular file/.test(skipped.get('/pipe') ?? ''), `the FIFO is listed: ${skipped.get('/pipe')}`)
  t.ok(/not a regular file/.test(skipped.get('/sock') ?? ''), `the socket is listed: ${skipped.get('/sock')}`)
  t.ok(/backslash/.test(skipped.get('/back\\slash.txt') ?? ''), `the backslash name is listed: ${skipped.get('/back\\slash.txt')}`)
  t.is(r.added, 1, 'only the regular file')
  t.is(r.files, 1)
  t.alike(Object.keys(readTree(await exported())), ['ok.txt'])
})

test('publish: a link to a folder inside is one link (never descended); a file that becomes a folder is replaced', async (t) => {
  const { agency, ds, src, exported } = await filesAgency(t)
  fs.mkdirSync(path.join(src, 'sub'))
  fs.writeFileSync(path.join(src, 'sub', 'a.txt'), 'inside')
  fs.symlinkSync('sub', path.join(src, 'to-sub'))
  fs.writeFileSync(path.join(src, 'x'), 'a file first')
  const r = await agency.publish('laws', src)
  t.is(r.added, 3)
  t.is((await ds.drive.entry('/to-sub'))?.value.linkname, 'sub')
  t.is(await ds.drive.entry('/to-sub/a.txt'), null, 'nothing published through the link')

  fs.rmSync(path.join(src, 'x'))
  fs.mkdirSync(path.join(src, 'x'))
  fs.writeFileSync(path.join(src, 'x', 'y'), 'now a folder')
  const r2 = await agency.publish('laws', src)
  t.is(r2.removed, 1)
  t.is(r2.added, 1)
  const names: string[] = []
  for await (const f of ds.list()) names.push(f.path)
  t.alike(names.sort(), ['/sub/a.txt', '/to-sub', '/x/y'])
  const out = await exported()
  t.is(fs.readFileSync(path.join(out, 'x', 'y'), 'utf8'), 'now a folder')
  t.is(fs.readlinkSync(path.join(out, 'to-sub')), 'sub')
})

test('publish: more small files than one append group holds; export byte-identical', async (t) => {
  const { agency, src, exported } = await filesAgency(t)
  const count = APPEND_GROUP_BLOCKS + 37
  for (let i = 0; i < count; i++) {
    const dir = path.join(src, `d${i % 7}`)
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 5)))
  }
  const seen: Array<[number, number]> = []
  const r = await agency.publish('laws', src, (done, total) => void seen.push([done, total]))
  t.is(r.added, count)
  t.alike(seen[seen.length - 1], [r.bytesAdded, r.bytesAdded], 'progress ends at the bytes added')
  t.ok(seen.length >= 3, `progress reported as appends land (${seen.length} calls)`)
  t.ok(seen.every(([d], i) => i === 0 || d >= seen[i - 1]![0]), 'progress never goes back')
  t.alike(readTree(await exported()), readTree(src), 'byte-identical export')
})

test('publish: a folder that cannot be listed is refused (never published as empty, which would remove every file)', async (t) => {
  const missing = path.join(await t.tmp(), 'gone')
  const err = await (async () => {
    try {
      await walkFolder(missing)
      return null
    } catch (e) {
      return e
    }
  })()
  t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT' && /cannot read .*ENOENT/.test(err.message), `refused: ${String(err)}`)
})

test('publish: a file that shrinks while it is published fails the publish (BAD_INPUT) with nothing visible; publishing again completes it', async (t) => {
  const { ds, src, exported } = await filesAgency(t)
  fs.writeFileSync(path.join(src, 'keep.txt'), 'kept')
  await ds.publish(src)
  const version = ds.version
  const indexLength = ds.drive.core.length
  fs.writeFileSync(path.join(src, 'grows-small.bin'), pseudoRandom(2 * 1024 * 1024, 9))
  let calls = 0
  const err = await ds
    .publish(src, undefined, {
      // Asked once for the plan, then before the content append: the file shrinks in between.
      room: () => {
        if (++calls === 2) fs.truncateSync(path.join(src, 'grows-small.bin'), 1000)
      }
    })
    .then(
      () => null,
      (e: unknown) => e
    )
  t.ok(calls >= 2, 'the room was asked before the content append')
  t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT', `refused: ${String(err)}`)
  t.ok(/became shorter while it was published/.test((err as Error).message), 'says why')
  t.is(ds.version, version, 'the index did not change')
  t.is(ds.drive.core.length, indexLength)
  t.is(await ds.drive.entry('/grows-small.bin'), null, 'the file is not visible')

  const again = await ds.publish(src)
  t.is(again.added, 1)
  t.alike(readTree(await exported()), readTree(src), 'byte-identical export')
})

test('publish: a file swapped for a link or a FIFO after it was listed is never followed or waited on (BAD_INPUT, nothing visible)', async (t) => {
  const { ds, src } = await filesAgency(t)
  const outside = path.join(await t.tmp(), 'secret.txt')
  fs.writeFileSync(outside, 'outside the folder, same size')
  const swap = async (make: (file: string) => void): Promise<unknown> => {
    const file = path.join(src, 'swapped.txt')
    fs.rmSync(file, { force: true }) // the previous round's link (never written through)
    fs.writeFileSync(file, 'inside the folder, same size!')
    let calls = 0
    return ds
      .publish(src, undefined, {
        room: () => {
          if (++calls !== 2) return
          fs.rmSync(file)
          make(file)
        }
      })
      .then(
        () => null,
        (e: unknown) => e
      )
  }
  const version = ds.version
  const viaLink = await swap((file) => fs.symlinkSync(outside, file))
  t.ok(viaLink instanceof EmbassyError && viaLink.code === 'BAD_INPUT' && /cannot read .*swapped\.txt: ELOOP/.test(viaLink.message), `link refused: ${String(viaLink)}`)
  t.is(ds.version, version, 'nothing visible')
  let fifo = true
  const viaFifo = await swap((file) => {
    try {
      execFileSync('mkfifo', [file])
    } catch {
      fifo = false
      fs.writeFileSync(file, 'x')
    }
  })
  if (fifo) {
    t.ok(viaFifo instanceof EmbassyError && viaFifo.code === 'BAD_INPUT' && /no longer a regular file/.test(viaFifo.message), `FIFO refused without blocking: ${String(viaFifo)}`)
    t.is(ds.version, version, 'nothing visible')
  } else {
    t.comment('mkfifo not available: FIFO case not run')
  }
  t.is(await ds.drive.entry('/swapped.txt'), null)
  t.is(fs.readFileSync(outside, 'utf8'), 'outside the folder, same size', 'the file outside is untouched')
})

test('publish: a folder on a listed file\'s path swapped for a link that leads outside is never read through (BAD_INPUT, nothing visible)', async (t) => {
  const { ds, src } = await filesAgency(t)
  const outside = path.join(await t.tmp(), 'elsewhere')
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(outside, 'doc.txt'), 'outside the folder, same size')
  const sub = path.join(src, 'sub')
  fs.mkdirSync(sub)
  fs.writeFileSync(path.join(sub, 'doc.txt'), 'inside the folder, same size!')
  const version = ds.version
  let calls = 0
  const err = await ds
    .publish(src, undefined, {
      room: () => {
        if (++calls !== 2) return
        // Listed already; before the first content append, the folder becomes a link to another one.
        fs.rmSync(sub, { recursive: true })
        fs.symlinkSync(outside, sub)
      }
    })
    .then(
      () => null,
      (e: unknown) => e
    )
  t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT' && /sub\/doc\.txt was replaced while it was published/.test(err.message), `refused: ${String(err)}`)
  t.is(ds.version, version, 'nothing visible')
  t.is(await ds.drive.entry('/sub/doc.txt'), null, 'the outside file is not published')
  // The folder back as it was: publishing again completes.
  fs.rmSync(sub)
  fs.mkdirSync(sub)
  fs.writeFileSync(path.join(sub, 'doc.txt'), 'inside the folder, same size!')
  const again = await ds.publish(src)
  t.is(again.added, 1)
  t.is((await ds.drive.get('/sub/doc.txt'))?.toString(), 'inside the folder, same size!')
})

/** Runs `walk`, returning what it threw (or null). */
async function thrown(walk: () => Promise<unknown>): Promise<unknown> {
  try {
    await walk()
    return null
  } catch (e) {
    return e
  }
}

/** A folder to publish with `sub/deep/doc.txt`, and a folder outside it holding a secret file. */
async function swapScene(t: Test) {
  const tmp = await t.tmp()
  const src = path.join(tmp, 'src')
  const outside = path.join(tmp, 'outside')
  const sub = path.join(src, 'sub')
  fs.mkdirSync(path.join(sub, 'deep'), { recursive: true })
  fs.writeFileSync(path.join(src, 'top.txt'), 'top')
  fs.writeFileSync(path.join(sub, 'deep', 'doc.txt'), 'inside the folder')
  fs.mkdirSync(path.join(outside, 'deep'), { recursive: true })
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET of the folder outside')
  fs.writeFileSync(path.join(outside, 'deep', 'doc.txt'), 'SECRET of the folder outside, deeper')
  /** `sub` moved away and a link to `outside` put in its place. */
  const swap = (): void => {
    fs.renameSync(sub, path.join(tmp, 'sub-moved-away'))
    fs.symlinkSync(outside, sub)
  }
  const secrets = [fs.lstatSync(path.join(outside, 'secret.txt')), fs.lstatSync(path.join(outside, 'deep', 'doc.txt'))]
  /** Whether a walk listed a file outside the published folder. */
  const leaked = (tree: LocalTree): boolean => tree.entries.some((e) => secrets.some((s) => s.dev === e.dev && s.ino === e.ino))
  return { src, sub, swap, leaked }
}

for (const listing of ['fd', 'path', undefined] as Array<WalkOptions['listing']>) {
  test(`walk (listing ${listing ?? 'default'}): a folder swapped for a link that leads outside after it was found, before it is listed, is refused (BAD_INPUT), nothing outside listed`, async (t) => {
    if (listing === 'fd' && !fs.existsSync('/proc/self/fd')) return t.comment('no /proc/self/fd here: listing by descriptor not run')
    const { src, swap, leaked } = await swapScene(t)
    let tree: LocalTree | null = null
    const err = await thrown(async () => {
      tree = await walkFolder(src, null, {
        listing,
        onFolder: (key) => {
          if (key === '/sub') swap()
        }
      })
    })
    t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT' && /sub was replaced while it was listed/.test(err.message), `refused: ${String(err)}`)
    if (tree) t.absent(leaked(tree), `no file outside listed: ${(tree as LocalTree).entries.map((e) => e.key).join(', ')}`)
  })
}

test('walk: listed through descriptors, a deep tree is listed as by path (links, skipped names, `only`); one descriptor per level, none left open, also when refused', async (t) => {
  if (!fs.existsSync('/proc/self/fd')) return t.comment('no /proc/self/fd here: not run')
  const src = path.join(await t.tmp(), 'src')
  let dir = src
  for (let depth = 0; depth < 12; depth++) {
    dir = path.join(dir, `level${depth}`)
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, `f${depth}.txt`), `file ${depth}`)
    fs.writeFileSync(path.join(dir, 'back\\slash'), 'x')
    fs.symlinkSync('..', path.join(dir, 'up'))
    fs.symlinkSync('/etc/hostname', path.join(dir, 'away'))
  }
  fs.chmodSync(path.join(src, 'level0', `f0.txt`), 0o755)
  fs.mkdirSync(path.join(src, 'empty'))
  fs.writeFileSync(path.join(src, 'b.txt'), 'b')
  fs.writeFileSync(path.join(src, 'a.txt'), 'a')
  const open = (): number => fs.readdirSync('/proc/self/fd').length
  const before = open()
  let most = 0
  const byFd = await walkFolder(src, null, {
    listing: 'fd',
    onFolder: (key) => {
      const depth = key === '' ? 0 : key.split('/').length - 1
      most = Math.max(most, open() - before - depth)
    }
  })
  t.is(most, 0, 'while a folder is found, only its parents are open (one descriptor per level)')
  t.is(open(), before, 'every descriptor closed')
  const byPath = await walkFolder(src, null, { listing: 'path' })
  t.alike(byFd, byPath, 'the same entries, in the same order, and the same skipped entries')
  t.is(byFd.entries.length, 2 + 12 + 11, 'every file and every link inside (level0/up is the published folder itself: it leaves)')
  t.is(byFd.skipped.length, 12 * 2 + 1, 'every backslash name and every link that leaves')
  t.ok(byFd.entries.find((e) => e.key === '/level0/f0.txt')?.executable, 'the executable bit')
  t.is(byFd.entries.find((e) => e.key === '/level0/level1/up')?.linkname, '..')
  t.alike(await walkFolder(src, 'a.txt', { listing: 'fd' }), await walkFolder(src, 'a.txt', { listing: 'path' }), '`only` alike')
  t.alike((await walkFolder(src, 'a.txt')).entries.map((e) => e.key), ['/a.txt'])

  const err = await thrown(() =>
    walkFolder(src, null, {
      listing: 'fd',
      onFolder: (key) => {
        if (key !== '/level0/level1/level2/level3') return
        const real = path.join(src, 'level0', 'level1', 'level2', 'level3')
        fs.renameSync(real, path.join(src, 'moved'))
        fs.mkdirSync(real) // another folder (empty) in its place
      }
    })
  )
  t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT' && /level3 was replaced while it was listed/.test(err.message), `a folder replaced by another one is refused: ${String(err)}`)
  t.is(open(), before, 'every descriptor closed after the refusal')
})

test('publish: a folder swapped for a link that leads outside between its lstat and its listing is never listed through (BAD_INPUT, the secret never in the dataset)', async (t) => {
  const { ds } = await filesAgency(t)
  const { src, sub, swap, leaked } = await swapScene(t)
  const version = ds.version
  // The walk runs inside publish: the swap is made right after the folder's lstat found it a
  // folder (the only call the walk makes before listing it), synchronously, so always in the window.
  const found = fs.lstatSync(sub)
  const mutable = fs as unknown as { lstatSync: typeof fs.lstatSync }
  const lstat = fs.lstatSync
  let swapped = false
  mutable.lstatSync = function (this: unknown, ...args: Parameters<typeof fs.lstatSync>) {
    const st = Reflect.apply(lstat, this, args) as fs.Stats
    if (!swapped && path.basename(String(args[0])) === 'sub' && st.isDirectory() && st.ino === found.ino && st.dev === found.dev) {
      swapped = true
      swap()
    }
    return st
  } as typeof fs.lstatSync
  const err = await ds
    .publish(src)
    .then(
      () => null,
      (e: unknown) => e
    )
    .finally(() => {
      mutable.lstatSync = lstat
    })
  t.ok(swapped, 'swapped between the lstat and the listing')
  t.ok(err instanceof EmbassyError && err.code === 'BAD_INPUT' && /sub was replaced while it was listed/.test(err.message), `refused: ${String(err)}`)
  t.is(ds.version, version, 'nothing visible')
  const published: string[] = []
  for await (const f of ds.list()) published.push(f.path)
  for (const key of published) t.absent(/SECRET/.test((await ds.drive.get(key))?.toString() ?? ''), `${key} is not the secret`)
  t.absent(published.includes('/sub/secret.txt'), 'the secret is not published')
  // The walk on its own, with the folder still a link now: a link that leaves, left out.
  t.absent(leaked(await walkFolder(src)), 'nothing outside listed')
})

test('walk: a large folder is read in slices, the event loop running between them (a daemon keeps replicating while it publishes)', async (t) => {
  const src = path.join(await t.tmp(), 'src')
  const count = 3 * WALK_SLICE + 10
  for (let d = 0; d < 4; d++) fs.mkdirSync(path.join(src, `d${d}`), { recursive: true })
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(src, `d${i % 4}`, `f${i}.txt`), String(i))
  // One tick per turn of the event loop (a check phase) for as long as the walk runs.
  let turns = 0
  let walking = true
  const tick = (): void => {
    if (!walking) return
    turns++
    setImmediate(tick)
  }
  const walk = walkFolder(src)
  setImmediate(tick)
  const tree = await walk
  walking = false
  t.is(tree.entries.length, count, 'every file listed')
  t.ok(turns >= 3, `the event loop ran ${turns} times during the walk of ${count + 4} entries (slices of ${WALK_SLICE})`)
})
