/**
 * Untrusted trees never write outside their target folder: hostile entries written straight into
 * an agency's Hyperdrive (links leaving the tree, files behind them, `..` and control characters
 * in names, unsafe dataset names), exported by a reader; and the one link policy that publish,
 * export and the gateway share (relative links inside the tree only).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import test from 'brittle'
import { Gateway, type Agency } from '../lib/index.js'
import { DatasetKind } from '../protocol/index.js'
import { cli, initDir, openAgency, pair, startDaemon, testnet, eventually, type Test } from './helpers/index.js'

const require = createRequire(import.meta.url)
const SubEncoder = require('sub-encoder') as new (prefix: string, enc: string) => unknown
/** Hyperdrive's own key encoding: entries put through it skip Hyperdrive's path normalisation. */
const driveKeys = new SubEncoder('files', 'utf-8')

/** Every path under `dir` (links not followed), relative, sorted. */
function walk(dir: string): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    out.push(path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
  }
  return out.sort()
}

/**
 * An agency whose files dataset `laws` holds a hostile tree, written entry by entry as a hostile
 * agency could: /docs -> ../victim (leaves DIR), /docs/pwned.txt behind it, an absolute link, a
 * relative in-tree link, and raw index entries named /../../escape.txt and /bad\nname.txt.
 */
async function hostileAgency(t: Test): Promise<{ agency: Agency; dir: string }> {
  const { host, dir } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const files = await agency.datasets.openFiles('laws')
  const drive = files.drive
  await drive.put('/sub/a.txt', Buffer.from('inside'))
  await drive.symlink('/docs', '../victim')
  await drive.put('/docs/pwned.txt', Buffer.from('PWNED'))
  await drive.symlink('/abs', '/etc/hostname')
  await drive.symlink('/ok-link', 'sub/a.txt')
  const donor = await drive.entry('/sub/a.txt')
  const value = { executable: false, linkname: null, blob: donor!.value.blob, metadata: null }
  for (const key of ['/../../escape.txt', '/bad\nname.txt']) await drive.db.put(key, value, { keyEncoding: driveKeys } as never)
  return { agency, dir }
}

test('export: a hostile tree writes nothing outside DIR; what is left out is reported', async (t) => {
  const { agency } = await hostileAgency(t)
  const base = await t.tmp()
  const out = path.join(base, 'out', 'deeper', 'export')
  const victim = path.join(out, '..', 'victim') // where /docs -> ../victim points from DIR
  fs.mkdirSync(victim, { recursive: true })
  const r = await agency.datasets.export('laws', out)

  t.alike(fs.readdirSync(victim), [], 'nothing was written into the victim folder')
  t.absent(fs.existsSync(path.join(base, 'out', 'escape.txt')), 'no /../../escape.txt outside DIR')
  for (const p of walk(out)) {
    const full = path.join(out, p)
    const st = fs.lstatSync(full)
    if (st.isSymbolicLink()) {
      const real = fs.realpathSync(full)
      t.ok(real.startsWith(fs.realpathSync(out) + path.sep), `link ${p} resolves inside DIR (${real})`)
    }
  }
  t.is(fs.readFileSync(path.join(out, 'sub', 'a.txt'), 'utf8'), 'inside', 'a safe file is exported')
  t.is(fs.readlinkSync(path.join(out, 'ok-link')), 'sub/a.txt', 'a relative link inside the tree is recreated as it was')
  t.is(fs.readFileSync(path.join(out, 'ok-link'), 'utf8'), 'inside')
  t.absent(fs.existsSync(path.join(out, 'abs')), 'the absolute link is not created (not even rewritten into DIR)')
  t.absent(fs.existsSync(path.join(out, 'etc')), 'no DIR/etc/hostname rewrite')
  t.is(fs.lstatSync(path.join(out, 'docs')).isDirectory(), true, '/docs is a real folder in DIR (its file went there, not through the link)')
  t.is(fs.readFileSync(path.join(out, 'docs', 'pwned.txt'), 'utf8'), 'PWNED')

  const skipped = new Map((r.skipped ?? []).map((s) => [s.path, s.reason]))
  t.ok(skipped.has('/docs') && /leaves the tree/.test(skipped.get('/docs')!), `the link out is reported: ${skipped.get('/docs')}`)
  t.ok(skipped.has('/abs') && /absolute/.test(skipped.get('/abs')!), 'the absolute link is reported')
  t.ok(skipped.has('/../../escape.txt'), 'the .. entry is reported')
  t.ok(skipped.has('/bad?name.txt'), 'the control-character entry is reported (printably)')
  t.is(r.skippedCount, 4)
  t.is(r.files, 2, 'files written: /sub/a.txt and /docs/pwned.txt')
  t.is(r.links, 1)
})

test('export: links and files already in DIR are never written through', async (t) => {
  const { agency } = await hostileAgency(t)
  const base = await t.tmp()
  const victim = path.join(base, 'victim')
  fs.mkdirSync(victim)
  const out = path.join(base, 'export')
  fs.mkdirSync(out)
  // A link planted in DIR before the export (by an earlier export of an older tool, or anyone).
  fs.symlinkSync(victim, path.join(out, 'sub'))
  fs.symlinkSync(path.join(victim, 'x'), path.join(out, 'docs'))
  const r = await agency.datasets.export('laws', out)
  t.alike(fs.readdirSync(victim), [], 'nothing written into the victim folder through links in DIR')
  const skipped = new Map((r.skipped ?? []).map((s) => [s.path, s.reason]))
  t.ok(/is a link/.test(skipped.get('/sub/a.txt') ?? ''), `a file below a link in DIR is skipped: ${skipped.get('/sub/a.txt')}`)
  t.ok(/is a link/.test(skipped.get('/docs/pwned.txt') ?? ''), 'and so is /docs/pwned.txt')
})

test('export: a dataset name that is not a safe file name is refused on the reading side', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  // A hostile agency seals any name it likes; the writer's own name check is bypassed here.
  const id = crypto.randomBytes(16)
  await agency.catalog.add(id, DatasetKind.LOG, [crypto.randomBytes(32)], { name: '../../evil', description: '', contentType: 'application/json' }, agency.readKey)
  const base = await t.tmp()
  const out = path.join(base, 'a', 'b')
  let code = null
  try {
    await agency.datasets.export('../../evil', out)
  } catch (err) {
    code = (err as { code?: string }).code
  }
  t.ok(code === 'UNKNOWN_DATASET' || code === 'UNSAFE_PATH', `refused (${code})`)
  t.absent(fs.existsSync(path.join(base, 'evil.ndjson')), 'nothing written outside DIR')
  t.ok(agency.catalog.problems.some((p) => /not a safe name/.test(p.error)), 'reported as a catalog problem')
})

test('links: publish keeps relative links inside the folder, rewrites absolute ones inside it, and reports the rest', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  await agency.createDataset('laws', { kind: 'files' })
  const base = await t.tmp()
  const src = path.join(base, 'src')
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true })
  fs.writeFileSync(path.join(src, 'sub', 'a.txt'), 'inside')
  fs.writeFileSync(path.join(base, 'secret.txt'), 'outside')
  fs.symlinkSync('sub/a.txt', path.join(src, 'rel'))
  fs.symlinkSync(path.join(src, 'sub', 'a.txt'), path.join(src, 'abs-inside'))
  fs.symlinkSync('/etc/hostname', path.join(src, 'abs-outside'))
  fs.symlinkSync('../secret.txt', path.join(src, 'rel-outside'))
  const r = await agency.publish('laws', src)
  const skipped = new Map((r.skipped ?? []).map((s) => [s.path, s.reason]))
  t.alike([...skipped.keys()].sort(), ['/abs-outside', '/rel-outside'], 'links leaving the folder are not published, and reported')
  const drive = (await agency.datasets.openFiles('laws')).drive
  t.is((await drive.entry('/rel'))?.value.linkname, 'sub/a.txt')
  t.is((await drive.entry('/abs-inside'))?.value.linkname, 'sub/a.txt', 'an absolute link inside the folder becomes relative')
  t.is(await drive.entry('/abs-outside'), null)

  // Export and the gateway agree with what was published.
  const out = path.join(base, 'out')
  const e = await agency.datasets.export('laws', out)
  t.is(e.skippedCount, 0)
  t.is(fs.readlinkSync(path.join(out, 'abs-inside')), 'sub/a.txt')
  t.is(fs.readFileSync(path.join(out, 'abs-inside'), 'utf8'), 'inside')
  t.absent(fs.existsSync(path.join(out, 'etc')))

  const gw = new Gateway({ reader: agency.datasets })
  t.teardown(() => gw.close())
  await gw.ready()
  const served = await fetch(`${gw.url}/api/datasets/laws/files/abs-inside`)
  t.is(served.status, 200, 'the gateway serves a relative link inside the dataset')
  t.is(await served.text(), 'inside')
  const listing = (await (await fetch(`${gw.url}/api/datasets/laws/files/`)).json()) as { entries: Array<{ name: string; type: string; target?: string | null }> }
  t.is(listing.entries.find((x) => x.name === 'rel')?.target, '/sub/a.txt', 'a link is listed with its target')
})

test('links: the gateway serves in-tree relative links like a file system and refuses the others clearly', async (t) => {
  const { agency } = await hostileAgency(t)
  const gw = new Gateway({ reader: agency.datasets })
  t.teardown(() => gw.close())
  await gw.ready()
  const ok = await fetch(`${gw.url}/api/datasets/laws/files/ok-link`)
  t.is(ok.status, 200)
  t.is(await ok.text(), 'inside', '/ok-link -> sub/a.txt resolves from the link\'s folder')
  for (const p of ['abs', 'docs']) {
    const r = await fetch(`${gw.url}/api/datasets/laws/files/${p}`)
    const body = (await r.json()) as { error: { code: string; message: string } }
    t.is(r.status, 404, `/${p}: 404`)
    t.ok(/not served/.test(body.error.message), `/${p}: says why (${body.error.message})`)
  }
  const listing = (await (await fetch(`${gw.url}/api/datasets/laws/files/`)).json()) as { entries: Array<{ name: string; target?: string | null }> }
  t.is(listing.entries.find((x) => x.name === 'abs')?.target, null, 'a link that is not served is listed with target null')
})

test('export: a mirror exporting a hostile tree through the CLI reports what it left out (--json and text)', { timeout: 120_000 }, async (t) => {
  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agencyD = await startDaemon(t, agencyDir, bootstrap)
  const agency = (await agencyD.host.agency()) as Agency
  await agency.createDataset('laws', { kind: 'files' })
  const drive = (await agency.datasets.openFiles('laws')).drive
  await drive.put('/sub/a.txt', Buffer.from('inside'))
  await drive.symlink('/docs', '../../../victim')
  await drive.put('/docs/pwned.txt', Buffer.from('PWNED'))
  const mirrorDir = await initDir(t, 'mirror', 'mirror')
  const mirrorD = await startDaemon(t, mirrorDir, bootstrap)
  await pair(agencyD, mirrorD)
  const mirror = await mirrorD.host.mirror()
  await eventually('the mirror holds the tree', async () => {
    const files = await mirror.openFiles('laws')
    return files.drive.blobs && files.drive.core.contiguousLength === drive.core.length && files.drive.blobs.core.contiguousLength === drive.blobs!.core.length
  })
  const base = await t.tmp()
  const out = path.join(base, 'a', 'b', 'c')
  const json = await cli(['export', 'laws', out, '--json', '--dir', mirrorDir])
  t.is(json.code, 0, json.stderr)
  const doc = JSON.parse(json.stdout) as { files: number; bytes: number; path: string; kind: string; skipped: Array<{ path: string; reason: string }>; skippedCount: number }
  t.is(doc.kind, 'files')
  t.is(typeof doc.bytes, 'number', 'the existing fields stay')
  t.is(doc.skippedCount, 1)
  t.is(doc.skipped[0]?.path, '/docs')
  t.absent(fs.existsSync(path.join(base, 'victim')), 'nothing outside DIR')
  const text = await cli(['export', 'laws', out, '--dir', mirrorDir])
  t.is(text.code, 0)
  t.ok(/skipped 1 entry/.test(text.stdout + text.stderr) && /\/docs: link target/.test(text.stdout + text.stderr), `the text output lists it: ${text.stdout}`)
})
