/** Rows of the fault table in TESTING.md: `npm run test:faults -- --write` collects them. */
import fs from 'node:fs'
import type test from 'brittle'

export interface FaultRow {
  scenario: string
  runs: number
  lost: number
  recoverMs: number | null
  notes?: string
}

/** One row: printed as a TAP comment, and collected in $FAULTS_REPORT when set (test/faults/run.ts). */
export function report(t: test.Assert, row: FaultRow): void {
  t.comment(`FAULT-RESULT ${JSON.stringify(row)}`)
  const file = process.env.FAULTS_REPORT
  if (!file) return
  const all = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as unknown[]) : []
  all.push({ ...row, at: new Date().toISOString() })
  fs.writeFileSync(file, JSON.stringify(all, null, 2) + '\n')
}
