/**
 * Audits through the CLI on separate processes: the agency (`embassy run`) audits its embassies on
 * its schedule; a lazy embassy (receipts, no blocks; built in this test process from the protocol)
 * is flagged (`audit-failed`, not counted as held) within one audit interval, and
 * `embassy audit --json` exits 1 naming it while the honest embassy passes; the exported audit log
 * verifies offline; `embassy capability --verify` prints a verify capability.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import { Network, parseKey, toZ32 } from '../lib/index.js'
import { parseHostPort } from '../lib/node/config.js'
import { ChallengeAnswerer, signReceipt, verifyAuditExport } from '../lib/custody/index.js'
import { parseVerifyCapability } from '../lib/data/verify-capability.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, PeerRole } from '../protocol/index.js'
import { cli, cliOk, eventually, pairDirs, spawnBootstrap, spawnRun } from './helpers/index.js'

async function statusJson(dir: string): Promise<any> {
  const r = await cli(['status', '--dir', dir, '--json'])
  if (r.code !== 0) throw new Error(`status exited ${r.code}: ${r.stderr.slice(-500)}`)
  return r.json
}

function row(status: any, dataset: string, embassy: string): any {
  return status?.datasets?.find((d: { name: string }) => d.name === dataset)?.embassies?.find((e: { nodeKey: string }) => e.nodeKey === embassy) ?? null
}

test('audit (CLI, processes): a lazy embassy is flagged within one interval and `embassy audit --json` exits 1 naming it; the honest one passes', { timeout: 240_000 }, async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const dirs = { agency: path.join(root, 'agency'), embassy: path.join(root, 'embassy') }
  await cliOk(['init', '--role', 'agency', '--name', 'Land Board', '--dir', dirs.agency])
  await cliOk(['init', '--role', 'embassy', '--dir', dirs.embassy])
  const agencyId = (await cliOk(['id', '--dir', dirs.agency, '--json'])).json
  const embassyId = (await cliOk(['id', '--dir', dirs.embassy, '--json'])).json
  await cliOk(['dataset', 'create', 'register', '--dir', dirs.agency])
  await cliOk(['append', 'register', '--dir', dirs.agency], { input: Array.from({ length: 40 }, (_, i) => JSON.stringify({ record: i, pad: 'x'.repeat(100) })).join('\n') + '\n' })
  const listed = (await cliOk(['list', '--dir', dirs.agency, '--json'])).json.datasets as Array<{ name: string; key: string }>
  const coreKey = listed.find((d) => d.name === 'register')!.key
  // The audit schedule is configuration (config.json `audit`): one audit a second here.
  const configFile = path.join(dirs.agency, 'config.json')
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'))
  config.audit = { intervalMs: 1000, firstAuditMs: 0, samples: 8, deadlinePerBlockMs: 500, minDeadlineMs: 3000 }
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2))
  await pairDirs({ dir: dirs.agency, nodeKey: agencyId.nodeKey }, { dir: dirs.embassy, nodeKey: embassyId.nodeKey })

  await spawnRun(t, dirs.agency, bootstrap)
  await spawnRun(t, dirs.embassy, bootstrap)

  // The lazy embassy: its own process (this one), speaking the protocol, holding nothing.
  const store = new Corestore(path.join(root, 'lazy-store'))
  const keyPair = crypto.keyPair()
  const lazyKey = toZ32(keyPair.publicKey)
  const agencyKey = parseKey(agencyId.nodeKey)
  const core = store.get({ key: parseKey(coreKey) })
  const answerer = new ChallengeAnswerer(keyPair, (k) => (Buffer.from(k).equals(core.key!) ? core : null))
  const network = new Network({
    keyPair,
    bootstrap: bootstrap.map((b) => parseHostPort(b)),
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.EMBASSY, capabilities: [], catalogs: [parseKey(agencyId.catalogKey)] }),
    isAllowed: (k) => k.equals(agencyKey),
    scope: { entitled: () => true, catalogOfTopic: () => null },
    handlers: (peer) => ({ challenge: (ch) => answerer.handle(peer, ch) })
  })
  t.teardown(async () => {
    await network.close()
    await store.close()
  }, { order: 0 })
  await network.ready()
  await cliOk(['allow', lazyKey, '--dir', dirs.agency, '--json'])
  network.joinPeer(agencyKey)
  const peer = await eventually('the lazy embassy is connected', () => network.connectedTo(agencyKey), 60_000)
  await core.ready()
  await eventually('the lazy embassy has the head', async () => {
    await core.update({ wait: true })
    return core.length === 40
  })
  t.ok(core.contiguousLength <= 1, 'it holds (almost) no block')
  const receiptSentAt = Date.now()
  peer.channel.send('receipt', signReceipt(keyPair, { core: core.key!, length: core.length, treeHash: await core.treeHash(core.length), fork: core.fork, time: Date.now() }))

  // Flagged within one audit interval (plus the deadline): failed, not held, an audit-failed alarm.
  const flagged = await eventually('the agency flags the lazy embassy', async () => {
    const r = row(await statusJson(dirs.agency), 'register', lazyKey)
    return r && r.audit?.state === 'failed' ? r : null
  }, 60_000)
  t.comment(`lazy receipt → flagged: ${Date.now() - receiptSentAt} ms`)
  t.is(flagged.held, false, 'not counted as held')
  t.is(flagged.heldLength, 0)
  const status = await statusJson(dirs.agency)
  t.ok(status.alarms.some((a: { kind: string; peer: string; core: string }) => a.kind === 'audit-failed' && a.peer === lazyKey && a.core === coreKey), 'audit-failed alarm with peer and core')
  const honest = await eventually('the honest embassy passed a scheduled audit', async () => {
    const r = row(await statusJson(dirs.agency), 'register', embassyId.nodeKey)
    return r && r.audit?.state === 'passed' ? r : null
  }, 60_000)
  t.is(honest.held, true)

  // One audit now, through the running daemon.
  const all = await cli(['audit', '--dir', dirs.agency, '--json', '--blocks', '12'])
  t.is(all.code, 1, '`embassy audit` exits 1 when any embassy fails')
  t.is(all.json.ok, false)
  const lazyRows = all.json.results.filter((r: { embassy: string }) => r.embassy === lazyKey)
  const honestRows = all.json.results.filter((r: { embassy: string }) => r.embassy === embassyId.nodeKey)
  t.ok(lazyRows.some((r: { dataset: string; failed: number }) => r.dataset === 'register' && r.failed >= 11), 'names the lazy embassy with its failures')
  t.ok(honestRows.length > 0 && honestRows.every((r: { failed: number; sampled: number; error?: string }) => r.failed === 0 && r.sampled > 0 && !r.error), 'the honest embassy passes every core')
  for (const key of ['embassy', 'dataset', 'core', 'sampled', 'passed', 'failed', 'ms']) t.ok(key in honestRows[0], `result has "${key}"`)

  const one = await cli(['audit', '--dir', dirs.agency, '--json', '--embassy', embassyId.nodeKey, '--dataset', 'register'])
  t.is(one.code, 0, 'auditing only the honest embassy exits 0')
  t.is(one.json.ok, true)
  t.is(one.json.results.length, 1)
  t.is(one.json.results[0].sampled, 8, 'config audit.samples blocks')

  const nobody = await cli(['audit', '--dir', dirs.agency, '--json', '--embassy', toZ32(crypto.keyPair().publicKey)])
  t.is(nobody.code, 3, 'exit 3 when the embassy is not reachable')

  // The signed log, exported, verifies offline with the agency's public key.
  const file = path.join(root, 'evidence.json')
  await cliOk(['audit', '--dir', dirs.agency, '--export', file])
  const verdict = verifyAuditExport(JSON.parse(fs.readFileSync(file, 'utf8')), { auditor: agencyId.nodeKey })
  t.ok(verdict.ok && verdict.entries >= 4 && verdict.answersSigned >= 2, `export verifies: ${verdict.entries} entries, ${verdict.answersSigned} signed answers`)

  // The verify capability: catalog key + agency node key, no read key.
  const cap = (await cliOk(['capability', '--verify', '--dir', dirs.agency, '--json'])).json.verifyCapability as string
  t.ok(cap.startsWith('embassy-verify:'))
  const parsed = parseVerifyCapability(cap)
  t.is(toZ32(parsed.catalogKey), agencyId.catalogKey)
  t.is(toZ32(parsed.agencyNodeKey), agencyId.nodeKey)
  t.exception(() => parseVerifyCapability(cap.slice(0, -2) + (cap.endsWith('y') ? 'yb' : 'yy')), /BAD_CAPABILITY/, 'a damaged verify capability is refused')
})

test('audit (CLI, processes): with the agency stopped, a blind auditor (verify capability only) fails an embassy whose blocks were cleared (exit 1) and passes it intact (exit 0)', { timeout: 300_000 }, async (t) => {
  const { bootstrap } = await spawnBootstrap(t)
  const root = await t.tmp()
  const dirs = { agency: path.join(root, 'agency'), embassy: path.join(root, 'embassy'), auditor: path.join(root, 'auditor') }
  await cliOk(['init', '--role', 'agency', '--name', 'Land Board', '--dir', dirs.agency])
  await cliOk(['init', '--role', 'embassy', '--dir', dirs.embassy])
  await cliOk(['init', '--role', 'auditor', '--dir', dirs.auditor])
  const agencyId = (await cliOk(['id', '--dir', dirs.agency, '--json'])).json
  const embassyId = (await cliOk(['id', '--dir', dirs.embassy, '--json'])).json
  const auditorId = (await cliOk(['id', '--dir', dirs.auditor, '--json'])).json
  t.is(auditorId.role, 'auditor')
  await cliOk(['dataset', 'create', 'register', '--dir', dirs.agency])
  await cliOk(['append', 'register', '--dir', dirs.agency], { input: Array.from({ length: 30 }, (_, i) => JSON.stringify({ record: i })).join('\n') + '\n' })
  const coreKey = ((await cliOk(['list', '--dir', dirs.agency, '--json'])).json.datasets as Array<{ name: string; key: string }>).find((d) => d.name === 'register')!.key
  await pairDirs({ dir: dirs.agency, nodeKey: agencyId.nodeKey }, { dir: dirs.embassy, nodeKey: embassyId.nodeKey })
  const cap = (await cliOk(['capability', '--verify', '--dir', dirs.agency, '--json'])).json.verifyCapability as string
  // The auditor: the verify capability only; the embassy admits it like a mirror, and so does the agency.
  const followed = await cliOk(['follow', cap, '--dir', dirs.auditor, '--json'])
  t.is(followed.json.catalogKey, agencyId.catalogKey)
  await cliOk(['allow', auditorId.nodeKey, '--dir', dirs.embassy])
  await cliOk(['allow', auditorId.nodeKey, '--dir', dirs.agency])
  // Small schedules so the auditor's own audits and deadlines are quick.
  const configFile = path.join(dirs.auditor, 'config.json')
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'))
  config.audit = { intervalMs: 3_600_000, deadlinePerBlockMs: 300, minDeadlineMs: 2000 }
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2))

  const agency = await spawnRun(t, dirs.agency, bootstrap)
  let embassy = await spawnRun(t, dirs.embassy, bootstrap)
  await eventually('the embassy holds the register core', async () => {
    const r = await cli(['status', '--dir', dirs.embassy, '--json'])
    const c = (r.json?.agencies?.[0]?.cores ?? []).find((x: { key: string }) => x.key === coreKey)
    return c && c.contiguousLength === 30
  }, 60_000)
  let auditor = await spawnRun(t, dirs.auditor, bootstrap)
  // It learns the embassy from the agency's signed holder list (and the topic).
  await eventually('the auditor learnt the embassy', () => JSON.parse(fs.readFileSync(configFile, 'utf8')).peers?.includes(embassyId.nodeKey), 60_000)
  t.is(await agency.stop(), 0, 'the agency is stopped')

  const intact = await eventually('an audit reaches the embassy', async () => {
    const r = await cli(['audit', '--dir', dirs.auditor, '--json', '--blocks', '30'])
    return r.code === 3 ? null : r
  }, 60_000)
  t.is(intact.code, 0, 'intact embassy: exit 0')
  t.ok(intact.json.ok)
  const row = intact.json.results.find((r: { core: string }) => r.core === coreKey)
  t.ok(row && row.sampled === 30 && row.failed === 0, 'every sampled block came with a valid proof')

  // The embassy stops, loses blocks 10-29 from its storage, and comes back (no one can repair it).
  t.is(await embassy.stop(), 0)
  {
    const store = new Corestore(path.join(dirs.embassy, 'store'))
    const core = store.get({ key: parseKey(coreKey) })
    await core.ready()
    await core.clear(10, 30)
    await core.close()
    await store.close()
  }
  embassy = await spawnRun(t, dirs.embassy, bootstrap)
  const cleared = await eventually('an audit reaches the restarted embassy', async () => {
    const r = await cli(['audit', '--dir', dirs.auditor, '--json', '--blocks', '30'])
    return r.code === 3 ? null : r
  }, 60_000)
  t.is(cleared.code, 1, 'cleared blocks: exit 1')
  t.is(cleared.json.ok, false)
  const bad = cleared.json.results.find((r: { core: string }) => r.core === coreKey)
  t.is(bad?.failed, 20, 'the 20 cleared blocks fail')
  t.is(bad?.embassy, embassyId.nodeKey)
  // Without the read key anywhere on the auditor, and nothing kept.
  const keys = JSON.parse(fs.readFileSync(path.join(dirs.auditor, 'keys.json'), 'utf8'))
  t.absent(keys.readKey ?? keys.readKeys, 'no read key on the auditor')
  t.alike(fs.readdirSync(path.join(dirs.auditor, 'audit-tmp')), [], 'no block kept after the audits')
  const status = (await cliOk(['status', '--dir', dirs.auditor, '--json'])).json
  t.ok(status.alarms.some((a: { kind: string; peer: string }) => a.kind === 'audit-failed' && a.peer === embassyId.nodeKey), 'audit-failed alarm on the auditor')
  void auditor
})
