/**
 * Recovery kit shares that were altered with care (the checksum recomputed): the good shares still
 * restore the agency and the bad one is named; with exactly M shares the error says a share is bad
 * and to add one. And the Argon2id profile of a passphrase kit made by the CLI.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import sodium from 'sodium-universal'
import { EmbassyNode, NodeHost, toZ32 } from '../lib/index.js'
import { KDF_PROFILES, combineSharesReport, inspectKit, kitFromNode, kitImport, splitKit } from '../lib/kit/index.js'
import { cli, cliOk, initNode, type Test } from './helpers/index.js'

/** The share checksum as documented in lib/kit/format.ts: what an attacker recomputes. */
function checksum(s: Record<string, unknown>): string {
  const unwrap = (v: unknown) => (Array.isArray(v) ? v.join('') : String(v))
  const text = [s.format, s.version, s.kit, s.index, s.threshold, s.shares, unwrap(s.share), s.cipher, unwrap(s.nonce), unwrap(s.ciphertext)].join('\n')
  const out = Buffer.alloc(16)
  sodium.crypto_generichash(out, Buffer.from(text, 'utf8'))
  return out.toString('hex')
}

/** `text` with one y-byte of its share changed (x-coordinate kept) and the checksum recomputed. */
function alterShare(text: string): string {
  const s = JSON.parse(text)
  const bytes = Buffer.from(Array.isArray(s.share) ? s.share.join('') : s.share, 'base64')
  bytes[0] = bytes[0]! ^ 0x5a
  s.share = bytes.toString('base64')
  s.checksum = checksum(s)
  return JSON.stringify(s, null, 2) + '\n'
}

/** An agency and its kit split 3/5 into files; the node stays open until teardown. */
async function splitAgency(t: Test): Promise<{ nodeKey: string; files: string[]; texts: string[] }> {
  const dir = await initNode(t, 'agency', 'Land Board')
  const host = new NodeHost(dir)
  await host.ready()
  t.teardown(() => host.close())
  const texts = await splitKit(await kitFromNode(host.node), 3, 5)
  const folder = await t.tmp()
  const files = texts.map((text, i) => {
    const f = path.join(folder, `agency.kit.${i + 1}`)
    fs.writeFileSync(f, text, { mode: 0o600 })
    return f
  })
  return { nodeKey: toZ32(host.node.nodeKey), files, texts }
}

test('kit shares: one altered share with a recomputed checksum is named, and the good shares still restore the agency', async (t) => {
  const { nodeKey, files, texts } = await splitAgency(t)
  const bad = path.join(path.dirname(files[1]!), 'altered.kit.2')
  fs.writeFileSync(bad, alterShare(texts[1]!), { mode: 0o600 })
  t.is(inspectKit(fs.readFileSync(bad, 'utf8')).type, 'share', 'its checksum passes: it looks undamaged')

  const dir = path.join(await t.tmp(), 'restored')
  const r = await kitImport(dir, [files[0]!, bad, files[2]!, files[3]!])
  t.is(r.nodeKey, nodeKey, 'restored from the three good shares')
  t.alike(r.damagedShares, [bad], 'the altered share is named')

  // Through the CLI: success, with a warning that names the file.
  const dir2 = path.join(await t.tmp(), 'restored-cli')
  const cliRun = await cliOk(['kit', 'import', bad, files[4]!, files[0]!, files[2]!, '--dir', dir2])
  t.ok(cliRun.stdout.includes('warning: damaged or altered share, not used') && cliRun.stdout.includes(bad), `named on the terminal: ${cliRun.stdout}`)
  const json = await cli(['kit', 'import', bad, files[4]!, files[0]!, files[2]!, '--dir', path.join(await t.tmp(), 'r3'), '--json'])
  t.alike(json.json?.damagedShares, [bad], '--json lists it')
})

test('kit shares: with exactly M shares of which one is altered, nothing is restored and the error says to add a share', async (t) => {
  const { files, texts } = await splitAgency(t)
  const altered = alterShare(texts[2]!)
  const err = await combineSharesReport([texts[0]!, texts[1]!, altered], ['a', 'b', 'c']).catch((e) => e)
  t.is(err?.code, 'BAD_INPUT')
  t.ok(/cannot be singled out: add another share/.test(err?.message), err?.message)
  const bad = path.join(path.dirname(files[0]!), 'altered.kit.3')
  fs.writeFileSync(bad, altered)
  const dir = path.join(await t.tmp(), 'restored')
  const r = await cli(['kit', 'import', files[0]!, files[1]!, bad, '--dir', dir, '--json'])
  t.is(r.code, 1)
  t.is(r.json?.error?.code, 'BAD_INPUT')
  t.absent(EmbassyNode.exists(dir), 'nothing restored')
  // One more good share: the kit opens and the altered one is named.
  const again = await combineSharesReport([texts[0]!, texts[1]!, altered, texts[4]!], ['a', 'b', 'c', 'e'])
  t.alike(again.damaged, ['c'])
})

test('kit shares: a share whose sealed part was altered (checksum recomputed) is named among enough good ones', async (t) => {
  const { nodeKey, texts } = await splitAgency(t)
  const s = JSON.parse(texts[0]!)
  const cipher = Buffer.from([].concat(s.ciphertext).join(''), 'base64')
  cipher[cipher.length - 1] = cipher[cipher.length - 1]! ^ 1
  s.ciphertext = cipher.toString('base64')
  s.checksum = checksum(s)
  const report = await combineSharesReport([JSON.stringify(s), texts[1]!, texts[2]!, texts[3]!], ['one', 'two', 'three', 'four'])
  t.is(toZ32(report.contents.nodeKey), nodeKey)
  t.alike(report.damaged, ['one'])
  // A share that fails its checksum is named too, and does not stop the others.
  const mistyped = JSON.parse(texts[4]!)
  mistyped.checksum = '0'.repeat(32)
  const r2 = await combineSharesReport([JSON.stringify(mistyped), texts[1]!, texts[2]!, texts[3]!], ['five', 'two', 'three', 'four'])
  t.alike(r2.damaged, ['five'])
})

test('kit shares: a passphrase kit made by the CLI uses Argon2id "sensitive" unless --kdf moderate', async (t) => {
  const dir = await initNode(t, 'agency', 'Land Board')
  const folder = await t.tmp()
  const env = { EMBASSY_PASSPHRASE: 'a long enough passphrase' }
  await cliOk(['kit', 'export', '--out', path.join(folder, 'default.kit'), '--dir', dir], { env })
  const info = inspectKit(fs.readFileSync(path.join(folder, 'default.kit'), 'utf8'))
  t.alike(info.type === 'passphrase' ? { opslimit: info.opslimit, memlimit: info.memlimit } : null, KDF_PROFILES.sensitive, 'default: 1 GiB, 4 passes')
  t.alike(KDF_PROFILES.sensitive, { opslimit: sodium.crypto_pwhash_OPSLIMIT_SENSITIVE, memlimit: sodium.crypto_pwhash_MEMLIMIT_SENSITIVE }, "libsodium's sensitive limits")
  await cliOk(['kit', 'export', '--out', path.join(folder, 'moderate.kit'), '--kdf', 'moderate', '--dir', dir], { env })
  const m = inspectKit(fs.readFileSync(path.join(folder, 'moderate.kit'), 'utf8'))
  t.is(m.type === 'passphrase' ? m.memlimit : 0, 256 * 1024 * 1024, '--kdf moderate: 256 MiB')
  const bad = await cli(['kit', 'export', '--out', path.join(folder, 'x.kit'), '--kdf', 'weak', '--dir', dir, '--json'], { env })
  t.is(bad.json?.error?.code, 'BAD_ARGUMENT', 'an unknown profile is a usage error')
})
