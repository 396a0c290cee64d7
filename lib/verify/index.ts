/**
 * Verification of held cores against their signed Merkle trees (see verify.ts). The public API of
 * lib/verify/; the `embassy verify` command itself is the daemon's commands/verify.ts.
 */
export {
  verifyCores,
  CHUNK_DEPTH,
  MAX_LISTED_FAILURES,
  type VerifyFailure,
  type CoreVerifyReport,
  type VerifyReport,
  type VerifyOptions
} from './verify.js'
export {
  repairCores,
  repairBlock,
  REPAIR_TIMEOUT_MS,
  type BlockOutcome,
  type BlockRepair,
  type CoreRepairReport,
  type RepairReport,
  type RepairOptions
} from './repair.js'
export { mergeVerifyReports, mergeRepairReports } from './merge.js'
