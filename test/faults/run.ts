/**
 * `npm run test:faults`: runs every fault scenario with brittle, collects the rows the scenarios
 * report, prints them as a table, and with `--write` puts that table into TESTING.md.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

interface Row {
  scenario: string
  runs: number
  lost: number
  recoverMs: number | null
  notes?: string
}

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..', '..', '..')
const write = process.argv.includes('--write')
/** Scenarios that need no root live in the unit suite (`npm test`) but still report rows here. */
const UNIT_SCENARIOS = ['hostile.test.js']
const files = [
  ...fs
    .readdirSync(here)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => path.relative(root, path.join(here, f))),
  ...UNIT_SCENARIOS.map((f) => path.relative(root, path.join(here, '..', f)))
]
const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'embassy-faults-')), 'report.json')

const child = spawn(process.execPath, [path.join(root, 'node_modules', 'brittle', 'brittle-node.js'), '--timeout', '900000', ...files], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, FAULTS_REPORT: report }
})
const code: number = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))))

const rows: Row[] = fs.existsSync(report) ? JSON.parse(fs.readFileSync(report, 'utf8')) : []
const table = [
  '| scenario | runs | data lost | time to recover | notes |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.scenario} | ${r.runs} | ${r.lost} | ${r.recoverMs === null ? '—' : `${(r.recoverMs / 1000).toFixed(1)} s`} | ${r.notes ?? ''} |`)
].join('\n')
process.stdout.write(`\n${table}\n`)

if (write) {
  const file = path.join(root, 'TESTING.md')
  const text = fs.readFileSync(file, 'utf8')
  const begin = '<!-- faults:begin -->'
  const end = '<!-- faults:end -->'
  const stamp = `Run of ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores, Node ${process.version}); exit ${code}.`
  const next = text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${stamp}\n\n${table}\n${end}`)
  fs.writeFileSync(file, next)
}
fs.rmSync(path.dirname(report), { recursive: true, force: true })
process.exit(code)
