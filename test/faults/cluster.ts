/** A lab cluster: bootstrap, agency, embassies (and a mirror) as real processes on their own hosts. */
import path from 'node:path'
import type test from 'brittle'
import { callControl, type CommandIO } from '../../lib/index.js'
import { cli, pairDirs, report, type Proc } from '../helpers/index.js'
import { Lab } from './lab.js'

type Test = test.Assert

const quietIO: CommandIO = { json: true, progress() {}, line() {} }

export interface Cluster {
  lab: Lab
  bootstrap: string[]
  boot: Proc
  agencyDir: string
  embassyDirs: string[]
  agencyKey: string
  embassyKeys: string[]
  agency: Proc | null
  embassies: Array<Proc | null>
}

export interface ClusterOptions {
  embassies?: number
  /** Log dataset created before start. @default 'seq' */
  dataset?: string
  /** Start the embassies' daemons now. @default true */
  startEmbassies?: boolean
}

export async function startCluster(t: Test, opts: ClusterOptions = {}): Promise<Cluster> {
  const lab = new Lab(t)
  lab.addHost('boot')
  lab.addHost('agency')
  const n = opts.embassies ?? 2
  for (let i = 0; i < n; i++) lab.addHost(`emb${i}`)
  const { proc: boot, bootstrap } = await lab.bootstrap(t, 'boot')
  const root = await t.tmp()
  const agencyDir = path.join(root, 'agency')
  await mustCli(['init', '--role', 'agency', '--name', 'Fault Agency', '--dir', agencyDir])
  await mustCli(['dataset', 'create', opts.dataset ?? 'seq', '--dir', agencyDir])
  const agencyKey = (await mustCli(['id', '--dir', agencyDir, '--json'])).json.nodeKey as string
  const embassyDirs: string[] = []
  const embassyKeys: string[] = []
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, `emb${i}`)
    await mustCli(['init', '--role', 'embassy', '--dir', dir])
    const key = (await mustCli(['id', '--dir', dir, '--json'])).json.nodeKey as string
    await pairDirs({ dir: agencyDir, nodeKey: agencyKey }, { dir, nodeKey: key })
    embassyDirs.push(dir)
    embassyKeys.push(key)
  }
  const c: Cluster = { lab, bootstrap, boot, agencyDir, embassyDirs, agencyKey, embassyKeys, agency: null, embassies: [] }
  c.agency = await lab.run(t, 'agency', agencyDir, bootstrap)
  for (let i = 0; i < n; i++) c.embassies.push(opts.startEmbassies === false ? null : await lab.run(t, `emb${i}`, embassyDirs[i]!, bootstrap))
  return c
}

export async function mustCli(args: string[], input?: string) {
  const r = await cli(args, input === undefined ? {} : { input })
  if (r.code !== 0) throw new Error(`embassy ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r
}

/** A command on the running node at `dir` (through its control socket); throws when none runs. */
export async function control(dir: string, command: string, args: string[] = [], records?: string[]): Promise<any> {
  const input = { args, opts: {}, ...(records ? { records: { texts: records, lines: records.map((_, i) => i + 1) } } : {}) }
  const r = await callControl(dir, command, input, quietIO)
  if (!r.running) throw new Error(`no node running at ${dir}`)
  return r.value
}

/** Appends {seq} records at `perSecond` until `stop()`; `acked` holds every acknowledged seq. */
export function appender(dir: string, dataset: string, perSecond: number, first = 0) {
  const acked: number[] = []
  /** Seqs whose first try failed: the append may have landed without its ack, so a retry may store it twice. */
  const uncertain = new Set<number>()
  let seq = first
  let running = true
  let failures = 0
  const done = (async () => {
    while (running) {
      const started = Date.now()
      try {
        await control(dir, 'append', [dataset], [JSON.stringify({ seq })])
        acked.push(seq)
        seq++
      } catch {
        failures++ // the node is down or restarting: the same seq is tried again
        uncertain.add(seq)
      }
      const wait = 1000 / perSecond - (Date.now() - started)
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
  })()
  return {
    acked,
    uncertain,
    get failures() {
      return failures
    },
    get next() {
      return seq
    },
    async stop() {
      running = false
      await done
    }
  }
}

/** Custody rows (dataset → embassy → row) from the agency's status. */
export async function custody(agencyDir: string): Promise<any> {
  return control(agencyDir, 'status')
}

/**
 * Waits until every embassy has a verified receipt at the agency's full length for every dataset
 * (a row without any receipt does not count, even for an empty dataset).
 */
export async function waitCaughtUp(c: Cluster, timeout: number, keys = c.embassyKeys): Promise<number> {
  const started = Date.now()
  let last: unknown = null
  while (Date.now() - started < timeout) {
    try {
      const s = await custody(c.agencyDir)
      last = { peers: s.peers, datasets: s.datasets.map((d: any) => ({ name: d.name, length: d.length, embassies: d.embassies.map((e: any) => [e.nodeKey.slice(0, 8), e.behindBlocks, e.connected, e.receiptAge]) })) }
      const ok = s.datasets.every((d: any) =>
        keys.every((k) => {
          const row = d.embassies.find((e: any) => e.nodeKey === k)
          return row && row.receiptAt !== null && row.behindBlocks === 0
        })
      )
      if (ok) return Date.now() - started
    } catch (err) {
      last = (err as Error).message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  const logs = [c.agency, ...c.embassies].map((p, i) => `--- ${i === 0 ? 'agency' : `emb${i - 1}`}:\n${(p?.stderr ?? '').split('\n').slice(-15).join('\n')}`).join('\n')
  throw new Error(`embassies did not catch up within ${timeout} ms; last status: ${JSON.stringify(last)}\n${logs}`)
}

/** Every record of `dataset` on the agency: each acked seq must be there, exactly once, in order. */
export async function checkLog(
  agencyDir: string,
  dataset: string,
  acked: number[],
  uncertain: ReadonlySet<number> = new Set()
): Promise<{ lost: number; duplicated: number; length: number }> {
  // Only what was acknowledged before we read counts (the appender may still be running).
  acked = [...acked]
  const r = await control(agencyDir, 'read', [dataset]).catch(async () => (await mustCli(['read', dataset, '--dir', agencyDir, '--json'])).json)
  const seqs: number[] = (r.records as Array<{ value: { seq?: number } }>).map((x) => x.value.seq).filter((s): s is number => typeof s === 'number')
  const seen = new Map<number, number>()
  for (const s of seqs) seen.set(s, (seen.get(s) ?? 0) + 1)
  const lost = acked.filter((s) => !seen.has(s)).length
  // A seq stored twice is a duplicate unless its first try went unacknowledged (the client retried).
  const duplicated = [...seen.entries()].filter(([s, n]) => n > 1 && !uncertain.has(s)).length
  return { lost, duplicated, length: seqs.length }
}

export { report }

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
