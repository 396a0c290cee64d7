/**
 * Peers: `embassy allow`, `deny`, `follow`, `mirror`, `capability` — who may connect, whom an
 * embassy holds for, what a mirror reads, and the capability that lets it.
 *
 * Owns: these records and their text. May import: command, host, ids, roles/ (types).
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../../errors.js'
import { parseKey, toZ32 } from '../../ids.js'
import type { Embassy } from '../../roles/embassy.js'
import type { Mirror } from '../../roles/mirror.js'
import { arg, defineCommand, noInput, strOpt, usageError, type Caller, type CommandInput } from '../command.js'

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
    usage: 'embassy mirror [--capability-file FILE]   (or the capability on stdin, or asked for)',
    summary: 'mirror: read an agency\'s data (the read capability from `embassy capability` on the agency)',
    details: [
      '--capability-file FILE   read the capability from FILE (keep it 0600)',
      'without it: from stdin when piped (embassy mirror < cap.txt), else asked for without echo;',
      'as an argument it works too, with a warning: every local user can read command lines'
    ],
    options: { 'capability-file': { type: 'string' } },
    args: [0, 1]
  },
  /** The secret is read here, on the caller's side, and crosses only the private control socket. */
  async prepare(line, caller): Promise<CommandInput> {
    const opts = { ...line.opts }
    delete opts['capability-file']
    return { ...line, args: [await capabilityFrom(line, caller)], opts }
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
