/**
 * Architecture check over the TypeScript SOURCES (lib/, bin/, protocol/ — not the compiled JS, so
 * type-only imports count): no import cycles, and every import follows the layering in LAYERS.
 * Files over MAX_LINES are reported as a comment, not a failure.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'

/** The repository root: tests run from OUT/test, and OUT is a direct child of the root. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const SOURCE_DIRS = ['lib', 'bin', 'protocol']
const MAX_LINES = 450

type Layer = 'protocol' | 'errors' | 'ids' | 'html' | 'index' | 'cli' | 'node' | 'data' | 'net' | 'custody' | 'verify' | 'kit' | 'roles' | 'gateway' | 'daemon' | 'bin'

const LIB: Layer[] = ['errors', 'ids', 'html', 'node', 'data', 'net', 'custody', 'verify', 'kit', 'roles', 'gateway', 'daemon']
const except = (...no: Layer[]): Layer[] => [...LIB.filter((l) => !no.includes(l)), 'protocol']

/**
 * THE RULES. A file in layer L may import from `may` (its own layer is always allowed), and from
 * `typeOnly` with type-only imports. Layers: protocol/; lib/errors.ts; lib/ids.ts; lib/html.ts; lib/index.ts;
 * lib/daemon/index.ts (the CLI entry: commands, runCommand, help); each lib/<folder>/; bin/.
 * Nothing inside lib/ imports lib/index.ts (the public surface) or the CLI entry.
 */
const LAYERS: Record<Layer, { may: Layer[]; typeOnly?: Layer[] }> = {
  protocol: { may: [] }, // protocol/ imports nothing from lib/
  errors: { may: ['protocol'] },
  ids: { may: ['errors', 'protocol'] },
  html: { may: [] }, // lib/html.ts: HTML escaping, imports nothing
  node: { may: ['errors', 'ids', 'protocol'] },
  data: { may: ['node', 'errors', 'ids', 'protocol'] },
  net: { may: ['node', 'errors', 'ids', 'protocol'], typeOnly: ['data'] },
  custody: { may: ['node', 'data', 'net', 'errors', 'ids', 'protocol'] },
  verify: { may: ['node', 'data', 'errors', 'ids', 'protocol'] },
  kit: { may: ['node', 'data', 'errors', 'ids', 'protocol'] },
  roles: { may: except('gateway', 'daemon') },
  gateway: { may: except('daemon') },
  daemon: { may: except() },
  index: { may: except() },
  cli: { may: except() },
  bin: { may: ['index', 'cli'] } // bin/ imports only lib/index.ts, the CLI entry, and its own files
}

interface Edge {
  from: string
  to: string
  typeOnly: boolean
  line: number
}

function walk(dir: string): string[] {
  const abs = path.join(ROOT, dir)
  if (!fs.existsSync(abs)) return []
  return fs
    .readdirSync(abs, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort()
}

function layerOf(file: string): Layer | null {
  if (file.startsWith('protocol/')) return 'protocol'
  if (file.startsWith('bin/')) return 'bin'
  if (file === 'lib/errors.ts') return 'errors'
  if (file === 'lib/ids.ts') return 'ids'
  if (file === 'lib/html.ts') return 'html'
  if (file === 'lib/index.ts') return 'index'
  if (file === 'lib/daemon/index.ts') return 'cli'
  const m = /^lib\/([^/]+)\//.exec(file)
  if (m && (LIB as string[]).includes(m[1]!)) return m[1] as Layer
  return null
}

/**
 * The source with comments blanked out (strings, templates and regex literals kept), so that
 * commented-out imports do not count and line numbers stay right.
 */
function stripComments(src: string): string {
  let out = ''
  let i = 0
  let lastSignificant = ''
  const blank = (s: string) => s.replace(/[^\n]/g, ' ')
  while (i < src.length) {
    const c = src[i]!
    const next = src[i + 1]
    if (c === '/' && next === '/') {
      const end = src.indexOf('\n', i)
      const stop = end === -1 ? src.length : end
      out += blank(src.slice(i, stop))
      i = stop
      continue
    }
    if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2)
      const stop = end === -1 ? src.length : end + 2
      out += blank(src.slice(i, stop))
      i = stop
      continue
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') j++
        else if (c !== '`' && src[j] === '\n') break
        j++
      }
      out += src.slice(i, j + 1)
      i = j + 1
      lastSignificant = c
      continue
    }
    if (c === '/' && (lastSignificant === '' || '(,=:[!&|?{};+-*%<>~^'.includes(lastSignificant) || /\b(return|typeof|case|of|in)$/.test(out.trimEnd()))) {
      // a regex literal
      let j = i + 1
      let inClass = false
      while (j < src.length && src[j] !== '\n') {
        if (src[j] === '\\') j++
        else if (src[j] === '[') inClass = true
        else if (src[j] === ']') inClass = false
        else if (src[j] === '/' && !inClass) break
        j++
      }
      out += src.slice(i, j + 1)
      i = j + 1
      lastSignificant = '/'
      continue
    }
    out += c
    if (!/\s/.test(c)) lastSignificant = c
    i++
  }
  return out
}

function lineAt(src: string, index: number): number {
  let n = 1
  for (let i = 0; i < index; i++) if (src.charCodeAt(i) === 10) n++
  return n
}

/** Every import of `file`: static imports and re-exports (type-only when `import type`/`export type` or every name is `type X`), side-effect imports, dynamic `import('…')`. */
function importsOf(file: string): Array<{ spec: string; typeOnly: boolean; line: number }> {
  const src = stripComments(fs.readFileSync(path.resolve(ROOT, file), 'utf8'))
  const found: Array<{ spec: string; typeOnly: boolean; line: number }> = []
  const statik = /(^|[;\n])\s*(import|export)\s+(type\s+)?([\w\s{},*$]*?)\s*from\s*(['"])([^'"\n]+)\5/g
  for (const m of src.matchAll(statik)) {
    const clause = m[4]!
    const names = /\{([^}]*)\}/.exec(clause)
    const outside = clause.replace(/\{[^}]*\}/, '').replace(/[\s,]/g, '')
    const allTyped = !!names && outside === '' && names[1]!.split(',').map((x) => x.trim()).filter(Boolean).every((x) => x.startsWith('type '))
    found.push({ spec: m[6]!, typeOnly: !!m[3] || allTyped, line: lineAt(src, m.index! + m[1]!.length) })
  }
  for (const m of src.matchAll(/(^|[;\n])\s*import\s*(['"])([^'"\n]+)\2/g)) found.push({ spec: m[3]!, typeOnly: false, line: lineAt(src, m.index! + m[1]!.length) })
  for (const m of src.matchAll(/(typeof\s+)?\bimport\s*\(\s*(['"])([^'"\n]+)\2\s*\)(\s*\.)?/g)) {
    // `typeof import('x')` and `import('x').T` are type positions; `await import('x')` is a value.
    found.push({ spec: m[3]!, typeOnly: !!m[1] || !!m[4], line: lineAt(src, m.index!) })
  }
  return found
}

/** A relative specifier of `from` as a repository path (`./x.js` → `dir/x.ts`); null for packages. */
function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec))
  for (const candidate of [base.replace(/\.js$/, '.ts'), base + '.ts', base + '/index.ts', base]) {
    if (candidate.endsWith('.ts') && fs.existsSync(path.join(ROOT, candidate))) return candidate
  }
  return base.replace(/\.js$/, '.ts') // a dangling import: reported below
}

function collect(): { files: string[]; edges: Edge[] } {
  const files = SOURCE_DIRS.flatMap(walk)
  const edges: Edge[] = []
  for (const from of files) {
    for (const imp of importsOf(from)) {
      const to = resolve(from, imp.spec)
      if (to) edges.push({ from, to, typeOnly: imp.typeOnly, line: imp.line })
    }
  }
  return { files, edges }
}

/** Every strongly connected component with a cycle, each as one concrete cycle a → b → … → a. */
function cycles(files: string[], edges: Edge[]): string[][] {
  const out = new Map<string, string[]>()
  for (const e of edges) {
    if (!out.has(e.from)) out.set(e.from, [])
    if (!out.get(e.from)!.includes(e.to)) out.get(e.from)!.push(e.to)
  }
  // Tarjan
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const sccs: string[][] = []
  const strong = (v: string): void => {
    idx.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    on.add(v)
    for (const w of out.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (out.get(v) ?? []).includes(v)) sccs.push(scc.sort())
    }
  }
  for (const f of files) if (!idx.has(f)) strong(f)
  // One shortest cycle through the first file of each component (BFS inside the component).
  return sccs.map((scc) => {
    const inside = new Set(scc)
    const start = scc[0]!
    const prev = new Map<string, string>()
    const queue = [start]
    while (queue.length) {
      const v = queue.shift()!
      for (const w of out.get(v) ?? []) {
        if (!inside.has(w)) continue
        if (w === start) {
          const pathBack = [start]
          for (let x: string | undefined = v; x && x !== start; x = prev.get(x)) pathBack.unshift(x)
          return [start, ...pathBack.slice(0, -1).filter((x) => x !== start), start].filter((x, i, a) => i === 0 || x !== a[i - 1])
        }
        if (!prev.has(w)) {
          prev.set(w, v)
          queue.push(w)
        }
      }
    }
    return [...scc, scc[0]!]
  })
}

test('architecture: no import cycles in lib/, bin/, protocol/ (type-only imports count)', (t) => {
  const { files, edges } = collect()
  t.ok(files.length > 10, `${files.length} source files read`)
  const found = cycles(files, edges)
  for (const c of found) t.comment(`cycle (${c.length - 1} files): ${c.join(' → ')}`)
  t.is(found.length, 0, found.length === 0 ? 'no import cycles' : `${found.length} import cycle(s):\n${found.map((c) => '  ' + c.join(' → ')).join('\n')}`)
})

test('architecture: every import follows the layering rules (LAYERS)', (t) => {
  const { files, edges } = collect()
  const violations: string[] = []
  for (const f of files) if (!layerOf(f)) violations.push(`${f}: not in any layer (lib/ files live in ${LIB.join(', ')} folders, or are errors.ts, ids.ts, index.ts)`)
  for (const e of edges) {
    if (!fs.existsSync(path.join(ROOT, e.to))) {
      violations.push(`${e.from}:${e.line} imports ${e.to}, which does not exist`)
      continue
    }
    const from = layerOf(e.from)
    const to = layerOf(e.to)
    if (!from || !to || from === to) continue
    const rule = LAYERS[from]
    if (rule.may.includes(to)) continue
    if (e.typeOnly && rule.typeOnly?.includes(to)) continue
    const why = rule.typeOnly?.includes(to) ? ' (only type imports are allowed there)' : ''
    violations.push(`${e.from}:${e.line} → ${e.to}${e.typeOnly ? ' (type-only)' : ''}: ${from} may not import ${to}${why}`)
  }
  for (const v of violations) t.comment(`violation: ${v}`)
  t.is(violations.length, 0, violations.length === 0 ? 'every import follows the layering' : `${violations.length} layering violation(s):\n${violations.map((v) => '  ' + v).join('\n')}`)

  const long = files
    .map((f) => ({ f, lines: fs.readFileSync(path.join(ROOT, f), 'utf8').split('\n').length }))
    .filter((x) => x.lines > MAX_LINES)
    .sort((a, b) => b.lines - a.lines)
  for (const x of long) t.comment(`long file (over ${MAX_LINES} lines): ${x.f} has ${x.lines}`)
})

test('architecture: the import scanner sees every kind of import (self-check)', async (t) => {
  const dir = await t.tmp()
  const file = path.join(dir, 'sample.ts')
  fs.writeFileSync(
    file,
    [
      "import a from './a.js'",
      "import type { B } from './b.js'",
      "import { type C, type D } from './c.js'",
      "import {",
      "  e,",
      "  type E",
      "} from './e.js'",
      "export * from './f.js'",
      "export type { G } from './g.js'",
      "import './h.js'",
      "// import nope from './commented.js'",
      "/* import nope from './block-commented.js' */",
      "const re = /'\\/\\/'/",
      "const s = \"import x from './in-a-string.js'\"",
      "export async function load () { return import('./i.js') }",
      "export type J = import('./j.js').J",
      "export type K = typeof import('./k.js')"
    ].join('\n')
  )
  const got = importsOf(file).map((i) => `${i.spec}${i.typeOnly ? ' type' : ''}`).sort()
  t.alike(got, ['./a.js', './b.js type', './c.js type', './e.js', './f.js', './g.js type', './h.js', './i.js', './j.js type', './k.js type'].sort())
})
