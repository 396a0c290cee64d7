/**
 * FilesDataset: a `files` dataset — a versioned file tree (Hyperdrive: a Hyperbee index core
 * and a Hyperblobs content core, both block-encrypted, both listed in the catalog).
 */
import fs from 'node:fs'
import path from 'node:path'
import Hyperdrive from 'hyperdrive'
import Localdrive from 'localdrive'
import MirrorDrive from 'mirror-drive'
import { ChunkedLocaldrive } from './chunked-localdrive.js'
import { EmbassyError } from '../errors.js'
import type { DatasetCore, Progress } from './log-dataset.js'

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
   */
  async publish(source: string, onProgress?: Progress): Promise<PublishResult> {
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
    const total = isDir ? folderBytes(source) : stat.size

    const local = new ChunkedLocaldrive(root, FILE_BLOCK_SIZE, { followLinks: false })
    const mirror = new MirrorDrive(local, this.drive, {
      prune: isDir,
      ...(only ? { filter: (key: string) => key === only } : {})
    })
    let done = 0
    let pending = 0
    for await (const diff of mirror) {
      done += pending // the previous diff has been written when the next one is yielded
      pending = diff.bytesAdded
      onProgress?.(done, total)
    }
    onProgress?.(total, total)
    await local.close()
    return {
      files: mirror.count.files,
      added: mirror.count.add,
      changed: mirror.count.change,
      removed: mirror.count.remove,
      bytesAdded: mirror.bytesAdded,
      bytesRemoved: mirror.bytesRemoved,
      version: this.drive.version
    }
  }

  async *list(folder = '/'): AsyncGenerator<FileInfo> {
    for await (const entry of this.drive.list(folder, { recursive: true })) {
      yield { path: entry.key, size: entry.value.blob ? entry.value.blob.byteLength : 0, executable: !!entry.value.executable }
    }
  }

  /** Writes the tree into `dir`, byte-identical (files only added or replaced, nothing deleted there). */
  async exportTo(dir: string, onProgress?: Progress): Promise<{ files: number; bytes: number }> {
    fs.mkdirSync(dir, { recursive: true })
    let total = 0
    for await (const f of this.list()) total += f.size
    const local = new Localdrive(dir)
    const mirror = new MirrorDrive(this.drive, local, { prune: false })
    let done = 0
    let pending = 0
    for await (const diff of mirror) {
      done += pending
      pending = diff.bytesAdded
      onProgress?.(done, total)
    }
    onProgress?.(total, total)
    await local.close()
    return { files: mirror.count.files, bytes: total }
  }

  async close(): Promise<void> {
    await this.drive.close()
  }
}

function folderBytes(dir: string): number {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name)).size
  }
  return total
}
