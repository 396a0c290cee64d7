/**
 * 9. Audits: what proving possession costs. In one process, on one Corestore (the network is out
 * of the picture: these are the holder's and the auditor's own costs):
 * - holder CPU per audited block: answering a 256-block challenge (read as stored, hash with the
 *   nonce, sign) against reading the same blocks as stored (the least any check must do);
 * - bytes per audited block on the wire: challenge + answer against moving the block itself;
 * - time to audit 10,000 cores (one random block each, challenge → signed answer → checked) against
 *   reading one block of each core;
 * - the extra load continuous audits put on an embassy at the default schedule (AUDIT_DEFAULTS:
 *   `samples` blocks per core every `intervalMs`), as the holder's CPU share for 10,000 held cores,
 *   derived from the measured cost.
 */
import path from 'node:path'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { AUDIT_DEFAULTS, ChallengeAnswerer, Challenger } from '../../lib/custody/index.js'
import type { Peer } from '../../lib/net/network.js'
import { answer as answerCodec, challenge as challengeCodec, encode, type Challenge } from '../../protocol/index.js'
import { median, pseudoRandom, result, rmdir, round, tmpdir, type Result } from '../harness.js'
import type { Ctx } from '../context.js'

const BLOCK = 64 * 1024

/** A peer whose channel hands challenges straight to `answerer` and answers to `challenger`. */
function loopPeer(holderKey: Buffer, challengerKey: Buffer, answerer: ChallengeAnswerer, challenger: () => Challenger): Peer {
  const peer = {
    key: holderKey,
    id: holderKey.toString('hex'),
    role: 'embassy',
    handshake: { major: 1, minor: 2, role: 2, capabilities: [], catalogs: [] },
    connectedAt: Date.now(),
    initiator: false,
    conn: { destroy() {} },
    channel: {
      closed: false,
      supports: () => true,
      send: (_name: string, ch: Challenge) => {
        void answerer.answer(challengerKey, ch).then((a) => challenger().onanswer(peer as unknown as Peer, a))
        return true
      }
    }
  }
  return peer as unknown as Peer
}

export async function audit(ctx: Ctx): Promise<Result[]> {
  const results: Result[] = []
  const root = tmpdir('audit')
  const store = new Corestore(path.join(root, 'store'))
  try {
    // 1. One core of 64 KiB blocks: answer 256-block challenges vs read the blocks.
    const blocks = ctx.pick(1024, 256)
    const core = store.get({ name: 'big' })
    await core.ready()
    const data = pseudoRandom(BLOCK * 16, 7)
    for (let i = 0; i < blocks; i += 16) await core.append(Array.from({ length: 16 }, (_, k) => data.subarray(k * BLOCK, (k + 1) * BLOCK)))
    const holder = crypto.keyPair()
    const auditorKey = crypto.keyPair().publicKey
    const answerer = new ChallengeAnswerer(holder, () => core)
    const trials = ctx.pick(5, 3)
    const answerUs: number[] = []
    const readUs: number[] = []
    let wire = 0
    for (let t = 0; t < trials; t++) {
      const indices = Array.from({ length: 256 }, (_, i) => (i * 7 + t) % blocks).filter((v, i, a) => a.indexOf(v) === i).sort((a, b) => a - b)
      const ch: Challenge = { id: t + 1, core: core.key!, nonce: crypto.randomBytes(32), indices }
      let c0 = process.cpuUsage()
      const a = await answerer.answer(auditorKey, ch)
      let c1 = process.cpuUsage(c0)
      answerUs.push((c1.user + c1.system) / indices.length)
      wire = (encode(challengeCodec, ch).byteLength + encode(answerCodec, a).byteLength) / indices.length
      c0 = process.cpuUsage()
      for (const i of indices) await core.get(i, { raw: true, wait: false } as never)
      c1 = process.cpuUsage(c0)
      readUs.push((c1.user + c1.system) / indices.length)
    }
    results.push(
      result({
        name: 'audit: holder CPU per audited block (64 KiB blocks, 256 a challenge)',
        value: median(answerUs),
        unit: 'µs',
        baseline: 'reading the same blocks as stored (get raw, wait: false), same process',
        baselineValue: median(readUs),
        better: 'lower',
        detail: { trials: answerUs.map((x) => round(x, 1)), blocks }
      }),
      result({
        name: 'audit: bytes on the wire per audited block (challenge + signed answer)',
        value: wire,
        unit: 'B',
        baseline: 'moving the block itself (64 KiB)',
        baselineValue: BLOCK,
        better: 'lower'
      })
    )

    // 2. Time to audit N cores (one block each) vs reading one block of each.
    const n = ctx.pick(10_000, 1_000)
    const small: Hypercore[] = []
    const t0 = performance.now()
    for (let i = 0; i < n; i++) {
      const c = store.get({ name: `c${i}` })
      await c.ready()
      await c.append(pseudoRandom(1024, i + 1))
      small.push(c)
    }
    ctx.say(`  ${n} cores of one 1 KiB block made in ${round((performance.now() - t0) / 1000, 1)} s`)
    const byKey = new Map(small.map((c) => [c.key!.toString('hex'), c]))
    const answerer2 = new ChallengeAnswerer(holder, (k) => byKey.get(Buffer.from(k).toString('hex')) ?? null)
    const auditor = crypto.keyPair()
    const challenger = new Challenger(auditor)
    const peer = loopPeer(holder.publicKey, auditor.publicKey, answerer2, () => challenger)
    const settings = { ...AUDIT_DEFAULTS }
    const a0 = performance.now()
    const cpu0 = process.cpuUsage()
    let failed = 0
    for (const c of small) {
      const x = await challenger.audit(peer, c, [0], { dataset: null, settings })
      failed += x.result.failed
    }
    const auditMs = performance.now() - a0
    const cpu = process.cpuUsage(cpu0)
    if (failed > 0) throw new Error(`${failed} audits of intact cores failed`)
    const r0 = performance.now()
    for (const c of small) await c.get(0, { raw: true, wait: false } as never)
    const readMs = performance.now() - r0
    challenger.close()
    results.push(
      result({
        name: `audit: time to audit ${n} cores (1 block each; auditor + holder, no network)`,
        value: auditMs / 1000,
        unit: 's',
        baseline: `reading one block of each of the ${n} cores`,
        baselineValue: readMs / 1000,
        better: 'lower',
        detail: { cores: n, cpuMs: round((cpu.user + cpu.system) / 1000), perCoreMs: round(auditMs / n, 3) }
      })
    )

    // 3. Continuous audits on an embassy at the default schedule: holder CPU per second of wall
    //    time for 10,000 held cores (AUDIT_DEFAULTS.samples per core per interval), from the measured cost.
    const perBlockUs = median(answerUs)
    const cores = 10_000
    const perSecondUs = (cores * AUDIT_DEFAULTS.samples * perBlockUs) / (AUDIT_DEFAULTS.intervalMs / 1000)
    results.push(
      result({
        name: 'audit: extra holder CPU during continuous audits (10,000 cores, default schedule)',
        value: perSecondUs / 1e6,
        unit: 'CPU-s/s',
        baseline: 'an idle embassy (no audit work: 0 CPU-s/s for audits); ratio = share of one core',
        baselineValue: 1,
        better: 'lower',
        detail: { perBlockUs: round(perBlockUs, 1), samplesPerCorePerInterval: AUDIT_DEFAULTS.samples, intervalMs: AUDIT_DEFAULTS.intervalMs }
      })
    )
    for (const c of small) await c.close()
    await core.close()
  } finally {
    await store.close()
    rmdir(root)
  }
  return results
}
