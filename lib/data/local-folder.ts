/**
 * The folder a publish reads, listed under the link and name policy of ./safe-paths.ts: a link is
 * published only as a relative link that stays inside the folder (an absolute link to a place
 * inside it is rewritten as a relative one); links that leave the folder, unsafe names and
 * entries that are not files, folders or links are left out and listed in `skipped`.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../errors.js'
import { linkTarget, printable, safeSegments, type SkippedEntry } from './safe-paths.js'

/** A file's device and inode, as listed before the publish. */
export interface FileIdentity {
  dev: number
  ino: number
}

/** Whether `st` is the file listed as `id` (not another one put in its place, or reached through a swapped folder). */
export function sameFile(st: fs.Stats, id: FileIdentity): boolean {
  return st.dev === id.dev && st.ino === id.ino
}

/** One entry of a folder to publish, as `walkFolder` found it (the link and name policy applied). */
export interface LocalEntry {
  /** Dataset path (`/a/b.txt`), safe (./safe-paths.ts). */
  key: string
  /** Its path on this file system. */
  file: string
  /** Relative link inside the folder, or null for a regular file. */
  linkname: string | null
  size: number
  executable: boolean
  /**
   * The file's identity when listed (device and inode; 0 for a link): publishing reads only this
   * file, so a file or a parent folder swapped meanwhile (say, for a link that leads outside) is
   * refused, not read.
   */
  dev: number
  ino: number
}

/** What a walk found: entries sorted by key (byte order, as the index sorts them), and what it left out. */
export interface LocalTree {
  entries: LocalEntry[]
  skipped: SkippedEntry[]
}

/** Options of `walkFolder`. */
export interface WalkOptions {
  /**
   * Called for each folder once it was found and before it is opened and listed, with its
   * dataset path ('' for the published folder) and its path on this file system: tests change
   * the folder there to check that a folder swapped meanwhile is refused.
   */
  onFolder?: (key: string, dir: string) => void
  /**
   * How folders are listed: 'fd' reads each folder through the descriptor it was opened with
   * (`/proc/self/fd`, the default where it exists); 'path' lists by path and checks the folder's
   * device and inode again afterwards (the fallback elsewhere).
   */
  listing?: 'fd' | 'path'
}

/** Where this process's open descriptors can be named as paths (Linux): `${FD_PATHS}/${fd}/name` is `name` inside the opened folder, like openat. */
const FD_PATHS = '/proc/self/fd'

/** Entries read between two turns of the event loop. */
export const WALK_SLICE = 512

/**
 * Lists a folder to publish: one `readdir` per folder and one `lstat` per entry (synchronous calls,
 * WALK_SLICE entries at a time with a turn of the event loop between), no link followed (a link to a folder is a link entry, never descended). Unsafe
 * names and links that leave the folder are left out and
 * listed; a link to a place inside is kept as a relative link. Entries that are neither a
 * regular file, a folder nor a link (FIFOs, sockets, devices) are left out and listed too.
 * With `only` (a base name), just that entry of `root`.
 *
 * Each folder below `root` is opened without following a link and must be the folder its
 * `lstat` found (device and inode); its names are listed and `lstat`ed through that descriptor,
 * not through its path, so a folder swapped for a link that leads outside while it is walked is
 * never listed through: the walk is refused (BAD_INPUT). One descriptor is open per level of
 * the folder being listed. `root` itself may be a link to a folder.
 */
export async function walkFolder(root: string, only: string | null = null, opts: WalkOptions = {}): Promise<LocalTree> {
  const base = path.resolve(root)
  // A large folder is read in slices: the event loop (a daemon's replication and custody) runs between them.
  let sinceYield = 0
  const pace = async (): Promise<void> => {
    if (++sinceYield < WALK_SLICE) return
    sinceYield = 0
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  const byFd = (opts.listing ?? (fs.existsSync(FD_PATHS) ? 'fd' : 'path')) === 'fd'
  const entries: LocalEntry[] = []
  const skipped: SkippedEntry[] = []
  const skip = (key: string, reason: string): void => void skipped.push({ path: printable(key), reason })
  /** `file` is the entry's path; `at` names the same entry for reading (through its folder's descriptor when listed by descriptor). */
  const visit = async (key: string, file: string, at: string): Promise<void> => {
    await pace()
    const safe = safeSegments(key)
    if ('reason' in safe) return skip(key, safe.reason)
    let st: fs.Stats
    try {
      st = fs.lstatSync(at)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // gone since it was listed
      return skip(key, `cannot be read (${errorCode(err)})`)
    }
    if (st.isDirectory()) return await folder(key, file, at, st)
    if (st.isFile()) {
      entries.push({ key, file, linkname: null, size: st.size, executable: !!(st.mode & fs.constants.S_IXUSR), dev: st.dev, ino: st.ino })
      return
    }
    if (!st.isSymbolicLink()) return skip(key, 'not a regular file, folder or link')
    let raw: string
    try {
      raw = fs.readlinkSync(at)
    } catch {
      return skip(key, 'the link could not be read')
    }
    const resolved = path.resolve(path.dirname(file), raw)
    const inside = path.relative(base, resolved)
    if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) return skip(key, `link to "${printable(raw)}" leaves the published folder`)
    const relative = path.relative(path.dirname(file), resolved).split(path.sep).join('/')
    const checked = linkTarget(key, relative)
    if ('reason' in checked) return skip(key, checked.reason)
    entries.push({ key, file, linkname: relative, size: 0, executable: false, dev: 0, ino: 0 })
  }
  /** A folder that cannot be listed: the published folder itself is refused (publishing it as empty would remove every file), any other is left out. */
  const unreadable = (key: string, dir: string, err: unknown): void => {
    if (key === '') throw EmbassyError.badInput(`cannot read ${dir}: ${errorCode(err)}`, { cause: err })
    skip(key, `the folder cannot be read (${errorCode(err)})`)
  }
  /** Lists the folder `dir` (read as `at`); `listed` is its lstat, null for the published folder (which may be a link). */
  const folder = async (key: string, dir: string, at: string, listed: fs.Stats | null): Promise<void> => {
    opts.onFolder?.(key, dir)
    if (byFd) await folderByFd(key, dir, at, listed)
    else await folderByPath(key, dir, listed)
  }
  const folderByFd = async (key: string, dir: string, at: string, listed: fs.Stats | null): Promise<void> => {
    let fd: number
    try {
      fd = openFolder(at, listed !== null)
    } catch (err) {
      // O_NOFOLLOW with O_DIRECTORY: a link put in the folder's place fails with ENOTDIR (or ELOOP).
      const code = (err as NodeJS.ErrnoException).code
      if (listed && (code === 'ENOTDIR' || code === 'ELOOP')) throw replaced(dir, err)
      return unreadable(key, dir, err)
    }
    try {
      if (listed && !sameFile(fs.fstatSync(fd), listed)) throw replaced(dir)
      const here = `${FD_PATHS}/${fd}`
      let names: string[]
      try {
        names = fs.readdirSync(here)
      } catch (err) {
        return unreadable(key, dir, err)
      }
      for (const name of names) await visit(`${key}/${name}`, path.join(dir, name), `${here}/${name}`)
    } finally {
      fs.closeSync(fd)
    }
  }
  const folderByPath = async (key: string, dir: string, listed: fs.Stats | null): Promise<void> => {
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch (err) {
      return unreadable(key, dir, err)
    }
    for (const name of names) await visit(`${key}/${name}`, path.join(dir, name), path.join(dir, name))
    // Listed by path: what was listed is this folder only if it still is the one found.
    if (listed && !isStill(dir, listed)) throw replaced(dir)
  }
  if (only === null) await folder('', base, base, null)
  else await visit('/' + only, path.join(base, only), path.join(base, only))
  const sorted = entries.map((e) => ({ e, k: Buffer.from(e.key) })).sort((a, b) => Buffer.compare(a.k, b.k))
  return { entries: sorted.map((x) => x.e), skipped }
}

/** Opens a folder to list it; `noFollow`: a link in its place is not followed (every folder but the published one). */
function openFolder(at: string, noFollow: boolean): number {
  const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants
  return fs.openSync(at, O_RDONLY | O_DIRECTORY | (noFollow ? O_NOFOLLOW : 0))
}

/** Whether `dir` (not followed if a link) is still the folder found as `listed`. */
function isStill(dir: string, listed: fs.Stats): boolean {
  try {
    const st = fs.lstatSync(dir)
    return st.isDirectory() && sameFile(st, listed)
  } catch {
    return false
  }
}

function replaced(dir: string, cause?: unknown): EmbassyError {
  return EmbassyError.badInput(`${dir} was replaced while it was listed (the folder is not the one found, say a link put in its place); nothing of this publish was published (publish again)`, { cause })
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message
}
