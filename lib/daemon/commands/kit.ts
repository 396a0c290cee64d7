/**
 * `embassy kit export --out FILE [--shares M/N]` writes the node's recovery kit (any role); `embassy kit
 * import FILE… --dir DIR` rebuilds the node from one. The kit itself (format, sealing, shares,
 * files) is lib/kit/; these are only the commands, and how they get a passphrase.
 *
 * The passphrase never leaves the caller's process: the caller derives the kit's sealing key
 * (Argon2id, fresh salt) and sends only that key — good for this one kit, useless without the file
 * and not the passphrase — to the node, which seals and writes the kit; the caller then opens the
 * files the node says it wrote, and reports success only when they are the agency's kit.
 *
 * Owns: the kit records and their text. May import: command, host, ids, kit/. The kit (and with
 * it the node and sodium) is imported when a command runs (import()), not with the command table.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import type { KdfProfile, KitContents, KitImportResult, SealingKey } from '../../kit/index.js'
import { defineCommand, defineLocalCommand, runOnHost, strOpt, usageError, type CallerProcess, type CommandInput, type CommandIO } from '../command.js'
import { escapeText } from '../text.js'
import type { Host } from '../host.js'
import type { RestoreSettings } from '../../node/config.js'

/** Help lines of the restore options `kit import` and `run` share. */
export const RESTORE_OPTION_DETAILS = [
  '--quorum N            restored agency: embassies whose newest heads are needed before writes (default: more than half of the kit\'s embassies)',
  '--force               restored agency: take writes with fewer embassies than the quorum, on a NEW FORK of every core (asks first on a terminal; holders see a rewrite)',
  '--backfill-rate N     restored agency: fetch old blocks in the background at most N blocks a second (0 pauses; default unlimited)'
]
export const RESTORE_OPTIONS = { quorum: { type: 'string' }, force: { type: 'boolean' }, 'backfill-rate': { type: 'string' } } as const

/** --quorum, --force, --backfill-rate as restore settings (only those given). */
export function restoreSettingsFrom(line: CommandInput, command: string): RestoreSettings {
  const out: RestoreSettings = {}
  const quorum = strOpt(line, 'quorum')
  if (quorum !== undefined) {
    const n = Number(quorum)
    if (!(/^[0-9]+$/.test(quorum) && Number.isSafeInteger(n) && n >= 1)) throw usageError('--quorum must be a whole number ≥ 1', command)
    out.quorum = n
  }
  if (line.opts.force === true) out.force = true
  const rate = strOpt(line, 'backfill-rate')
  if (rate !== undefined) {
    const n = Number(rate)
    if (rate.trim() === '' || !Number.isFinite(n) || n < 0) throw usageError('--backfill-rate must be a number of blocks per second ≥ 0', command)
    out.backfillRate = n
  }
  return out
}

/** --force asks first on a terminal: it moves every core to a new fork. */
export async function confirmForce(caller: CallerProcess, command: string): Promise<void> {
  if (!caller.prompt) return
  const answer = await caller.prompt('--force: if fewer embassies than the quorum answer, every feed moves to a new fork and each embassy must accept it (embassy accept-rewrite). Type "fork" to go on: ')
  if (answer.trim() !== 'fork') throw usageError('not confirmed; nothing changed', command)
}

/**
 * A kit passphrase: $EMBASSY_PASSPHRASE, else asked on the terminal (twice when creating a kit).
 * Without either, a usage error — never an empty passphrase.
 */
async function passphraseFor(caller: CallerProcess, command: string, confirm: boolean): Promise<string> {
  const env = caller.env.EMBASSY_PASSPHRASE
  if (env !== undefined && env !== '') return env
  if (!caller.prompt) throw usageError('set EMBASSY_PASSPHRASE or run on a terminal to be asked for the passphrase', command)
  const first = await caller.prompt('passphrase: ')
  if (confirm) {
    const second = await caller.prompt('passphrase again: ')
    if (first !== second) throw usageError('the two passphrases differ', command)
  }
  return first
}

export interface KitExportResult {
  kit: string
  protection: 'passphrase' | 'shares'
  files: string[]
  threshold?: number
  shares?: number
  name: string
  /** The node's role (a kit rebuilds an agency, embassy, mirror or auditor). */
  role: string
  nodeKey: string
  /** The agency's catalog key; null for other roles. */
  catalogKey: string | null
  allow: string[]
}

/**
 * The names of the Argon2id profiles (KDF_PROFILES, kit/format.ts), here so that reading --kdf
 * does not load the kit; `satisfies` keeps them exactly KDF_PROFILES' keys.
 */
const KDF_NAMES = { sensitive: true, moderate: true } as const satisfies Record<KdfProfile, true>

/** --kdf: the Argon2id profile of a passphrase kit (default sensitive). */
function kdfProfile(line: CommandInput): KdfProfile {
  const v = strOpt(line, 'kdf') ?? 'sensitive'
  if (!Object.hasOwn(KDF_NAMES, v)) throw usageError(`--kdf must be ${Object.keys(KDF_NAMES).join(' or ')}`, 'kit export')
  return v as KdfProfile
}

/** The sealing key as it crosses the control socket (opts are text): seal-key, seal-salt (hex), seal-ops, seal-mem. */
function sealingFromLine(line: CommandInput): SealingKey | undefined {
  const key = strOpt(line, 'seal-key')
  if (key === undefined) return undefined
  const salt = strOpt(line, 'seal-salt') ?? ''
  const num = (name: string) => {
    const n = Number(strOpt(line, name))
    if (!Number.isSafeInteger(n)) throw EmbassyError.badArgument(`--${name} must be a whole number`)
    return n
  }
  if (!/^[0-9a-f]{64}$/.test(key) || !/^[0-9a-f]{32}$/.test(salt)) throw EmbassyError.badArgument('a kit sealing key is 32 bytes and its salt 16 (hex)')
  return { key: Buffer.from(key, 'hex'), salt: Buffer.from(salt, 'hex'), opslimit: num('seal-ops'), memlimit: num('seal-mem') }
}

/**
 * opts: out (path, required), shares ('M/N', optional), kdf (sensitive | moderate), and either the
 * sealing key (seal-key, seal-salt, seal-ops, seal-mem: derived on the caller's side from
 * EMBASSY_PASSPHRASE or a prompt) or, for a library caller on an open node, passphrase. Neither
 * with --shares. Writes FILE, or FILE.1 … FILE.N, mode 0600, never over an existing file. The
 * result holds no secret.
 */
export const kitExport = defineCommand({
  name: 'kit export',
  spec: {
    usage: 'embassy kit export --out FILE [--shares M/N] [--kdf sensitive|moderate]',
    summary: 'write this node\'s recovery kit: its identity and config, no data (sealed with a passphrase from $EMBASSY_PASSPHRASE or a prompt, or split into N shares of which any M restore it)',
    details: [
      '--out FILE     where to write it (FILE.1 … FILE.N with --shares); never overwrites',
      '--shares M/N   Shamir shares instead of a passphrase',
      '--kdf K        sensitive (default: Argon2id 1 GiB, 4 passes) or moderate (256 MiB: for a kit that must open on a small machine)'
    ],
    options: { out: { type: 'string' }, shares: { type: 'string' }, kdf: { type: 'string' } },
    args: [0, 0]
  },
  /** The passphrase is asked here and turned into this kit's sealing key here; it never crosses the socket. */
  async prepare(line, caller): Promise<CommandInput> {
    const opts = { ...line.opts }
    delete opts.passphrase
    if (typeof opts.out === 'string') opts.out = path.resolve(opts.out)
    if (opts.shares === undefined) {
      const profile = kdfProfile(line)
      const passphrase = await passphraseFor(caller, 'kit export', true)
      const { KDF_PROFILES, deriveSealingKey } = await import('../../kit/index.js')
      const sealing = await deriveSealingKey(passphrase, KDF_PROFILES[profile])
      opts['seal-key'] = sealing.key.toString('hex')
      opts['seal-salt'] = sealing.salt.toString('hex')
      opts['seal-ops'] = String(sealing.opslimit)
      opts['seal-mem'] = String(sealing.memlimit)
      sealing.key.fill(0)
    }
    return { ...line, opts }
  },
  input(line) {
    const out = line.opts.out
    if (typeof out !== 'string' || out === '') throw EmbassyError.badArgument('missing --out FILE')
    const shares = line.opts.shares
    if (shares !== undefined && typeof shares !== 'string') throw EmbassyError.badArgument('--shares needs M/N, e.g. --shares 3/5')
    return { out: path.resolve(out), shares, kdf: kdfProfile(line), passphrase: strOpt(line, 'passphrase'), sealing: sealingFromLine(line) }
  },
  async handler(host, input): Promise<KitExportResult> {
    const { KDF_PROFILES, inspectKit, kitFromNode, parseShareCounts, sealKit, sealKitWithKey, splitKit, wipeKit, writeKitFiles } = await import('../../kit/index.js')
    const file = input.out
    const counts = input.shares !== undefined ? parseShareCounts(input.shares) : null
    if (!counts && !input.sealing && (input.passphrase === undefined || input.passphrase === '')) {
      throw EmbassyError.badArgument('a passphrase is needed: set EMBASSY_PASSPHRASE or type it at the prompt')
    }
    const targets = counts ? Array.from({ length: counts.n }, (_, i) => `${file}.${i + 1}`) : [file]
    for (const t of targets) {
      if (fs.existsSync(t)) throw EmbassyError.badArgument(`${t} already exists; remove it or choose another --out (a kit is never overwritten)`)
    }
    const dirOf = path.dirname(file)
    if (!fs.existsSync(dirOf)) throw EmbassyError.badArgument(`the folder ${dirOf} does not exist`)
    const contents = await kitFromNode(host.node)
    let texts: string[]
    try {
      if (counts) texts = await splitKit(contents, counts.m, counts.n)
      else if (input.sealing) texts = [sealKitWithKey(contents, input.sealing)]
      else texts = [await sealKit(contents, input.passphrase!, KDF_PROFILES[input.kdf])]
    } finally {
      wipeKit(contents)
      input.sealing?.key.fill(0)
    }
    const written = writeKitFiles(targets, texts)
    const info = inspectKit(texts[0]!)
    return {
      kit: info.kit,
      protection: counts ? 'shares' : 'passphrase',
      files: written,
      ...(counts ? { threshold: counts.m, shares: counts.n } : {}),
      name: contents.name,
      role: contents.role ?? 'agency',
      nodeKey: toZ32(contents.nodeKey),
      catalogKey: contents.catalogKey.byteLength > 0 ? toZ32(contents.catalogKey) : null,
      allow: contents.allow
    }
  },
  /** Caller side: success only when the files the node reports are there and are this agency's kit. */
  async around(input, _caller, once): Promise<KitExportResult> {
    try {
      const result = await once()
      await checkWrittenKit(input, result)
      return result
    } finally {
      input.sealing?.key.fill(0)
    }
  },
  format: (r) =>
    r.protection === 'shares'
      ? `wrote ${r.shares} shares (any ${r.threshold} restore the ${r.role ?? 'agency'}):\n${r.files.map((f) => `  ${f}`).join('\n')}\nkeep them in different places; each alone reveals nothing\n`
      : `wrote the recovery kit ${r.files[0]} (sealed with your passphrase)\nit restores ${r.role ?? 'agency'} ${r.nodeKey}; keep it offline\n`
})

/**
 * Opens what the node says it wrote, on the caller's side: the files named are the ones asked for,
 * and they are the agency's kit (a passphrase kit opens with this kit's sealing key; shares
 * combine). Anything else is INTERNAL: nothing is reported written that is not.
 */
async function checkWrittenKit(input: { out: string; shares: string | undefined; sealing: SealingKey | undefined }, r: KitExportResult): Promise<void> {
  const fail = (msg: string): never => {
    throw EmbassyError.internal(`kit export: ${msg}; do not rely on this kit`)
  }
  const { MAX_KIT_FILE_BYTES, combineSharesReport, inspectKit, openKitWithKey, wipeKit } = await import('../../kit/index.js')
  const expected = input.shares !== undefined ? Array.from({ length: r.shares ?? 0 }, (_, i) => `${input.out}.${i + 1}`) : [input.out]
  if (expected.length === 0 || JSON.stringify(r.files) !== JSON.stringify(expected)) fail(`the node reported other files than ${expected.join(', ')}`)
  const texts = r.files.map((f) => {
    let st: fs.Stats
    try {
      st = fs.lstatSync(f)
    } catch {
      return fail(`${f} was not written`)
    }
    if (!st.isFile() || st.size > MAX_KIT_FILE_BYTES) fail(`${f} is not a kit file`)
    return fs.readFileSync(f, 'utf8')
  })
  let contents: KitContents | null = null
  try {
    if (input.sealing) contents = openKitWithKey(texts[0]!, input.sealing.key, r.files[0])
    else if (input.shares !== undefined) {
      const report = await combineSharesReport(texts, r.files)
      contents = report.contents
      if (report.damaged.length > 0) fail(`${report.damaged.join(', ')} do not belong to the kit`)
    }
  } catch (err) {
    if (err instanceof EmbassyError && err.code === 'INTERNAL') throw err
    fail(`${r.files[0]} does not open as the kit just made (${(err as Error).message})`)
  }
  if (contents) {
    const ok = toZ32(contents.nodeKey) === r.nodeKey && inspectKit(texts[0]!).kit === r.kit
    wipeKit(contents)
    if (!ok) fail(`${r.files[0]} is not the kit of ${r.role} ${r.nodeKey}`)
  }
}

/** `kit export` on a command line, as the control socket runs it. */
export function kitExportHandler(host: Host, line: CommandInput, io: CommandIO): Promise<KitExportResult> {
  return runOnHost(kitExport, host, line, io)
}

export const kitImport = defineLocalCommand({
  name: 'kit import',
  spec: {
    usage: 'embassy kit import FILE… --dir DIR [--quorum N] [--force] [--backfill-rate N]',
    summary: 'rebuild a node from its kit (or M shares): same identity, new empty store; an agency takes writes once it holds the newest heads its embassies witnessed, an embassy or mirror re-replicates everything',
    details: RESTORE_OPTION_DETAILS,
    options: { ...RESTORE_OPTIONS },
    args: [1, Infinity]
  },
  input: (line) => ({ files: line.args.map((f) => path.resolve(f)), settings: restoreSettingsFrom(line, 'kit import') }),
  async run({ files, settings }, caller): Promise<KitImportResult> {
    const { kitImport: importKit, kitNeedsPassphrase } = await import('../../kit/index.js')
    const passphrase = kitNeedsPassphrase(files) ? await passphraseFor(caller, 'kit import', false) : undefined
    if (settings.force) await confirmForce(caller, 'kit import')
    return importKit(caller.dir, files, passphrase, settings)
  },
  format: (r) =>
    (r.damagedShares.length > 0
      ? `warning: damaged or altered share${r.damagedShares.length === 1 ? '' : 's'}, not used: ${r.damagedShares.map(escapeText).join(', ')}\n` +
        'the kit opened without them; once the agency runs, make a new kit (embassy kit export) and destroy the old shares\n'
      : '') +
    (r.role === 'agency'
      ? `restored agency ${r.nodeKey} (catalog ${r.catalogKey}) in ${r.dir ?? 'the node directory'}\nnext: embassy run — it accepts writes once a quorum of its embassies gave it their newest heads, then backfills every block\n`
      : `restored ${r.role} ${r.nodeKey} in ${r.dir ?? 'the node directory'} (same node key, empty store)\nnext: embassy run — it re-replicates everything it held; destroy any old copy of this node first\n`)
})
