/**
 * What ships for operators (deploy/ and the npm tarball), checked with the real tools:
 * `promtool check rules` / `promtool test rules` on deploy/prometheus, `systemd-analyze verify` on
 * deploy/systemd, every metric an alert rule uses against a live /metrics scrape, and `npm pack`
 * installed offline into a clean prefix. A missing tool is a failure naming the Debian package.
 * Each check is also run on a deliberately broken copy, which must fail.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'brittle'
import { Daemon, Gateway, type Agency } from '../lib/index.js'
import { eventually, initDir, openAgency, pair, startDaemon, testnet } from './helpers/index.js'

type Test = test.Assert

/** The compiled tree (dist-NAME/ or dist/) and the repository root above it. */
const BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const ROOT = path.resolve(BUILD, '..')
const PROM = path.join(ROOT, 'deploy', 'prometheus')
const UNITS = path.join(ROOT, 'deploy', 'systemd')

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeout?: number } = {}): Run {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: opts.timeout ?? 120_000, env: { ...process.env, NO_COLOR: '1' } })
  if (r.error) return { status: null, stdout: r.stdout ?? '', stderr: `${r.error.message}\n${r.stderr ?? ''}` }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** True when `bin` is on PATH; otherwise a failure that says which Debian package to install. */
function need(t: Test, bin: string, pkg: string): boolean {
  const found = run('sh', ['-c', `command -v ${bin}`]).status === 0
  if (!found) t.fail(`${bin} not found: install it with \`apt-get install --no-install-recommends ${pkg}\``)
  return found
}

/** A run's exit status and output, cut short (assert messages). */
function show(r: Run): string {
  const all = `exit ${r.status}: ${r.stdout}\n${r.stderr}`.trim().replace(/\s+/g, ' ')
  return all.length > 400 ? `${all.slice(0, 400)}…` : all
}

/** Metric names used in the rules' expressions. */
function ruleMetrics(yml: string): string[] {
  const names = new Set<string>()
  for (const line of yml.split('\n')) {
    const m = /^\s*expr:\s*(.*)$/.exec(line)
    if (m) for (const n of m[1]!.matchAll(/\b(embassy_[a-z0-9_]+)\b/g)) names.add(n[1]!)
  }
  return [...names].sort()
}

function get(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
    })
    req.setTimeout(30_000, () => req.destroy(new Error(`${url}: no answer within 30 s`)))
    req.on('error', reject)
  })
}

/** Metric names declared in a scrape (# TYPE lines). */
function exported(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))
}

/** The value of one sample line `name{labels} value`, matched by a label substring. */
function sample(text: string, name: string, labelPart = ''): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (!line.includes(labelPart)) continue
    return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return null
}

test('alerts.yml: promtool check rules passes; a broken copy fails', async (t) => {
  if (!need(t, 'promtool', 'prometheus')) return
  const yml = fs.readFileSync(path.join(PROM, 'alerts.yml'), 'utf8')
  const rules = (yml.match(/^\s*- alert: /gm) ?? []).length
  t.ok(rules >= 10, `${rules} alert rules`)
  const ok = run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: PROM })
  t.is(ok.status, 0, show(ok))
  t.ok(ok.stdout.includes(`SUCCESS: ${rules} rules found`), ok.stdout.trim())

  const dir = await t.tmp()
  fs.writeFileSync(path.join(dir, 'alerts.yml'), yml.replace('expr: embassy_dht_nodes == 0', 'expr: embassy_dht_nodes == (0'))
  const bad = run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: dir })
  t.not(bad.status, 0, `a rule with a syntax error is refused: ${show(bad)}`)
  t.ok(/FAILED|error/i.test(bad.stdout + bad.stderr), 'promtool says why')
})

test('alerts.yml: promtool test rules passes alerts.test.yml; a changed rule fails it', async (t) => {
  if (!need(t, 'promtool', 'prometheus')) return
  const ok = run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: PROM })
  t.is(ok.status, 0, show(ok))
  t.ok(ok.stdout.includes('SUCCESS'), ok.stdout.trim())

  // Same tests, a rule that waits longer: the expected alert is missing at its time.
  const dir = await t.tmp()
  const yml = fs.readFileSync(path.join(PROM, 'alerts.yml'), 'utf8')
  const changed = yml.replace(/(alert: EmbassyBehind\n(?:.*\n)*?\s*for: )15m/, '$145m')
  t.not(changed, yml, 'the broken copy differs')
  fs.writeFileSync(path.join(dir, 'alerts.yml'), changed)
  fs.copyFileSync(path.join(PROM, 'alerts.test.yml'), path.join(dir, 'alerts.test.yml'))
  const bad = run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir })
  t.not(bad.status, 0, 'the unit tests catch the change')
  t.ok((bad.stdout + bad.stderr).includes('alertname: EmbassyBehind'), 'and name the alert')
})

/** The units in a temp dir, ExecStart pointed at a stub (verify checks that the binary exists). */
function stageUnits(dir: string, edit: (name: string, text: string) => string = (_, s) => s): string[] {
  const stub = path.join(dir, 'embassy')
  fs.writeFileSync(stub, '#!/bin/sh\nexit 0\n', { mode: 0o755 })
  for (const f of fs.readdirSync(UNITS)) {
    const text = fs.readFileSync(path.join(UNITS, f), 'utf8').replaceAll('/usr/local/bin/embassy', stub)
    fs.writeFileSync(path.join(dir, f), edit(f, text))
  }
  fs.symlinkSync('embassy@.service', path.join(dir, 'embassy@lux.service'))
  return [path.join(dir, 'embassy@lux.service'), path.join(dir, 'embassy-bootstrap.service')]
}

/** systemd-analyze exits 0 on unknown keys and bad values (it only warns): clean means no output. */
function verify(units: string[]): Run {
  return run('systemd-analyze', ['verify', '--man=no', ...units])
}

test('systemd units: systemd-analyze verify is clean, hardened; broken copies fail', async (t) => {
  if (!need(t, 'systemd-analyze', 'systemd')) return
  const unit = fs.readFileSync(path.join(UNITS, 'embassy@.service'), 'utf8')
  for (const line of ['User=embassy', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/embassy/%i', 'NoNewPrivileges=yes', 'PrivateTmp=yes', 'Restart=on-failure', 'LimitNOFILE=65536', 'Environment=EMBASSY_DIR=/var/lib/embassy/%i']) {
    t.ok(unit.split('\n').includes(line), `embassy@.service has ${line}`)
  }
  t.ok(/^ExecStart=\/usr\/local\/bin\/embassy run --log-format json /m.test(unit), 'runs the node with JSON logs')
  const boot = fs.readFileSync(path.join(UNITS, 'embassy-bootstrap.service'), 'utf8')
  t.ok(/^ExecStart=\/usr\/local\/bin\/embassy bootstrap /m.test(boot) && boot.includes('ProtectSystem=strict') && boot.includes('NoNewPrivileges=yes'), 'bootstrap unit runs `embassy bootstrap`, hardened')

  const ok = verify(stageUnits(await t.tmp()))
  t.is(ok.status, 0, show(ok))
  t.is((ok.stdout + ok.stderr).trim(), '', 'no warnings')

  const typo = verify(stageUnits(await t.tmp(), (f, s) => (f === 'embassy@.service' ? s.replace('ProtectSystem=strict', 'ProtectSystem=strickt') : s)))
  t.ok(typo.status !== 0 || (typo.stdout + typo.stderr).includes('strickt'), `a bad value is reported: ${show(typo)}`)
  const missing = verify(stageUnits(await t.tmp(), (f, s) => s.replaceAll(/^ExecStart=\S+/gm, 'ExecStart=/nonexistent/embassy')))
  t.not(missing.status, 0, `a missing binary fails: ${show(missing)}`)
})

test('alerts.yml uses only metrics a running agency exports at /metrics', async (t) => {
  const names = ruleMetrics(fs.readFileSync(path.join(PROM, 'alerts.yml'), 'utf8'))
  t.ok(names.length >= 10, `rules use ${names.length} metrics: ${names.join(' ')}`)

  const bootstrap = await testnet(t)
  const agencyDir = await initDir(t, 'agency', 'agency')
  const agency = new Daemon({ dir: agencyDir, bootstrap, http: '127.0.0.1:0' })
  t.teardown(() => agency.close(), { order: 0, force: true })
  await agency.ready()
  const a = (await agency.host.agency()) as Agency
  await a.createDataset('register')
  await a.append('register', Array.from({ length: 20 }, (_, i) => ({ i })))
  const emb = await startDaemon(t, await initDir(t, 'embassy', 'embassy'), bootstrap)
  await pair(agency, emb)

  const url = `${agency.gateway!.url}/metrics`
  // Custody rows appear once the embassy's receipts arrive: wait for it to hold everything.
  const text = await eventually('the embassy holds the register, per /metrics', async () => {
    const r = await get(url)
    return r.status === 200 && sample(r.text, 'embassy_custody_behind_blocks', 'dataset="register"') === 0 && sample(r.text, 'embassy_custody_receipt_age_seconds', 'dataset="register"')! >= 0 ? r.text : null
  }, 120_000, 200)
  const have = exported(text)
  for (const n of names) t.ok(have.has(n), `${n} is exported`)
  t.is(sample(text, 'embassy_custody_connected', 'dataset="register"'), 1, 'the embassy is connected')
  t.is(sample(text, 'embassy_custody_audit_failed', 'dataset="register"'), 0)
  t.ok(sample(text, 'embassy_dht_nodes')! > 0, 'the DHT routing table is not empty')
  t.is(sample(text, 'embassy_restore_complete'), 1, 'no restore running')
  t.is(sample(text, 'embassy_second_live_node'), 0)
  t.is(sample(text, 'embassy_writes_accepted'), 1, 'the agency takes writes')
  t.ok(sample(text, 'embassy_heads_unconfirmed')! >= 0, 'heads not yet confirmed by an embassy: a count')
  if (run('sh', ['-c', 'command -v promtool']).status === 0) {
    const lint = run('promtool', ['check', 'metrics'], { input: text })
    t.is(lint.status, 0, `promtool check metrics accepts the scrape: ${show(lint)}`)
  }
})

test('/metrics: alarms by kind, custody and restore from the status document; garbage in it is ignored', async (t) => {
  const { host } = await openAgency(t)
  const agency = await host.agency()
  const docs: unknown[] = [
    {
      alarms: [{ kind: 'equivocation' }, { kind: 'equivocation' }, { kind: 'quota-near' }, { kind: 'x"y\n' }, { kind: 5 }, null],
      alarmCounts: { equivocation: 3, 'quota-near': 'lots' },
      datasets: [{ name: 'reg', embassies: [{ nodeKey: 'lux', behindBlocks: 7, behindBytes: 700, receiptAge: null, audit: { state: 'failed' }, connected: false }, null] }],
      dht: { nodes: 0 },
      restore: { state: 'backfilling', heldBlocks: 5, totalBlocks: 10, secondLiveNode: true },
      openCores: { max: 1024, open: 3, held: 10, closes: 7, reopens: 2 }
    },
    { alarms: 'nope', alarmCounts: null, datasets: [{ embassies: 'x' }, 7], dht: 'x', restore: 3 }
  ]
  let doc = 0
  const gw = new Gateway({ reader: agency.datasets, status: async () => docs[doc] })
  t.teardown(() => gw.close(), { order: -1, force: true })
  await gw.ready()
  const { host: h, port } = gw.address()
  const url = `http://${h}:${port}/metrics`

  const r = await get(url)
  t.is(r.status, 200)
  t.is(sample(r.text, 'embassy_alarms_open', 'kind="equivocation"'), 2)
  t.is(sample(r.text, 'embassy_alarms_open', 'kind="quota-near"'), 1)
  t.is(sample(r.text, 'embassy_alarms_open', 'kind="x\\"y\\n"'), 1, 'a hostile kind is escaped, not injected')
  t.is(sample(r.text, 'embassy_alarms_total', 'kind="equivocation"'), 3)
  t.is(sample(r.text, 'embassy_alarms_total', 'kind="quota-near"'), 0, 'a non-number count is 0')
  t.is(sample(r.text, 'embassy_custody_behind_blocks', 'embassy="lux"'), 7)
  t.is(sample(r.text, 'embassy_custody_behind_bytes', 'embassy="lux"'), 700)
  t.is(sample(r.text, 'embassy_custody_receipt_age_seconds', 'embassy="lux"'), -1, 'no receipt yet is -1')
  t.is(sample(r.text, 'embassy_custody_audit_failed', 'embassy="lux"'), 1)
  t.is(sample(r.text, 'embassy_custody_connected', 'embassy="lux"'), 0)
  t.is(sample(r.text, 'embassy_dht_nodes'), 0)
  t.is(sample(r.text, 'embassy_restore_complete'), 0)
  t.is(sample(r.text, 'embassy_restore_held_blocks'), 5)
  t.is(sample(r.text, 'embassy_restore_total_blocks'), 10)
  t.is(sample(r.text, 'embassy_second_live_node'), 1)
  t.is(sample(r.text, 'embassy_writes_accepted'), 0, 'no writable field: not taking writes')
  t.is(sample(r.text, 'embassy_heads_unconfirmed'), 0, 'no core counts: 0, not NaN')
  t.is(sample(r.text, 'embassy_held_cores', 'state="open"'), 3, 'held cores open now')
  t.is(sample(r.text, 'embassy_held_cores', 'state="closed"'), 7, 'held cores closed while idle: held − open')
  t.is(sample(r.text, 'embassy_held_cores_open_max'), 1024)
  t.is(sample(r.text, 'embassy_held_core_closes_total'), 7)
  t.is(sample(r.text, 'embassy_held_core_reopens_total'), 2)
  if (run('sh', ['-c', 'command -v promtool']).status === 0) {
    const lint = run('promtool', ['check', 'metrics'], { input: r.text })
    t.is(lint.status, 0, `promtool check metrics accepts it: ${show(lint)}`)
  }

  doc = 1
  const g = await get(url)
  t.is(g.status, 200, 'a malformed status document does not break the scrape')
  t.ok(exported(g.text).has('embassy_alarms_open') && sample(g.text, 'embassy_alarms_open') === null, 'no alarm samples from garbage')
  t.ok(!exported(g.text).has('embassy_dht_nodes') && !exported(g.text).has('embassy_restore_complete'), 'no DHT or restore metrics without those parts')
  t.ok(exported(g.text).has('embassy_dataset_length'), 'the rest of the scrape is there')
})

test('npm pack: small tarball without tests; installs offline into a clean prefix; embassy --help runs', async (t) => {
  if (!need(t, 'npm', 'npm')) return
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files?: string[]; bin: Record<string, string> }
  t.ok(Array.isArray(pkg.files), 'package.json lists its files')
  // Pack a staging copy whose dist/ is this build (npm pack in the tree would run `prepare`,
  // which compiles into dist/). Tests and benches are staged too: `files` must leave them out.
  const stage = await t.tmp()
  for (const f of ['package.json', 'README.md', 'deploy', 'protocol', 'types']) fs.cpSync(path.join(ROOT, f), path.join(stage, f), { recursive: true })
  for (const d of ['bin', 'lib', 'protocol', 'test']) fs.cpSync(path.join(BUILD, d), path.join(stage, 'dist', d), { recursive: true })
  const out = await t.tmp()
  const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: stage })
  t.is(packed.status, 0, `npm pack: ${packed.status === 0 ? 'ok' : show(packed)}`)
  const info = (JSON.parse(packed.stdout) as Array<{ filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }>)[0]!
  const files = info.files.map((f) => f.path)
  t.comment(`tarball ${info.filename}: ${files.length} files, ${info.size} bytes packed, ${info.unpackedSize} unpacked`)
  t.ok(files.includes(pkg.bin.embassy!), 'the CLI is in it')
  t.ok(files.includes('dist/lib/index.js') && files.includes('dist/lib/index.d.ts'), 'the library and its types')
  t.ok(files.includes('deploy/systemd/embassy@.service') && files.includes('deploy/prometheus/alerts.yml'), 'the service files and alert rules')
  t.is(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('test/') || f.endsWith('.map')).join(' '), '', 'no tests, benches or source maps')
  t.ok(info.size < 1024 * 1024, `packed size ${info.size} < 1 MiB`)

  // Offline: the registry is not reachable in CI. The production dependencies come from this
  // project's node_modules (named as local folders), so npm resolves every edge without a fetch.
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const deps = Object.entries(lock.packages).filter(([k, v]) => k.startsWith('node_modules/') && !k.includes('/node_modules/', 1) && v.dev !== true).map(([k]) => path.join(ROOT, k)).filter((d) => fs.existsSync(d))
  t.ok(deps.length > 10, `${deps.length} production dependencies`)
  const prefix = await t.tmp()
  const inst = run('npm', ['install', '--prefix', prefix, '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--no-save', path.join(out, info.filename), ...deps], { cwd: prefix, timeout: 170_000 })
  t.is(inst.status, 0, `npm install --offline: ${inst.status === 0 ? 'ok' : show(inst)}`)
  const bin = path.join(prefix, 'node_modules', '.bin', 'embassy')
  t.ok(fs.existsSync(bin), 'the embassy bin is linked')
  t.ok(fs.realpathSync(bin).startsWith(fs.realpathSync(path.join(prefix, 'node_modules', 'data-embassy'))), 'from the installed tarball, not the tree')
  const help = run(bin, ['--help'])
  t.is(help.status, 0, `embassy --help: ${show(help).slice(0, 80)}`)
  t.ok(help.stdout.includes('usage: embassy COMMAND'), 'prints the usage')
})
