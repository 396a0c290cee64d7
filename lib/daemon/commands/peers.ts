/**
 * Peers: `embassy allow`, `deny`, `follow`, `mirror`, `capability` — who may connect, whom an
 * embassy holds for, what a mirror reads, and the capability that lets it.
 *
 * Owns: these records and their text. May import: command, host, ids, roles/ (types).
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError, withArticle } from '../../errors.js'
import { parseKey, toZ32 } from '../../ids.js'
import type { AuditorFollowResult } from '../../roles/auditor.js'
import type { Embassy, FollowQuota } from '../../roles/embassy.js'
import type { Mirror } from '../../roles/mirror.js'
import { arg, defineCommand, intOpt, noInput, strOpt, usageError, type Caller, type CommandInput } from '../command.js'
import { MIRROR_PREFETCH, type MirrorSettings } from '../../node/config.js'

/** Largest capability file or stdin read (a capability is about 200 characters). */
export const MAX_CAPABILITY_BYTES = 64 * 1024

/** What a secret on the command line costs: every local user can read it. */
export function argumentWarning(what: string, instead: string): string {
  return `embassy: warning: ${what} on the command line can be read by every local user (ps, /proc/PID/cmdline) and may stay in shell history; ${instead}`
}

/**
 * The read capability, on the caller's side: from --capability-file, else stdin (when it is not a
 * terminal), else a hidden prompt. As an argument it still works, with a warning.
 */
async function capabilityFrom(line: CommandInput, caller: Caller): Promise<string> {
  const file = strOpt(line, 'capability-file')
  if (line.args.length > 0) {
    if (file !== undefined) throw usageError('give the read capability once: as an argument or with --capability-file', 'mirror')
    caller.io.notice(argumentWarning('a read capability', 'use --capability-file FILE, stdin or the prompt'))
    return line.args[0]!
  }
  let text: string
  if (file !== undefined) {
    const p = path.resolve(file)
    let st: fs.Stats
    try {
      st = fs.statSync(p)
    } catch (err) {
      throw EmbassyError.badArgument(`cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err)
    }
    if (!st.isFile() || st.size > MAX_CAPABILITY_BYTES) throw EmbassyError.badArgument(`${p} is not a read capability file`)
    text = fs.readFileSync(p, 'utf8')
  } else if (!caller.stdin.isTTY) {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of caller.stdin) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      size += b.byteLength
      if (size > MAX_CAPABILITY_BYTES) throw EmbassyError.badArgument('stdin is too long to be a read capability')
      chunks.push(b)
    }
    text = Buffer.concat(chunks).toString('utf8')
  } else if (caller.prompt) {
    text = await caller.prompt('read capability: ')
  } else {
    throw usageError('no read capability: give --capability-file FILE, pipe it on stdin or run on a terminal to be asked', 'mirror')
  }
  const capability = text.trim()
  if (capability === '') throw usageError(`no read capability in ${file !== undefined ? path.resolve(file) : 'the input'}`, 'mirror')
  return capability
}

export interface AllowResult {
  nodeKey: string
  allowed: true
  /** True when the allowlist (or the peer's scope) changed. */
  added: boolean
  allow: string[]
  /** The agencies (node keys) the peer is limited to here; null: every agency held here. */
  scope: string[] | null
  /** An unscoped allow on a node holding several agencies says so. */
  warning?: string
}

export interface DenyResult {
  nodeKey: string
  allowed: false
  /** True when the allowlist changed. */
  removed: boolean
  allow: string[]
}

const nodeKeyInput = (line: CommandInput) => ({ nodeKey: arg(line, 0, 'NODE_KEY') })

/**
 * A node key given as an argument. Its error never quotes the text: a capability pasted here by
 * mistake is a secret (and would then sit in logs and terminals).
 */
function nodeKeyArg(text: string, what: string): Buffer {
  if (/^\s*embassy-[a-z]+:/i.test(text)) throw EmbassyError.badArgument(`that is a capability (a secret: not shown), not ${withArticle(what)}; a node key comes from \`embassy id\` on that node`)
  try {
    return parseKey(text, what)
  } catch (err) {
    throw EmbassyError.badArgument(`the ${what} given is not a 32-byte key (z32 or hex; ${text.trim().length} characters given, not shown); a node key comes from \`embassy id\``, err)
  }
}

export const allow = defineCommand({
  name: 'allow',
  spec: {
    usage: 'embassy allow NODE_KEY [--agency AGENCY_NODE_KEY]',
    summary: 'admit a peer (an agency allows its embassies and mirrors; an embassy allows mirrors)',
    details: [
      '--agency AGENCY_NODE_KEY   embassy or mirror: the peer sees and replicates only that agency\'s',
      '                           data here (its catalog key is never shown to it); repeat to add',
      '                           agencies. Without --agency the peer sees every agency held here',
      '                           (and a scope given earlier is removed).'
    ],
    options: { agency: { type: 'string' } },
    args: [1, 1]
  },
  input: (line) => ({ nodeKey: arg(line, 0, 'NODE_KEY'), agency: strOpt(line, 'agency') }),
  async handler(host, input): Promise<AllowResult> {
    const role = await host.role()
    const agency = input.agency === undefined ? undefined : nodeKeyArg(input.agency, 'agency node key')
    if (agency && role.name === 'agency') throw EmbassyError.badArgument('--agency scopes a peer on an embassy or a mirror; an agency holds only its own data')
    const r = role.allow(nodeKeyArg(input.nodeKey, 'node key'), agency ? { agency } : {})
    const out: AllowResult = { nodeKey: toZ32(r.nodeKey), allowed: true, added: r.changed, allow: r.allow.map(toZ32), scope: r.scope ? r.scope.map(toZ32) : null }
    if (r.warning) out.warning = r.warning
    return out
  },
  format: (r) => `allowed ${r.nodeKey}${r.scope ? ` for agency ${r.scope.join(', ')} only` : ''}\n${r.warning ? `note: ${r.warning}\n` : ''}`
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
    const r = (await host.role()).deny(nodeKeyArg(input.nodeKey, 'node key'))
    return { nodeKey: toZ32(r.nodeKey), allowed: false, removed: r.changed, allow: r.allow.map(toZ32) }
  },
  format: (r) => `no longer allowed: ${r.nodeKey}\n`
})

export type FollowResult = Awaited<ReturnType<Embassy['follow']>>

export const follow = defineCommand({
  name: 'follow',
  spec: {
    usage: 'embassy follow AGENCY_NODE_KEY [--max-bytes N] [--max-cores N] [--quota-warn F]',
    summary: 'embassy: hold every dataset of an agency (allows it, dials it, learns its catalog)',
    details: [
      '--max-bytes N      quota: hold at most N bytes of this agency (1000000, 500MiB, 2GiB, 1TB; none: no limit)',
      '--max-cores N      quota: hold at most N of its dataset cores (none: no limit)',
      '--quota-warn F     raise quota-near at this fraction of a quota (0.9 or 90%, the default)',
      'at a quota the embassy keeps all it holds and takes nothing beyond it; alarms (quota-near,',
      'quota-exceeded) show in status and the log and go to the agency. Again on a followed agency: changes them',
      'auditor: embassy follow VERIFY_CAPABILITY (from `embassy capability --verify`) audits that agency\'s embassies'
    ],
    options: { 'max-bytes': { type: 'string' }, 'max-cores': { type: 'string' }, 'quota-warn': { type: 'string' } },
    args: [1, 1]
  },
  input: (line) => ({ agencyNodeKey: arg(line, 0, 'AGENCY_NODE_KEY'), quota: quotaInput(line) }),
  async handler(host, input): Promise<FollowResult | AuditorFollowResult> {
    // An auditor follows a verify capability (what it audits), not a node key.
    if (host.node.role === 'auditor') return (await host.auditor()).follow(input.agencyNodeKey)
    const embassy = await host.embassy()
    const key = nodeKeyArg(input.agencyNodeKey, 'agency node key')
    if (key.equals(host.node.nodeKey)) throw EmbassyError.badArgument('that is this embassy\'s own node key: follow the agency\'s (`embassy id` on the agency)')
    const r = await embassy.follow(toZ32(key), input.quota)
    // Since when it is followed: status shows "never reached" with the time, and alarms after a while.
    host.node.updateConfig((c) => {
      const entry = c.follow.find((f) => f.nodeKey === r.nodeKey)
      if (entry && entry.followedAt === undefined) entry.followedAt = Date.now()
    })
    return r
  },
  format: (r) =>
    'auditing' in r
      ? `auditing the embassies of agency ${r.auditing} (catalog ${r.catalogKey})${r.added ? '' : ': already followed'}\n`
      : `following agency ${r.nodeKey}${r.catalogKey ? ` (catalog ${r.catalogKey})` : '; its catalog key is learnt when `embassy run` first reaches it'}\n` + quotaText(r.quota)
})

/** --max-bytes / --max-cores / --quota-warn: a number sets, `none` removes, absent keeps. */
function quotaInput(line: CommandInput): FollowQuota | undefined {
  const q: FollowQuota = {}
  const limit = (name: string, bytes: boolean): number | null | undefined => {
    const v = strOpt(line, name)
    if (v === undefined) return undefined
    if (v === 'none') return null
    const n = bytes ? parseByteSize(v) : /^\d+$/.test(v) ? Number(v) : NaN
    if (!Number.isSafeInteger(n) || n < 1) throw usageError(`--${name} must be ${bytes ? 'a size such as 500MiB or a number of bytes' : 'a whole number'} ≥ 1, or none`, 'follow')
    return n
  }
  const maxBytes = limit('max-bytes', true)
  const maxCores = limit('max-cores', false)
  if (maxBytes !== undefined) q.maxBytes = maxBytes
  if (maxCores !== undefined) q.maxCores = maxCores
  const warn = strOpt(line, 'quota-warn')
  if (warn !== undefined) {
    const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(warn)
    const f = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN
    if (!(f > 0 && f <= 1)) throw usageError('--quota-warn must be a fraction in (0, 1] or a percentage (90%)', 'follow')
    q.warn = f
  }
  return Object.keys(q).length > 0 ? q : undefined
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 }

/** "1000", "500MiB", "2GB", "1.5TiB" → bytes (NaN when not a size). */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  return m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN
}

function quotaText(q: FollowResult['quota']): string {
  if (q.maxBytes === null && q.maxCores === null) return ''
  const limits = [q.maxBytes !== null ? `${q.maxBytes} bytes` : null, q.maxCores !== null ? `${q.maxCores} dataset cores` : null].filter(Boolean).join(', ')
  const state = 'state' in q ? `; now ${q.state}${'reason' in q && q.reason ? ` (${q.reason})` : ''}` : ''
  return `quota: ${limits}, warning at ${Math.round(q.warn * 100)} %${state}\n`
}

export type MirrorResult = Partial<Awaited<ReturnType<Mirror['add']>>> & {
  /** How this mirror fetches now (config.json `mirror`; {} is the default: prefetch newest, not sparse). */
  mirror: MirrorSettings
}

/** The fetch options of `embassy mirror`, or null when none is given. */
function mirrorSettingsOf(line: CommandInput): MirrorSettings | null {
  const out: MirrorSettings = {}
  const prefetch = strOpt(line, 'prefetch')
  if (prefetch !== undefined) {
    if (!MIRROR_PREFETCH.includes(prefetch as 'off')) throw usageError(`--prefetch must be one of ${MIRROR_PREFETCH.join(', ')}`, 'mirror')
    out.prefetch = prefetch as MirrorSettings['prefetch']
  }
  if (line.opts['sparse'] === true) out.sparse = true
  if (line.opts['no-sparse'] === true) out.sparse = false
  const cache = intOpt(line, 'cache-bytes')
  if (cache !== undefined) {
    if (cache < 1) throw usageError('--cache-bytes must be at least 1', 'mirror')
    if (out.sparse === false) throw usageError('--cache-bytes is for a --sparse mirror', 'mirror')
    out.cacheBytes = cache
  }
  return Object.keys(out).length > 0 ? out : null
}

export const mirror = defineCommand({
  name: 'mirror',
  spec: {
    usage: 'embassy mirror [--capability-file FILE] [--prefetch newest|oldest|off] [--sparse [--cache-bytes N] | --no-sparse]',
    summary: 'mirror: read an agency\'s data (the read capability from `embassy capability` on the agency); how it fetches',
    details: [
      '--capability-file FILE   read the capability from FILE (keep it 0600)',
      'without it: from stdin when piped (embassy mirror < cap.txt), else asked for without echo;',
      'as an argument it works too, with a warning: every local user can read command lines',
      'Reads fetch what is not held on request from any holder; the rest is prefetched:',
      '--prefetch P             newest (default: logs from their end back), oldest, or off (pause)',
      '--sparse                 keep only what readers asked for (no prefetch), up to --cache-bytes',
      '--cache-bytes N          sparse cache limit in bytes (default 1 GiB); least recently fetched go first',
      '--no-sparse              a full copy again',
      'These options alone (no capability given: a terminal, or empty stdin) change how this mirror',
      'fetches: saved in config.json, applied live when `embassy run` runs'
    ],
    options: { 'capability-file': { type: 'string' }, prefetch: { type: 'string' }, sparse: { type: 'boolean' }, 'no-sparse': { type: 'boolean' }, 'cache-bytes': { type: 'string' } },
    args: [0, 1]
  },
  /** The secret is read here, on the caller's side, and crosses only the private control socket. */
  async prepare(line, caller): Promise<CommandInput> {
    const opts = { ...line.opts }
    delete opts['capability-file']
    // Fetch options alone change the mode: no capability is asked for on a terminal, and empty stdin is none.
    const modeOnly = mirrorSettingsOf(line) !== null && line.args.length === 0 && strOpt(line, 'capability-file') === undefined
    if (modeOnly && caller.stdin.isTTY) return { ...line, args: [], opts }
    const capability = modeOnly ? await capabilityFrom(line, caller).catch(() => '') : await capabilityFrom(line, caller)
    if (capability === '') return { ...line, args: [], opts }
    // Damaged: BAD_CAPABILITY here already. Made before checksums: accepted, with a warning.
    const { parseReadCapabilityText } = await import('../../data/read-capability.js')
    if (!parseReadCapabilityText(capability).checksum) caller.io.notice('embassy: warning: this read capability has no checksum (made by an older version), so a mistyped character cannot be detected; get a new one with `embassy capability` on the agency when you can')
    return { ...line, args: [capability], opts }
  },
  input: (line) => ({ capability: line.args.length > 0 ? arg(line, 0, 'READ_CAPABILITY') : null, settings: mirrorSettingsOf(line) }),
  async handler(host, input): Promise<MirrorResult> {
    const m = await host.mirror()
    if (input.capability === null && input.settings === null) throw usageError('no read capability (or give --prefetch / --sparse to change how this mirror fetches)', 'mirror')
    const settings = input.settings ? m.configure(input.settings) : { ...(host.node.config.mirror ?? {}) }
    const added = input.capability !== null ? await m.add(input.capability) : {}
    return { ...added, mirror: settings }
  },
  format: (r) => {
    const how = r.mirror.sparse ? `sparse: only what is asked for, cache up to ${r.mirror.cacheBytes ?? 1024 * 1024 * 1024} bytes` : `prefetch ${r.mirror.prefetch ?? 'newest'}`
    const source = r.catalogKey ? `mirroring agency ${r.agencyNodeKey} (catalog ${r.catalogKey})${r.added ? '' : ', already known: read key updated'}\n` : ''
    return `${source}fetching: what is not held, on request from any holder; ${how}\n`
  }
})

export const capability = defineCommand({
  name: 'capability',
  spec: {
    usage: 'embassy capability [--verify]',
    summary: 'print the read capability a mirror needs (agency only; it holds the read key: share it carefully)',
    details: ['--verify   print the verify capability instead: what a blind auditor needs (catalog key + agency node key, no read key)'],
    options: { verify: { type: 'boolean' } },
    args: [0, 0]
  },
  input: (line) => ({ verify: line.opts.verify === true }),
  async handler(host, { verify }): Promise<{ readCapability: string } | { verifyCapability: string }> {
    const agency = await host.agency()
    if (verify) return { verifyCapability: (await import('../../data/verify-capability.js')).formatVerifyCapability({ catalogKey: agency.catalog.key, agencyNodeKey: agency.node.nodeKey }) }
    return { readCapability: agency.capability() }
  },
  format: (r) => `${'verifyCapability' in r ? r.verifyCapability : r.readCapability}\n`
})
