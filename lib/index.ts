/** Data Embassy's public API: the CLI is built on exactly this. */
export { EmbassyNode, STORE_DIR, type InitOptions, type NodeIdentity, type KeyPair } from './node.js'
export { Agency, DATASET_NAME, RESTORE_GRACE_MS, type CreateDatasetOptions, type RestoreResult, type CustodyStatus, type DatasetCustody, type EmbassyCustody } from './agency.js'
export { Catalog, type DatasetInfo, type CatalogProblem } from './catalog.js'
export { Datasets, datasetCoreName, type Dataset, type DatasetSummary } from './datasets.js'
export { LogDataset, APPEND_BATCH, type RecordView, type ReadOptions, type Progress } from './log-dataset.js'
export { FilesDataset, FILE_BLOCK_SIZE, type FileInfo, type PublishResult } from './files-dataset.js'
export { EmbassyError, ExitCode, isEmbassyError, type ErrorCode } from './errors.js'
export {
  defaultDir,
  defaultConfig,
  readConfig,
  validateConfig,
  parseHostPort,
  ROLES,
  type NodeConfig,
  type Role,
  type FollowEntry,
  type SourceEntry,
  type HostPort
} from './config.js'
export { formatReadCapability, parseReadCapability } from './capability.js'
export { handlers, type CommandIO, type CommandInput, type Host, type Handler } from './commands.js'
export { NodeHost, type HeldCoreRef } from './host.js'
export { Embassy, type AgencyHolding } from './embassy.js'
export { Mirror, MIRROR_WAIT_MS, type SourceStatus } from './mirror.js'
export { Holder, type HeldCore } from './holder.js'
export { Network, RECONNECT_BACKOFFS, type Peer, type NetworkOptions } from './network.js'
export { CustodyChannel } from './custody-channel.js'
export { Daemon, type DaemonOptions, type LogEvent } from './daemon.js'
export { ControlServer, callControl, controlSocketPath } from './control.js'
export { LocalDHT, DEFAULT_BOOTSTRAP_PORT, DEFAULT_DHT_NODES, type LocalDHTOptions } from './bootstrap.js'
export { runDemo, type DemoOptions } from './demo.js'
export { agencyTopic } from './caps.js'
export type { DatasetReader, ExportResult } from './reader.js'
export { toZ32, parseKey } from './ids.js'
export * as protocol from '../protocol/index.js'
export * from './kit.js'
export * from './verify.js'
export { Gateway, RESPONSE_DEADLINE_MS, SOCKET_IDLE_MS, type GatewayOptions, type GatewayStats, type RequestInfo } from './gateway.js'
export { HttpError } from './gateway-http.js'
