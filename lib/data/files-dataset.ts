/**
 * FilesDataset: a `files` dataset — a versioned file tree (Hyperdrive: a Hyperbee index core
 * and a Hyperblobs content core, both block-encrypted, both listed in the catalog).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type Hypercore from 'hypercore'
import Hyperdrive from 'hyperdrive'
import { BlobWriter } from './blob-writer.js'
import { sameFile, walkFolder, type FileIdentity, type LocalEntry } from './local-folder.js'
import { EmbassyError, isEmbassyError } from '../errors.js'
import type { DatasetCore, Progress, WaitOptions } from './log-dataset.js'
import { linkTarget, printable, safeSegments, type SkippedEntry } from './safe-paths.js'

/** Content block size for published files (bytes); with large UDP buffers 256 KiB–4 MiB replicate alike (BENCHMARKS.md). */
export const FILE_BLOCK_SIZE = 1024 * 1024

export interface FileInfo {
  path: string
  size: number
  executable: boolean
}

export interface PublishResult {
  files: number
  added: number
  changed: number
  removed: number
  bytesAdded: number
  bytesRemoved: number
  version: number
  /** Links and names the link policy left out (./safe-paths.ts), with why. */
  skipped: SkippedEntry[]
}

export interface PublishOptions {
  /**
   * Asked before each write, with the content bytes and index entries it is about to write: once
   * for the whole change before anything is written, then before each content append and before
   * the index flush. A rejection ends the publish there, with no file of it published (the agency
   * checks free space here, so a full disk is met before the store is).
   */
  room?: (bytes: number, entries: number) => Promise<void> | void
}

export { APPEND_GROUP_BLOCKS, APPEND_GROUP_BYTES } from './blob-writer.js'

/** Skipped entries listed in an export's result (all are counted). */
export const MAX_LISTED_SKIPPED = 1000

/** What a files export wrote and what it left out. */
export interface FilesExportResult {
  /** Files written. */
  files: number
  /** Bytes of the files written. */
  bytes: number
  /** Relative links recreated (each resolves inside DIR). */
  links: number
  /** Entries not written (unsafe names, links that leave the tree, a link or file in the way), at most MAX_LISTED_SKIPPED. */
  skipped: SkippedEntry[]
  /** Every entry not written (also those beyond the list). */
  skippedCount: number
}

export class FilesDataset {
  readonly drive: Hyperdrive

  constructor(drive: Hyperdrive) {
    this.drive = drive
  }

  get version(): number {
    return this.drive.version
  }

  readonly kind = 'files'

  /**
   * The dataset's cores, labelled: the file index, then the content core once it exists (a
   * reader opening an empty, not yet replicated drive may not have it yet).
   */
  async cores(): Promise<DatasetCore[]> {
    await this.drive.ready()
    const out: DatasetCore[] = [{ part: 'index', core: this.drive.core }]
    const blobs = await this.drive.getBlobs()
    if (blobs) out.push({ part: 'content', core: blobs.core })
    return out
  }

  /** [index core key, blobs core key]: what the catalog lists. */
  async coreKeys(): Promise<Buffer[]> {
    const cores = await this.cores()
    if (cores.length < 2) throw EmbassyError.notAvailable('the files dataset has no content core yet')
    return cores.map((c) => c.core.key!)
  }

  get length(): number {
    return this.drive.core.length
  }

  byteLength(): number {
    return this.drive.core.byteLength + (this.drive.blobs ? this.drive.blobs.core.byteLength : 0)
  }

  /**
   * Publishes a folder (the dataset becomes that folder: files gone from it are removed)
   * or one file (added or replaced under its base name). Only what changed is appended.
   *
   * Atomic for readers: the whole change goes into one Hyperdrive batch whose index is written
   * with one append at the end (`flush`), after every content block it references. A publish that
   * fails (a full disk, a file that cannot be read) changes nothing in the index: no file of it
   * is visible, here or on any holder. Content blocks appended before the failure stay in the
   * content core, referenced by no index version (ciphertext under the dataset's key; holders may
   * have copied them). They are not truncated away: holders treat any truncation as a history
   * rewrite and refuse it (README "Disk space").
   *
   * Planning comes first (which files changed, how many bytes that writes); `opts.room` is asked
   * before anything is written and before each append, and may refuse (the agency checks free space).
   */
  async publish(source: string, onProgress?: Progress, opts: PublishOptions = {}): Promise<PublishResult> {
    if (!this.drive.writable) throw EmbassyError.wrongRole('publishing', 'read-only holder', 'writable agency')
    let stat: fs.Stats
    try {
      stat = fs.statSync(source)
    } catch (err) {
      throw EmbassyError.badInput(`cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    const isDir = stat.isDirectory()
    if (!isDir && !stat.isFile()) throw EmbassyError.badInput(`${source} is neither a file nor a folder`)
    const root = isDir ? source : path.dirname(source)
    const only = isDir ? null : '/' + path.basename(source)

    // 1. Plan: the folder in one walk (the link and name policy applied), the published index in
    // one range read, compared entry by entry; nothing is written.
    const local = await walkFolder(root, only === null ? null : only.slice(1))
    const published = new Map<string, Hyperdrive.Entry>()
    for await (const entry of this.drive.list('/', { recursive: true })) published.set(entry.key, entry)
    const blobs = await this.drive.getBlobs()
    const count = { files: local.entries.length, add: 0, change: 0, remove: 0, bytesAdded: 0, bytesRemoved: 0 }
    const plan: PlanStep[] = []
    if (isDir) {
      const present = new Set(local.entries.map((e) => e.key))
      for (const [key, entry] of published) {
        if (present.has(key)) continue
        count.remove++
        count.bytesRemoved += entry.value.blob?.byteLength ?? 0
        plan.push({ op: 'remove', key })
      }
    }
    const compare: Array<{ entry: LocalEntry; old: Hyperdrive.Entry }> = []
    for (const entry of local.entries) {
      const old = published.get(entry.key)
      if (!old) {
        count.add++
        count.bytesAdded += entry.size
        plan.push({ op: 'add', key: entry.key, entry })
      } else if (entry.linkname !== null || (old.value.linkname !== null && old.value.linkname !== undefined)) {
        if (entry.linkname === old.value.linkname) continue
        count.change++
        count.bytesRemoved += old.value.blob?.byteLength ?? 0
        count.bytesAdded += entry.size
        plan.push({ op: 'change', key: entry.key, entry })
      } else if (!old.value.blob || old.value.blob.blockMap || old.value.blob.byteLength !== entry.size) {
        count.change++
        count.bytesRemoved += old.value.blob?.byteLength ?? 0
        count.bytesAdded += entry.size
        plan.push({ op: 'change', key: entry.key, entry })
      } else {
        compare.push({ entry, old })
      }
    }
    // Same size: the same bytes? (the published blocks read back and compared with the file)
    const same = await sameContents(blobs.core, compare.map((c) => ({ file: c.entry.file, identity: c.entry, blob: c.old.value.blob! })))
    for (let i = 0; i < compare.length; i++) {
      const { entry, old } = compare[i]!
      if (same[i]) {
        if (entry.executable === !!old.value.executable) continue
        count.change++ // only the executable bit changed: a new index entry, the same content blocks
        plan.push({ op: 'change', key: entry.key, entry, blob: old.value.blob! })
        continue
      }
      count.change++
      count.bytesRemoved += old.value.blob!.byteLength
      count.bytesAdded += entry.size
      plan.push({ op: 'change', key: entry.key, entry })
    }
    plan.sort((a, b) => compareKeys(a.key, b.key))
    const total = count.bytesAdded
    await opts.room?.(total, plan.length)

    // 2. Write: content blocks appended in large groups, index entries into one batch, one flush.
    // Progress counts content bytes as their appends land (the index is written last, at once).
    let done = 0
    const writer = await BlobWriter.open(blobs.core, FILE_BLOCK_SIZE, opts.room ? (bytes) => opts.room!(bytes, 0) : null, (bytes) => {
      done += bytes
      onProgress?.(done, total)
    })
    const batch = this.drive.batch()
    onProgress?.(0, total)
    try {
      for (const step of plan) {
        if (step.op === 'remove') {
          await batch.del(step.key)
          continue
        }
        const entry = step.entry!
        if (entry.linkname !== null) {
          await batch.symlink(step.key, entry.linkname)
          continue
        }
        const blob = step.blob ?? writer.file(entry.file, entry.size, entry)
        await batch.putEntry(step.key, { executable: entry.executable, linkname: null, blob, metadata: null })
        if (writer.error) throw writer.error // an append or a room check failed: stop here
      }
      await writer.flush()
      await opts.room?.(0, plan.length)
      await batch.flush()
    } catch (err) {
      await writer.settle()
      await batch.close().catch(() => {})
      throw err
    } finally {
      await writer.close().catch(() => {})
    }
    onProgress?.(total, total)
    return {
      files: count.files,
      added: count.add,
      changed: count.change,
      removed: count.remove,
      bytesAdded: count.bytesAdded,
      bytesRemoved: count.bytesRemoved,
      version: this.drive.version,
      skipped: local.skipped
    }
  }

  async *list(folder = '/'): AsyncGenerator<FileInfo> {
    for await (const entry of this.drive.list(folder, { recursive: true })) {
      yield { path: entry.key, size: entry.value.blob ? entry.value.blob.byteLength : 0, executable: !!entry.value.executable }
    }
  }

  /**
   * Writes the tree into `dir`, byte-identical (files only added or replaced, nothing deleted
   * there). The tree is untrusted: nothing is written outside `dir`. Unsafe names are skipped;
   * files are written to a fresh temporary file (never following a link) and renamed into place;
   * no folder on the way may be a link; links are recreated last, and only relative ones that
   * resolve inside the tree. Everything left out is reported, with why.
   */
  async exportTo(dir: string, onProgress?: Progress, opts: WaitOptions = {}): Promise<FilesExportResult> {
    const reading = opts.wait ? { wait: true, timeout: opts.timeout ?? 10_000 } : { wait: false }
    fs.mkdirSync(dir, { recursive: true })
    const root = fs.realpathSync(dir)
    const files: Array<{ key: string; segments: string[]; entry: Hyperdrive.Entry }> = []
    const links: Array<{ key: string; segments: string[]; linkname: string }> = []
    const result: FilesExportResult = { files: 0, bytes: 0, links: 0, skipped: [], skippedCount: 0 }
    const skip = (key: string, reason: string): void => {
      result.skippedCount++
      if (result.skipped.length < MAX_LISTED_SKIPPED) result.skipped.push({ path: printable(key), reason })
    }
    let total = 0
    if (opts.wait && !this.drive.blobs) await timedOut(this.drive.getBlobs(), reading.timeout ?? 0, 'the file index')
    for await (const entry of listing(this.drive.list('/', { recursive: true, ...reading }))) {
      const safe = safeSegments(entry.key)
      if ('reason' in safe) {
        skip(entry.key, safe.reason)
        continue
      }
      if (entry.value.linkname !== null && entry.value.linkname !== undefined) {
        links.push({ key: entry.key, segments: safe.segments, linkname: entry.value.linkname })
        continue
      }
      files.push({ key: entry.key, segments: safe.segments, entry })
      total += entry.value.blob ? entry.value.blob.byteLength : 0
    }
    let done = 0
    onProgress?.(0, total)
    for (const f of files) {
      const parent = ensureFolder(root, f.segments.slice(0, -1))
      if ('reason' in parent) {
        skip(f.key, parent.reason)
        continue
      }
      const target = path.join(parent.path, f.segments[f.segments.length - 1]!)
      const inWay = lstatOrNull(target)
      if (inWay && inWay.isDirectory()) {
        skip(f.key, 'a folder of that name is in the way in DIR')
        continue
      }
      const size = f.entry.value.blob ? f.entry.value.blob.byteLength : 0
      await this.#writeFile(f.entry, parent.path, target, reading, (n) => {
        done += n
        onProgress?.(done, total)
      })
      result.files++
      result.bytes += size
    }
    for (const l of links) {
      const t = linkTarget(l.key, l.linkname)
      if ('reason' in t) {
        skip(l.key, t.reason)
        continue
      }
      const parent = ensureFolder(root, l.segments.slice(0, -1))
      if ('reason' in parent) {
        skip(l.key, parent.reason)
        continue
      }
      const at = path.join(parent.path, l.segments[l.segments.length - 1]!)
      const inWay = lstatOrNull(at)
      if (inWay && inWay.isDirectory()) {
        skip(l.key, 'a folder of that name is in the way in DIR')
        continue
      }
      // The link's text is the normalised relative path: no ".." except those that climb from its own folder.
      const text = path.posix.relative(path.posix.dirname(l.key), t.target)
      const temp = tempName(parent.path, l.segments[l.segments.length - 1]!)
      fs.symlinkSync(text, temp)
      fs.renameSync(temp, at)
      result.links++
    }
    onProgress?.(total, total)
    return result
  }

  /** Streams one file's content into a new temporary file beside `target` (never through a link), then renames it into place. */
  async #writeFile(entry: Hyperdrive.Entry, folder: string, target: string, reading: WaitOptions, onBytes: (n: number) => void): Promise<void> {
    const temp = tempName(folder, path.basename(target))
    const mode = entry.value.executable ? 0o755 : 0o644
    const fh = await fs.promises.open(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode)
    try {
      if (entry.value.blob && entry.value.blob.byteLength > 0) {
        for await (const chunk of this.drive.createReadStream(entry, reading)) {
          await fh.write(chunk)
          onBytes(chunk.byteLength)
        }
      }
      await fh.chmod(mode)
      await fh.close()
    } catch (err) {
      await fh.close().catch(() => {})
      fs.rmSync(temp, { force: true })
      if (isEmbassyError(err)) throw new EmbassyError(err.code, `${entry.key}: ${err.text}`, { details: { ...err.details, path: entry.key }, cause: err })
      throw notHeld(err, entry.key)
    }
    fs.renameSync(temp, target)
  }

  async close(): Promise<void> {
    await this.drive.close()
  }
}

/** One change of a publish's plan (the local entry to write; `blob` set when only the executable bit changed). */
interface PlanStep {
  op: 'add' | 'change' | 'remove'
  key: string
  entry?: LocalEntry
  blob?: Hyperdrive.BlobId
}

/** Keys in the index's order (bytes of their UTF-8). */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** Blocks read back at once when comparing published files with local ones (at most ~64 MiB with 1 MiB blocks). */
const COMPARE_BLOCKS = 64

/**
 * For each pair, whether the local file holds exactly the blob's bytes: the blob's blocks are read
 * from the content core (held here; a block not held counts as different) COMPARE_BLOCKS at a
 * time across files, and compared with the file read at the same offsets (opened without
 * following links; a file that cannot be read, or is not the one listed, counts as different,
 * and its write says why).
 */
async function sameContents(core: Hypercore, pairs: Array<{ file: string; identity: FileIdentity; blob: Hyperdrive.BlobId }>): Promise<boolean[]> {
  const same = pairs.map(() => true)
  const tasks: Array<{ pair: number; index: number }> = []
  for (let p = 0; p < pairs.length; p++) {
    const blob = pairs[p]!.blob
    for (let i = 0; i < blob.blockLength; i++) tasks.push({ pair: p, index: blob.blockOffset + i })
  }
  const reached = pairs.map(() => 0)
  let fd = -1
  let fdPair = -1
  const buf = Buffer.allocUnsafe(FILE_BLOCK_SIZE)
  try {
    for (let t = 0; t < tasks.length; t += COMPARE_BLOCKS) {
      const slice = tasks.slice(t, t + COMPARE_BLOCKS)
      const blocks = await Promise.all(slice.map((x) => (same[x.pair] ? core.get(x.index, { wait: false }).catch(() => null) : null)))
      for (let i = 0; i < slice.length; i++) {
        const { pair } = slice[i]!
        if (!same[pair]) continue
        if (pair !== fdPair) {
          if (fd !== -1) fs.closeSync(fd)
          fd = -1
          fdPair = pair
          try {
            fd = fs.openSync(pairs[pair]!.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
            const st = fs.fstatSync(fd)
            if (!st.isFile() || !sameFile(st, pairs[pair]!.identity)) same[pair] = false
          } catch {
            same[pair] = false
          }
          if (!same[pair]) continue
        }
        const block = blocks[i] as Buffer | null
        const offset = reached[pair]!
        if (!block || offset + block.byteLength > pairs[pair]!.blob.byteLength) {
          same[pair] = false
          continue
        }
        const local = block.byteLength <= buf.byteLength ? buf.subarray(0, block.byteLength) : Buffer.allocUnsafe(block.byteLength)
        let got = 0
        while (got < local.byteLength) {
          const n = fs.readSync(fd, local, got, local.byteLength - got, offset + got)
          if (n === 0) break
          got += n
        }
        if (got !== local.byteLength || !local.equals(block)) same[pair] = false
        reached[pair] = offset + block.byteLength
      }
    }
  } finally {
    if (fd !== -1) fs.closeSync(fd)
  }
  // Every block compared and the blob's length reached (a blob whose blocks sum to less is different).
  for (let p = 0; p < pairs.length; p++) {
    if (same[p] && reached[p] !== pairs[p]!.blob.byteLength) same[p] = false
  }
  return same
}

/** Hypercore's "not held / not sent in time" as our errors (what a reader can act on), others as they are. */
function notHeld(err: unknown, what: string): unknown {
  const code = (err as { code?: string } | null)?.code
  if (code === 'REQUEST_TIMEOUT') return EmbassyError.timeout(`${what}: a block did not arrive in time (no peer sent it)`)
  if (code === 'BLOCK_NOT_AVAILABLE') return EmbassyError.notAvailable(`${what}: a block is not held here yet`)
  return err
}

/** The entries of a listing, with "not held" errors named. */
async function* listing<T>(entries: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* entries
  } catch (err) {
    throw notHeld(err, 'the file index')
  }
}

/** `p`, or TIMEOUT naming `what` after `ms`. */
async function timedOut<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  p.catch(() => {})
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(EmbassyError.timeout(`${what} did not arrive in time (no peer sent it)`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/**
 * The folder `segments` below `root`, created where missing; refused when any folder on the way
 * is a link (it could lead outside) or a file.
 */
function ensureFolder(root: string, segments: string[]): { path: string } | { reason: string } {
  let at = root
  for (const seg of segments) {
    at = path.join(at, seg)
    const st = lstatOrNull(at)
    if (!st) {
      fs.mkdirSync(at)
      continue
    }
    if (st.isSymbolicLink()) return { reason: `${path.relative(root, at)} in DIR is a link; nothing is written through links` }
    if (!st.isDirectory()) return { reason: `${path.relative(root, at)} in DIR is a file, not a folder` }
  }
  return { path: at }
}

/** A fresh name beside `name` in `folder`, for writing before the rename into place. */
function tempName(folder: string, name: string): string {
  return path.join(folder, `.${name.slice(0, 100)}.${crypto.randomBytes(6).toString('hex')}.embassy-export`)
}
