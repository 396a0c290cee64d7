/**
 * Recovery kit: everything needed to rebuild a node (any role), sealed with a passphrase or split
 * into m-of-n Shamir shares (the file format is documented in format.ts). The public API of
 * lib/kit/; the `embassy kit export` command itself is the daemon's commands/kit.ts.
 */
export {
  KIT_FORMAT,
  SHARE_FORMAT,
  KIT_VERSION,
  PAYLOAD_VERSION,
  KDF_ALG,
  CIPHER,
  KDF_OPSLIMIT,
  KDF_MEMLIMIT,
  KDF_PROFILES,
  MAX_OPSLIMIT,
  MAX_MEMLIMIT,
  MIN_PASSPHRASE_LENGTH,
  MAX_KIT_FILE_BYTES,
  MAX_SHARES,
  inspectKit,
  type KitContents,
  type KitFileInfo,
  type KdfParams,
  type KdfProfile
} from './format.js'
export { checkPassphrase, sealKit, openKit, deriveSealingKey, sealKitWithKey, openKitWithKey, type SealingKey } from './passphrase.js'
export { splitKit, combineShares, combineSharesReport, parseShareCounts, MAX_SHARE_SUBSETS, type CombineReport } from './shares.js'
export { kitFromNode, restoreNode, kitImport, kitNeedsPassphrase, writeKitFiles, wipeKit, type KitImportResult } from './restore.js'
