/** Trees of files and deterministic bytes. Imports nothing of the product (bench workers use it). */
import fs from 'node:fs'
import path from 'node:path'

/** Writes a nested folder with text files and one large pseudo-random file. */
export function makeTree(root: string, bigBytes = 3 * 1024 * 1024 + 17): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'README.txt': Buffer.from('Laws of the land, consolidated.\n'),
    'acts/2024/act-1.txt': Buffer.from('Act 1: everyone keeps a copy abroad.\n'),
    'acts/2024/act-2.txt': Buffer.from('Act 2: copies are encrypted.\n'),
    'acts/2025/deep/nested/act-3.json': Buffer.from(JSON.stringify({ act: 3, text: 'nested' })),
    'empty.txt': Buffer.alloc(0),
    'big/registry.bin': pseudoRandom(bigBytes, 7)
  }
  for (const [rel, data] of Object.entries(files)) {
    const p = path.join(root, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, data)
  }
  return files
}

/** Deterministic bytes (xorshift), fast enough for hundreds of MiB. */
export function pseudoRandom(bytes: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(bytes)
  let x = seed >>> 0 || 1
  let i = 0
  for (; i + 4 <= bytes; i += 4) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    buf.writeUInt32LE(x, i)
  }
  for (; i < bytes; i++) buf[i] = i & 0xff
  return buf
}

/** Every file below `root`, as relative path → bytes. */
export function readTree(root: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  for (const e of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const full = path.join(e.parentPath, e.name)
    out[path.relative(root, full).split(path.sep).join('/')] = fs.readFileSync(full)
  }
  return out
}
