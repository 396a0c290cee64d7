/**
 * Small real disks for full-disk tests: a tmpfs mounted on a fresh folder (we run as root, as CI
 * does) and a filler file that leaves a chosen number of bytes free.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type test from 'brittle'

const MiB = 1024 * 1024

/** Mounts a tmpfs of `bytes` on a fresh folder; unmounted at teardown (after everything on it closed). */
export function mountTmpfs(t: test.Assert, bytes: number, prefix = 'embassy-disk-'): string {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', mnt], { stdio: 'pipe' })
  } catch (err) {
    fs.rmdirSync(mnt)
    throw new Error(`a full-disk test needs to mount a small tmpfs (run as root, as CI does): mount -t tmpfs failed: ${(err as Error).message}`)
  }
  t.teardown(() => {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' })
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' })
    }
    fs.rmdirSync(mnt)
  }, { order: Infinity })
  return mnt
}

/**
 * Fills the disk of `dir` with one file (`name`), leaving `leave` bytes free; returns its path. When
 * something else writes meanwhile the disk may fill first: ENOSPC then ends the fill (full, as wanted).
 */
export function fillDisk(dir: string, leave: number, name = 'filler.bin'): string {
  const file = path.join(dir, name)
  const st = fs.statfsSync(dir)
  const fd = fs.openSync(file, 'w')
  const chunk = Buffer.alloc(MiB, 0xaa)
  let left = Number(st.bavail) * Number(st.bsize) - leave
  try {
    while (left > 0) {
      const n = Math.min(left, chunk.byteLength)
      fs.writeSync(fd, chunk, 0, n)
      left -= n
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    fs.closeSync(fd)
  }
  return file
}
