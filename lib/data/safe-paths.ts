/**
 * Names that come from a dataset are untrusted: the one rule for file paths, link targets and
 * dataset names that publish, export and the gateway apply alike.
 *
 * - A path is `/`-separated; every segment is non-empty, not `.` or `..`, has no control
 *   character (U+0000–U+001F, U+007F) and no backslash (a separator on Windows).
 * - A link is kept only when its target is relative and, resolved from the link's own folder
 *   (as a file system does), stays inside the tree. Absolute targets and targets that climb out
 *   are never created, followed or served.
 * Pure functions: no I/O. Imports nothing.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** Why one path segment is unsafe, or null when it is fine. */
export function unsafeSegment(seg: string): string | null {
  if (seg === '') return 'empty path segment'
  if (seg === '.' || seg === '..') return `dot segment "${seg}"`
  if (CONTROL.test(seg)) return 'control character in name'
  if (seg.includes('\\')) return 'backslash in name'
  return null
}

/**
 * A dataset path (`/a/b.txt`) split into its segments, or the reason it is unsafe. The leading
 * `/` is the tree's root; anything that could name a place outside the tree is refused.
 */
export function safeSegments(key: string): { segments: string[] } | { reason: string } {
  if (!key.startsWith('/')) return { reason: 'path does not start at the tree root' }
  const segments = key.slice(1).split('/')
  for (const seg of segments) {
    const why = unsafeSegment(seg)
    if (why) return { reason: why }
  }
  return { segments }
}

/** Longest dataset name a reader accepts (it becomes a file name on export). */
export const MAX_DATASET_NAME = 255

/** Why a dataset name read from a catalog is unsafe as a file name, or null. */
export function unsafeDatasetName(name: string): string | null {
  if (name.length > MAX_DATASET_NAME) return `name longer than ${MAX_DATASET_NAME} characters`
  if (name.includes('/')) return 'slash in name'
  return unsafeSegment(name)
}

/**
 * Where the link at `key` (a safe dataset path) points inside the tree: the target's absolute
 * dataset path, or the reason it is not followed (absolute, climbs out of the tree, unsafe name).
 */
export function linkTarget(key: string, linkname: string): { target: string } | { reason: string } {
  if (linkname === '') return { reason: 'empty link target' }
  if (linkname.startsWith('/') || linkname.startsWith('\\') || /^[A-Za-z]:/.test(linkname)) {
    return { reason: `absolute link target "${printable(linkname)}" (only relative links inside the tree are kept)` }
  }
  const parts = key.split('/').slice(1, -1) // the link's folder
  for (const seg of linkname.split('/')) {
    if (seg === '' || seg === '.') continue
    if (CONTROL.test(seg) || seg.includes('\\')) return { reason: `unsafe link target "${printable(linkname)}"` }
    if (seg === '..') {
      if (parts.length === 0) return { reason: `link target "${printable(linkname)}" leaves the tree` }
      parts.pop()
      continue
    }
    parts.push(seg)
  }
  if (parts.length === 0) return { reason: `link target "${printable(linkname)}" is the tree's root folder` }
  return { target: '/' + parts.join('/') }
}

/** A name for a message: control characters shown as `?`, at most 200 characters. */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 200) // eslint-disable-line no-control-regex
}

/** An entry of a tree that an operation left out, and why. */
export interface SkippedEntry {
  path: string
  reason: string
}
