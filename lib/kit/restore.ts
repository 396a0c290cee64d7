/**
 * Restoring and kit files: what a kit holds, read from an open node of any role (kitFromNode); kit
 * files read (size-capped) and written (mode 0600, never over an existing file); a node rebuilt
 * from kit contents (restoreNode: an agency, or an embassy, mirror or auditor), and `embassy kit import` end to end (kitImport).
 * May import: kit/format, kit/passphrase, kit/shares, node/node, errors, ids — never the daemon,
 * the roles, the gateway or the CLI.
 */
import fs from 'node:fs'
import path from 'node:path'
import sodium from 'sodium-universal'
import { EmbassyError } from '../errors.js'
import { toZ32 } from '../ids.js'
import { DIR_ID_FILE, EmbassyNode, STORE_DIR, type NodeIdentity } from '../node/node.js'
import type { RestoreSettings } from '../node/config.js'
import { KEY_BYTES, MAX_KIT_FILE_BYTES, inspectKit, type KitContents } from './format.js'
import { openKit } from './passphrase.js'
import { combineSharesReport } from './shares.js'

// ---- building a kit ----

/**
 * Reads what a kit holds from an open node: an agency's keys, lists and name; for an embassy,
 * mirror or auditor its primary key (its identity), its whole config (followed agencies, sources,
 * allowed peers and scopes, settings) and a mirror's read keys. No data.
 */
export async function kitFromNode(node: EmbassyNode): Promise<KitContents> {
  await node.ready()
  const primaryKey = node.store.primaryKey
  if (!primaryKey || primaryKey.byteLength !== KEY_BYTES) throw EmbassyError.internal('the store has no primary key')
  if (node.role !== 'agency') {
    const config = structuredClone(node.config)
    delete config.restoring
    delete config.restore
    return {
      role: node.role,
      name: config.name,
      primaryKey: Buffer.from(primaryKey),
      readKey: Buffer.alloc(0),
      catalogKey: Buffer.alloc(0),
      nodeKey: Buffer.from(node.nodeKey),
      config,
      readKeys: { ...(node.keys.readKeys ?? {}) },
      allow: [...config.allow],
      bootstrap: [...config.bootstrap],
      peers: [...config.peers],
      created: Date.now()
    }
  }
  const hex = node.keys.readKey
  if (!hex) throw EmbassyError.badConfig(`${node.dir}/keys.json has no read key`)
  const catalogKey = await node.catalogKey()
  if (!catalogKey) throw EmbassyError.internal('the agency has no catalog key')
  const config = node.config
  return {
    role: 'agency',
    name: config.name,
    primaryKey: Buffer.from(primaryKey),
    readKey: Buffer.from(hex, 'hex'),
    catalogKey: Buffer.from(catalogKey),
    nodeKey: Buffer.from(node.nodeKey),
    allow: [...config.allow],
    bootstrap: [...config.bootstrap],
    peers: [...config.peers],
    created: Date.now()
  }
}

// ---- restoring ----

/**
 * Rebuilds an agency node in `dir` from kit contents: same primary key (so the same node key and
 * catalog key), same read key, the same allow list, bootstrap list and peers. The catalog and
 * datasets are empty until the node replicates them back from an embassy.
 */
export async function restoreNode(dir: string, contents: KitContents, settings: RestoreSettings = {}): Promise<NodeIdentity> {
  dir = path.resolve(dir)
  const role = contents.role ?? 'agency'
  if (role !== 'agency' && Object.keys(settings).length > 0) throw EmbassyError.badArgument('--quorum, --force and --backfill-rate restore an agency; this kit is a ' + role + '\'s')
  checkRestoreDir(dir)
  if (role !== 'agency') return restoreHolderNode(dir, contents)
  const created = !fs.existsSync(dir)
  let id: NodeIdentity
  try {
    await EmbassyNode.init(dir, { role: 'agency', name: contents.name, primaryKey: contents.primaryKey, readKey: contents.readKey })
    const node = new EmbassyNode(dir)
    try {
      await node.ready()
      node.updateConfig((c) => {
        c.allow = [...contents.allow]
        c.bootstrap = [...contents.bootstrap]
        c.peers = [...contents.peers]
        if (Object.keys(settings).length > 0) c.restore = { ...settings }
      })
      id = await node.identity()
    } finally {
      await node.close()
    }
    if (id.nodeKey !== toZ32(contents.nodeKey) || id.catalogKey !== toZ32(contents.catalogKey)) {
      throw EmbassyError.badInput(
        `the restored node does not match the kit (node key ${id.nodeKey} vs ${toZ32(contents.nodeKey)}, catalog ${id.catalogKey} vs ${toZ32(contents.catalogKey)})`
      )
    }
  } catch (err) {
    // Leave no half-restored node behind: remove only what the restore wrote.
    if (created) fs.rmSync(dir, { recursive: true, force: true })
    else for (const f of ['config.json', 'keys.json', DIR_ID_FILE, STORE_DIR]) fs.rmSync(path.join(dir, f), { recursive: true, force: true })
    throw err
  }
  return id
}

/**
 * Rebuilds an embassy, mirror or auditor in `dir` (checked empty): a new store with the same
 * primary key (so the same node key, which its agencies admit), the kit's config and read keys.
 * It re-replicates everything it held once it runs.
 */
async function restoreHolderNode(dir: string, contents: KitContents): Promise<NodeIdentity> {
  const config = contents.config
  if (!config) throw EmbassyError.badInput('the kit has no config for this node')
  const created = !fs.existsSync(dir)
  let id: NodeIdentity
  try {
    await EmbassyNode.init(dir, { role: config.role, name: config.name, primaryKey: contents.primaryKey })
    const node = new EmbassyNode(dir)
    try {
      await node.ready()
      node.updateConfig((c) => Object.assign(c, structuredClone(config)))
      const readKeys = contents.readKeys ?? {}
      if (Object.keys(readKeys).length > 0) node.updateKeys((k) => (k.readKeys = { ...readKeys }))
      id = await node.identity()
    } finally {
      await node.close()
    }
    if (id.nodeKey !== toZ32(contents.nodeKey)) {
      throw EmbassyError.badInput(`the restored node does not match the kit (node key ${id.nodeKey} vs ${toZ32(contents.nodeKey)})`)
    }
  } catch (err) {
    if (created) fs.rmSync(dir, { recursive: true, force: true })
    else for (const f of ['config.json', 'keys.json', DIR_ID_FILE, STORE_DIR]) fs.rmSync(path.join(dir, f), { recursive: true, force: true })
    throw err
  }
  return id
}

/** Refuses a directory that holds a node or node storage: a restore never overwrites. */
function checkRestoreDir(dir: string): void {
  if (EmbassyNode.exists(dir)) throw EmbassyError.alreadyInitialised(dir)
  const store = path.join(dir, STORE_DIR)
  if (fs.existsSync(store) && fs.readdirSync(store).length > 0) {
    throw EmbassyError.alreadyInitialised(dir, `${dir} already holds node storage (${STORE_DIR}/); restore into an empty directory`)
  }
}

export interface KitImportResult extends NodeIdentity {
  dir: string
  kit: string
  from: 'passphrase' | 'shares'
  files: string[]
  allow: string[]
  bootstrap: string[]
  created: string | null
  /** Share files that are damaged or altered and were not used (the kit opened without them). */
  damagedShares: string[]
  /** How `embassy run` takes writes: quorum of embassies, forced, backfill throttle. */
  restore: RestoreSettings
}

/**
 * `embassy kit import FILE… --dir DIR`: restores an agency from one passphrase kit (needs
 * `passphrase`) or from share files (no passphrase). Runs without a node open.
 */
export async function kitImport(dir: string, files: readonly string[], passphrase?: string, settings: RestoreSettings = {}): Promise<KitImportResult> {
  dir = path.resolve(dir)
  if (files.length === 0) throw EmbassyError.badArgument('no kit file given: embassy kit import FILE… --dir DIR')
  checkRestoreDir(dir)
  const paths = files.map((f) => path.resolve(f))
  const texts = paths.map(readKitFile)
  let contents: KitContents
  let from: KitImportResult['from']
  let damagedShares: string[] = []
  // Shares are told apart by their envelope; one that fails its checksum is judged by combining.
  const infos = texts.map((t, i) => shareOrInspect(t, paths[i]!))
  if (infos.every((i) => i.type === 'share')) {
    const report = await combineSharesReport(texts, paths)
    contents = report.contents
    damagedShares = report.damaged
    from = 'shares'
  } else if (infos.length === 1) {
    if (passphrase === undefined || passphrase === '') throw EmbassyError.badArgument('this kit is sealed with a passphrase: set EMBASSY_PASSPHRASE or type it at the prompt')
    contents = await openKit(texts[0]!, passphrase)
    from = 'passphrase'
  } else {
    throw EmbassyError.badArgument('give either one passphrase kit or share files of one kit, not a mix')
  }
  const id = await restoreNode(dir, contents, settings)
  return {
    ...id,
    dir,
    kit: infos[0]!.kit,
    from,
    files: paths,
    allow: contents.allow,
    bootstrap: contents.bootstrap,
    created: contents.created ? new Date(contents.created).toISOString() : null,
    damagedShares,
    restore: { ...settings }
  }
}

/** What a kit file is; a share that fails its checksum is still a share (combining names it). */
function shareOrInspect(text: string, label: string): { type: 'passphrase' | 'share'; kit: string } {
  try {
    return inspectKit(text, label)
  } catch (err) {
    if (err instanceof EmbassyError && err.details.index !== undefined && typeof err.details.kit === 'string') return { type: 'share', kit: err.details.kit }
    throw err
  }
}

/** True when importing these files needs a passphrase (one passphrase kit); the CLI prompts then. */
export function kitNeedsPassphrase(files: readonly string[]): boolean {
  return files.length === 1 && inspectKit(readKitFile(path.resolve(files[0]!)), files[0]).type === 'passphrase'
}

/** A kit file's text; BAD_INPUT when it is missing, not a file or too large to be a kit. */
function readKitFile(file: string): string {
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (err) {
    throw EmbassyError.badInput(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { details: { file }, cause: err })
  }
  if (!stat.isFile()) throw EmbassyError.badInput(`${file} is not a file`, { details: { file } })
  if (stat.size > MAX_KIT_FILE_BYTES) throw EmbassyError.badInput(`${file} is too large to be a kit (${stat.size} bytes)`, { details: { file } })
  return fs.readFileSync(file, 'utf8')
}

// ---- writing a kit ----

/**
 * Writes `texts[i]` to `files[i]`, mode 0600, never over an existing file; all or nothing: when
 * one cannot be written, those already written are removed (BAD_INPUT). Returns the files written.
 */
export function writeKitFiles(files: readonly string[], texts: readonly string[]): string[] {
  const written: string[] = []
  try {
    files.forEach((t, i) => {
      writeSecretFile(t, texts[i]!)
      written.push(t)
    })
  } catch (err) {
    for (const w of written) fs.rmSync(w, { force: true })
    throw EmbassyError.badInput(`cannot write ${files[written.length]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  return written
}

/** Creates `file` mode 0600 (refusing an existing one) and syncs it. */
function writeSecretFile(file: string, text: string): void {
  const fd = fs.openSync(file, 'wx', 0o600)
  try {
    fs.writeSync(fd, text)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.chmodSync(file, 0o600)
}

/** Zeroes the secrets of kit contents once they are sealed. */
export function wipeKit(c: KitContents): void {
  sodium.sodium_memzero(c.primaryKey)
  if (c.readKey.byteLength > 0) sodium.sodium_memzero(c.readKey)
}
