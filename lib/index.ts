/**
 * Data Embassy's public API: the classes and types a program needs to run a node, publish, hold,
 * read, verify and recover data. (The CLI's own surface — command records, runCommand — is
 * lib/daemon/index.ts.)
 */
// Errors and keys at the edge
export { EmbassyError, ExitCode, isEmbassyError, type ErrorCode, type ErrorDetails } from './errors.js'
export { toZ32, parseKey } from './ids.js'

// A node directory and its configuration
export {
  EmbassyNode,
  STORE_DIR,
  defaultDir,
  readConfig,
  validateConfig,
  parseHostPort,
  ROLES,
  agencyTopic,
  type InitOptions,
  type NodeIdentity,
  type KeyPair,
  type NodeConfig,
  type RoleName,
  type FollowEntry,
  type SourceEntry,
  type HostPort
} from './node/index.js'

// Data: the catalog, datasets, readers
export {
  Catalog,
  Datasets,
  LogDataset,
  FilesDataset,
  FILE_BLOCK_SIZE,
  APPEND_BATCH,
  formatReadCapability,
  parseReadCapability,
  type DatasetInfo,
  type DatasetSummary,
  type Dataset,
  type DatasetCore,
  type DatasetReader,
  type ReadableCatalog,
  type ExportResult,
  type RecordView,
  type ReadOptions,
  type Progress,
  type FileInfo,
  type PublishResult,
  type HeldCoreRef,
  type HeldCoreEntry,
  type UnopenedCore,
  type WindowRef
} from './data/index.js'

// The network
export { Network, CustodyChannel, LocalDHT, RECONNECT_BACKOFFS, type Peer, type NetworkOptions, type CustodyHandlers, type LocalDHTOptions } from './net/index.js'

// Custody
export { CustodyLedger, type Alarm, type AlarmKind } from './custody/index.js'
export { verifyAuditExport, blindAudit, auditConfidence, type AuditResult, type AuditSummary, type ExportVerdict } from './custody/index.js'
export { formatVerifyCapability, parseVerifyCapability, type VerifyCapability } from './data/verify-capability.js'

// Roles
export { Agency, Embassy, Mirror, Auditor, initNode, createRole, type Role, type Notice, type PairingResult } from './roles/index.js'
export { DATASET_NAME, RESTORE_TICK_MS, type CreateDatasetOptions, type RestoreResult, type RestoreStatus } from './roles/agency.js'
export type { CustodyStatus, DatasetCustody, EmbassyCustody } from './roles/agency-custody.js'
export type { AgencyHolding } from './roles/embassy.js'
export { MIRROR_WAIT_MS, type SourceStatus } from './roles/mirror.js'
export type { HeldCore } from './roles/holder.js'

// Verification and recovery kits
export { verifyCores, type VerifyReport, type CoreVerifyReport, type VerifyFailure, type VerifyOptions } from './verify/index.js'
export {
  sealKit,
  openKit,
  splitKit,
  combineShares,
  inspectKit,
  kitFromNode,
  restoreNode,
  kitImport,
  type KitContents,
  type KitFileInfo,
  type KitImportResult
} from './kit/index.js'

// Serving
export { Gateway, RESPONSE_DEADLINE_MS, SOCKET_IDLE_MS, type GatewayOptions, type GatewayStats, type RequestInfo } from './gateway/index.js'
export { Daemon, type DaemonOptions, type LogEvent } from './daemon/daemon.js'
export { NodeHost } from './daemon/host.js'
export { callControl } from './daemon/control.js'
export type { CommandIO } from './daemon/command.js'

export * as protocol from '../protocol/index.js'
