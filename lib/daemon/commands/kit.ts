/**
 * `embassy kit export --out FILE [--shares M/N]` writes the agency's recovery kit; `embassy kit
 * import FILE… --dir DIR` rebuilds an agency from one. The kit itself (format, sealing, shares,
 * files) is lib/kit/; these are only the commands, and how they get a passphrase.
 *
 * Owns: the kit records and their text. May import: command, host, ids, kit/.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EmbassyError } from '../../errors.js'
import { toZ32 } from '../../ids.js'
import { checkPassphrase, inspectKit, kitFromNode, kitImport as importKit, kitNeedsPassphrase, parseShareCounts, sealKit, splitKit, wipeKit, writeKitFiles, type KitImportResult } from '../../kit/index.js'
import { defineCommand, defineLocalCommand, runOnHost, strOpt, usageError, type CallerProcess, type CommandInput, type CommandIO } from '../command.js'
import type { Host } from '../host.js'

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
  nodeKey: string
  catalogKey: string
  allow: string[]
}

/**
 * opts: out (path, required), shares ('M/N', optional), passphrase (filled in on the caller's side
 * from EMBASSY_PASSPHRASE or a prompt; not used with --shares). Writes FILE, or FILE.1 … FILE.N,
 * mode 0600, never over an existing file. The result holds no secret.
 */
export const kitExport = defineCommand({
  name: 'kit export',
  spec: {
    usage: 'embassy kit export --out FILE [--shares M/N]',
    summary: 'agency: write a recovery kit (sealed with a passphrase from $EMBASSY_PASSPHRASE or a prompt, or split into N shares of which any M restore it)',
    details: ['--out FILE     where to write it (FILE.1 … FILE.N with --shares); never overwrites', '--shares M/N   Shamir shares instead of a passphrase'],
    options: { out: { type: 'string' }, shares: { type: 'string' } },
    args: [0, 0]
  },
  async prepare(line, caller): Promise<CommandInput> {
    const opts = { ...line.opts }
    if (typeof opts.out === 'string') opts.out = path.resolve(opts.out)
    if (opts.shares === undefined) opts.passphrase = await passphraseFor(caller, 'kit export', true)
    return { ...line, opts }
  },
  input(line) {
    const out = line.opts.out
    if (typeof out !== 'string' || out === '') throw EmbassyError.badArgument('missing --out FILE')
    const shares = line.opts.shares
    if (shares !== undefined && typeof shares !== 'string') throw EmbassyError.badArgument('--shares needs M/N, e.g. --shares 3/5')
    return { out: path.resolve(out), shares, passphrase: strOpt(line, 'passphrase') }
  },
  async handler(host, input): Promise<KitExportResult> {
    const agency = await host.agency()
    const file = input.out
    const counts = input.shares !== undefined ? parseShareCounts(input.shares) : null
    const passphrase = counts ? null : checkPassphrase(input.passphrase)
    const targets = counts ? Array.from({ length: counts.n }, (_, i) => `${file}.${i + 1}`) : [file]
    for (const t of targets) {
      if (fs.existsSync(t)) throw EmbassyError.badArgument(`${t} already exists; remove it or choose another --out (a kit is never overwritten)`)
    }
    const dirOf = path.dirname(file)
    if (!fs.existsSync(dirOf)) throw EmbassyError.badArgument(`the folder ${dirOf} does not exist`)
    const contents = await kitFromNode(agency.node)
    const texts = counts ? await splitKit(contents, counts.m, counts.n) : [await sealKit(contents, passphrase!)]
    wipeKit(contents)
    const written = writeKitFiles(targets, texts)
    const info = inspectKit(texts[0]!)
    return {
      kit: info.kit,
      protection: counts ? 'shares' : 'passphrase',
      files: written,
      ...(counts ? { threshold: counts.m, shares: counts.n } : {}),
      name: contents.name,
      nodeKey: toZ32(contents.nodeKey),
      catalogKey: toZ32(contents.catalogKey),
      allow: contents.allow
    }
  },
  format: (r) =>
    r.protection === 'shares'
      ? `wrote ${r.shares} shares (any ${r.threshold} restore the agency):\n${r.files.map((f) => `  ${f}`).join('\n')}\nkeep them in different places; each alone reveals nothing\n`
      : `wrote the recovery kit ${r.files[0]} (sealed with your passphrase)\nit restores agency ${r.nodeKey}; keep it offline\n`
})

/** `kit export` on a command line, as the control socket runs it. */
export function kitExportHandler(host: Host, line: CommandInput, io: CommandIO): Promise<KitExportResult> {
  return runOnHost(kitExport, host, line, io)
}

export const kitImport = defineLocalCommand({
  name: 'kit import',
  spec: {
    usage: 'embassy kit import FILE… --dir DIR',
    summary: 'rebuild an agency from a kit (or M shares); `embassy run` then syncs it from its embassies',
    options: {},
    args: [1, Infinity]
  },
  input: (line) => ({ files: line.args.map((f) => path.resolve(f)) }),
  async run({ files }, caller): Promise<KitImportResult> {
    const passphrase = kitNeedsPassphrase(files) ? await passphraseFor(caller, 'kit import', false) : undefined
    return importKit(caller.dir, files, passphrase)
  },
  format: (r) =>
    `restored agency ${r.nodeKey} (catalog ${r.catalogKey}) in ${r.dir ?? 'the node directory'}\nnext: embassy run — it syncs every dataset from the embassies before accepting writes\n`
})
