/**
 * Continuity drill: a recovery rehearsal that cannot harm production. From a recovery kit (or a
 * read capability) it rebuilds the agency's data from ONE embassy, in a scratch directory of its
 * own (a fresh temp dir, removed after; never a node directory), and measures what a real
 * recovery would get:
 *
 *   - RTO: time from the drill's start to the first record decrypted and checked, and to the full
 *     copy (every block of every dataset fetched, each verified by Hypercore against the
 *     agency-signed tree as it arrived, then re-verified at rest with lib/verify);
 *   - RPO: the newest head it knows — cosigned heads the embassies gossip (witnesses) and the
 *     agency's own head when the agency admits the drill — against what the embassy gave, in blocks
 *     and seconds;
 *   - a sample of records and files decrypted with the read key and checked.
 *
 * It never appends, never announces (it looks the agency's topic up as a client only) and never
 * uses the agency's node key: it connects with its own identity, derived from the read key and
 * catalog key (the same for a kit and a capability of one agency), which each embassy admits once
 * like a mirror (`embassy allow DRILL_KEY --agency AGENCY`). It presents itself as a mirror, so no
 * embassy sees a second live agency. Blocks come over the chosen embassy's connection only (other
 * connections carry custody messages — witnessed heads — and nothing else).
 *
 * The report is signed with a key derived for drills from the kit's primary key, or with a fresh
 * key named in the report when run from a capability (drill-report.ts).
 *
 * Owns: runDrill() and the choice of embassy (sources and key derivations: drill-source.ts;
 * fetching and checking a dataset: drill-fetch.ts; the RPO: drill-rpo.ts; the report:
 * drill-report.ts). May import: node/, data/, net/, custody/, verify/, protocol/, errors, ids.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { randomInt } from 'node:crypto'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { EmbassyError } from '../errors.js'
import { keyZ32, toZ32 } from '../ids.js'
import type { DrillSource } from './drill-source.js'
import { Catalog, type DatasetInfo } from '../data/catalog.js'
import { Datasets } from '../data/datasets.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { LogDataset } from '../data/log-dataset.js'
import { Network, type Peer } from '../net/network.js'
import { agencyTopic } from '../node/caps.js'
import type { HostPort } from '../node/config.js'
import { verifyCores } from '../verify/index.js'
import { CUSTODY_MAJOR, CUSTODY_MINOR, PeerRole } from '../../protocol/index.js'
import { drillReportPaths, signDrillReport, writeDrillReport, type DrillDataset, type DrillReport, type UnsignedDrillReport } from './drill-report.js'
import { checkSample, fetchAll, firstRecord, waitFor, withDeadline } from './drill-fetch.js'
import { addHead, recoveryPoint, type HeadsByCore } from './drill-rpo.js'

/** How long the drill looks for an embassy before it gives up (exit 3). */
export const DRILL_CONNECT_TIMEOUT_MS = 60_000
/** After the first embassy answers, how long to wait for others (to pick among them, and for their witnessed heads). */
export const DRILL_SETTLE_MS = 3_000
/** A core whose download makes no progress for this long fails: the embassy lacks those blocks. */
export const DRILL_STALL_MS = 20_000
/** Records (log) or files checked per dataset after decrypting. */
export const DRILL_SAMPLES = 8
export { drillIdentity, drillSigner, drillSourceFromCapability, drillSourceFromKit, drillSourceFromShares, kitIsSealed, readSourceFile, type DrillSource } from './drill-source.js'

export interface DrillOptions {
  source: DrillSource
  bootstrap: HostPort[]
  /** Rebuild from this embassy (node key); default: one picked at random among those that answer. */
  embassy?: Buffer
  /** Folder for drill-<time>.json/.html. */
  out: string
  /** Parent of the scratch directory. @default os.tmpdir() */
  scratchParent?: string
  /** @default DRILL_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number
  /** @default DRILL_SETTLE_MS */
  settleMs?: number
  /** @default DRILL_STALL_MS */
  stallMs?: number
  /** @default DRILL_SAMPLES */
  samples?: number
  /** Progress for a person (the CLI shows it on stderr). */
  onProgress?: (text: string) => void
  /** Cuts the drill short (the node stops): it rejects with CLOSED, writes no report, removes its scratch. */
  signal?: AbortSignal
}

/**
 * Runs one drill and writes its signed report to `out`. Resolves with the report whatever the
 * drill's outcome (ok: false names why; embassy: null when no embassy was reachable); throws only
 * for problems of the caller's making (no bootstrap, an unwritable --out).
 */
export async function runDrill(opts: DrillOptions): Promise<DrillReport> {
  const { source } = opts
  if (opts.bootstrap.length === 0) throw EmbassyError.noBootstrap()
  const out = path.resolve(opts.out)
  try {
    if (!fs.statSync(out).isDirectory()) throw new Error('not a directory')
    fs.accessSync(out, fs.constants.W_OK)
  } catch (err) {
    throw EmbassyError.badArgument(`the report folder ${out} is not a writable directory`, err)
  }
  const startedAt = Date.now()
  const t0 = performance.now()
  /** The deliberate pause to hear from more embassies is not recovery time: it is left out of the RTO. */
  let paused = 0
  const since = (): number => Math.round(performance.now() - t0 - paused)
  const progress = opts.onProgress ?? (() => {})
  const scratch = fs.mkdtempSync(path.join(opts.scratchParent ?? os.tmpdir(), 'embassy-drill-'))
  const store = new Corestore(path.join(scratch, 'store'))
  const probeStore = new Corestore(path.join(scratch, 'probe'))
  const heads: HeadsByCore = new Map()
  const catalogHex = source.catalogKey.toString('hex')
  const pinned = opts.embassy ? toZ32(opts.embassy) : null
  const known = new Set(source.known.map((k) => k.toString('hex')))
  const network = new Network({
    keyPair: source.identity,
    bootstrap: opts.bootstrap,
    store,
    handshake: () => ({ major: CUSTODY_MAJOR, minor: CUSTODY_MINOR, role: PeerRole.MIRROR, capabilities: [], catalogs: [source.catalogKey] }),
    // The kit's embassies, the one asked for, and the agency (its head, when it admits the drill).
    isAllowed: (key) => known.has(key.toString('hex')) || (opts.embassy ? key.equals(opts.embassy) : false) || key.equals(source.agencyNodeKey),
    // Embassies admitted after the kit was made are found on the agency's topic.
    dialAnyone: true,
    handlers: () => ({
      head: (h) => addHead(heads, h)
    })
  })
  // Named in our handshake (so holders send us their witnessed heads); no core is offered, so
  // nothing is replicated but what the drill attaches to the chosen embassy's connection.
  network.setScope({ entitled: () => [source.catalogKey], catalogOfTopic: () => null })

  const base = {
    format: 'data-embassy/drill-report' as const,
    version: 1 as const,
    agency: toZ32(source.agencyNodeKey),
    catalog: toZ32(source.catalogKey),
    source: source.kind,
    drillKey: toZ32(source.identity.publicKey),
    startedAt: new Date(startedAt).toISOString()
  }
  let unsigned: UnsignedDrillReport
  const onAbort = (): void => void network.close().catch(() => {})
  opts.signal?.addEventListener('abort', onAbort)
  try {
    if (opts.signal?.aborted) throw EmbassyError.closed()
    await network.ready()
    for (const k of source.known) network.joinPeer(k)
    if (opts.embassy) network.joinPeer(opts.embassy)
    await network.join(agencyTopic(source.catalogKey), { server: false, client: true }).catch(() => {})
    progress(pinned ? `looking for embassy ${pinned}` : 'looking for the agency\'s embassies')
    const picked = await pickEmbassy(network, catalogHex, pinned, opts.connectTimeoutMs ?? DRILL_CONNECT_TIMEOUT_MS, opts.settleMs ?? DRILL_SETTLE_MS, opts.signal)
    const peer = picked?.peer ?? null
    paused = picked?.pausedMs ?? 0
    if (!peer) {
      const why = pinned
        ? `embassy ${pinned} was not reachable within ${Math.round((opts.connectTimeoutMs ?? DRILL_CONNECT_TIMEOUT_MS) / 1000)} s (is it running, and does it admit the drill key ${toZ32(source.identity.publicKey)}?)`
        : `no embassy of the agency was reachable within ${Math.round((opts.connectTimeoutMs ?? DRILL_CONNECT_TIMEOUT_MS) / 1000)} s (do they admit the drill key ${toZ32(source.identity.publicKey)}? embassy allow KEY --agency ${toZ32(source.agencyNodeKey)})`
      unsigned = { ...base, ok: false, embassy: null, finishedAt: new Date().toISOString(), rto: { firstRecordMs: null, fullCopyMs: null }, rpo: { blocksBehind: 0, secondsBehind: 0, sources: [], checkedHeads: 0 }, bytes: 0, blocks: { fetched: 0, verified: 0 }, sampled: 0, datasets: [], error: why, reportFile: '' }
    } else {
      progress(`rebuilding from embassy ${keyZ32(peer)}`)
      unsigned = { ...base, ...(await rebuild(network, store, probeStore, peer, heads, source, opts, since, progress)), reportFile: '' }
    }
    if (opts.signal?.aborted) throw EmbassyError.closed()
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
    await network.close().catch(() => {})
    await store.close().catch(() => {})
    await probeStore.close().catch(() => {})
    fs.rmSync(scratch, { recursive: true, force: true })
  }
  const paths = drillReportPaths(out, startedAt)
  const report = signDrillReport({ ...unsigned, reportFile: paths.json }, source.signer, source.signerKind)
  writeDrillReport(report, paths)
  return report
}

/** The embassy to rebuild from: the pinned one, else one picked at random among those that answered. */
async function pickEmbassy(network: Network, catalogHex: string, pinned: string | null, timeoutMs: number, settleMs: number, signal?: AbortSignal): Promise<{ peer: Peer; pausedMs: number } | null> {
  const holders = (): Peer[] =>
    [...network.peers.values()].filter((p) => p.role === 'embassy' && (p.handshake?.catalogs ?? []).some((c) => Buffer.from(c).toString('hex') === catalogHex) && (!pinned || toZ32(p.key) === pinned))
  const found = await waitFor(() => (holders().length > 0 ? true : null), timeoutMs, signal)
  if (!found) return null
  // Give the others a moment: more embassies to pick from, and their witnessed heads for the RPO.
  const pauseStart = performance.now()
  await waitFor(() => null, settleMs, signal)
  const pausedMs = performance.now() - pauseStart
  const list = holders()
  if (list.length === 0) return null
  return { peer: list[randomInt(list.length)]!, pausedMs }
}

interface Rebuilt {
  ok: boolean
  embassy: string
  finishedAt: string
  rto: DrillReport['rto']
  rpo: DrillReport['rpo']
  bytes: number
  blocks: DrillReport['blocks']
  sampled: number
  datasets: DrillDataset[]
  error?: string
}

async function rebuild(
  network: Network,
  store: Corestore,
  probeStore: Corestore,
  peer: Peer,
  heads: HeadsByCore,
  source: DrillSource,
  opts: DrillOptions,
  since: () => number,
  progress: (text: string) => void
): Promise<Rebuilt> {
  const stallMs = opts.stallMs ?? DRILL_STALL_MS
  const signal = opts.signal
  const samples = opts.samples ?? DRILL_SAMPLES
  const embassy = keyZ32(peer)
  const fail = (error: string): Rebuilt => ({
    ok: false,
    embassy,
    finishedAt: new Date().toISOString(),
    rto: { firstRecordMs: null, fullCopyMs: null },
    rpo: { blocksBehind: 0, secondsBehind: 0, sources: [], checkedHeads: 0 },
    bytes: 0,
    blocks: { fetched: 0, verified: 0 },
    sampled: 0,
    datasets: [],
    error
  })
  const attach = (core: Hypercore): void => {
    network.attachCore(peer, core, { upload: false })
  }
  // The catalog (signed, not encrypted): every block from this embassy.
  const catalogCore = store.get({ key: source.catalogKey })
  await catalogCore.ready()
  attach(catalogCore)
  await withDeadline(catalogCore.update({ wait: true }), stallMs, signal)
  if (catalogCore.length === 0) return fail(`embassy ${embassy} gave no signed head of the catalog within ${Math.round(stallMs / 1000)} s`)
  if (!(await fetchAll(catalogCore, stallMs, signal))) return fail(`embassy ${embassy} did not serve the whole catalog (${catalogCore.contiguousLength} of ${catalogCore.length} blocks)`)
  const catalog = new Catalog(catalogCore)
  let infos: DatasetInfo[]
  try {
    await catalog.checkReadKey(source.readKey)
    infos = await catalog.datasets(source.readKey)
  } catch (err) {
    return fail(`the catalog from embassy ${embassy} does not open with the read key: ${(err as Error).message}`)
  }
  const datasets = new Datasets(store, catalog, source.readKey, { writable: false })
  const refs: HeldCoreRef[] = [{ catalog: source.catalogKey, dataset: null, name: 'catalog', core: catalogCore }]
  const results: DrillDataset[] = []
  /** Core key (z32) → the dataset result it belongs to. */
  const owner = new Map<string, DrillDataset>()
  let firstRecordMs: number | null = null
  let allFetched = true
  let sampled = 0
  try {
    for (const info of infos) {
      const name = info.name ?? info.id
      progress(`fetching ${name}`)
      const r: DrillDataset = { name, ok: false, length: 0, fetched: 0, bytes: 0 }
      results.push(r)
      try {
        const ds = await datasets.open(info)
        const cores: Hypercore[] = []
        if (ds instanceof LogDataset) {
          attach(ds.core)
          await withDeadline(ds.core.update({ wait: true }), stallMs, signal)
          cores.push(ds.core)
        } else {
          attach(ds.drive.core)
          await withDeadline(ds.drive.core.update({ wait: true }), stallMs, signal)
          cores.push(ds.drive.core)
          if (ds.drive.core.length > 0) {
            const blobs = await withDeadline(ds.drive.getBlobs(), stallMs, signal)
            if (!blobs) {
              r.length = ds.drive.core.length
              r.error = `embassy ${embassy} did not serve the file index's header`
              allFetched = false
              continue
            }
            attach(blobs.core)
            await withDeadline(blobs.core.update({ wait: true }), stallMs, signal)
            cores.push(blobs.core)
          }
        }
        for (const [i, core] of cores.entries()) {
          refs.push({ catalog: source.catalogKey, dataset: info.id, name: i === 0 ? name : `${name} (content)`, core })
          owner.set(keyZ32(core), r)
        }
        r.length = cores.reduce((n, c) => n + c.length, 0)
        // Time to the first record served: the first record of the first dataset that has one.
        if (firstRecordMs === null && r.length > 0) {
          const first = await withDeadline(firstRecord(ds, stallMs), stallMs + 1000, signal)
          if (first) firstRecordMs = since()
        }
        const missing: string[] = []
        let fetched = 0
        for (const core of cores) {
          const whole = await fetchAll(core, stallMs, signal)
          const held = core.length > 0 ? await core.count(0, core.length) : 0
          fetched += held
          if (!whole) missing.push(`${core.length - held} of ${core.length} block(s) of core ${keyZ32(core)} (first missing: block ${core.contiguousLength})`)
        }
        r.fetched = fetched
        r.bytes = cores.reduce((n, c) => n + c.byteLength, 0)
        if (missing.length > 0) {
          allFetched = false
          r.error = `embassy ${embassy} is missing blocks: ${missing.join('; ')} not served within ${Math.round(stallMs / 1000)} s`
          continue
        }
        const checked = await checkSample(ds, samples)
        sampled += checked.count
        if (checked.error) {
          r.error = `decrypted sample failed its check: ${checked.error}`
          continue
        }
        r.ok = true
      } catch (err) {
        allFetched = false
        r.error = (err as Error).message
      }
    }
    const fullCopyMs = allFetched ? since() : null
    // Re-verify every block held at rest against the signed tree (and the head's signature).
    progress('verifying every block against the signed heads')
    const verified = await verifyCores(refs)
    let verifiedBlocks = 0
    for (const c of verified.cores) {
      verifiedBlocks += c.held - c.failed
      if (c.failed > 0 || (!c.signed && c.length > 0)) {
        const r = owner.get(c.key)
        const why = `${c.failed} block(s) of core ${c.key} do not verify against the signed head${c.signed ? '' : ' (the head\'s signature does not verify)'}`
        if (r) {
          r.ok = false
          r.error = r.error ? `${r.error}; ${why}` : why
        } else return { ...fail(`catalog: ${why}`), datasets: results }
      }
    }
    const rpo = await recoveryPoint(network, probeStore, refs, heads, source)
    let fetchedBlocks = 0
    for (const ref of refs) fetchedBlocks += ref.core.length > 0 ? await ref.core.count(0, ref.core.length) : 0
    const bytes = catalogCore.byteLength + results.reduce((n, d) => n + d.bytes, 0)
    return {
      ok: results.every((d) => d.ok),
      embassy,
      finishedAt: new Date().toISOString(),
      rto: { firstRecordMs, fullCopyMs },
      rpo,
      bytes,
      blocks: { fetched: fetchedBlocks, verified: verifiedBlocks },
      sampled,
      datasets: results
    }
  } finally {
    await datasets.close().catch(() => {})
  }
}
