/**
 * EmbassyNode: one node directory — its config, secrets, Corestore and stable identity.
 * Role classes (Agency, Embassy, Mirror) and the network layer are built on top of it.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import ReadyResource from 'ready-resource'
import Corestore from 'corestore'
import { CATALOG_CORE_NAME, SWARM_KEY_NAME, randomKey } from './caps.js'
import {
  CONFIG_FILE,
  defaultConfig,
  readConfig,
  readKeys,
  writeConfig,
  writeKeys,
  type NodeConfig,
  type NodeKeys,
  type RoleName
} from './config.js'
import { EmbassyError } from '../errors.js'
import { toZ32 } from '../ids.js'
import { PRIVATE_DIR_MODE, checkPrivate, usePrivateUmask } from './private.js'

export const STORE_DIR = 'store'
/**
 * The node directory's identity (path, inode, device, host), written at init and checked at every
 * open: a directory copied with `cp -a`/rsync (a new inode) is refused with NODE_MOVED, so two
 * copies of one node never run as the same identity by accident; a rename (same inode) is followed.
 */
export const DIR_ID_FILE = 'node-dir.json'

export interface KeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

export interface InitOptions {
  role: RoleName
  /** Agency name, sealed into the catalog header. */
  name?: string
  /** Restore: the Corestore primary key from a recovery kit. */
  primaryKey?: Uint8Array
  /** Restore: the agency read key from a recovery kit. */
  readKey?: Uint8Array
}

export interface NodeIdentity {
  role: RoleName
  name: string
  nodeKey: string
  catalogKey: string | null
}

export class EmbassyNode extends ReadyResource {
  readonly dir: string
  #config: NodeConfig | null = null
  #keys: NodeKeys = {}
  #store: Corestore | null = null
  #keyPair: KeyPair | null = null

  constructor(dir: string) {
    super()
    this.dir = path.resolve(dir)
  }

  /** Creates a node directory. Throws ALREADY_INITIALISED when one is there. */
  static async init(dir: string, opts: InitOptions): Promise<NodeIdentity> {
    dir = path.resolve(dir)
    if (fs.existsSync(path.join(dir, CONFIG_FILE))) throw EmbassyError.alreadyInitialised(dir)
    if (opts.role !== 'agency' && opts.readKey) throw EmbassyError.badArgument('only an agency has a read key')
    // Private from the first byte: umask 077 for what RocksDB writes, explicit modes for ours; an
    // existing folder that others can reach is refused, not changed.
    usePrivateUmask()
    fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
    checkNodeDir(dir)
    fs.mkdirSync(path.join(dir, STORE_DIR), { recursive: true, mode: PRIVATE_DIR_MODE })
    checkNodeDir(dir)
    const store = await openStore(dir, opts.primaryKey ?? null, true)
    const restoring = !!opts.primaryKey
    const config = defaultConfig(opts.role, opts.name ?? '')
    // An agency restored from its kit refuses appends until it holds its cores again; a holder
    // restored from its kit (same primary key, so the same node key) just replicates back.
    if (restoring && opts.role === 'agency') config.restoring = true
    const keys: NodeKeys = {}
    try {
      // The agency's catalog header is the agency's to write (roles/agency.ts), on its first open.
      if (opts.role === 'agency') keys.readKey = (opts.readKey ? Buffer.from(opts.readKey) : randomKey()).toString('hex')
      writeKeys(dir, keys)
      writeConfig(dir, config)
      writeDirIdentity(dir)
    } finally {
      await store.close()
    }
    const node = new EmbassyNode(dir)
    try {
      await node.ready()
      return await node.identity()
    } finally {
      await node.close()
    }
  }

  /** True when `dir` holds an initialised node. */
  static exists(dir: string): boolean {
    return fs.existsSync(path.join(path.resolve(dir), CONFIG_FILE))
  }

  override async _open(): Promise<void> {
    // Checked at every open, before any secret is read: refuse a directory others can reach.
    usePrivateUmask()
    checkNodeDir(this.dir)
    this.#config = readConfig(this.dir)
    checkDirIdentity(this.dir)
    this.#keys = readKeys(this.dir)
    if (!fs.existsSync(path.join(this.dir, STORE_DIR))) {
      throw EmbassyError.badConfig(`${this.dir} has a config but no ${STORE_DIR}/ directory; restore it from a recovery kit`)
    }
    this.#store = await openStore(this.dir, null, false)
    this.#keyPair = (await this.#store.createKeyPair(SWARM_KEY_NAME)) as KeyPair
  }

  override async _close(): Promise<void> {
    if (this.#store) await this.#store.close()
  }

  get config(): NodeConfig {
    if (!this.#config) throw EmbassyError.closed()
    return this.#config
  }

  get role(): RoleName {
    return this.config.role
  }

  get store(): Corestore {
    if (!this.#store) throw EmbassyError.closed()
    return this.#store
  }

  get keyPair(): KeyPair {
    if (!this.#keyPair) throw EmbassyError.closed()
    return this.#keyPair
  }

  get nodeKey(): Buffer {
    return this.keyPair.publicKey
  }

  get keys(): NodeKeys {
    return this.#keys
  }

  /** Applies `change` to the config and writes it atomically. */
  updateConfig(change: (config: NodeConfig) => void): NodeConfig {
    const next = structuredClone(this.config)
    change(next)
    writeConfig(this.dir, next)
    this.#config = next
    return next
  }

  updateKeys(change: (keys: NodeKeys) => void): void {
    const next = structuredClone(this.#keys)
    change(next)
    writeKeys(this.dir, next)
    this.#keys = next
  }

  /** The agency's catalog core key (agencies only). */
  async catalogKey(): Promise<Buffer | null> {
    if (this.role !== 'agency') return null
    const core = this.store.get({ name: CATALOG_CORE_NAME })
    await core.ready()
    const key = core.key!
    await core.close()
    return key
  }

  async identity(): Promise<NodeIdentity> {
    const catalogKey = await this.catalogKey()
    return {
      role: this.role,
      name: this.config.name,
      nodeKey: toZ32(this.nodeKey),
      catalogKey: catalogKey ? toZ32(catalogKey) : null
    }
  }
}

/** Refuses a node directory (or its store/) that group or others can reach: INSECURE_PERMISSIONS. */
export function checkNodeDir(dir: string): void {
  checkPrivate(dir, [dir, path.join(dir, STORE_DIR)])
}

interface DirIdentity {
  version: 1
  path: string
  ino: number
  dev: number
  host: string
}

function writeDirIdentity(dir: string): void {
  const st = fs.statSync(dir)
  const id: DirIdentity = { version: 1, path: dir, ino: st.ino, dev: st.dev, host: os.hostname() }
  const file = path.join(dir, DIR_ID_FILE)
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(id, null, 2) + '\n', { mode: 0o600 })
  fs.renameSync(tmp, file)
}

/**
 * Refuses (NODE_MOVED) a node directory that is not the one the node was created or last opened
 * in: another inode means a copy (cp -a, rsync, a restored backup), and the original may still
 * run. The same inode under another path is a rename: followed. A node without the file (made
 * before it existed, or the operator removed it to accept this copy) gets one now.
 */
export function checkDirIdentity(dir: string): void {
  const file = path.join(dir, DIR_ID_FILE)
  let raw: string
  try {
    raw = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw EmbassyError.badConfig(`cannot read ${file}: ${(err as Error).message}`, err)
    writeDirIdentity(dir)
    return
  }
  let id: Partial<DirIdentity>
  try {
    id = JSON.parse(raw) as Partial<DirIdentity>
  } catch (err) {
    throw EmbassyError.badConfig(`${file} is damaged (not JSON); if this directory is the only copy of the node, remove the file`, err)
  }
  if (id === null || typeof id !== 'object' || typeof id.ino !== 'number' || typeof id.path !== 'string') {
    throw EmbassyError.badConfig(`${file} is damaged; if this directory is the only copy of the node, remove the file`)
  }
  const st = fs.statSync(dir)
  if (st.ino === id.ino) {
    if (id.path !== dir) writeDirIdentity(dir) // renamed or moved on the same file system: one copy
    return
  }
  const host = typeof id.host === 'string' && id.host !== os.hostname() ? ` on host ${id.host}` : ''
  const how = id.path === dir ? `the same path${host}, but another directory: a restored backup or a copy put back` : `copied from ${id.path}${host}`
  throw EmbassyError.nodeMoved(dir, how, id.path)
}

async function openStore(dir: string, primaryKey: Uint8Array | null, creating: boolean): Promise<Corestore> {
  const storeDir = path.join(dir, STORE_DIR)
  const store = primaryKey
    ? new Corestore(storeDir, { primaryKey: Buffer.from(primaryKey), unsafe: true })
    : new Corestore(storeDir)
  try {
    await store.ready()
  } catch (err) {
    await store.close().catch(() => {})
    const message = (err as Error).message || ''
    // hypercore-storage's device file (store/CORESTORE) records its inode: a copied store is refused.
    if ((err as { code?: string }).code === 'DEVICE_FILE') throw EmbassyError.nodeMoved(dir, `its storage was copied: ${message}`)
    if (/lock/i.test(message)) throw EmbassyError.dirLocked(dir, err)
    if (/Another corestore/i.test(message)) {
      throw EmbassyError.badConfig(`${storeDir} holds a different primary key than the one given`, err)
    }
    throw EmbassyError.internal(`cannot open storage in ${storeDir}: ${message}`, err)
  }
  return store
}
