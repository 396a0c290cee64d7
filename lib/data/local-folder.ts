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

/**
 * Lists a folder to publish in one synchronous pass: one `readdir` per folder and one `lstat`
 * per entry, no link followed (a link to a folder is a link entry, never descended). Unsafe
 * names and links that leave the folder are left out and
 * listed; a link to a place inside is kept as a relative link. Entries that are neither a
 * regular file, a folder nor a link (FIFOs, sockets, devices) are left out and listed too.
 * With `only` (a base name), just that entry of `root`.
 */
export function walkFolder(root: string, only: string | null = null): LocalTree {
  const base = path.resolve(root)
  const entries: LocalEntry[] = []
  const skipped: SkippedEntry[] = []
  const skip = (key: string, reason: string): void => void skipped.push({ path: printable(key), reason })
  const visit = (key: string, file: string, st: fs.Stats | null): void => {
    const safe = safeSegments(key)
    if ('reason' in safe) return skip(key, safe.reason)
    if (!st) {
      try {
        st = fs.lstatSync(file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // gone since it was listed
        return skip(key, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
      }
    }
    if (st.isDirectory()) return folder(key, file)
    if (st.isFile()) {
      entries.push({ key, file, linkname: null, size: st.size, executable: !!(st.mode & fs.constants.S_IXUSR), dev: st.dev, ino: st.ino })
      return
    }
    if (!st.isSymbolicLink()) return skip(key, 'not a regular file, folder or link')
    let raw: string
    try {
      raw = fs.readlinkSync(file)
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
  const folder = (key: string, dir: string): void => {
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch (err) {
      // The published folder itself: refused (publishing it as empty would remove every file).
      if (key === '') throw EmbassyError.badInput(`cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
      return skip(key, `the folder cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    for (const name of names) visit(`${key}/${name}`, path.join(dir, name), null)
  }
  if (only === null) folder('', base)
  else visit('/' + only, path.join(base, only), null)
  const sorted = entries.map((e) => ({ e, k: Buffer.from(e.key) })).sort((a, b) => Buffer.compare(a.k, b.k))
  return { entries: sorted.map((x) => x.e), skipped }
}
