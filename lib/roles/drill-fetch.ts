/**
 * What a continuity drill (drill.ts) does to one dataset's cores, apart from the peers: fetching
 * every block within deadlines (each verified by Hypercore against the agency-signed tree as it
 * arrives; a download that stops making progress fails), and checking what came — the first
 * record served (the RTO's first read), and a random sample of records and files decrypted and
 * checked.
 *
 * Owns: waitFor, withDeadline, fetchAll, firstRecord, checkSample. May import: data/ (datasets).
 */
import { randomInt } from 'node:crypto'
import type Hypercore from 'hypercore'
import type { FilesDataset } from '../data/files-dataset.js'
import { LogDataset } from '../data/log-dataset.js'

/** Polls `check` every `every` ms until it gives a value; null after `timeoutMs` or once `signal` aborts. */
export async function waitFor<T>(check: () => T | null, timeoutMs: number, signal?: AbortSignal, every = 100): Promise<T | null> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = check()
    if (v !== null) return v
    if (Date.now() >= deadline || signal?.aborted) return null
    await new Promise((r) => setTimeout(r, every))
  }
}

/** `p`, or null after `ms` (or once `signal` aborts, or when `p` rejects). */
export async function withDeadline<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      p,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), ms)
        onAbort = () => resolve(null)
        signal?.addEventListener('abort', onAbort)
      })
    ])
  } catch {
    return null
  } finally {
    clearTimeout(timer)
    if (onAbort) signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Downloads every block of `core` (each verified by Hypercore against the signed tree as it
 * arrives). False when the download stops making progress for `stallMs` (blocks the peer lacks)
 * or the connection closed.
 */
export async function fetchAll(core: Hypercore, stallMs: number, signal?: AbortSignal): Promise<boolean> {
  if (core.length === 0) return true
  if (core.contiguousLength >= core.length) return true
  let lastProgress = Date.now()
  const onDownload = (): void => {
    lastProgress = Date.now()
  }
  core.on('download', onDownload)
  const range = core.download({ start: 0, end: core.length })
  let settled: boolean | null = null
  range.done().then(
    () => (settled = true),
    () => (settled = false)
  )
  try {
    for (;;) {
      if (settled !== null) return settled && core.contiguousLength >= core.length
      if (core.contiguousLength >= core.length) return true
      if (Date.now() - lastProgress > stallMs || signal?.aborted) return false
      await new Promise((r) => setTimeout(r, 100))
    }
  } finally {
    core.off('download', onDownload)
    if (settled === null) range.destroy()
  }
}

/** The first record of a dataset, decrypted: a log's record 0, or a file tree's first entry. */
export async function firstRecord(ds: LogDataset | FilesDataset, timeout: number): Promise<boolean> {
  if (ds instanceof LogDataset) {
    for await (const r of ds.read({ start: 0, end: 1, wait: true, timeout })) return r.seq === 0
    return false
  }
  for await (const _entry of ds.drive.list('/', { recursive: true, wait: true, timeout } as never)) return true
  return false
}

/** Decrypts and checks up to `n` random records (log: JSON that parses) or files (their bytes read back in full). */
export async function checkSample(ds: LogDataset | FilesDataset, n: number): Promise<{ count: number; error?: string }> {
  if (ds instanceof LogDataset) {
    const length = ds.core.length
    const picks = new Set<number>()
    while (picks.size < Math.min(n, length)) picks.add(randomInt(length))
    let count = 0
    for (const seq of picks) {
      let got = false
      for await (const r of ds.read({ start: seq, end: seq + 1 })) {
        got = true
        if (r.seq !== seq) return { count, error: `record ${seq} came back as ${r.seq}` }
        if (r.type === 'json') {
          try {
            JSON.parse(r.text)
          } catch {
            return { count, error: `record ${seq} does not decrypt to JSON` }
          }
        }
      }
      if (!got) return { count, error: `record ${seq} could not be read` }
      count++
    }
    return { count }
  }
  const files: Array<{ key: string; size: number }> = []
  for await (const entry of ds.drive.list('/', { recursive: true } as never) as AsyncIterable<{ key: string; value: { blob?: { byteLength: number } | null } }>) {
    if (entry.value.blob) files.push({ key: entry.key, size: entry.value.blob.byteLength })
  }
  let count = 0
  const picks = new Set<number>()
  while (picks.size < Math.min(n, files.length)) picks.add(randomInt(files.length))
  for (const i of picks) {
    const f = files[i]!
    const bytes = (await ds.drive.get(f.key, { wait: false } as never)) as Buffer | null
    if (!bytes) return { count, error: `file ${f.key} could not be read` }
    if (bytes.byteLength !== f.size) return { count, error: `file ${f.key} read back ${bytes.byteLength} of ${f.size} bytes` }
    count++
  }
  return { count }
}
