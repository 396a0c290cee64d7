/**
 * `embassy drill` (continuity drills with signed evidence) through the real CLI: an agency and two
 * embassies as separate processes; a drill from the kit and from a read capability, each against
 * one embassy; the signed report verified offline (and an altered one refused); an embassy missing
 * blocks fails the drill naming the dataset; the agency's files are byte-identical before and after;
 * bad input (kit, passphrase, capability, --embassy) is refused clearly, leaving nothing behind.
 * (test/drill.test.ts is the kit-restore drill, a different thing.)
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import test from 'brittle'
import { EmbassyNode, parseKey } from '../lib/index.js'
import { cli, cliOk, eventually, pairDirs, spawnBootstrap, spawnRun } from './helpers/index.js'

const PASS = { EMBASSY_PASSPHRASE: 'correct horse battery staple' }

/**
 * The custody history (custody-series.json) is sampled by the clock, every minute, whatever happens:
 * it is not compared (custody.json, audits and alarms it is sampled from are).
 */
const CLOCK_SAMPLED = new Set(['custody-series.json'])

/** sha256 of every regular file under `dir`, by relative path (sockets and the like skipped). */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile() && !CLOCK_SAMPLED.has(path.relative(dir, p))) out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')
    }
  }
  walk(dir)
  return out
}

/** Paths whose hashes differ (or exist on one side only). */
function changed(a: Record<string, string>, b: Record<string, string>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort()
}

/** Scratch directories of drills in the temp folder. */
function scratchDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('embassy-drill-'))
}

test('drill: kit and capability drills against one of two embassies: signed report with RTO/RPO, verified offline; agency untouched; an embassy missing blocks fails naming the dataset', async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const agencyDir = path.join(root, 'agency')
  const aDir = path.join(root, 'emb-a')
  const bDir = path.join(root, 'emb-b')
  const out = path.join(root, 'reports')
  fs.mkdirSync(out)
  const kit = path.join(root, 'agency.kit')
  const boot = ['--bootstrap', bootstrap.join(',')]
  await cliOk(['init', '--role', 'agency', '--name', 'Treasury', '--dir', agencyDir, ...boot])
  await cliOk(['init', '--role', 'embassy', '--dir', aDir, ...boot])
  await cliOk(['init', '--role', 'embassy', '--dir', bDir, ...boot])
  const agencyId = (await cliOk(['id', '--dir', agencyDir, '--json'])).json
  const aId = (await cliOk(['id', '--dir', aDir, '--json'])).json
  const bId = (await cliOk(['id', '--dir', bDir, '--json'])).json
  await cliOk(['dataset', 'create', 'ledger', '--dir', agencyDir])
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ entry: i, note: 'x'.repeat(i % 50) }))
  await cliOk(['append', 'ledger', '--dir', agencyDir], { input: lines.join('\n') + '\n' })
  await cliOk(['dataset', 'create', 'laws', '--kind', 'files', '--dir', agencyDir])
  const src = path.join(root, 'laws-src')
  fs.mkdirSync(path.join(src, 'civil'), { recursive: true })
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(src, 'civil', `law-${i}.txt`), `Article ${i}\n`.repeat(200 + i))
  await cliOk(['publish', 'laws', src, '--dir', agencyDir])
  await pairDirs({ dir: agencyDir, nodeKey: agencyId.nodeKey }, { dir: aDir, nodeKey: aId.nodeKey })
  await pairDirs({ dir: agencyDir, nodeKey: agencyId.nodeKey }, { dir: bDir, nodeKey: bId.nodeKey })
  await cliOk(['kit', 'export', '--out', kit, '--kdf', 'moderate', '--dir', agencyDir, '--json'], { env: PASS })
  const listed = (await cliOk(['list', '--dir', agencyDir, '--json'])).json.datasets as Array<{ name: string; cores: string[]; length: number }>
  const ledgerCore = listed.find((d) => d.name === 'ledger')!.cores[0]!

  // The drill's key, admitted once on each embassy (like a mirror, scoped to this agency).
  const shown = await cliOk(['drill', '--kit', kit, '--show-key', '--json'], { env: PASS })
  t.is(shown.json.agency, agencyId.nodeKey)
  t.ok(typeof shown.json.drillKey === 'string' && shown.json.drillKey !== agencyId.nodeKey, 'the drill has its own key, not the agency\'s')
  const shownAgain = await cliOk(['drill', '--kit', kit, '--show-key', '--json'], { env: PASS })
  t.is(shownAgain.json.drillKey, shown.json.drillKey, 'the drill key is stable (derived from the kit)')
  t.is(shownAgain.json.signer, shown.json.signer, 'so is the kit\'s report signing key')
  await cliOk(['allow', shown.json.drillKey, '--agency', agencyId.nodeKey, '--dir', aDir, '--json'])
  await cliOk(['allow', shown.json.drillKey, '--agency', agencyId.nodeKey, '--dir', bDir, '--json'])

  const agency = await spawnRun(t, agencyDir, bootstrap)
  const embA = await spawnRun(t, aDir, bootstrap)
  const embB = await spawnRun(t, bDir, bootstrap)
  await eventually(
    'both embassies hold every dataset, proven by receipts, and passed their first audits',
    async () => {
      const s = (await cli(['status', '--dir', agencyDir, '--json'])).json
      const rows = (s?.datasets ?? []).flatMap((d: { embassies?: unknown[] }) => d.embassies ?? []) as Array<{ nodeKey: string; behindBlocks: number; held?: boolean; audit?: { state: string } }>
      return rows.length === 4 && rows.every((e) => e.behindBlocks === 0 && e.audit?.state === 'passed')
    },
    120_000,
    250
  )
  // Production files at rest: wait until the agency has nothing left to write (receipts and first
  // audits are in), then hash them.
  let before = hashTree(agencyDir)
  await eventually(
    'the agency\'s files settle',
    async () => {
      await new Promise((r) => setTimeout(r, 2000))
      const now = hashTree(agencyDir)
      const same = JSON.stringify(now) === JSON.stringify(before)
      before = now
      return same
    },
    60_000,
    0
  )
  const scratchBefore = scratchDirs()

  // 1. A drill from the kit, against an embassy picked at random.
  const run1 = await cli(['drill', '--kit', kit, '--out', out, '--json'], { env: PASS, timeout: 180_000 })
  t.is(run1.code, 0, run1.stderr.slice(-2000))
  const r = run1.json
  t.ok(r.ok, 'the drill passed')
  t.ok([aId.nodeKey, bId.nodeKey].includes(r.embassy), 'rebuilt from one of the two embassies')
  t.ok(Number.isInteger(r.rto.firstRecordMs) && r.rto.firstRecordMs > 0, `time to first record: ${r.rto.firstRecordMs} ms`)
  t.ok(Number.isInteger(r.rto.fullCopyMs) && r.rto.fullCopyMs >= r.rto.firstRecordMs, `time to full copy: ${r.rto.fullCopyMs} ms`)
  t.is(r.rpo.blocksBehind, 0, 'the embassy is not behind the newest head known')
  t.is(r.rpo.secondsBehind, 0)
  t.ok(r.rpo.checkedHeads > 0, `${r.rpo.checkedHeads} witnessed heads received and checked (witness and agency signatures)`)
  t.ok(!Number.isNaN(Date.parse(r.startedAt)) && !Number.isNaN(Date.parse(r.finishedAt)) && Date.parse(r.finishedAt) >= Date.parse(r.startedAt), 'startedAt/finishedAt are ISO times')
  const ledger = r.datasets.find((d: { name: string }) => d.name === 'ledger')
  const laws = r.datasets.find((d: { name: string }) => d.name === 'laws')
  t.alike({ ok: ledger.ok, length: ledger.length, fetched: ledger.fetched }, { ok: true, length: 300, fetched: 300 }, 'every ledger record fetched')
  t.ok(ledger.bytes > 0)
  t.ok(laws.ok && laws.fetched === laws.length && laws.length > 0 && laws.bytes > 0, 'the file tree fetched whole')
  t.ok(r.sampled > 0, `${r.sampled} records/files decrypted and checked`)
  t.is(r.signer, shown.json.signer, 'signed with the kit\'s drill key')
  t.ok(/^[0-9a-f]{128}$/.test(r.signature))
  t.ok(fs.existsSync(r.reportFile) && path.dirname(r.reportFile) === out && /drill-.*\.json$/.test(r.reportFile), 'report written to --out')
  t.alike(JSON.parse(fs.readFileSync(r.reportFile, 'utf8')), r, 'the file is the printed report')
  const html = fs.readFileSync(r.reportFile.replace(/\.json$/, '.html'), 'utf8')
  t.ok(html.includes('<table') && html.includes('ledger') && html.includes('PASSED'), 'a human-readable page beside it')
  t.absent(/<script|<link|src=|https?:\/\//i.test(html), 'no script, no external asset')
  t.comment(`drill from kit: first record ${r.rto.firstRecordMs} ms, full copy ${r.rto.fullCopyMs} ms, ${r.bytes} bytes from ${r.embassy}`)

  // The agency is untouched: same cores, same custody/audit/ledger files; no scratch left.
  t.alike(changed(hashTree(agencyDir), before), [], 'the agency\'s files (cores, custody, audits) are byte-identical after the drill')
  t.alike(scratchDirs(), scratchBefore, 'the scratch directory is gone')
  t.absent(agency.events.some((e) => e.event === 'second-live-node'), 'the agency saw no second live node')

  // 2. Offline verification; an altered report is refused.
  const ok = await cli(['drill', '--verify', r.reportFile, '--json'])
  t.is(ok.code, 0, ok.stderr)
  t.is(ok.json.signer, r.signer, 'prints the signer')
  const okText = await cli(['drill', '--verify', r.reportFile])
  t.is(okText.code, 0)
  t.ok(okText.stdout.includes(r.signer), 'human text names the signer')
  const altered = path.join(root, 'altered.json')
  fs.writeFileSync(altered, JSON.stringify({ ...r, rpo: { ...r.rpo, blocksBehind: 0, secondsBehind: 1 } }))
  const bad = await cli(['drill', '--verify', altered, '--json'])
  t.is(bad.code, 1, 'an altered report fails verification')
  t.ok(/altered/.test(bad.json.error), bad.json.error)
  const resigned = path.join(root, 'resigned.json')
  fs.writeFileSync(resigned, JSON.stringify({ ...r, signature: 'ab'.repeat(64) }))
  t.is((await cli(['drill', '--verify', resigned])).code, 1, 'a forged signature fails')

  // 3. From a read capability, pinned to embassy A: signed with a fresh key named in the report.
  const cap = path.join(root, 'read-capability.txt')
  fs.writeFileSync(cap, (await cliOk(['capability', '--dir', agencyDir, '--json'])).json.readCapability + '\n')
  const run2 = await cli(['drill', '--capability-file', cap, '--embassy', aId.nodeKey, '--bootstrap', bootstrap.join(','), '--out', out, '--json'], { timeout: 180_000 })
  t.is(run2.code, 0, run2.stderr.slice(-2000))
  t.is(run2.json.embassy, aId.nodeKey, 'rebuilt from the embassy asked for')
  t.is(run2.json.signerKind, 'fresh')
  t.not(run2.json.signer, r.signer, 'a fresh signing key')
  t.is(run2.json.drillKey, shown.json.drillKey, 'the same drill identity as the kit\'s (admitted once)')
  t.is((await cli(['drill', '--verify', run2.json.reportFile])).code, 0)

  // 3b. Scheduled drills in a running node (`embassy run --schedule`): reports kept in DIR/drills/, metrics exported.
  const mDir = path.join(root, 'mirror')
  await cliOk(['init', '--role', 'mirror', '--dir', mDir, ...boot])
  const scheduled = await spawnRun(t, mDir, bootstrap, ['--schedule', '2s', '--drill-capability', cap, '--http', '127.0.0.1:0'])
  const passed = await scheduled.waitEvent((e) => e.event === 'drill-passed', 120_000)
  t.ok(fs.existsSync(passed.report) && path.dirname(passed.report) === path.join(mDir, 'drills'), `scheduled report kept in DIR/drills/: ${passed.report}`)
  t.ok(fs.existsSync(passed.report.replace(/\.json$/, '.html')), 'with its page')
  t.is((await cli(['drill', '--verify', passed.report])).code, 0, 'and it verifies')
  const url = (await scheduled.waitEvent((e) => e.event === 'http')).url as string
  const scrape = await (await fetch(`${url}/metrics`)).text()
  t.ok(/^embassy_drill_last_ok 1$/m.test(scrape), 'embassy_drill_last_ok 1')
  const at = Number(/^embassy_drill_last_timestamp_seconds (\S+)$/m.exec(scrape)?.[1])
  t.ok(at > 0 && Math.abs(at - Date.now() / 1000) < 600, `embassy_drill_last_timestamp_seconds ${at}`)
  t.ok(/^embassy_drill_rto_first_record_seconds [0-9.]+$/m.test(scrape), 'embassy_drill_rto_first_record_seconds')
  t.ok(/^embassy_drill_rpo_blocks 0$/m.test(scrape), 'embassy_drill_rpo_blocks 0')
  t.is(await scheduled.stop(), 0, 'the node stops cleanly with drills scheduled')
  t.absent(fs.readdirSync(mDir).some((n) => n.startsWith('embassy-drill-')), 'no scratch in the node directory')

  // 4. An --embassy the kit's agency does not list: refused before going online.
  const stranger = crypto.randomBytes(32).toString('hex')
  const unknown = await cli(['drill', '--kit', kit, '--embassy', stranger, '--out', out, '--json'], { env: PASS })
  t.is(unknown.code, 2)
  t.is(unknown.json.error.code, 'BAD_ARGUMENT')
  t.ok(/not one of the embassies/.test(unknown.json.error.message), unknown.json.error.message)

  // 5. Embassy B loses blocks of the ledger; with the agency and A down it cannot refill them.
  t.alike(changed(hashTree(agencyDir), before), [], 'still byte-identical after every drill')
  await agency.stop()
  await embA.stop()
  await embB.stop()
  const node = new EmbassyNode(bDir)
  await node.ready()
  const core = node.store.get({ key: parseKey(ledgerCore) })
  await core.ready()
  t.is(core.contiguousLength, 300, 'B held the whole ledger')
  await core.clear(120, 180)
  await core.close()
  await node.close()
  await spawnRun(t, bDir, bootstrap)
  const reports = fs.readdirSync(out).length
  const run3 = await cli(['drill', '--kit', kit, '--embassy', bId.nodeKey, '--out', out, '--json'], { env: PASS, timeout: 180_000 })
  t.is(run3.code, 1, 'the drill fails')
  t.is(run3.json.ok, false)
  t.is(run3.json.embassy, bId.nodeKey)
  const bLedger = run3.json.datasets.find((d: { name: string }) => d.name === 'ledger')
  t.is(bLedger.ok, false, 'the ledger failed')
  t.ok(/missing blocks: 60 of 300 block\(s\)/.test(bLedger.error), `named why: ${bLedger.error}`)
  t.is(bLedger.fetched, 240, 'every block B still has was fetched')
  t.ok(run3.json.datasets.find((d: { name: string }) => d.name === 'laws').ok, 'the other dataset passed')
  t.is(run3.json.rto.fullCopyMs, null, 'no full copy')
  t.is(fs.readdirSync(out).length, reports + 2, 'the failed drill left its signed report too')
  t.is((await cli(['drill', '--verify', run3.json.reportFile])).code, 0)
  const text = await cli(['drill', '--verify', run3.json.reportFile])
  t.ok(/FAILED/.test(text.stdout), 'verify says the drill it proves failed')
  t.alike(scratchDirs(), scratchBefore, 'no scratch left')

  // 6. No embassy reachable at all: exit 3.
  const none = await cli(['drill', '--kit', kit, '--embassy', aId.nodeKey, '--timeout', '3', '--out', out, '--json'], { env: PASS, timeout: 120_000 })
  t.is(none.code, 3, 'embassy A is down: unreachable')
  t.is(none.json.embassy, null)
  t.ok(/not reachable/.test(none.json.error), none.json.error)
})

test('drill: bad input — missing or garbled kit, wrong passphrase, damaged capability, bad keys — a clear error, nothing written', async (t) => {
  const root = await t.tmp()
  const dir = path.join(root, 'agency')
  const out = path.join(root, 'out')
  fs.mkdirSync(out)
  await cliOk(['init', '--role', 'agency', '--dir', dir, '--bootstrap', '127.0.0.1:9'])
  const kit = path.join(root, 'a.kit')
  await cliOk(['kit', 'export', '--out', kit, '--kdf', 'moderate', '--dir', dir], { env: PASS })
  const embDir = path.join(root, 'embassy')
  await cliOk(['init', '--role', 'embassy', '--dir', embDir, '--bootstrap', '127.0.0.1:9'])
  const embKit = path.join(root, 'emb.kit')
  await cliOk(['kit', 'export', '--out', embKit, '--kdf', 'moderate', '--dir', embDir], { env: PASS })
  const garbled = path.join(root, 'garbled.kit')
  fs.writeFileSync(garbled, fs.readFileSync(kit, 'utf8').slice(0, 200))
  const cap = (await cliOk(['capability', '--dir', dir, '--json'])).json.readCapability as string
  const damagedCap = path.join(root, 'cap.txt')
  // One character changed: the checksum catches it.
  const i = cap.length - 5
  fs.writeFileSync(damagedCap, cap.slice(0, i) + (cap[i] === 'y' ? 'b' : 'y') + cap.slice(i + 1))
  const scratchBefore = scratchDirs()
  const cases: Array<{ what: string; args: string[]; env?: Record<string, string>; code: number; error: string }> = [
    { what: 'missing kit', args: ['--kit', path.join(root, 'nope.kit')], env: PASS, code: 1, error: 'BAD_INPUT' },
    { what: 'garbled kit', args: ['--kit', garbled], env: PASS, code: 1, error: 'BAD_INPUT' },
    { what: 'wrong passphrase', args: ['--kit', kit], env: { EMBASSY_PASSPHRASE: 'not the passphrase at all' }, code: 1, error: 'BAD_INPUT' },
    { what: 'damaged capability', args: ['--capability-file', damagedCap], code: 2, error: 'BAD_CAPABILITY' },
    { what: 'kit and capability', args: ['--kit', kit, '--capability-file', damagedCap], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: 'neither', args: [], code: 2, error: 'BAD_ARGUMENT' },
    { what: 'a garbage --embassy', args: ['--kit', kit, '--embassy', 'not-a-key'], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: 'an --embassy the kit does not list', args: ['--kit', kit, '--embassy', crypto.randomBytes(32).toString('hex')], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: 'a bad --timeout', args: ['--kit', kit, '--timeout', '0'], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: 'the kit of an embassy, not an agency', args: ['--kit', embKit], env: PASS, code: 2, error: 'BAD_ARGUMENT' }
  ]
  for (const c of cases) {
    const res = await cli(['drill', ...c.args, '--out', out, '--json'], { env: c.env ?? {} })
    t.is(res.code, c.code, `${c.what}: exit ${c.code}`)
    t.is(res.json?.error?.code, c.error, `${c.what}: ${res.json?.error?.message ?? res.stderr}`)
  }
  t.alike(fs.readdirSync(out), [], 'no report written')
  t.alike(scratchDirs(), scratchBefore, 'no scratch directory left')

  // `embassy run --schedule`: a bad interval, or no kit/capability, is a usage error before anything starts.
  for (const args of [['--schedule', '5x', '--drill-kit', kit], ['--schedule', '1h'], ['--drill-kit', kit], ['--schedule', '0s', '--drill-kit', kit]]) {
    const res = await cli(['run', '--dir', dir, ...args, '--json'], { env: PASS })
    t.is(res.code, 2, `run ${args.join(' ')}: exit 2 (${res.json?.error?.message})`)
  }

  // --verify on things that are not reports.
  const notJson = path.join(root, 'x.json')
  fs.writeFileSync(notJson, '{"format":"data-embassy/drill-report"')
  const v1 = await cli(['drill', '--verify', notJson, '--json'])
  t.is(v1.code, 1)
  t.is(v1.json.ok, false)
  const v2 = await cli(['drill', '--verify', path.join(root, 'missing.json'), '--json'])
  t.is(v2.code, 1)
  t.is(v2.json.error.code, 'BAD_INPUT')
  const other = path.join(root, 'other.json')
  fs.writeFileSync(other, JSON.stringify({ format: 'something-else', signer: 'x', signature: 'y' }))
  const v3 = await cli(['drill', '--verify', other, '--json'])
  t.is(v3.code, 1)
  t.ok(/not a drill report/.test(v3.json.error), v3.json.error)
})
