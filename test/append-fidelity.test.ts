/**
 * Export fidelity of log datasets (issue 15, item 6): every export is valid NDJSON, one record a
 * line, and `export` → `append` round-trips exactly — for records given as arguments with line
 * breaks between their tokens, for Unicode of every kind, for generated records (fast-check).
 * Input that is not valid UTF-8 is refused with BAD_RECORD naming its line, and nothing is appended.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import fc from 'fast-check'
import { LogDataset } from '../lib/data/log-dataset.js'

const oneLine = LogDataset.oneLine
import { cli, cliOk } from './helpers/index.js'

async function agencyWith(t: test.Assert, ...datasets: string[]): Promise<string> {
  const dir = path.join(await t.tmp(), 'agency')
  await cliOk(['init', '--role', 'agency', '--dir', dir])
  for (const d of datasets) await cliOk(['dataset', 'create', d, '--dir', dir])
  return dir
}

async function exported(dir: string, name: string, out: string): Promise<Buffer> {
  await cliOk(['export', name, out, '--dir', dir])
  return fs.readFileSync(path.join(out, `${name}.ndjson`))
}

/** NDJSON lines of an export (it ends with a newline; no empty line inside). */
function ndjsonLines(buf: Buffer): string[] {
  const text = buf.toString('utf8')
  if (text === '') return []
  if (!text.endsWith('\n')) throw new Error('an export ends with a newline')
  return text.slice(0, -1).split('\n')
}

test('append fidelity: a record argument with line breaks is stored as one line; the export re-imports byte-identically', async (t) => {
  const dir = await agencyWith(t, 'x', 'y')
  const multi = ['{"a":\n1}', '[1,\r\n2,\r3]', '{\n  "name": "Mari\\nKask",\n  "n": 12345678901234567890\n}']
  const r = await cli(['append', 'x', ...multi, '--dir', dir, '--json'])
  t.is(r.code, 0, r.stderr)
  t.is(r.json.appended, 3)

  const out = await t.tmp()
  const first = await exported(dir, 'x', path.join(out, 'one'))
  const lines = ndjsonLines(first)
  t.is(lines.length, 3, 'three records, three lines')
  t.alike(lines.map((l) => JSON.parse(l)), multi.map((m) => JSON.parse(m)), 'each line is its record, value unchanged')
  t.ok(lines[2]!.includes('12345678901234567890'), 'numbers are kept as written (no re-serialisation that would round them)')

  const back = await cli(['append', 'y', '--dir', dir, '--json'], { input: first })
  t.is(back.code, 0, back.stderr)
  t.is(back.json.appended, 3)
  const second = await exported(dir, 'y', path.join(out, 'two'))
  t.ok(second.equals(first), 'export → append → export is byte-identical')
})

test('append fidelity: Unicode on stdin (emoji, RTL, U+2028, combining marks, a lone CR) round-trips exactly', async (t) => {
  const dir = await agencyWith(t, 'x', 'y')
  const records = [
    { s: 'Õun ja äädikas', emoji: '🏛️👩🏽‍⚖️', rtl: 'مرحبا \u202e evil', sep: 'a\u2028b\u2029c', comb: 'e\u0301\u0308' },
    'plain string',
    { nested: { deep: [1, 2, { z: 'ž' }] } }
  ].map((v) => JSON.stringify(v))
  records.push('{"cr":\r1}') // a lone CR between tokens (valid JSON whitespace) inside a line
  const input = records.join('\n') + '\n'
  t.is((await cli(['append', 'x', '--dir', dir], { input })).code, 0)
  const out = await t.tmp()
  const first = await exported(dir, 'x', path.join(out, 'one'))
  t.is(ndjsonLines(first).length, 4, 'one line per record')
  t.is(first.toString('utf8'), records.map(oneLine).join('\n') + '\n', 'stored as given (a CR between tokens becomes a space)')
  t.is((await cli(['append', 'y', '--dir', dir], { input: first })).code, 0)
  t.ok((await exported(dir, 'y', path.join(out, 'two'))).equals(first), 'byte-identical after the round trip')
})

test('append fidelity: invalid UTF-8 is BAD_RECORD naming its line, and nothing is appended', async (t) => {
  const dir = await agencyWith(t, 'x')
  await cliOk(['append', 'x', '{"keep":1}', '--dir', dir])
  const input = Buffer.concat([Buffer.from('{"a":1}\n\n{"b":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n{"c":3}\n')])
  const r = await cli(['append', 'x', '--dir', dir, '--json'], { input })
  t.is(r.code, 1, 'exit 1')
  t.is(r.json?.error?.code, 'BAD_RECORD')
  t.is(r.json?.error?.details?.line, 3, 'names line 3 (blank lines count)')
  t.ok(/line 3: not valid UTF-8/.test(r.stderr), r.stderr)
  const read = await cliOk(['read', 'x', '--dir', dir])
  t.is(read.stdout, '{"keep":1}\n', 'nothing of the bad input was appended')

  // A byte-order mark is kept as bytes, so it is not JSON: refused too, never silently dropped.
  const bom = await cli(['append', 'x', '--dir', dir, '--json'], { input: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}\n')]) })
  t.is(bom.json?.error?.code, 'BAD_RECORD')
  t.is(bom.json?.error?.details?.line, 1)
})

/** A JSON value with strings of any Unicode (JSON.stringify escapes control characters and lone surrogates). */
const jsonValue = fc.jsonValue({ maxDepth: 3 })
/** How a writer might format it: compact, indented (LF or CRLF line breaks), tabs. */
const formatted = fc.tuple(jsonValue, fc.constantFrom('compact', 'indent', 'crlf', 'tab')).map(([v, how]) => {
  const text = how === 'compact' ? JSON.stringify(v) : how === 'indent' ? JSON.stringify(v, null, 2) : how === 'crlf' ? JSON.stringify(v, null, 2).replace(/\n/g, '\r\n') : JSON.stringify(v, null, '\t')
  return { value: v, text }
})

test('append fidelity (property): oneLine keeps every JSON value and leaves no line break', (t) => {
  fc.assert(
    fc.property(formatted, ({ value, text }) => {
      const line = oneLine(text)
      return !/[\r\n]/.test(line) && JSON.stringify(JSON.parse(line)) === JSON.stringify(value) && (text.includes('\n') || text.includes('\r') || line === text)
    }),
    { numRuns: 2000, seed: 15 }
  )
  t.pass('2000 generated records')
})

test('append fidelity (property, CLI): generated records as arguments → export is one valid line each → append → export byte-identical', { timeout: 600_000 }, async (t) => {
  const dir = await agencyWith(t)
  const out = await t.tmp()
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(formatted, { minLength: 1, maxLength: 6 }), async (records) => {
      run++
      const a = `a${run}`
      const b = `b${run}`
      await cliOk(['dataset', 'create', a, '--dir', dir])
      await cliOk(['dataset', 'create', b, '--dir', dir])
      // `--`: a record like -5 is not an option.
      await cliOk(['append', a, '--dir', dir, '--', ...records.map((r) => r.text)])
      const first = await exported(dir, a, path.join(out, a))
      const lines = ndjsonLines(first)
      if (lines.length !== records.length) return false
      for (let i = 0; i < lines.length; i++) if (JSON.stringify(JSON.parse(lines[i]!)) !== JSON.stringify(records[i]!.value)) return false
      await cliOk(['append', b, '--dir', dir], { input: first })
      return (await exported(dir, b, path.join(out, b))).equals(first)
    }),
    { numRuns: 8, seed: 6, endOnFailure: true }
  )
  t.is(run, 8, '8 generated batches round-tripped')
})
