/**
 * The blind audit: an auditor that holds nothing (a verify capability: catalog key + agency node
 * key, no read key) audits one embassy directly. It opens a temporary Corestore under its node
 * directory, replicates the audited catalog and cores on that embassy's connection only, and asks
 * for random blocks within a per-block deadline: each block arrives with its Merkle proof against
 * the agency-signed tree (Hypercore verifies it before `get` resolves), so a block the embassy does
 * not have — or has to fetch from elsewhere — fails or is late. The temporary store is deleted
 * after each audit: the auditor keeps no dataset block beyond the samples in flight and serves none.
 *
 * Owns: blind audits. May import: data/ (catalog), net/ (types), node/, errors, ids, protocol/.
 */
import fs from 'node:fs'
import path from 'node:path'
import Corestore from 'corestore'
import crypto from 'hypercore-crypto'
import type Hypercore from 'hypercore'
import { Catalog } from '../data/catalog.js'
import { keyZ32, toZ32 } from '../ids.js'
import type { Peer } from '../net/network.js'
import { MAX_CHALLENGE_INDICES } from '../../protocol/index.js'
import { AUDIT_DEFAULTS, type AuditResult, type AuditSettings } from './audit.js'

/** Folder (under the node directory) of the temporary stores of blind audits. */
export const BLIND_AUDIT_DIR = 'audit-tmp'

export interface BlindAuditOptions {
  /** The auditor's node directory (the temporary store goes under it). */
  dir: string
  catalogKey: Uint8Array
  /** Random blocks per core. @default settings.samples */
  samples?: number
  settings?: Partial<AuditSettings>
}

/** A blind audit of every core `peer` holds for the catalog: one result per non-empty core. */
export async function blindAudit(peer: Peer, opts: BlindAuditOptions): Promise<AuditResult[]> {
  const s = { ...AUDIT_DEFAULTS, ...(opts.settings ?? {}) }
  const samples = Math.min(MAX_CHALLENGE_INDICES, Math.max(1, opts.samples ?? s.samples))
  const embassy = keyZ32(peer)
  const tmp = path.join(opts.dir, BLIND_AUDIT_DIR, crypto.randomBytes(8).toString('hex'))
  const store = new Corestore(tmp)
  // Only this embassy's connection carries these cores: nothing can come from anyone else.
  const open = async (key: Uint8Array): Promise<Hypercore> => {
    const core = store.get({ key: Buffer.from(key) })
    await core.ready()
    core.replicate(peer.conn as never)
    return core
  }
  const results: AuditResult[] = []
  try {
    const headDeadline = Math.max(s.minDeadlineMs, s.deadlinePerBlockMs)
    const catalogCore = await open(opts.catalogKey)
    const cores: Array<{ key: Uint8Array; dataset: string | null }> = [{ key: opts.catalogKey, dataset: null }]
    const started = Date.now()
    const gotHead = await withDeadline(catalogCore.update({ wait: true }), headDeadline)
    if (!gotHead || catalogCore.length === 0) {
      return [{ embassy, dataset: null, core: toZ32(opts.catalogKey), sampled: 0, passed: 0, failed: 0, ms: Date.now() - started, at: started, error: 'the embassy did not give the catalog\'s signed head in time' }]
    }
    // The catalog is small and unencrypted: fetch it whole (each block proven), then read its entries.
    const catalog = new Catalog(catalogCore)
    const catalogDeadline = s.deadlinePerBlockMs * catalogCore.length + s.minDeadlineMs
    const fetched = await withDeadline(catalogCore.download({ start: 0, end: catalogCore.length }).done().then(() => true), catalogDeadline)
    const infos = fetched ? await withDeadline(catalog.datasets(null, { includeRetired: true }), catalogDeadline) : null
    if (!infos) {
      return [{ embassy, dataset: null, core: toZ32(opts.catalogKey), sampled: 0, passed: 0, failed: 1, ms: Date.now() - started, at: started, error: 'the embassy did not serve the catalog in time' }]
    }
    // Blind: datasets are named by id (their names are sealed with the read key we do not have).
    for (const info of infos) for (const key of info.cores) cores.push({ key, dataset: info.id })
    for (const { key, dataset } of cores) {
      const at = Date.now()
      const core = key === opts.catalogKey ? catalogCore : await open(key)
      const base = { embassy, dataset, core: toZ32(key), at }
      if (!(await withDeadline(core.update({ wait: true }), headDeadline)) && core.length === 0) {
        results.push({ ...base, sampled: 0, passed: 0, failed: 0, ms: Date.now() - at, error: 'no signed head from the embassy in time' })
        continue
      }
      if (core.length === 0) continue
      const indices = pick(core.length, samples)
      const deadline = Math.max(s.minDeadlineMs, s.deadlinePerBlockMs * indices.length)
      const got = await Promise.all(
        indices.map((i) =>
          core.get(i, { timeout: deadline, valueEncoding: 'binary' } as Parameters<Hypercore['get']>[1]).then(
            (b) => b !== null,
            () => false
          )
        )
      )
      const failedIndices = indices.filter((_, k) => !got[k])
      const r: AuditResult = { ...base, sampled: indices.length, passed: indices.length - failedIndices.length, failed: failedIndices.length, ms: Date.now() - at }
      if (failedIndices.length > 0) r.error = `${failedIndices.length} of ${indices.length} block(s) not served with a valid proof within ${deadline} ms (first: block ${failedIndices[0]})`
      results.push(r)
    }
    return results
  } finally {
    await store.close().catch(() => {})
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

function pick(length: number, samples: number): number[] {
  const out = new Set<number>()
  const want = Math.min(length, samples)
  while (out.size < want) out.add(crypto.randomBytes(6).readUIntBE(0, 6) % length)
  return [...out].sort((a, b) => a - b)
}

async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))])
  } catch {
    return null
  } finally {
    clearTimeout(timer)
  }
}
