/**
 * The recovery point of a continuity drill (drill.ts): per core, the newest head the drill knows —
 * witnessed heads the embassies gossip to it (each checked: the witness's signature and the
 * agency's) and the agency's own head when it is connected (probed in a separate store: no block
 * of it is used) — against what the chosen embassy gave.
 *
 * Owns: HeadsByCore, addHead, recoveryPoint. May import: data/tree, net/ (types), custody/, ids.
 */
import type Corestore from 'corestore'
import { toZ32 } from '../ids.js'
import type { HeldCoreRef } from '../data/held-core.js'
import { verifySignedHead } from '../data/tree.js'
import type { Network } from '../net/network.js'
import { verifyWitnessSignature } from '../custody/index.js'
import type { WitnessedHead } from '../../protocol/index.js'
import type { DrillReport } from './drill-report.js'
import type { DrillSource } from './drill-source.js'
import { withDeadline } from './drill-fetch.js'

/** Witnessed heads kept per core (the first ones heard; more from one drill is noise). */
export const DRILL_HEADS_PER_CORE = 64
/** How long the agency's own head is waited for, per core. */
export const AGENCY_HEAD_WAIT_MS = 5000

/** Heads gossiped to the drill, by core (hex). */
export type HeadsByCore = Map<string, WitnessedHead[]>

/** Keeps a head a peer gossiped (checked later, in recoveryPoint). */
export function addHead(heads: HeadsByCore, h: WitnessedHead): void {
  const hex = Buffer.from(h.core).toString('hex')
  const list = heads.get(hex) ?? []
  if (list.length < DRILL_HEADS_PER_CORE) list.push(h)
  heads.set(hex, list)
}

/**
 * RPO over `refs` (the cores the embassy gave): blocksBehind sums, per core, the newest head known
 * minus the length the embassy gave; secondsBehind is how long ago the oldest head beyond the
 * embassy's was witnessed (the agency's own head counts as now).
 */
export async function recoveryPoint(network: Network, probeStore: Corestore, refs: HeldCoreRef[], heads: HeadsByCore, source: DrillSource): Promise<DrillReport['rpo']> {
  const sources = new Set<string>()
  let blocksBehind = 0
  let checkedHeads = 0
  let oldestAhead: number | null = null
  const agency = network.connectedTo(source.agencyNodeKey)
  const now = Date.now()
  for (const ref of refs) {
    const core = ref.core
    const gave = core.length
    let newest = gave
    for (const head of heads.get(core.key!.toString('hex')) ?? []) {
      if (!verifyWitnessSignature(head) || !verifySignedHead(core, { ...head, signature: head.agencySignature })) continue
      checkedHeads++
      if (head.length > gave) {
        // The witness that signed it (whoever relayed it: the signature is the witness's).
        sources.add(toZ32(head.witness))
        newest = Math.max(newest, head.length)
        const t = Math.min(head.time, now)
        oldestAhead = oldestAhead === null ? t : Math.min(oldestAhead, t)
      }
    }
    if (agency) {
      const probe = probeStore.get({ key: core.key! })
      await probe.ready()
      network.attachCore(agency, probe, { upload: false })
      await withDeadline(probe.update({ wait: true }), AGENCY_HEAD_WAIT_MS)
      if (probe.length > newest) {
        newest = probe.length
        sources.add(`agency ${toZ32(agency.key)}`)
        oldestAhead = oldestAhead ?? now
      }
    }
    blocksBehind += newest - gave
  }
  return { blocksBehind, secondsBehind: blocksBehind > 0 && oldestAhead !== null ? Math.max(0, Math.round((now - oldestAhead) / 1000)) : 0, sources: [...sources].sort(), checkedHeads }
}
