/**
 * node/: one node directory — its validated config, its secrets (keys.json, the Corestore primary
 * key), its Corestore and its stable identity, kept private (private.ts: modes, umask, the check at
 * every open) — and every key derivation (caps.ts). It knows no
 * role: what an agency, embassy or mirror does with a node lives in roles/.
 * May import: errors, ids, protocol/. Nothing above it.
 */
export { EmbassyNode, STORE_DIR, checkNodeDir, type InitOptions, type NodeIdentity, type KeyPair } from './node.js'
export { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, PRIVATE_UMASK, checkPrivate, usePrivateUmask } from './private.js'
export {
  defaultDir,
  defaultConfig,
  readConfig,
  validateConfig,
  parseHostPort,
  ROLES,
  CONFIG_FILE,
  KEYS_FILE,
  type NodeConfig,
  type NodeKeys,
  type RoleName,
  type FollowEntry,
  type SourceEntry,
  type HostPort
} from './config.js'
export { agencyTopic } from './caps.js'
