/**
 * Peers: `embassy allow`, `deny`, `follow`, `mirror`, `capability` — who may connect, whom an
 * embassy holds for, what a mirror reads, and the capability that lets it.
 *
 * Owns: these records and their text. May import: command, host, ids, roles/ (types).
 */
import { parseKey, toZ32 } from '../../ids.js'
import type { Embassy } from '../../roles/embassy.js'
import type { Mirror } from '../../roles/mirror.js'
import { arg, defineCommand, noInput, type CommandInput } from '../command.js'

export interface AllowResult {
  nodeKey: string
  allowed: true
  /** True when the allowlist changed. */
  added: boolean
  allow: string[]
}

export interface DenyResult {
  nodeKey: string
  allowed: false
  /** True when the allowlist changed. */
  removed: boolean
  allow: string[]
}

const nodeKeyInput = (line: CommandInput) => ({ nodeKey: arg(line, 0, 'NODE_KEY') })

export const allow = defineCommand({
  name: 'allow',
  spec: {
    usage: 'embassy allow NODE_KEY',
    summary: 'admit a peer (an agency allows its embassies and mirrors; an embassy allows mirrors)',
    options: {},
    args: [1, 1]
  },
  input: nodeKeyInput,
  async handler(host, input): Promise<AllowResult> {
    const r = (await host.role()).allow(parseKey(input.nodeKey, 'node key'))
    return { nodeKey: toZ32(r.nodeKey), allowed: true, added: r.changed, allow: r.allow.map(toZ32) }
  },
  format: (r) => `allowed ${r.nodeKey}\n`
})

export const deny = defineCommand({
  name: 'deny',
  spec: {
    usage: 'embassy deny NODE_KEY',
    summary: 'stop admitting a peer (a live connection from it is closed)',
    options: {},
    args: [1, 1]
  },
  input: nodeKeyInput,
  async handler(host, input): Promise<DenyResult> {
    const r = (await host.role()).deny(parseKey(input.nodeKey, 'node key'))
    return { nodeKey: toZ32(r.nodeKey), allowed: false, removed: r.changed, allow: r.allow.map(toZ32) }
  },
  format: (r) => `no longer allowed: ${r.nodeKey}\n`
})

export type FollowResult = Awaited<ReturnType<Embassy['follow']>>

export const follow = defineCommand({
  name: 'follow',
  spec: {
    usage: 'embassy follow AGENCY_NODE_KEY',
    summary: 'embassy: hold every dataset of an agency (allows it, dials it, learns its catalog)',
    options: {},
    args: [1, 1]
  },
  input: (line) => ({ agencyNodeKey: arg(line, 0, 'AGENCY_NODE_KEY') }),
  async handler(host, input): Promise<FollowResult> {
    return (await host.embassy()).follow(input.agencyNodeKey)
  },
  format: (r) => `following agency ${r.nodeKey}${r.catalogKey ? ` (catalog ${r.catalogKey})` : '; its catalog key is learnt when `embassy run` first reaches it'}\n`
})

export type MirrorResult = Awaited<ReturnType<Mirror['add']>>

export const mirror = defineCommand({
  name: 'mirror',
  spec: {
    usage: 'embassy mirror READ_CAPABILITY',
    summary: 'mirror: read an agency\'s data (from `embassy capability` on the agency)',
    options: {},
    args: [1, 1]
  },
  input: (line) => ({ capability: arg(line, 0, 'READ_CAPABILITY') }),
  async handler(host, input): Promise<MirrorResult> {
    return (await host.mirror()).add(input.capability)
  },
  format: (r) => `mirroring agency ${r.agencyNodeKey} (catalog ${r.catalogKey})${r.added ? '' : ', already known: read key updated'}\n`
})

export const capability = defineCommand({
  name: 'capability',
  spec: {
    usage: 'embassy capability',
    summary: 'print the read capability a mirror needs (agency only; it holds the read key: share it carefully)',
    options: {},
    args: [0, 0]
  },
  input: noInput,
  async handler(host): Promise<{ readCapability: string }> {
    return { readCapability: (await host.agency()).capability() }
  },
  format: (r) => `${r.readCapability}\n`
})
