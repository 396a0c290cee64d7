/**
 * Private node directories. Everything a node creates is its owner's only — directories 0700,
 * files 0600, and the process umask 077 for what RocksDB creates — and a node refuses to open a
 * directory, or a store, that other local users can reach: the Corestore primary key (every
 * agency signature and the node identity derive from it) lies in DIR/store/. Loose permissions are
 * refused with the command that fixes them, never changed behind the operator's back.
 *
 * Owns: the private modes, the umask, the permission checks (node directory, control socket
 * folders), atomic private file writes. May import: errors.
 */
import fs from 'node:fs'
import { EmbassyError } from '../errors.js'

export const PRIVATE_DIR_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600
/** The umask a node process runs under: nothing it creates is readable by group or others. */
export const PRIVATE_UMASK = 0o077

const POSIX = process.platform !== 'win32'

/**
 * Writes `text` to `file` atomically and durably: a temp file beside it (mode `mode`, set again
 * in case a crash left one with another mode), fsync, rename. A reader sees the old or the new
 * file, never half; on an error the temp file is removed and the error thrown.
 */
export function writePrivateFile(file: string, text: string, mode = PRIVATE_FILE_MODE): void {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    const fd = fs.openSync(tmp, 'w', mode)
    try {
      if (POSIX) fs.fchmodSync(fd, mode)
      fs.writeSync(fd, text)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
}

/**
 * Sets the process umask to (at least) 077. Process-wide: the CLI and `embassy run` are
 * single-node processes; where several nodes share a process (tests), explicit modes and
 * checkPrivate() at every open are the guard. Worker threads cannot change it (ignored).
 */
export function usePrivateUmask(): void {
  if (!POSIX) return
  try {
    const old = process.umask(PRIVATE_UMASK)
    if ((old | PRIVATE_UMASK) !== PRIVATE_UMASK) process.umask(old | PRIVATE_UMASK)
  } catch {}
}

/** `0755`-style text of a mode. */
export function modeText(mode: number): string {
  return '0' + (mode & 0o777).toString(8).padStart(3, '0')
}

/** A path quoted for a shell command in an error message. */
function shellQuote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`
}

/**
 * Refuses (INSECURE_PERMISSIONS, exit 2) when any existing path of `paths` can be read, entered
 * or written by group or others; the message names the fix for the node directory `dir`.
 */
export function checkPrivate(dir: string, paths: readonly string[]): void {
  if (!POSIX) return
  for (const p of paths) {
    let st: fs.Stats
    try {
      st = fs.statSync(p)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw EmbassyError.badConfig(`cannot inspect ${p}: ${(err as Error).message}`, err)
    }
    if ((st.mode & 0o077) !== 0) {
      throw EmbassyError.insecurePermissions(
        `${p} is open to other local users (mode ${modeText(st.mode)}); the node's keys live in ${dir}, so it must be private: ` +
          `run \`chmod -R go= ${shellQuote(dir)}\`, then try again`,
        { path: p, mode: modeText(st.mode), dir }
      )
    }
  }
}
