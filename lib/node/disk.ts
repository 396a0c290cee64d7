/**
 * Disk space of a node directory: how much is free (fs.statfs), whether that is below the node's
 * low-space threshold, and the mapping of "no space left" failures (ENOSPC from the file system,
 * RocksDB's "Batch was not applied" wrapping it) to one DISK_FULL error with free/needed bytes.
 */
import fs from 'node:fs'
import { EmbassyError, isEmbassyError } from '../errors.js'

/** Default low-space threshold: warn below 256 MiB free … */
export const DEFAULT_LOW_SPACE_BYTES = 256 * 1024 * 1024
/** … or below this fraction of the disk, whichever is smaller (so a small disk is not always "low"). */
export const DEFAULT_LOW_SPACE_FRACTION = 0.05
/** How often `embassy run` checks free space. */
export const DISK_CHECK_INTERVAL_MS = 30_000
/**
 * A RocksDB batch that failed without naming its cause counts as a full disk when less than this
 * is free (RocksDB reserves room for its write-ahead log and compactions).
 */
const NEARLY_FULL_BYTES = 4 * 1024 * 1024

export interface DiskSpace {
  /** Bytes free for this process (statfs bavail × bsize). */
  free: number
  /** Size of the file system in bytes. */
  total: number
  /** True when `free` is below the threshold. */
  low: boolean
  /** The threshold in bytes that `low` was computed against. */
  threshold: number
}

export interface LowSpaceSettings {
  /** Warn below this many free bytes. */
  lowSpaceBytes?: number
  /** Warn below this fraction of the disk free (0–1). */
  lowSpaceFraction?: number
}

/** The threshold in bytes: the configured one(s) (the larger of both when both are set), else the default. */
export function lowSpaceThreshold(total: number, s: LowSpaceSettings = {}): number {
  const byBytes = s.lowSpaceBytes
  const byFraction = s.lowSpaceFraction === undefined ? undefined : Math.floor(total * s.lowSpaceFraction)
  if (byBytes !== undefined && byFraction !== undefined) return Math.max(byBytes, byFraction)
  if (byBytes !== undefined) return byBytes
  if (byFraction !== undefined) return byFraction
  return Math.min(DEFAULT_LOW_SPACE_BYTES, Math.floor(total * DEFAULT_LOW_SPACE_FRACTION))
}

/** Free and total bytes of the file system holding `dir`, and whether it is low. */
export async function diskSpace(dir: string, s: LowSpaceSettings = {}): Promise<DiskSpace> {
  const st = await fs.promises.statfs(dir)
  const free = Number(st.bavail) * Number(st.bsize)
  const total = Number(st.blocks) * Number(st.bsize)
  const threshold = lowSpaceThreshold(total, s)
  return { free, total, low: free < threshold, threshold }
}

/** Free bytes of `dir`'s file system, null when statfs fails. */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    return (await diskSpace(dir)).free
  } catch {
    return null
  }
}

/** True when `err` (or anything in its cause chain / AggregateError list) says the disk is full. */
export function isNoSpace(err: unknown, depth = 0): boolean {
  if (depth > 8 || err === null || typeof err !== 'object') return false
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown }
  if (e.code === 'ENOSPC' || e.code === 'DISK_FULL') return true
  if (typeof e.message === 'string' && /ENOSPC|no space left|disk full|out of space/i.test(e.message)) return true
  if (e.cause !== undefined && isNoSpace(e.cause, depth + 1)) return true
  if (Array.isArray(e.errors)) return e.errors.some((x) => isNoSpace(x, depth + 1))
  return false
}

/** A RocksDB batch failure that names no cause ("Batch was not applied"). */
function isUnappliedBatch(err: unknown): boolean {
  return err instanceof Error && /Batch was not applied/.test(err.message)
}

/**
 * Maps a write failure to DISK_FULL when it is one: ENOSPC anywhere in its causes, or a RocksDB
 * batch that was not applied while the disk is (nearly) full. Anything else is returned unchanged.
 * `landed` replaces "nothing of it was acknowledged" when part of the write can have landed.
 */
export async function toDiskFull(err: unknown, dir: string, what: string, needed?: number | null, landed?: string): Promise<unknown> {
  if (isEmbassyError(err) && err.code === 'DISK_FULL') return err
  if (isEmbassyError(err) && !isNoSpace(err.cause)) return err
  const free = await freeBytes(dir)
  if (isNoSpace(err) || (isUnappliedBatch(err) && free !== null && free < NEARLY_FULL_BYTES)) {
    // RocksDB keeps its "no space" error after space is freed: say so when there is room now.
    const reopen = free !== null && free >= NEARLY_FULL_BYTES + (needed ?? 0)
    return EmbassyError.diskFull(what, { dir, free, needed: needed ?? null, cause: err, reopen, ...(landed ? { landed } : {}) })
  }
  return err
}

/** Bytes a write of `bytes` content bytes in `entries` index entries is expected to take on disk (blocks, tree, index, store headroom). */
export function bytesNeeded(bytes: number, entries: number): number {
  return bytes + Math.ceil(bytes / (1024 * 1024)) * 256 + entries * 512 + NEARLY_FULL_BYTES
}

/**
 * Checks, before a write starts, that the disk of `dir` has room for `needed` bytes; DISK_FULL
 * (this write not started, no restart needed; `landed` says what earlier steps left) when not.
 * A write refused here never reaches the store, so the store does not meet the full disk through
 * it (its background work still can: then the next write fails as toDiskFull says). Best effort:
 * when statfs fails, nothing is checked.
 */
export async function ensureRoom(dir: string, what: string, needed: number, landed?: string): Promise<void> {
  const free = await freeBytes(dir)
  if (free === null || free >= needed) return
  throw EmbassyError.diskFull(what, { dir, free, needed, checked: true, ...(landed ? { landed } : {}) })
}

/** Runs a write; a "no space" failure comes out as DISK_FULL (see toDiskFull). */
export async function mapDiskFull<T>(dir: string, what: string, fn: () => Promise<T>, needed?: number | null): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw await toDiskFull(err, dir, what, needed)
  }
}

