/**
 * `embassy demo`: the whole story on loopback, in one process, in temporary directories.
 * A local DHT; an agency publishes a log and a folder; two blind embassies replicate it live;
 * the agency goes dark; a mirror reads everything through the embassies; the embassies' storage
 * is shown to hold no plaintext. Leaves nothing behind.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Agency } from '../roles/agency.js'
import { LocalDHT } from '../net/local-dht.js'
import { Daemon } from './daemon.js'
import type { Embassy } from '../roles/embassy.js'
import { toZ32 } from '../ids.js'
import type { Mirror } from '../roles/mirror.js'
import { EmbassyNode } from '../node/node.js'

export interface DemoOptions {
  /** One line of the story (the CLI prints it on stderr). */
  log: (line: string) => void
  /** Replication progress in bytes. */
  progress: (label: string, done: number, total: number) => void
  /** Where to put the temporary nodes. @default os.tmpdir() */
  tmp?: string
  /** Records in the demo log. @default 5000 */
  records?: number
}

export interface DemoResult {
  records: number
  files: number
  bytes: number
  /** ms from the embassies' start until both held everything. */
  replicationMs: number
  /** ms from a live append on the agency until both embassies held it. */
  liveAppendMs: number
  /** ms the mirror took to read every record and file through the embassies. */
  mirrorReadMs: number
  plaintextHits: number
  identical: boolean
}

const MARKER = 'CITIZEN-RECORD-PLAINTEXT'

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log
  const root = fs.mkdtempSync(path.join(opts.tmp ?? os.tmpdir(), 'embassy-demo-'))
  const open: Array<{ close(): Promise<void> }> = []
  const dht = new LocalDHT({ port: 0 })
  try {
    await dht.ready()
    open.push(dht)
    const bootstrap = dht.bootstrap
    log(`1. A local DHT is up on ${bootstrap.join(',')} (${dht.nodes.length} nodes, loopback only).`)

    const dirs = { agency: path.join(root, 'agency'), a: path.join(root, 'embassy-luxembourg'), b: path.join(root, 'embassy-helsinki'), mirror: path.join(root, 'mirror') }
    await EmbassyNode.init(dirs.agency, { role: 'agency', name: 'Land Board' })
    await EmbassyNode.init(dirs.a, { role: 'embassy', name: 'Luxembourg' })
    await EmbassyNode.init(dirs.b, { role: 'embassy', name: 'Helsinki' })
    await EmbassyNode.init(dirs.mirror, { role: 'mirror', name: 'crisis mirror' })

    const agencyD = new Daemon({ dir: dirs.agency, bootstrap })
    await agencyD.ready()
    open.push(agencyD)
    const agency = (await agencyD.host.agency()) as Agency
    const records = opts.records ?? 5000
    await agency.createDataset('land-register', { description: 'parcels and owners' })
    await agency.append('land-register', Array.from({ length: records }, (_, i) => ({ parcel: `EE-${100000 + i}`, owner: `${MARKER} #${i}`, area: 500 + (i % 900) })))
    await agency.createDataset('laws', { kind: 'files', description: 'consolidated acts' })
    const src = path.join(root, 'laws-source')
    const files = writeLaws(src)
    await agency.publish('laws', src)
    const total = (await agency.list()).reduce((n, d) => n + d.byteLength, 0)
    log(`2. The agency publishes "land-register" (${records} records) and "laws" (${files.count} files, ${mib(files.bytes)}), block-encrypted.`)

    const embassies: Daemon[] = []
    for (const dir of [dirs.a, dirs.b]) {
      const d = new Daemon({ dir, bootstrap })
      await d.ready()
      open.push(d)
      embassies.push(d)
      agencyD.host.node.updateConfig((c) => c.allow.push(toZ32(d.host.node.nodeKey)))
      agencyD.network?.readmit(d.host.node.nodeKey)
    }
    const started = Date.now()
    for (const d of embassies) await ((await d.host.embassy()) as Embassy).follow(toZ32(agencyD.host.node.nodeKey))
    log('3. Two embassies abroad follow the agency by its node key and replicate everything, blind:')
    await waitFor(async () => {
      let held = 0
      for (const d of embassies) held += heldBytes((await d.host.embassy()) as Embassy)
      opts.progress('replicating', Math.min(held, 2 * total), 2 * total)
      return held >= 2 * total && (await custodyComplete(agency, embassies))
    }, 120_000, 'the embassies to hold everything')
    const replicationMs = Date.now() - started
    log(`   both embassies hold every block, with signed custody receipts, in ${(replicationMs / 1000).toFixed(1)} s.`)

    const t0 = Date.now()
    await agency.append('land-register', [{ parcel: 'EE-999999', owner: `${MARKER} live`, area: 1 }])
    await waitFor(() => custodyComplete(agency, embassies), 30_000, 'the live append to reach both embassies')
    const liveAppendMs = Date.now() - t0
    log(`4. A live append reaches both embassies and comes back as verified receipts in ${liveAppendMs} ms.`)

    const capability = agency.capability()
    await agencyD.close()
    log('5. The home network goes dark: the agency node is stopped.')

    const mirrorD = new Daemon({ dir: dirs.mirror, bootstrap })
    await mirrorD.ready()
    open.push(mirrorD)
    for (const d of embassies) {
      d.host.node.updateConfig((c) => c.allow.push(toZ32(mirrorD.host.node.nodeKey)))
      d.network?.readmit(mirrorD.host.node.nodeKey)
    }
    const mirror = (await mirrorD.host.mirror()) as Mirror
    const m0 = Date.now()
    await mirror.add(capability)
    let read = 0
    for await (const r of mirror.read('land-register')) if (r.text.includes(MARKER)) read++
    const out = path.join(root, 'laws-from-mirror')
    await mirror.export('laws', out)
    const mirrorReadMs = Date.now() - m0
    const identical = sameTree(src, out)
    log(`6. A mirror with the read capability reads all ${read} records and ${files.count} files through the embassies in ${(mirrorReadMs / 1000).toFixed(1)} s; files byte-identical: ${identical ? 'yes' : 'NO'}.`)

    let plaintextHits = 0
    for (const d of embassies) plaintextHits += scan(d.host.node.dir, MARKER)
    log(`7. Scanning both embassies' storage for "${MARKER}": ${plaintextHits} hit(s) — they hold ciphertext only.`)
    if (plaintextHits > 0 || !identical || read !== records + 1) {
      throw new Error(`demo check failed: plaintext=${plaintextHits} identical=${identical} records=${read}/${records + 1}`)
    }
    return { records: read, files: files.count, bytes: total, replicationMs, liveAppendMs, mirrorReadMs, plaintextHits, identical }
  } finally {
    for (const r of open.reverse()) await r.close().catch(() => {})
    fs.rmSync(root, { recursive: true, force: true })
  }
}

function heldBytes(embassy: Embassy): number {
  let n = 0
  for (const h of embassy.holdings()) for (const c of h.cores) if (c.dataset !== 'catalog') n += c.contiguousLength === c.length ? c.byteLength : Math.round((c.byteLength * c.contiguousLength) / Math.max(1, c.length))
  return n
}

async function custodyComplete(agency: Agency, embassies: Daemon[]): Promise<boolean> {
  const keys = embassies.map((d) => toZ32(d.host.node.nodeKey))
  const status = await agency.custody()
  return status.datasets.every((ds) => keys.every((k) => ds.embassies.find((e) => e.nodeKey === k)?.behindBlocks === 0))
}

async function waitFor(check: () => Promise<boolean> | boolean, timeout: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function writeLaws(root: string): { count: number; bytes: number } {
  let count = 0
  let bytes = 0
  const put = (rel: string, data: Buffer) => {
    const p = path.join(root, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, data)
    count++
    bytes += data.byteLength
  }
  for (let year = 2020; year <= 2025; year++) {
    for (let n = 1; n <= 5; n++) put(`acts/${year}/act-${n}.txt`, Buffer.from(`Act ${n} of ${year}. ${MARKER}\n`.repeat(200)))
  }
  const big = Buffer.alloc(8 * 1024 * 1024)
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i)
  put('archive/registry-snapshot.bin', big)
  return { count, bytes }
}

function sameTree(a: string, b: string): boolean {
  const list = (root: string) =>
    fs
      .readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
      .sort()
  const la = list(a)
  const lb = list(b)
  return la.length === lb.length && la.every((f, i) => f === lb[i] && fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))))
}

function scan(dir: string, needle: string): number {
  let hits = 0
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && fs.readFileSync(path.join(e.parentPath, e.name)).includes(needle)) hits++
  }
  return hits
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}
