/**
 * NDJSON on stdin for `embassy append` (issue 16 item 1): the input is checked as UTF-8 once,
 * whole, then split into lines. A character split across stdin chunks arrives whole; invalid UTF-8
 * anywhere (deep in a large input too) is BAD_RECORD naming its line, and nothing is appended.
 * Also: every command's --help still prints its usage (the command table and its specs).
 */
import path from 'node:path'
import test from 'brittle'
import * as cli from '../lib/daemon/index.js'
import { parse } from '../bin/parse.js'
import { EmbassyError } from '../lib/errors.js'
import { cliOk } from './helpers/index.js'

async function agencyWith(t: test.Assert, ...datasets: string[]): Promise<string> {
  const dir = path.join(await t.tmp(), 'agency')
  await cliOk(['init', '--role', 'agency', '--dir', dir])
  for (const d of datasets) await cliOk(['dataset', 'create', d, '--dir', dir])
  return dir
}

/** A quiet caller whose stdin yields exactly `chunks`, in order (the boundaries are the test's). */
function callerWith(chunks: Uint8Array[]): { io: cli.CallerIO; lent: cli.CallerProcess } {
  const io: cli.CallerIO = { json: true, tty: false, progress: () => {}, line: () => {}, write: () => {}, notice: () => {}, status: () => {} }
  const stdin = {
    isTTY: false,
    async *[Symbol.asyncIterator]() {
      for (const c of chunks) yield c
    }
  }
  const lent: cli.CallerProcess = {
    env: {},
    stdin,
    prompt: null,
    untilSignal: async (close) => close(),
    onceSignal: () => {}
  }
  return { io, lent }
}

/** `embassy append NAME --dir DIR` run in this process with stdin given as `chunks`. */
function appendChunks(dir: string, name: string, chunks: Uint8Array[]): Promise<unknown> {
  const { io, lent } = callerWith(chunks)
  return cli.runCommand('append', { args: [name], opts: { dir } }, io, lent)
}

test('append stdin: a multi-byte character split across stdin chunks is read whole', async (t) => {
  const dir = await agencyWith(t, 'x')
  const text = '{"name":"Mari Kask 🇪🇪 ä"}\r\n\n{"n":"€"}\n'
  const bytes = Buffer.from(text)
  // Cut inside the flag emoji (4-byte characters), inside "ä" (2 bytes) and inside "€" (3 bytes).
  const flag = bytes.indexOf(Buffer.from('🇪'))
  const auml = bytes.indexOf(Buffer.from('ä'))
  const euro = bytes.indexOf(Buffer.from('€'))
  const cuts = [0, flag + 1, flag + 6, auml + 1, euro + 2, bytes.length]
  const chunks = cuts.slice(1).map((end, i) => bytes.subarray(cuts[i], end))
  t.is(Buffer.concat(chunks).toString(), text, 'the chunks are the input')
  const r = (await appendChunks(dir, 'x', chunks)) as cli.AppendResult
  t.is(r.appended, 2)
  const read = await cliOk(['read', 'x', '--dir', dir])
  t.is(read.stdout, '{"name":"Mari Kask 🇪🇪 ä"}\n{"n":"€"}\n', 'both records, whole, CRLF and the blank line dropped')
})

test('append stdin: invalid UTF-8 deep in a large input is BAD_RECORD naming its line; nothing is appended', async (t) => {
  const dir = await agencyWith(t, 'x')
  await cliOk(['append', 'x', '{"keep":1}', '--dir', dir])
  const lines: Buffer[] = []
  for (let i = 1; i <= 30_000; i++) lines.push(Buffer.from(JSON.stringify({ i, pad: 'ü'.repeat(40) }) + '\n'))
  // Line 20,001: a lone continuation byte; line 25,000: a truncated 3-byte character. The first names the error.
  lines[20_000] = Buffer.concat([Buffer.from('{"bad":"'), Buffer.from([0x80]), Buffer.from('"}\n')])
  lines[24_999] = Buffer.concat([Buffer.from('{"bad":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}\n')])
  const all = Buffer.concat(lines)
  // 64 KiB chunks, as a pipe delivers them.
  const chunks: Buffer[] = []
  for (let o = 0; o < all.length; o += 65536) chunks.push(all.subarray(o, o + 65536))
  let err: unknown
  try {
    await appendChunks(dir, 'x', chunks)
  } catch (e) {
    err = e
  }
  t.ok(err instanceof EmbassyError, 'an EmbassyError')
  const e = err as EmbassyError
  t.is(e.code, 'BAD_RECORD')
  t.is(e.details.line, 20_001, 'names the first bad line')
  t.ok(/line 20001: not valid UTF-8/.test(e.message), e.message)
  const read = await cliOk(['read', 'x', '--dir', dir])
  t.is(read.stdout, '{"keep":1}\n', 'nothing of the bad input was appended')
})

test('append stdin: a truncated character at the very end of the input is refused (last line named)', async (t) => {
  const dir = await agencyWith(t, 'x')
  const input = Buffer.concat([Buffer.from('{"a":1}\n{"b":"'), Buffer.from([0xf0, 0x9f, 0x87])])
  let err: unknown
  try {
    await appendChunks(dir, 'x', [input.subarray(0, 10), input.subarray(10)])
  } catch (e) {
    err = e
  }
  t.is((err as EmbassyError)?.code, 'BAD_RECORD')
  t.is((err as EmbassyError)?.details?.line, 2)
  const read = await cliOk(['read', 'x', '--dir', dir])
  t.is(read.stdout, '', 'nothing appended')
})

test('cli: every command\'s --help prints its usage; the main help lists every command with its summary', async (t) => {
  const main = parse([])
  t.ok('help' in main)
  const listing = 'help' in main ? main.help : ''
  for (const c of cli.COMMANDS) {
    t.ok(listing.includes(`  ${c.name}`) && listing.includes(c.spec.summary), `main help lists ${c.name}`)
    const p = parse([...c.name.split(' '), '--help'])
    const help = 'help' in p ? p.help : cli.commandHelp(p.command.spec)
    t.ok(!('help' in p) && p.opts.help === true, `${c.name} --help is asked`)
    t.ok(help.startsWith(`usage: ${c.spec.usage}\n`), `${c.name} --help prints its usage`)
    const via = parse(['help', ...c.name.split(' ')])
    t.is('help' in via ? via.help : '', help, `embassy help ${c.name} prints the same`)
  }
  // And through the real binary, for one command of each kind.
  for (const name of [['append'], ['publish'], ['run'], ['kit', 'import']]) {
    const r = await cliOk([...name, '--help'])
    t.ok(r.stdout.startsWith(`usage: embassy ${name.join(' ')}`), `embassy ${name.join(' ')} --help (exit 0)`)
  }
})
