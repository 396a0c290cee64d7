/**
 * `embassy drill` (continuity drills with signed evidence) through the real CLI: an agency and two
 * embassies as separate processes; a drill from the kit, from shares of the kit and from a read
 * capability, each against one embassy; the signed report verified offline (and an altered one
 * refused); the last drill in `embassy status` and /api/status; an embassy genuinely behind (the
 * agency appended what it does not have) gives a non-zero RPO; an embassy missing blocks fails the
 * drill naming the dataset; the agency's files are byte-identical before and after; bad input
 * (kit, shares, passphrase, capability, --embassy) is refused clearly, leaving nothing behind.
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

test('drill: kit, shares and capability drills against one of two embassies: signed report with RTO/RPO, verified offline; last drill in status; agency untouched; a behind embassy gives a non-zero RPO; one missing blocks fails naming the dataset', { timeout: 600_000 }, async (t) => {
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
  const sharesBase = path.join(root, 'agency-shares.kit')
  await cliOk(['kit', 'export', '--out', sharesBase, '--shares', '2/3', '--dir', agencyDir, '--json'])
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

  // 3a. From 2 of the 3 shares of the agency's kit, pinned to embassy B: the kit's drill key signs.
  const run4 = await cli(['drill', '--share', `${sharesBase}.1`, '--share', `${sharesBase}.3`, '--embassy', bId.nodeKey, '--out', out, '--json'], { timeout: 180_000 })
  t.is(run4.code, 0, run4.stderr.slice(-2000))
  t.ok(run4.json.ok, 'the drill from shares passed')
  t.is(run4.json.source, 'shares')
  t.is(run4.json.embassy, bId.nodeKey, 'rebuilt from the embassy asked for')
  t.alike(run4.json.datasets.map((d: { name: string; ok: boolean; fetched: number; length: number }) => d.ok && d.fetched === d.length), [true, true], 'every dataset fetched whole')
  t.is(run4.json.signer, r.signer, 'signed with the same drill key as from the passphrase kit')
  t.is(run4.json.signerKind, 'kit')
  t.is(run4.json.drillKey, shown.json.drillKey, 'the same drill identity (admitted once)')
  t.is((await cli(['drill', '--verify', run4.json.reportFile])).code, 0)

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
  // The last drill in `embassy status` (JSON and text) and /api/status: the report it names, summarised.
  // (Drills run every 2 s here, so the one shown may be newer than the first: compare with its own file.)
  const sameAsReport = (last: Record<string, any>, what: string): void => {
    t.ok(typeof last?.reportFile === 'string' && path.dirname(last.reportFile) === path.join(mDir, 'drills'), `${what}: names a report in DIR/drills/ (${last?.reportFile})`)
    const rep = JSON.parse(fs.readFileSync(last.reportFile, 'utf8'))
    t.alike(
      { ok: last.ok, embassy: last.embassy, finishedAt: last.finishedAt, at: last.at, firstRecordMs: last.firstRecordMs, fullCopyMs: last.fullCopyMs, blocksBehind: last.blocksBehind, secondsBehind: last.secondsBehind },
      { ok: rep.ok, embassy: rep.embassy, finishedAt: rep.finishedAt, at: Math.floor(Date.parse(rep.finishedAt) / 1000), firstRecordMs: rep.rto.firstRecordMs, fullCopyMs: rep.rto.fullCopyMs, blocksBehind: rep.rpo.blocksBehind, secondsBehind: rep.rpo.secondsBehind },
      `${what}: time, ok, RTO and RPO as in the report`
    )
    t.ok(Date.parse(last.finishedAt) >= Date.parse(JSON.parse(fs.readFileSync(passed.report, 'utf8')).finishedAt), `${what}: no older than the drill that passed`)
  }
  const st = await cliOk(['status', '--dir', mDir, '--json'])
  t.is(st.json.drill?.intervalMs, 2000, 'status --json: the schedule (every 2 s)')
  t.ok(st.json.drill.running || st.json.drill.nextAt > 0, 'a drill running or the next one due')
  sameAsReport(st.json.drill.last, 'status --json')
  const stText = await cliOk(['status', '--dir', mDir])
  t.ok(/^drills every 2 s/m.test(stText.stdout), 'status text: the schedule')
  const lastLine = /^last drill: (PASSED|FAILED) (\S+) .*embassy (\S+)\n {2}RTO first record (\d+) ms, full copy (\d+) ms; RPO (\d+) block\(s\) \/ (\d+) s behind\n(?: {2}why: .*\n)? {2}report (\S+)$/m.exec(stText.stdout)
  t.ok(lastLine, `status text: the last drill, its RTO, RPO and report\n${stText.stdout}`)
  if (lastLine) {
    const rep = JSON.parse(fs.readFileSync(lastLine[8]!, 'utf8'))
    t.alike(lastLine.slice(1, 8), [rep.ok ? 'PASSED' : 'FAILED', rep.finishedAt, `${rep.embassy.slice(0, 8)}…${rep.embassy.slice(-4)}`, String(rep.rto.firstRecordMs), String(rep.rto.fullCopyMs), String(rep.rpo.blocksBehind), String(rep.rpo.secondsBehind)], 'status text: as in the report it names')
  }
  const api = (await (await fetch(`${url}/api/status`)).json()) as { node?: { drill?: Record<string, any> } }
  t.is(api.node?.drill?.intervalMs, 2000, '/api/status: the schedule')
  sameAsReport(api.node?.drill?.last, '/api/status')
  t.is(await scheduled.stop(), 0, 'the node stops cleanly with drills scheduled')
  const stopped = await cliOk(['status', '--dir', mDir, '--json'])
  t.is(stopped.json.running, false)
  t.alike({ intervalMs: stopped.json.drill?.intervalMs, running: stopped.json.drill?.running, nextAt: stopped.json.drill?.nextAt }, { intervalMs: null, running: false, nextAt: null }, 'not running: no schedule shown')
  sameAsReport(stopped.json.drill?.last, 'status --json, node stopped (read from DIR/drills/)')
  const newest = fs.readdirSync(path.join(mDir, 'drills')).filter((n) => n.endsWith('.json')).sort().pop()!
  t.is(stopped.json.drill.last.reportFile, path.join(mDir, 'drills', newest), 'the newest report')
  const stoppedText = await cliOk(['status', '--dir', mDir])
  t.ok(/^last drill: PASSED /m.test(stoppedText.stdout) && !/^drills every/m.test(stoppedText.stdout), 'status text without the node running: the last drill, no schedule')
  t.ok(stoppedText.stdout.split('\n').filter((l) => l.startsWith('last drill') || l.startsWith('  RTO')).every((l) => l.length <= 100), 'the drill lines fit in 100 columns')
  t.absent(fs.readdirSync(mDir).some((n) => n.startsWith('embassy-drill-')), 'no scratch in the node directory')

  // 4. An --embassy the kit's agency does not list: refused before going online.
  const stranger = crypto.randomBytes(32).toString('hex')
  const unknown = await cli(['drill', '--kit', kit, '--embassy', stranger, '--out', out, '--json'], { env: PASS })
  t.is(unknown.code, 2)
  t.is(unknown.json.error.code, 'BAD_ARGUMENT')
  t.ok(/not one of the embassies/.test(unknown.json.error.message), unknown.json.error.message)

  // 5. Embassy B genuinely BEHIND: B stops; the agency appends 20 records, which A holds and
  //    cosigns; the agency stops; B comes back cut off from A (the holder list the agency gave it is
  //    removed from its config: it admits A no more), so it stays at 300. The drill from B passes —
  //    a whole copy of an older head — and its RPO counts the 20 blocks, from A's witnessed head.
  t.alike(changed(hashTree(agencyDir), before), [], 'still byte-identical after every drill')
  await embB.stop()
  const appendStarted = Date.now()
  const more = Array.from({ length: 20 }, (_, i) => JSON.stringify({ entry: 300 + i }))
  await cliOk(['append', 'ledger', '--dir', agencyDir], { input: more.join('\n') + '\n' })
  await eventually(
    'embassy A holds the 20 new records and cosigned the new head',
    async () => {
      const s = (await cli(['status', '--dir', agencyDir, '--json'])).json
      const ds = s?.datasets?.find((d: { name: string }) => d.name === 'ledger')
      const row = ds?.embassies?.find((e: { nodeKey: string }) => e.nodeKey === aId.nodeKey)
      const head = ds?.heads?.find((h: { core: string }) => h.core === ledgerCore)
      return row?.heldLength === 320 && head?.length === 320 && head.cosigners >= 1
    },
    120_000,
    250
  )
  const witnessedBy = Date.now()
  await agency.stop()
  const bConfigFile = path.join(bDir, 'config.json')
  const bConfig = JSON.parse(fs.readFileSync(bConfigFile, 'utf8'))
  t.ok(bConfig.follow[0].holders?.includes(aId.nodeKey), 'B had learnt A from the agency (so it would admit it)')
  for (const f of bConfig.follow) delete f.holders
  bConfig.allow = bConfig.allow.filter((k: string) => k !== aId.nodeKey)
  fs.writeFileSync(bConfigFile, JSON.stringify(bConfig, null, 2) + '\n')
  const embB2 = await spawnRun(t, bDir, bootstrap)
  const behindStarted = Date.now()
  const behind = await cli(['drill', '--kit', kit, '--embassy', bId.nodeKey, '--out', out, '--json'], { env: PASS, timeout: 180_000 })
  const behindDone = Date.now()
  t.is(behind.code, 0, behind.stderr.slice(-2000))
  t.is(behind.json.embassy, bId.nodeKey)
  const behindLedger = behind.json.datasets.find((d: { name: string }) => d.name === 'ledger')
  t.alike({ ok: behindLedger.ok, length: behindLedger.length, fetched: behindLedger.fetched }, { ok: true, length: 300, fetched: 300 }, 'B gave a whole ledger at its older head (300)')
  t.is(behind.json.rpo.blocksBehind, 20, 'RPO: 20 blocks behind the newest head known')
  t.alike(behind.json.rpo.sources, [aId.nodeKey], 'the newer head came from embassy A (witnessed, both signatures checked)')
  // A witnessed the head before `witnessedBy` and after the append started; the drill waits 3 s for
  // more embassies before it rebuilds, so the head is at least that old when the RPO is taken.
  const secs = behind.json.rpo.secondsBehind
  t.ok(secs >= Math.max(3, Math.floor((behindStarted - witnessedBy) / 1000)) && secs <= Math.ceil((behindDone - appendStarted) / 1000), `RPO: ${secs} s behind (between ${Math.floor((behindStarted - witnessedBy) / 1000)} and ${Math.ceil((behindDone - appendStarted) / 1000)})`)
  t.ok(behind.json.ok, 'the drill passes: the copy is whole, only older (the RPO says how much)')
  const behindText = await cli(['drill', '--verify', behind.json.reportFile])
  t.is(behindText.code, 0)

  // 6. Embassy B loses blocks of the ledger; with the agency down and A cut off it cannot refill them.
  await embB2.stop()
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
  t.is(run3.json.rpo.blocksBehind, 20, 'and it is behind too')
  t.alike(scratchDirs(), scratchBefore, 'no scratch left')

  // 7. No embassy reachable at all: exit 3.
  await embA.stop()
  const none = await cli(['drill', '--kit', kit, '--embassy', aId.nodeKey, '--timeout', '3', '--out', out, '--json'], { env: PASS, timeout: 120_000 })
  t.is(none.code, 3, 'embassy A is down: unreachable')
  t.is(none.json.embassy, null)
  t.ok(/not reachable/.test(none.json.error), none.json.error)
})

test('drill: bad input — missing or garbled kit, wrong passphrase, bad shares, damaged capability, bad keys — a clear error, nothing written', { timeout: 300_000 }, async (t) => {
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
  // Shares of the agency's kit (2 of 3) and of the embassy's; one with a wrong checksum, one cut short.
  const shares = path.join(root, 'a-shares.kit')
  await cliOk(['kit', 'export', '--out', shares, '--shares', '2/3', '--dir', dir])
  const [s1, s2, s3] = [1, 2, 3].map((i) => `${shares}.${i}`) as [string, string, string]
  const embShares = path.join(root, 'emb-shares.kit')
  await cliOk(['kit', 'export', '--out', embShares, '--shares', '2/3', '--dir', embDir])
  const damagedShare = path.join(root, 'damaged.kit.2')
  fs.writeFileSync(damagedShare, JSON.stringify({ ...JSON.parse(fs.readFileSync(s2, 'utf8')), checksum: '0'.repeat(32) }, null, 2) + '\n')
  const shortShare = path.join(root, 'short.kit.3')
  fs.writeFileSync(shortShare, fs.readFileSync(s3, 'utf8').slice(0, 100))

  // From shares: the same drill key and report signer as from the passphrase kit; a damaged share
  // among enough good ones is named and left out.
  const fromKit = (await cliOk(['drill', '--kit', kit, '--show-key', '--json'], { env: PASS })).json
  const fromShares = await cliOk(['drill', '--share', s1, '--share', damagedShare, '--share', s3, '--show-key', '--json'])
  t.is(fromShares.json.drillKey, fromKit.drillKey, 'shares: the same drill key as the passphrase kit')
  t.is(fromShares.json.signer, fromKit.signer, 'shares: the same report signing key')
  t.ok(fromShares.stderr.includes(damagedShare) && /damaged or altered share/.test(fromShares.stderr), `the damaged share is named: ${fromShares.stderr.trim()}`)
  const help = await cliOk(['drill', '--help'])
  t.ok(/--share FILE/.test(help.stdout + help.stderr), 'drill --help lists --share')

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
    { what: 'the kit of an embassy, not an agency', args: ['--kit', embKit], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: 'one share of a 2-of-3 kit', args: ['--share', s1], code: 1, error: 'BAD_INPUT' },
    { what: 'one good share and a damaged one', args: ['--share', s1, '--share', damagedShare], code: 1, error: 'BAD_INPUT' },
    { what: 'a share cut short', args: ['--share', s1, '--share', shortShare], code: 1, error: 'BAD_INPUT' },
    { what: 'a missing share file', args: ['--share', s1, '--share', path.join(root, 'nope.kit.2')], code: 1, error: 'BAD_INPUT' },
    { what: 'shares of two kits', args: ['--share', s1, '--share', `${embShares}.2`], code: 1, error: 'BAD_INPUT' },
    { what: 'shares of an embassy\'s kit', args: ['--share', `${embShares}.1`, '--share', `${embShares}.2`], code: 2, error: 'BAD_ARGUMENT' },
    { what: 'a passphrase kit given as a share', args: ['--share', kit, '--share', s1], code: 2, error: 'BAD_ARGUMENT' },
    { what: 'a share given as --kit', args: ['--kit', s1], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: '--kit and --share', args: ['--kit', kit, '--share', s1], env: PASS, code: 2, error: 'BAD_ARGUMENT' },
    { what: '--share and --capability-file', args: ['--share', s1, '--share', s2, '--capability-file', damagedCap], code: 2, error: 'BAD_ARGUMENT' },
    { what: 'an --embassy the shares\' agency does not list', args: ['--share', s1, '--share', s2, '--embassy', crypto.randomBytes(32).toString('hex')], code: 2, error: 'BAD_ARGUMENT' }
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
