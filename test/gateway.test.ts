import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import test from 'brittle'
import { NodeHost, toZ32, type Agency, type Daemon, type DatasetReader, type Embassy, type Mirror } from '../lib/index.js'
import { Gateway, SOCKET_IDLE_MS, type GatewayOptions } from '../lib/index.js'
import { BLOCK_WAIT_MS } from '../lib/gateway/library.js'
import { eventually, initDir, makeTree, openAgency, pair, pseudoRandom, startDaemon, testnet } from './helpers/index.js'

type Test = test.Assert

const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
const BIG = 2 * 1024 * 1024 + 12345 // spans three 1 MiB content blocks

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  text: string
  json: any
}

/** One request, sent as-is (no path normalisation), failing instead of hanging after `timeout` ms. */
function request(gw: Gateway, target: string, opts: { method?: string; headers?: Record<string, string>; body?: string; timeout?: number } = {}): Promise<Res> {
  const { host, port } = gw.address()
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: target, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        let json: any = null
        try {
          json = JSON.parse(body.toString('utf8'))
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), json })
      })
    })
    req.setTimeout(opts.timeout ?? 10_000, () => req.destroy(new Error(`${target}: no answer within ${opts.timeout ?? 10_000} ms`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** Raw bytes on a fresh TCP connection; resolves with everything read until the server closes. */
function raw(gw: Gateway, bytes: string | Buffer): Promise<string> {
  const { host, port } = gw.address()
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host, () => socket.write(bytes))
    const chunks: Buffer[] = []
    socket.on('data', (c) => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')))
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request: no close within 10 s')))
  })
}

function isJsonError(t: Test, r: Res, status: number, code: string, what: string): void {
  t.is(r.status, status, `${what}: ${status}`)
  t.ok(/^application\/json/.test(String(r.headers['content-type'])), `${what}: JSON body`)
  t.is(r.json?.error?.code, code, `${what}: code ${code}`)
  t.ok(typeof r.json?.error?.message === 'string' && r.json.error.message.length > 0, `${what}: a message`)
}

async function startGateway(t: Test, opts: GatewayOptions): Promise<Gateway> {
  const gw = new Gateway(opts)
  t.teardown(() => gw.close(), { order: -1, force: true })
  await gw.ready()
  return gw
}

interface Fixture {
  agency: Agency
  gw: Gateway
  src: string
  texts: string[]
}

/** An agency (no network) with a log, a files tree and an empty log, served by a gateway. */
async function fixture(t: Test, opts: Partial<GatewayOptions> = {}): Promise<Fixture> {
  const { host } = await openAgency(t, 'Ministry of <Tests> & "Quotes"')
  const agency = await host.agency()
  await agency.createDataset('register', { description: 'land <b>register</b>' })
  const values = Array.from({ length: 120 }, (_, i) => ({ i, owner: `owner-${i}`, note: i === 3 ? XSS : '' }))
  await agency.append('register', values)
  await agency.createDataset('empty')
  await agency.createDataset('laws', { kind: 'files', description: 'consolidated laws' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, BIG)
  fs.writeFileSync(path.join(src, 'we<ird> "name" & ü.txt'), 'weird name')
  fs.writeFileSync(path.join(src, 'evil.html'), `<!doctype html><p>hi</p>${XSS}`)
  await agency.publish('laws', src)
  const gw = await startGateway(t, { reader: agency.datasets, ...opts })
  return { agency, gw, src, texts: values.map((v) => JSON.stringify(v)) }
}

function sha(b: Uint8Array): string {
  return crypto.createHash('sha256').update(b).digest('hex')
}

test('gateway: binds 127.0.0.1 by default; lists agencies and datasets; info carries provenance', async (t) => {
  const { agency, gw } = await fixture(t)
  t.is(gw.address().host, '127.0.0.1')
  t.ok(gw.address().port > 0)

  const list = await request(gw, '/api/datasets')
  t.is(list.status, 200)
  t.is(list.json.agencies.length, 1)
  t.is(list.json.agencies[0].name, 'Ministry of <Tests> & "Quotes"')
  t.is(list.json.agencies[0].catalog, toZ32(agency.catalogKey))
  t.is(list.json.agencies[0].state, 'ready')
  t.alike(list.json.datasets.map((d: { name: string }) => d.name).sort(), ['empty', 'laws', 'register'])
  const reg = list.json.datasets.find((d: { name: string }) => d.name === 'register')
  t.is(reg.length, 120)
  t.is(reg.held, 120)
  t.is(reg.complete, true)
  t.is(reg.links.records, '/api/datasets/register/records')

  const info = await request(gw, '/api/datasets/register')
  t.is(info.status, 200)
  const log = await agency.datasets.openLog('register')
  const key = toZ32(log.core.key!)
  t.is(info.headers['x-embassy-core-key'], key, 'core key header (z32)')
  t.is(info.headers['x-embassy-length'], '120', 'verified length header')
  t.is(info.headers['x-embassy-fork'], '0', 'fork header')
  t.is(info.headers['x-embassy-tree-hash'], (await log.core.treeHash()).toString('hex'), 'signed tree hash header')
  t.is(info.headers['x-embassy-catalog-key'], toZ32(agency.catalogKey))
  t.is(info.json.dataset.name, 'register')
  t.is(info.json.dataset.description, 'land <b>register</b>')
  t.is(info.json.provenance.cores[0].key, key)
  t.is(info.json.provenance.cores[0].length, 120)

  const laws = await request(gw, '/api/datasets/laws')
  const files = await agency.datasets.openFiles('laws')
  t.is(laws.headers['x-embassy-core-key'], toZ32(files.drive.core.key!), 'files: index core')
  t.is(laws.headers['x-embassy-content-key'], toZ32(files.drive.blobs!.core.key!), 'files: content core')
  t.is(laws.json.provenance.cores.length, 2)
  t.is(laws.json.dataset.version, files.version)

  const index = await request(gw, '/api')
  t.is(index.status, 200)
  t.ok(index.json.routes['/api/datasets'])
})

test('records: NDJSON streamed; start/end, search, limit; ETag and 304; HEAD; one record', async (t) => {
  const { gw, texts } = await fixture(t)
  const all = await request(gw, '/api/datasets/register/records')
  t.is(all.status, 200)
  t.ok(String(all.headers['content-type']).startsWith('application/x-ndjson'))
  t.is(all.headers['transfer-encoding'], 'chunked', 'streamed')
  t.is(all.headers['x-embassy-length'], '120')
  const lines = all.text.trimEnd().split('\n').map((l) => JSON.parse(l))
  t.is(lines.length, 120)
  t.alike(lines.map((r) => r.seq), Array.from({ length: 120 }, (_, i) => i), 'in order')
  t.alike(lines.map((r) => r.text), texts, 'texts verbatim')
  t.is(lines[3].text, texts[3], 'untrusted text kept as data')

  const slice = await request(gw, '/api/datasets/register/records?start=10&end=13')
  t.alike(slice.text.trimEnd().split('\n').map((l) => JSON.parse(l).seq), [10, 11, 12])
  t.is(slice.headers['x-embassy-start'], '10')
  t.is(slice.headers['x-embassy-end'], '13')
  const clamped = await request(gw, '/api/datasets/register/records?start=118&end=1000')
  t.is(clamped.status, 200)
  t.is(clamped.text.trimEnd().split('\n').length, 2, 'end past the length is clamped')
  const atEnd = await request(gw, '/api/datasets/register/records?start=120')
  t.is(atEnd.status, 200)
  t.is(atEnd.text, '', 'start at the length: empty')
  const found = await request(gw, '/api/datasets/register/records?q=OWNER-11')
  t.alike(found.text.trimEnd().split('\n').map((l) => JSON.parse(l).seq), [11, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119], 'search is case-insensitive')
  const limited = await request(gw, '/api/datasets/register/records?q=owner-11&limit=2')
  t.is(limited.text.trimEnd().split('\n').length, 2)
  const empty = await request(gw, '/api/datasets/empty/records')
  t.is(empty.status, 200)
  t.is(empty.text, '')

  const etag = String(slice.headers.etag)
  t.ok(/^"[^"]+"$/.test(etag), 'strong ETag')
  const again = await request(gw, '/api/datasets/register/records?start=10&end=13', { headers: { 'If-None-Match': etag } })
  t.is(again.status, 304)
  t.is(again.body.byteLength, 0)
  t.is(again.headers['x-embassy-core-key'], slice.headers['x-embassy-core-key'], '304 keeps provenance')
  const other = await request(gw, '/api/datasets/register/records?start=10&end=14', { headers: { 'If-None-Match': etag } })
  t.is(other.status, 200, 'another range: another ETag')

  const head = await request(gw, '/api/datasets/register/records', { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.body.byteLength, 0, 'HEAD: no body')
  t.is(head.headers['x-embassy-length'], '120', 'HEAD: provenance')

  const one = await request(gw, '/api/datasets/register/records/3')
  t.is(one.status, 200)
  t.is(one.json.seq, 3)
  t.is(one.json.text, texts[3])
  t.is(one.headers['x-embassy-length'], '120')
  const one304 = await request(gw, '/api/datasets/register/records/3', { headers: { 'If-None-Match': String(one.headers.etag) } })
  t.is(one304.status, 304)

  isJsonError(t, await request(gw, '/api/datasets/register/records?start=9&end=2'), 416, 'RANGE_NOT_SATISFIABLE', 'inverted records range')
  isJsonError(t, await request(gw, '/api/datasets/register/records?start=121'), 416, 'RANGE_NOT_SATISFIABLE', 'start past the length')
  isJsonError(t, await request(gw, '/api/datasets/register/records?start=-1'), 400, 'BAD_ARGUMENT', 'negative start')
  isJsonError(t, await request(gw, '/api/datasets/register/records?end=1e3'), 400, 'BAD_ARGUMENT', 'non-integer end')
  isJsonError(t, await request(gw, '/api/datasets/register/records?start=99999999999999999999'), 400, 'BAD_ARGUMENT', 'oversized number')
  isJsonError(t, await request(gw, `/api/datasets/register/records?q=${'x'.repeat(300)}`), 400, 'BAD_ARGUMENT', 'search text too long')
  isJsonError(t, await request(gw, '/api/datasets/register/records/120'), 404, 'NOT_FOUND', 'record past the end')
  isJsonError(t, await request(gw, '/api/datasets/register/records/abc'), 400, 'BAD_ARGUMENT', 'record number not a number')
  isJsonError(t, await request(gw, '/api/datasets/laws/records'), 404, 'WRONG_KIND', 'records of a files dataset')
})

test('files: bytes, Range (206/416), ETag and If-None-Match 304, If-Range, HEAD, Content-Type, folders', async (t) => {
  const { gw, src } = await fixture(t)
  const big = fs.readFileSync(path.join(src, 'big/registry.bin'))
  t.is(big.byteLength, BIG)
  const url = '/api/datasets/laws/files/big/registry.bin'

  const full = await request(gw, url)
  t.is(full.status, 200)
  t.is(sha(full.body), sha(big), 'byte-identical (3 content blocks)')
  t.is(full.headers['content-length'], String(BIG))
  t.is(full.headers['accept-ranges'], 'bytes')
  t.is(full.headers['content-type'], 'application/octet-stream')
  t.ok(full.headers['x-embassy-core-key'] && full.headers['x-embassy-content-key'], 'provenance headers')
  const etag = String(full.headers.etag)
  t.ok(/^"[^"]+"$/.test(etag), 'strong ETag')

  const cases: Array<[string, number, number]> = [
    ['bytes=0-99', 0, 99],
    ['bytes=1048570-1048600', 1048570, 1048600], // across a block boundary
    [`bytes=${BIG - 10}-`, BIG - 10, BIG - 1],
    ['bytes=-100', BIG - 100, BIG - 1],
    [`bytes=100-${BIG + 5000}`, 100, BIG - 1] // end past the file: clamped (RFC 9110)
  ]
  for (const [range, start, end] of cases) {
    const r = await request(gw, url, { headers: { Range: range } })
    t.is(r.status, 206, `${range}: 206`)
    t.is(r.headers['content-range'], `bytes ${start}-${end}/${BIG}`, `${range}: Content-Range`)
    t.ok(r.body.equals(big.subarray(start, end + 1)), `${range}: the right bytes`)
  }
  for (const range of [`bytes=${BIG}-`, `bytes=${BIG + 10}-${BIG + 20}`, 'bytes=500-100', 'bytes=abc', 'bytes=-0', 'bytes=-']) {
    const r = await request(gw, url, { headers: { Range: range } })
    isJsonError(t, r, 416, 'RANGE_NOT_SATISFIABLE', `Range ${range}`)
    t.is(r.headers['content-range'], `bytes */${BIG}`)
  }
  const multi = await request(gw, url, { headers: { Range: 'bytes=0-1,5-6' } })
  t.is(multi.status, 200, 'several ranges: the whole file')
  const otherUnit = await request(gw, url, { headers: { Range: 'items=0-1' } })
  t.is(otherUnit.status, 200, 'another unit: ignored')
  const ifRangeOld = await request(gw, url, { headers: { Range: 'bytes=0-9', 'If-Range': '"stale"' } })
  t.is(ifRangeOld.status, 200, 'If-Range mismatch: the whole file')
  const ifRangeOk = await request(gw, url, { headers: { Range: 'bytes=0-9', 'If-Range': etag } })
  t.is(ifRangeOk.status, 206, 'If-Range match: the range')

  const cached = await request(gw, url, { headers: { 'If-None-Match': etag } })
  t.is(cached.status, 304)
  t.is(cached.body.byteLength, 0)
  t.is(cached.headers.etag, etag)
  t.is((await request(gw, url, { headers: { 'If-None-Match': `"nope", W/${etag}` } })).status, 304, 'weak comparison in a list')
  t.is((await request(gw, url, { headers: { 'If-None-Match': '"nope"' } })).status, 200)

  const head = await request(gw, url, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-length'], String(BIG), 'HEAD: the length')
  t.is(head.body.byteLength, 0, 'HEAD: no body')
  t.is(head.headers.etag, etag)

  const readme = await request(gw, '/api/datasets/laws/files/README.txt')
  t.is(readme.headers['content-type'], 'text/plain; charset=utf-8')
  t.is(readme.text, fs.readFileSync(path.join(src, 'README.txt'), 'utf8'))
  const json = await request(gw, '/api/datasets/laws/files/acts/2025/deep/nested/act-3.json?download=1')
  t.is(json.headers['content-type'], 'application/json')
  t.ok(String(json.headers['content-disposition']).startsWith('attachment;'), 'download=1: attachment')
  const weird = await request(gw, `/api/datasets/laws/files/${encodeURIComponent('we<ird> "name" & ü.txt')}`)
  t.is(weird.status, 200)
  t.is(weird.text, 'weird name')
  t.ok(String(weird.headers['content-disposition']).includes("filename*=UTF-8''we%3Cird%3E%20%22name%22%20%26%20%C3%BC.txt"), 'exact name, encoded')
  const evil = await request(gw, '/api/datasets/laws/files/evil.html')
  t.ok(String(evil.headers['content-security-policy']).startsWith('sandbox'), 'untrusted HTML is sandboxed')
  t.is(evil.headers['x-content-type-options'], 'nosniff')
  const empty = await request(gw, '/api/datasets/laws/files/empty.txt')
  t.is(empty.status, 200)
  t.is(empty.body.byteLength, 0)
  isJsonError(t, await request(gw, '/api/datasets/laws/files/empty.txt', { headers: { Range: 'bytes=0-0' } }), 416, 'RANGE_NOT_SATISFIABLE', 'range of an empty file')

  const root = await request(gw, '/api/datasets/laws/files/')
  t.is(root.status, 200)
  t.alike(root.json.entries.map((e: { name: string; type: string }) => `${e.name}:${e.type}`), ['README.txt:file', 'acts:folder', 'big:folder', 'empty.txt:file', 'evil.html:file', 'we<ird> "name" & ü.txt:file'])
  t.is((await request(gw, '/api/datasets/laws/files')).json.entries.length, 6, 'no trailing slash: the root')
  const acts = await request(gw, '/api/datasets/laws/files/acts/2024/')
  t.alike(acts.json.entries.map((e: { path: string; size: number }) => [e.path, e.size]), [['/acts/2024/act-1.txt', 37], ['/acts/2024/act-2.txt', 29]])
  const page2 = await request(gw, '/api/datasets/laws/files/acts/2024/?after=act-1.txt')
  t.alike(page2.json.entries.map((e: { name: string }) => e.name), ['act-2.txt'], 'after: continues a listing')
  isJsonError(t, await request(gw, '/api/datasets/laws/files/acts'), 404, 'NOT_FOUND', 'a folder without a trailing slash')
  isJsonError(t, await request(gw, '/api/datasets/laws/files/nope/'), 404, 'NOT_FOUND', 'a missing folder')
  isJsonError(t, await request(gw, '/api/datasets/laws/files/nope.txt'), 404, 'NOT_FOUND', 'a missing file')
  isJsonError(t, await request(gw, '/api/datasets/register/files/x'), 404, 'WRONG_KIND', 'files of a log')
})

test('hostile input: traversal, encoded slashes, NUL, methods, garbage — clear JSON errors, the server stays up', async (t) => {
  const { gw } = await fixture(t)
  const traversal = [
    '/api/datasets/x/files/../../etc/passwd',
    '/api/datasets/laws/files/../../etc/passwd',
    '/api/datasets/laws/files/./README.txt',
    '/api/datasets/laws/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/api/datasets/laws/files/%2e%2e/%2e%2e/etc/passwd',
    '/api/datasets/laws/files/%2E%2E/README.txt',
    '/api/datasets/laws/files/acts%2F2024%2Fact-1.txt',
    '/api/datasets/laws/files/acts%2f2024/act-1.txt',
    '/api/datasets/laws/files/README.txt%00.png',
    '/api/datasets/laws/files/%00',
    '/api/datasets/laws%2F..%2F..%2Fetc/files/passwd',
    '/api/datasets/laws/files//etc/passwd',
    '/api/datasets/laws/files/%E0%A4%A',
    '/datasets/laws/files/../../../etc/passwd',
    '/../../etc/passwd'
  ]
  for (const target of traversal) {
    const r = await request(gw, target)
    isJsonError(t, r, 400, 'BAD_PATH', target)
    t.absent(r.text.includes('root:'), `${target}: nothing from the host`)
  }
  isJsonError(t, await request(gw, '/api/datasets/nope'), 404, 'UNKNOWN_DATASET', 'unknown dataset')
  isJsonError(t, await request(gw, '/api/datasets/nope/records'), 404, 'UNKNOWN_DATASET', 'records of an unknown dataset')
  isJsonError(t, await request(gw, '/api/datasets/nope/files/a.txt'), 404, 'UNKNOWN_DATASET', 'a file of an unknown dataset')
  isJsonError(t, await request(gw, '/api/datasets/register?catalog=nope'), 404, 'UNKNOWN_AGENCY', 'an unknown catalog')
  isJsonError(t, await request(gw, '/api/nothing'), 404, 'NOT_FOUND', 'unknown API route')
  isJsonError(t, await request(gw, '/favicon.ico'), 404, 'NOT_FOUND', 'unknown path')

  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const r = await request(gw, '/api/datasets/register/records', { method, body: method === 'OPTIONS' ? undefined : '{"x":1}', headers: { 'Content-Type': 'application/json' } })
    isJsonError(t, r, 405, 'METHOD_NOT_ALLOWED', method)
    t.is(r.headers.allow, 'GET, HEAD', `${method}: Allow header`)
  }
  isJsonError(t, await request(gw, '/' + 'a'.repeat(9000)), 414, 'URI_TOO_LONG', 'a very long target')
  isJsonError(t, await request(gw, '/api/datasets', { headers: { Host: 'evil.example:80' } }), 421, 'UNKNOWN_HOST', 'DNS rebinding: a foreign Host header')
  t.is((await request(gw, '/api/datasets', { headers: { Host: `localhost:${gw.address().port}` } })).status, 200, 'Host localhost is fine')

  const garbage = await raw(gw, 'THIS IS NOT HTTP\r\n\r\n')
  t.ok(/^HTTP\/1\.1 400/.test(garbage), 'garbage: 400')
  t.ok(garbage.includes('"code":"BAD_REQUEST"'), 'garbage: JSON body')
  const huge = await raw(gw, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.ok(/^HTTP\/1\.1 431/.test(huge), 'oversized headers: 431')
  const absolute = await request(gw, 'http://127.0.0.1/api/datasets')
  isJsonError(t, absolute, 400, 'BAD_PATH', 'absolute-form target')

  const after = await request(gw, '/api/datasets')
  t.is(after.status, 200, 'still up')
  t.is(gw.stats.serverErrors, 0, 'no 5xx on bad input')
})

test('pages: server-rendered, escaped, no script, work without JavaScript; HTML errors for browsers', async (t) => {
  const { gw, agency } = await fixture(t)
  const pages = [
    '/',
    '/datasets/register',
    '/datasets/register?start=50',
    '/datasets/register?q=owner-7',
    '/datasets/register/records/3',
    '/datasets/laws',
    '/datasets/laws/files/acts/',
    '/datasets/laws/files/acts/2024/act-1.txt',
    `/datasets/laws/files/${encodeURIComponent('we<ird> "name" & ü.txt')}`
  ]
  for (const p of pages) {
    const r = await request(gw, p)
    t.is(r.status, 200, `${p}: 200`)
    t.is(r.headers['content-type'], 'text/html; charset=utf-8')
    t.ok(String(r.headers['content-security-policy']).includes("default-src 'none'"), `${p}: CSP`)
    t.absent(/<script/i.test(r.text), `${p}: no script element`)
    t.absent(/<[a-z][^>]*\son[a-z]+\s*=/i.test(r.text), `${p}: no event handler attribute`)
    t.absent(/(src|href)="(https?:)?\/\//i.test(r.text), `${p}: no external asset`)
  }
  const home = await request(gw, '/')
  t.ok(home.text.includes('Ministry of &lt;Tests&gt; &amp; &quot;Quotes&quot;'), 'agency name escaped')
  t.ok(home.text.includes('land &lt;b&gt;register&lt;/b&gt;'), 'description escaped')
  t.ok(home.text.includes('href="/datasets/register"'), 'links to datasets')
  const record = await request(gw, '/datasets/register/records/3')
  t.ok(record.text.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;'), 'record text escaped')
  const search = await request(gw, '/datasets/register?q=owner-7')
  t.ok(search.text.includes('11 matches'), 'search: owner-7 and owner-70…79')
  const folder = await request(gw, '/datasets/laws')
  t.ok(folder.text.includes('we&lt;ird&gt; &quot;name&quot; &amp; ü.txt'), 'file name escaped')
  t.ok(folder.text.includes('href="/api/datasets/laws/files/we%3Cird%3E%20%22name%22%20%26%20%C3%BC.txt?download=1"'), 'file link encoded')
  t.ok(folder.text.includes('href="/datasets/laws/files/acts/"'), 'folder link')
  const css = await request(gw, '/assets/style.css')
  t.is(css.status, 200)
  t.is(css.headers['content-type'], 'text/css; charset=utf-8')

  const redirect = await request(gw, '/datasets/laws/files/acts')
  t.is(redirect.status, 302, 'a folder without its slash: redirected')
  t.is(redirect.headers.location, '/datasets/laws/files/acts/')

  const missing = await request(gw, '/datasets/nope', { headers: { Accept: 'text/html' } })
  t.is(missing.status, 404)
  t.is(missing.headers['content-type'], 'text/html; charset=utf-8', 'browsers get an HTML error page')
  t.ok(missing.text.includes('no dataset named &quot;nope&quot;'))
  isJsonError(t, await request(gw, '/datasets/nope'), 404, 'UNKNOWN_DATASET', 'non-browser clients get JSON')
  isJsonError(t, await request(gw, '/datasets/register/records/500'), 404, 'NOT_FOUND', 'record page past the end')
  t.ok(agency)
})

test('metrics: Prometheus text format; status embeds the node status; ready() gates data', async (t) => {
  let ready = true
  const { gw } = await fixture(t, { ready: () => ready, peers: () => 3, status: async () => ({ role: 'agency', running: false }) })
  await request(gw, '/api/datasets')
  await request(gw, '/api/datasets/nope')
  const m = await request(gw, '/metrics')
  t.is(m.status, 200)
  t.is(m.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const lines = m.text.trimEnd().split('\n')
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (-?[0-9.e+]+|NaN)$/
  const typed = new Set<string>()
  for (const line of lines) {
    if (line.startsWith('# HELP ')) continue
    const ty = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line)
    if (ty) {
      typed.add(ty[1] as string)
      continue
    }
    const s = sample.exec(line)
    t.ok(s, `valid sample line: ${line}`)
    if (s) t.ok(typed.has(s[1] as string), `${s[1]} has a TYPE line before it`)
  }
  t.ok(lines.includes('embassy_http_requests_total{route="/api/datasets",code="200"} 1'), 'requests by route and code')
  t.ok(lines.includes('embassy_http_requests_total{route="/api/datasets/:name",code="404"} 1'))
  t.ok(lines.some((l) => /^embassy_dataset_length\{catalog="[^"]+",dataset="register",kind="log"\} 120$/.test(l)), 'dataset length')
  t.ok(lines.some((l) => /^embassy_dataset_bytes\{catalog="[^"]+",dataset="laws",kind="files"\} \d+$/.test(l)), 'dataset bytes')
  t.ok(lines.includes('embassy_peers 3'), 'peers')
  const rss = Number(lines.find((l) => l.startsWith('process_resident_memory_bytes '))?.split(' ')[1])
  t.ok(rss > 10 * 1024 * 1024 && rss < 64 * 1024 ** 3, `the process's resident memory (${rss} bytes)`)
  t.ok(lines.includes('embassy_gateway_ready 1'))

  const status = await request(gw, '/api/status')
  t.is(status.status, 200)
  t.alike(status.json.node, { role: 'agency', running: false }, 'node status embedded')
  t.is(status.json.gateway.ready, true)
  t.is(status.json.agencies[0].datasets.length, 3)

  ready = false
  const notReady = await request(gw, '/api/datasets/register/records')
  isJsonError(t, notReady, 503, 'NOT_READY', 'data while not ready')
  t.is(notReady.headers['retry-after'], '5')
  t.is((await request(gw, '/api/status')).status, 200, 'status is always served')
  t.ok((await request(gw, '/metrics')).text.includes('embassy_gateway_ready 0'))
})

test('gateway: any DatasetReader works; a reader that hangs gives 503, not a hang; status that fails is reported', async (t) => {
  const { agency } = await fixture(t)
  const ds = agency.datasets
  const plain: DatasetReader = {
    list: () => ds.list(),
    read: (n, o) => ds.read(n, o),
    export: (n, d, p) => ds.export(n, d, p),
    openFiles: (n) => ds.openFiles(n),
    openLog: (n) => ds.openLog(n)
  }
  const gw = await startGateway(t, { reader: plain, status: async () => { throw new Error('boom') } })
  const recs = await request(gw, '/api/datasets/register/records?start=0&end=5')
  t.is(recs.status, 200)
  t.is(recs.text.trimEnd().split('\n').length, 5)
  const file = await request(gw, '/api/datasets/laws/files/README.txt')
  t.is(file.status, 200)
  const status = await request(gw, '/api/status')
  t.is(status.json.nodeError.code, 'INTERNAL', 'a failing status callback is reported, not fatal')

  const stuck: DatasetReader = { ...plain, list: () => new Promise(() => {}) }
  const gw2 = await startGateway(t, { reader: stuck })
  const started = Date.now()
  const r = await request(gw2, '/api/datasets/register', { timeout: 60_000 })
  t.is(r.status, 503)
  // Which bound answered, not how fast: the reader's own bound says NOT_REPLICATED ("took over"),
  // the response deadline (a hang) would say TIMEOUT.
  t.is(r.json?.error?.code, 'NOT_REPLICATED', `the hung reader call was cut off by its own bound (answered in ${Date.now() - started} ms)`)
  t.ok(/took over/.test(r.json?.error?.message ?? ''), r.json?.error?.message)
  const home = await request(gw2, '/')
  t.is(home.status, 200, 'the page still renders')
})

test('close(): ends open connections and streams promptly; ready()/close() idempotent', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('bulk', { kind: 'files' })
  const src = path.join(await t.tmp(), 'bulk')
  fs.mkdirSync(src)
  fs.writeFileSync(path.join(src, 'big.bin'), pseudoRandom(8 * 1024 * 1024, 3))
  await agency.publish('bulk', src)
  const gw = new Gateway({ reader: agency.datasets })
  await gw.ready()
  await gw.ready()
  const { host: h, port } = gw.address()
  // A download that reads nothing after its headers: the server is stuck on backpressure.
  let res: http.IncomingMessage | null = null
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: h, port, path: '/api/datasets/bulk/files/big.bin', agent: false }, (r) => {
      res = r
      r.pause()
      resolve()
    })
    req.on('error', reject)
  })
  const idle = net.connect(port, h)
  idle.resume()
  await new Promise((resolve) => idle.once('connect', resolve))
  const idleClosed = new Promise((resolve) => idle.once('close', resolve))
  // The server accepts connections in arrival order: once a later connection has been answered,
  // the idle one has been accepted too (no fixed wait).
  t.is((await request(gw, '/api/status')).status, 200, 'a later connection answered')
  const started = Date.now()
  // A close that did not end them itself would wait for the server's own timeouts (idle: SOCKET_IDLE_MS).
  const bound = SOCKET_IDLE_MS / 4
  let timer: NodeJS.Timeout | undefined
  const closed = await Promise.race([
    (async () => {
      await gw.close()
      await gw.close()
      return true
    })(),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), bound)))
  ])
  clearTimeout(timer)
  t.ok(closed, `close() ended the connections itself (in ${Date.now() - started} ms; the server's idle timeout is ${SOCKET_IDLE_MS / 1000} s)`)
  // Drain what reached the client before the close: the body must be cut short, not completed.
  const stalled = res as unknown as http.IncomingMessage
  let received = 0
  await new Promise<void>((resolve) => {
    stalled.on('data', (c: Buffer) => (received += c.byteLength))
    stalled.once('close', () => resolve())
    stalled.once('error', () => resolve())
    stalled.resume()
  })
  t.absent(stalled.complete, `stalled download cut short (${received} of ${8 * 1024 * 1024} bytes)`)
  await idleClosed
  t.pass('idle connection closed')
})

test('replicating: a mirror that knows the length but not every block answers 503 at once and serves what it holds', async (t) => {
  const { agency, src } = await fixture(t)
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const mhost = new NodeHost(mirrorDir)
  t.teardown(() => mhost.close())
  await mhost.ready()
  const mirror = await mhost.mirror()
  await mirror.add(agency.capability())
  // Replicate in-process (no network), wait until the mirror holds everything, then cut the link.
  const a = agency.node.store.replicate(true)
  const b = mirror.node.store.replicate(false)
  a.pipe(b).pipe(a)
  const source = [...mirror.sources.values()][0]!
  // Every core at the agency's length, not only "complete" (that is true of a length not yet
  // learnt, e.g. 0, on a busy machine): the link is cut only once it has all of it.
  const want = new Map((await agency.heldCores()).map((r) => [toZ32(r.core.key!), r.core.length]))
  t.is(want.size, 5, 'the agency has its catalog and four dataset cores')
  await eventually('mirror holds everything the agency has', async () => {
    await source.holder.refresh()
    const held = source.holder.held()
    return source.holder.cores.size === 4 && held.length === want.size && held.every((c) => c.contiguousLength === c.length && c.length === want.get(c.key))
  }, 60_000)
  a.destroy()
  b.destroy()
  const log = await source.datasets.openLog('register')
  await eventually('log held', () => log.core.contiguousLength === 120 && log.core.peers.length === 0)
  const files = await source.datasets.openFiles('laws')
  const entry = await files.drive.entry('/big/registry.bin')
  const blob = entry!.value.blob!
  await log.core.clear(60, 70) // as if records 60-69 had not arrived yet
  await files.drive.blobs!.core.clear(blob.blockOffset + 1, blob.blockOffset + 2) // one content block of the big file
  const gw = await startGateway(t, { reader: mirror })

  // "At once": without a peer nothing is waited for; a wait for a block would take BLOCK_WAIT_MS.
  const timed = async (target: string): Promise<Res> => {
    const started = Date.now()
    const r = await request(gw, target, { timeout: 60_000 })
    t.ok(Date.now() - started < BLOCK_WAIT_MS, `${target}: answered in ${Date.now() - started} ms, without waiting for a block`)
    return r
  }
  const all = await timed('/api/datasets/register/records')
  isJsonError(t, all, 503, 'NOT_REPLICATED', 'records with a gap')
  t.ok(/held from the start: 60 of 120/.test(all.json.error.message), `says what is held: ${all.json.error.message}`)
  t.is(all.headers['retry-after'], '5')
  const held = await timed('/api/datasets/register/records?start=0&end=60')
  t.is(held.status, 200, 'records held are served')
  t.is(held.text.trimEnd().split('\n').length, 60)
  t.is(held.headers['x-embassy-length'], '120', 'the verified length is known')
  t.is(held.headers['x-embassy-contiguous-length'], '60')
  t.is((await timed('/api/datasets/register/records?start=70')).status, 200, 'after the gap')
  isJsonError(t, await timed('/api/datasets/register/records/65'), 503, 'NOT_REPLICATED', 'one missing record')
  t.is((await timed('/api/datasets/register/records/59')).status, 200)
  const page = await timed('/datasets/register?start=50')
  t.is(page.status, 200, 'the page renders')
  t.is(page.text.split('not replicated yet').length - 1, 10, 'and marks the 10 missing records')

  isJsonError(t, await timed('/api/datasets/laws/files/big/registry.bin'), 503, 'NOT_REPLICATED', 'a file with a missing block')
  isJsonError(t, await timed('/api/datasets/laws/files/big/registry.bin?x=1'), 503, 'NOT_REPLICATED', 'whatever the query')
  const small = await timed('/api/datasets/laws/files/README.txt')
  t.is(small.status, 200, 'files fully held are served')
  t.is(small.text, fs.readFileSync(path.join(src, 'README.txt'), 'utf8'))
  const filePage = await timed('/datasets/laws/files/big/registry.bin')
  t.is(filePage.status, 200)
  t.ok(filePage.text.includes('still replicating'), 'the file page says so')
  const info = await timed('/api/datasets/register')
  t.is(info.json.dataset.complete, false)
  t.is(info.json.dataset.held, 60)
})

// ------------------------------------------------------------------ networked: a real mirror

interface Cluster {
  bootstrap: string[]
  agency: Daemon
  src: string
}

async function agencyWithData(t: Test): Promise<Cluster> {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agency = await startDaemon(t, agencyDir, bootstrap)
  const a = (await agency.host.agency()) as Agency
  await a.createDataset('register')
  await a.append('register', Array.from({ length: 50 }, (_, i) => ({ i, owner: `owner-${i}` })))
  await a.createDataset('laws', { kind: 'files' })
  const src = path.join(await t.tmp(), 'laws')
  makeTree(src, 1536 * 1024)
  await a.publish('laws', src)
  return { bootstrap, agency, src }
}

async function holdsAll(agencyDaemon: Daemon, embassyDaemon: Daemon): Promise<boolean> {
  const agency = (await agencyDaemon.host.agency()) as Agency
  const embassy = (await embassyDaemon.host.embassy()) as Embassy
  const want = new Map<string, number>([[toZ32(agency.catalog.key), agency.catalog.core.length]])
  for (const info of await agency.datasets.infos()) {
    const ds = await agency.datasets.open(info)
    if ('drive' in ds) {
      want.set(toZ32(ds.drive.core.key!), ds.drive.core.length)
      const blobs = await ds.drive.getBlobs()
      want.set(toZ32(blobs.core.key!), blobs.core.length)
    } else want.set(toZ32(ds.core.key!), ds.core.length)
  }
  const held = new Map(embassy.holdings().flatMap((h) => h.cores.map((c) => [c.key, c.contiguousLength] as const)))
  for (const [k, len] of want) if (held.get(k) !== len) return false
  return true
}

test('mirror: serves records and files read through an embassy, the agency stopped; provenance matches the agency', async (t) => {
  t.timeout(90_000)
  const c = await agencyWithData(t)
  const embDir = await initDir(t, 'embassy', 'embassy')
  const emb = await startDaemon(t, embDir, c.bootstrap)
  const agency = (await c.agency.host.agency()) as Agency
  await pair(c.agency, emb)
  await eventually('embassy holds everything', () => holdsAll(c.agency, emb))

  const log = await agency.datasets.openLog('register')
  const logKey = toZ32(log.core.key!)
  const treeHash = (await log.core.treeHash()).toString('hex')
  const capability = agency.capability()
  await c.agency.close()

  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const m = await startDaemon(t, mirrorDir, c.bootstrap)
  await pair(emb, m, { capability })
  const mirror = (await m.host.mirror()) as Mirror
  const gw = await startGateway(t, { reader: mirror, peers: () => m.network?.peers.size ?? 0, ready: () => m.opened })

  const recs = await eventually('records served', async () => {
    const r = await request(gw, '/api/datasets/register/records')
    return r.status === 200 && r.text.trimEnd().split('\n').length === 50 ? r : null
  }, 30_000, 200)
  t.is(recs.headers['x-embassy-core-key'], logKey, 'same core key as the agency')
  t.is(recs.headers['x-embassy-length'], '50')
  t.is(recs.headers['x-embassy-fork'], '0')
  t.is(recs.headers['x-embassy-tree-hash'], treeHash, 'same signed tree as the agency')
  t.ok(JSON.parse(recs.text.trimEnd().split('\n')[49] as string).text.includes('owner-49'), 'decrypted')

  const big = fs.readFileSync(path.join(c.src, 'big/registry.bin'))
  const file = await eventually('file served', async () => {
    const r = await request(gw, '/api/datasets/laws/files/big/registry.bin')
    return r.status === 200 ? r : null
  }, 30_000, 200)
  t.is(sha(file.body), sha(big), 'file byte-identical through the embassy')
  const part = await request(gw, '/api/datasets/laws/files/big/registry.bin', { headers: { Range: 'bytes=1048000-1049000' } })
  t.is(part.status, 206)
  t.ok(part.body.equals(big.subarray(1048000, 1049001)), 'range across a block boundary')

  const list = await request(gw, '/api/datasets')
  t.is(list.json.agencies[0].state, 'ready')
  t.is(list.json.agencies[0].catalog, mirror.sourceStatus()[0]?.catalogKey)
  const page = await request(gw, '/datasets/register/records/49')
  t.is(page.status, 200)
  t.ok(page.text.includes('owner-49'))
  const metrics = await request(gw, '/metrics')
  t.ok(/^embassy_peers [1-9]\d*$/m.test(metrics.text), 'peers counted')
  t.ok(/^embassy_dataset_length\{catalog="[^"]+",dataset="register",kind="log"\} 50$/m.test(metrics.text))
})

test('mirror: sources not reachable — 503 with a clear body quickly, never a hang; the page explains', async (t) => {
  t.timeout(60_000)
  const bootstrap = await testnet(t)
  const { host } = await openAgency(t) // offline: nobody can fetch from it
  const agency = await host.agency()
  await agency.createDataset('register')
  await agency.append('register', [{ a: 1 }])
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const m = await startDaemon(t, mirrorDir, bootstrap)
  const mirror = (await m.host.mirror()) as Mirror
  await mirror.add(agency.capability())
  const gw = await startGateway(t, { reader: mirror })

  for (const target of ['/api/datasets/register', '/api/datasets/register/records', '/api/datasets/register/records/0', '/api/datasets/register/files/a.txt', '/datasets/register']) {
    const started = Date.now()
    const r = await request(gw, target, { timeout: 60_000 })
    const ms = Date.now() - started
    t.is(r.status, 503, `${target}: 503`)
    t.is(r.json?.error?.code, 'NOT_REPLICATED', `${target}: NOT_REPLICATED`)
    t.ok(/not replicated/.test(r.json?.error?.message ?? ''), `${target}: says why (${r.json?.error?.message})`)
    t.is(r.headers['retry-after'], '5', `${target}: Retry-After`)
    t.ok(ms < BLOCK_WAIT_MS, `${target}: answered in ${ms} ms, without waiting for a block (no holder is reachable)`)
  }
  const list = await request(gw, '/api/datasets')
  t.is(list.status, 200)
  t.is(list.json.agencies[0].state, 'replicating')
  t.alike(list.json.datasets, [])
  const home = await request(gw, '/')
  t.is(home.status, 200)
  t.ok(home.text.includes('Not replicated yet'), 'the page says the agency is not replicated yet')
  const metrics = await request(gw, '/metrics')
  t.ok(/^embassy_agency_ready\{catalog="[^"]+"\} 0$/m.test(metrics.text))
})
