/**
 * Drill reports: the signed evidence a continuity drill (roles/drill.ts) leaves behind.
 *
 * A report is one JSON document, `drill-<time>.json`, beside a human-readable `drill-<time>.html`
 * (no external assets, every value escaped). Its signature covers every field but `signature`:
 *
 *     signature = Ed25519(signer, "data-embassy/drill-report/1\n" ‖ canonical JSON of the report
 *                 without "signature")
 *
 * where canonical JSON is JSON with object keys sorted (UTF-8, no whitespace). `signer` is the
 * drill signing key (z32): derived from the recovery kit for drills run with a kit (the same key on
 * every drill of that agency), or a fresh key named in the report when run from a read capability
 * (`signerKind`). `verifyDrillReport()` checks a report offline: the signature with the key the
 * report names (compare `signer` with the one `embassy drill --kit F --show-key` prints to know
 * whose it is).
 *
 * Owns: the report type, its signing, verification, HTML, file names and the bounded folder of
 * scheduled reports. May import: errors, ids, html (and hypercore-crypto).
 */
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'hypercore-crypto'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import { escapeHtml } from '../html.js'
import type { KeyPair } from '../node/node.js'

export const DRILL_REPORT_FORMAT = 'data-embassy/drill-report'
export const DRILL_REPORT_VERSION = 1
/** Domain separation of the report signature. */
export const DRILL_SIGNING_NAMESPACE = 'data-embassy/drill-report/1\n'
/** A report file larger than this is not a report (refused before parsing). */
export const MAX_DRILL_REPORT_BYTES = 4 * 1024 * 1024
/** Scheduled drills keep this many reports in `<nodeDir>/drills/` (the oldest go first). */
export const MAX_KEPT_DRILLS = 50
/** Folder of scheduled drill reports in a node directory. */
export const DRILLS_DIR = 'drills'

/** One dataset as the drill rebuilt it from the embassy. */
export interface DrillDataset {
  name: string
  /** Every block fetched, verified against the signed heads, and the sample decrypted and checked. */
  ok: boolean
  /** Blocks at the embassy's signed heads, over all of the dataset's cores. */
  length: number
  /** Blocks fetched (and verified) from the embassy. */
  fetched: number
  /** Bytes fetched. */
  bytes: number
  /** Why it failed. */
  error?: string
}

export interface DrillReport {
  format: typeof DRILL_REPORT_FORMAT
  version: typeof DRILL_REPORT_VERSION
  ok: boolean
  /** The embassy rebuilt from (z32); null when none was reachable. */
  embassy: string | null
  /** The agency (node key, z32) and its catalog (z32). */
  agency: string
  catalog: string
  /** What the drill ran from: a passphrase kit, shares of a kit, or a read capability. */
  source: 'kit' | 'shares' | 'capability'
  /** The drill's own node key (z32): what the embassies admit (`embassy allow KEY --agency AGENCY`). */
  drillKey: string
  startedAt: string
  finishedAt: string
  rto: {
    /** From the drill's start to the first record decrypted and checked (null: none served). */
    firstRecordMs: number | null
    /** From the drill's start to every block of every dataset fetched and verified (null: not all came). */
    fullCopyMs: number | null
  }
  rpo: {
    /** Blocks the newest head known (agency or witnesses) has beyond what the embassy gave, over all cores. */
    blocksBehind: number
    /** How long ago the oldest head beyond the embassy's was witnessed (0 when none is newer). */
    secondsBehind: number
    /** Where the newest heads came from: witnesses (z32) and/or the agency. */
    sources: string[]
    /** Witnessed heads received and checked (the witness's signature and the agency's). */
    checkedHeads: number
  }
  /** Bytes fetched in all (catalog included). */
  bytes: number
  /** Blocks fetched in all (catalog included) and how many of them verified. */
  blocks: { fetched: number; verified: number }
  /** Records and files decrypted and checked. */
  sampled: number
  datasets: DrillDataset[]
  /** Why the drill as a whole failed (no embassy, no catalog), when it did. */
  error?: string
  /** Signing key (z32) and whether it is the kit's drill key or a fresh one. */
  signer: string
  signerKind: 'kit' | 'fresh'
  /** Where the report was written (the JSON file). */
  reportFile: string
  /** Ed25519 signature (hex) over the rest, see the file comment. */
  signature: string
}

export type UnsignedDrillReport = Omit<DrillReport, 'signature' | 'signer' | 'signerKind'>

/** JSON with object keys sorted, recursively: the bytes that are signed. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function signable(body: Record<string, unknown>): Buffer {
  const rest = { ...body }
  delete rest.signature
  return Buffer.concat([Buffer.from(DRILL_SIGNING_NAMESPACE, 'utf8'), Buffer.from(canonicalJson(rest), 'utf8')])
}

/** Signs a report with `signer`. */
export function signDrillReport(report: UnsignedDrillReport, signer: KeyPair, kind: DrillReport['signerKind']): DrillReport {
  const body = { ...report, signer: toZ32(signer.publicKey), signerKind: kind }
  const signature = crypto.sign(signable(body), signer.secretKey).toString('hex')
  return { ...body, signature }
}

export interface DrillVerdict {
  /** The signature verifies over the report as it is. */
  ok: boolean
  file: string
  /** The key that signed it (z32), as the report names it; null when unreadable. */
  signer: string | null
  signerKind: string | null
  /** What the report says of the drill itself. */
  drillOk: boolean | null
  embassy: string | null
  startedAt: string | null
  /** Why it does not verify. */
  error?: string
}

/** Checks a drill report file offline: its format and its signature by the key it names. */
export function verifyDrillReport(file: string): DrillVerdict {
  const verdict: DrillVerdict = { ok: false, file, signer: null, signerKind: null, drillOk: null, embassy: null, startedAt: null }
  let text: string
  try {
    const st = fs.statSync(file)
    if (!st.isFile()) throw EmbassyError.badInput(`${file} is not a file`)
    if (st.size > MAX_DRILL_REPORT_BYTES) return { ...verdict, error: `${file} is too large to be a drill report (${st.size} bytes)` }
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if (err instanceof EmbassyError) throw err
    throw EmbassyError.badInput(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return { ...verdict, error: 'not JSON: not a drill report, or damaged' }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { ...verdict, error: 'not a drill report (not a JSON object)' }
  const o = doc as Record<string, unknown>
  if (o.format !== DRILL_REPORT_FORMAT) return { ...verdict, error: `not a drill report (format ${JSON.stringify(o.format ?? null)})` }
  if (o.version !== DRILL_REPORT_VERSION) return { ...verdict, error: `unsupported drill report version ${JSON.stringify(o.version ?? null)}` }
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
  verdict.signer = str(o.signer)
  verdict.signerKind = str(o.signerKind)
  verdict.drillOk = typeof o.ok === 'boolean' ? o.ok : null
  verdict.embassy = str(o.embassy)
  verdict.startedAt = str(o.startedAt)
  let key: Buffer
  try {
    key = parseKey(String(o.signer ?? ''), 'signer')
  } catch {
    return { ...verdict, error: 'the report names no valid signer key' }
  }
  const sig = typeof o.signature === 'string' && /^[0-9a-f]{128}$/.test(o.signature) ? Buffer.from(o.signature, 'hex') : null
  if (!sig) return { ...verdict, error: 'the report has no valid signature field' }
  let good = false
  try {
    good = crypto.verify(signable(o), sig, key)
  } catch {
    good = false
  }
  if (!good) return { ...verdict, error: 'the signature does not match: the report was altered, or not signed by the key it names' }
  return { ...verdict, ok: true }
}

/** `drill-<ISO time>` with characters safe in file names on every system. */
export function drillBaseName(at: number): string {
  return `drill-${new Date(at).toISOString().replace(/[:.]/g, '-')}`
}

/**
 * The JSON and HTML file paths for a report started at `at` in `dir`, never over an existing file
 * (a suffix tells two drills of the same millisecond apart).
 */
export function drillReportPaths(dir: string, at: number): { json: string; html: string } {
  const base = drillBaseName(at)
  for (let i = 0; ; i++) {
    const name = i === 0 ? base : `${base}-${i}`
    const json = path.join(dir, `${name}.json`)
    const html = path.join(dir, `${name}.html`)
    if (!fs.existsSync(json) && !fs.existsSync(html)) return { json, html }
  }
}

/** Writes the report (JSON, 0600 → readable by the operator only) and its HTML page; never overwrites. */
export function writeDrillReport(report: DrillReport, paths: { json: string; html: string }): void {
  fs.writeFileSync(paths.json, JSON.stringify(report, null, 2) + '\n', { flag: 'wx', mode: 0o600 })
  fs.writeFileSync(paths.html, drillReportHtml(report), { flag: 'wx', mode: 0o600 })
}

/** Keeps the newest `keep` reports in `dir` (JSON and HTML), deleting older ones; returns how many went. */
export function pruneDrillReports(dir: string, keep = MAX_KEPT_DRILLS): number {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return 0
  }
  const reports = names.filter((n) => /^drill-.*\.json$/.test(n)).sort()
  const old = reports.slice(0, Math.max(0, reports.length - keep))
  for (const n of old) {
    fs.rmSync(path.join(dir, n), { force: true })
    fs.rmSync(path.join(dir, n.replace(/\.json$/, '.html')), { force: true })
  }
  return old.length
}

function ms(v: number | null): string {
  return v === null ? '—' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`
}

/** The report as a page a person reads: self-contained (inline style, no script, no external asset). */
export function drillReportHtml(r: DrillReport): string {
  const state = r.ok ? 'PASSED' : 'FAILED'
  const rows = r.datasets
    .map(
      (d) =>
        `<tr class="${d.ok ? 'ok' : 'bad'}"><th scope="row">${escapeHtml(d.name)}</th><td>${d.ok ? 'ok' : 'failed'}</td><td>${d.fetched} / ${d.length}</td><td>${d.bytes}</td><td>${escapeHtml(d.error ?? '')}</td></tr>`
    )
    .join('\n')
  const facts: Array<[string, string]> = [
    ['Embassy', r.embassy ?? 'none reachable'],
    ['Agency', r.agency],
    ['Catalog', r.catalog],
    ['Started', r.startedAt],
    ['Finished', r.finishedAt],
    ['Time to first record (RTO, reads)', ms(r.rto.firstRecordMs)],
    ['Time to full copy (RTO)', ms(r.rto.fullCopyMs)],
    ['Recovery point (RPO)', `${r.rpo.blocksBehind} block(s), ${r.rpo.secondsBehind} s behind the newest head known`],
    ['Newest heads from', r.rpo.sources.length > 0 ? r.rpo.sources.join(', ') : 'the embassy alone'],
    ['Fetched', `${r.blocks.fetched} block(s), ${r.bytes} bytes; ${r.blocks.verified} verified against the signed heads; ${r.sampled} record(s)/file(s) decrypted and checked`],
    ['Ran from', `${r.source} (drill key ${r.drillKey})`],
    ['Signed by', `${r.signer} (${r.signerKind === 'kit' ? 'the kit\'s drill key' : 'a fresh key'})`],
    ['Signature', r.signature]
  ]
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Continuity drill ${escapeHtml(state)} — ${escapeHtml(r.startedAt)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:1rem auto;max-width:60rem;padding:0 1rem;color:#111;background:#fff}
h1 .ok{color:#0a5c1f}h1 .bad{color:#a00000}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top;word-break:break-all}
tr.bad td{background:#fde8e8}tr.ok td{background:#e8f6ec}
</style>
</head>
<body>
<main>
<h1>Continuity drill: <span class="${r.ok ? 'ok' : 'bad'}">${escapeHtml(state)}</span></h1>
${r.error ? `<p role="alert">${escapeHtml(r.error)}</p>` : ''}
<h2>Summary</h2>
<table>
<tbody>
${facts.map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n')}
</tbody>
</table>
<h2>Datasets</h2>
<table>
<thead><tr><th scope="col">Dataset</th><th scope="col">State</th><th scope="col">Blocks fetched</th><th scope="col">Bytes</th><th scope="col">Why</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<p>Check the signature offline: <code>embassy drill --verify ${escapeHtml(path.basename(r.reportFile))}</code></p>
</main>
</body>
</html>
`
}
