/**
 * Command handlers: what each CLI command does on an open node. The CLI runs them on a
 * node it opens itself, or forwards them to a running `embassy run` over the control socket,
 * which runs the very same handlers. Handlers never print: they return a JSON-able result,
 * and stream lines and progress through `io`.
 */
import path from 'node:path'
import type { Agency } from '../roles/agency.js'
import type { Embassy } from '../roles/embassy.js'
import { EmbassyError } from '../errors.js'
import { parseKey, toZ32 } from '../ids.js'
import type { Mirror } from '../roles/mirror.js'
import type { Network } from '../net/network.js'
import type { EmbassyNode } from '../node/node.js'
import type { DatasetReader } from '../data/reader.js'
import type { HeldCoreRef } from './host.js'
import { kitExportHandler } from '../kit/kit.js'
import { verifyHandler } from '../verify/verify.js'
import type { DatasetKindName } from '../../protocol/index.js'

export interface CommandIO {
  /** The caller wants one JSON document: no streamed lines. */
  json: boolean
  /** Progress of long work, in units (bytes or records). */
  progress(label: string, done: number, total: number): void
  /** One line of streamed output (read). */
  line(text: string): void
}

/** What a handler gets: the open node and its role objects. */
export interface Host {
  node: EmbassyNode
  /** The role objects (each throws WRONG_ROLE on other nodes). */
  agency(): Promise<Agency>
  embassy(): Promise<Embassy>
  mirror(): Promise<Mirror>
  /** Whoever reads datasets on this node: the agency or the mirror. */
  reader(): Promise<DatasetReader>
  /** True inside a running node (the network is up). */
  online: boolean
  /** The network, inside a running node. */
  network: Network | null
  /** Every core this node holds (catalogs and dataset cores), on every role. */
  heldCores(): Promise<HeldCoreRef[]>
}

/** A command's input: plain JSON, so it can cross the control socket. */
export interface CommandInput {
  args: string[]
  opts: Record<string, string | boolean | undefined>
  /** append: the records, already split (and their line numbers). */
  records?: { texts: string[]; lines: number[] }
}

export type Handler = (host: Host, input: CommandInput, io: CommandIO) => Promise<unknown>

function arg(input: CommandInput, i: number, name: string): string {
  const v = input.args[i]
  if (v === undefined || v === '') throw EmbassyError.badArgument(`missing ${name}`)
  return v
}

function intOpt(input: CommandInput, name: string): number | undefined {
  const v = input.opts[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw EmbassyError.badArgument(`--${name} must be a whole number ≥ 0`)
  return n
}

function strOpt(input: CommandInput, name: string): string | undefined {
  const v = input.opts[name]
  return typeof v === 'string' ? v : undefined
}

export const handlers: Record<string, Handler> = {
  async id(host) {
    return host.node.identity()
  },

  async 'dataset create'(host, input) {
    const agency = await host.agency()
    const kind = (strOpt(input, 'kind') ?? 'log') as DatasetKindName
    const opts: { kind: DatasetKindName; description?: string; contentType?: string } = { kind }
    const description = strOpt(input, 'description')
    if (description !== undefined) opts.description = description
    const contentType = strOpt(input, 'content-type')
    if (contentType !== undefined) opts.contentType = contentType
    return agency.createDataset(arg(input, 0, 'NAME'), opts)
  },

  async append(host, input, io) {
    const agency = await host.agency()
    const name = arg(input, 0, 'NAME')
    const records = input.records ?? { texts: input.args.slice(1), lines: input.args.slice(1).map((_, i) => i + 1) }
    if (records.texts.length === 0) throw EmbassyError.badArgument('no records given: pass JSON arguments or NDJSON on stdin')
    return {
      dataset: name,
      ...(await agency.appendJson(name, records.texts, {
        lines: records.lines,
        onProgress: (done, total) => io.progress('append', done, total)
      }))
    }
  },

  async publish(host, input, io) {
    const agency = await host.agency()
    const name = arg(input, 0, 'NAME')
    const source = path.resolve(arg(input, 1, 'PATH'))
    const result = await agency.publish(name, source, (done, total) => io.progress('publish', done, total))
    return { dataset: name, source, ...result }
  },

  async list(host) {
    const reader = await host.reader()
    return { datasets: await reader.list() }
  },

  async read(host, input, io) {
    const reader = await host.reader()
    const name = arg(input, 0, 'NAME')
    const opts: { start?: number; end?: number; wait: boolean } = { wait: host.online }
    const start = intOpt(input, 'start')
    const end = intOpt(input, 'end')
    if (start !== undefined) opts.start = start
    if (end !== undefined) opts.end = end
    if (start !== undefined && end !== undefined && end < start) throw EmbassyError.badArgument('--end must not be below --start')
    const records: Array<{ seq: number; time: number; type: string; value: unknown }> = []
    let count = 0
    for await (const r of reader.read(name, opts)) {
      count++
      if (io.json) records.push({ seq: r.seq, time: r.time, type: r.type, value: r.type === 'json' ? JSON.parse(r.text) : r.text })
      else io.line(r.text)
    }
    return io.json ? { dataset: name, records } : { dataset: name, count }
  },

  async export(host, input, io) {
    const reader = await host.reader()
    const name = arg(input, 0, 'NAME')
    const dir = path.resolve(arg(input, 1, 'DIR'))
    return { dataset: name, ...(await reader.export(name, dir, (done, total) => io.progress('export', done, total))) }
  },

  async capability(host) {
    const agency = await host.agency()
    return { readCapability: agency.capability() }
  },

  async allow(host, input) {
    const key = toZ32(parseKey(arg(input, 0, 'NODE_KEY'), 'node key'))
    const added = !host.node.config.allow.includes(key)
    if (added) host.node.updateConfig((c) => c.allow.push(key))
    host.network?.readmit(parseKey(key))
    return { nodeKey: key, allowed: true, added, allow: host.node.config.allow }
  },

  async deny(host, input) {
    const key = toZ32(parseKey(arg(input, 0, 'NODE_KEY'), 'node key'))
    const removed = host.node.config.allow.includes(key)
    if (removed) host.node.updateConfig((c) => (c.allow = c.allow.filter((k) => k !== key)))
    // Close a live connection from a peer that is no longer allowed (followed agencies stay).
    const peer = host.network?.connectedTo(parseKey(key))
    if (peer && !host.node.config.follow.some((f) => f.nodeKey === key) && !host.node.config.sources.some((s) => s.agencyNodeKey === key)) {
      peer.conn.destroy()
    }
    return { nodeKey: key, allowed: false, removed, allow: host.node.config.allow }
  },

  async follow(host, input) {
    const embassy = await host.embassy()
    return embassy.follow(arg(input, 0, 'AGENCY_NODE_KEY'))
  },

  async mirror(host, input) {
    const mirror = await host.mirror()
    return mirror.add(arg(input, 0, 'READ_CAPABILITY'))
  },

  async status(host) {
    return nodeStatus(host)
  },

  'kit export': kitExportHandler,

  verify: verifyHandler
}

/** What `embassy status` shows, per role. */
export async function nodeStatus(host: Host): Promise<Record<string, unknown>> {
  const id = await host.node.identity()
  const peers = host.network ? host.network.describePeers() : []
  const base = { ...id, running: host.online, peers }
  if (id.role === 'agency') {
    const agency = await host.agency()
    return { ...base, ...(await agency.custody()) }
  }
  if (id.role === 'embassy') {
    const embassy = await host.embassy()
    return { ...base, agencies: embassy.holdings() }
  }
  const mirror = await host.mirror()
  return { ...base, sources: mirror.status() }
}
