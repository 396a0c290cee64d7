/** Data Embassy's public API: the CLI is built on exactly this. */
export { EmbassyNode, STORE_DIR, type InitOptions, type NodeIdentity, type KeyPair } from './node/node.js'
export { Agency, DATASET_NAME, RESTORE_GRACE_MS, type CreateDatasetOptions, type RestoreResult, type CustodyStatus, type DatasetCustody, type EmbassyCustody } from './roles/agency.js'
export { Catalog, type DatasetInfo, type CatalogProblem } from './data/catalog.js'
export { Datasets, datasetCoreName, type Dataset, type DatasetSummary } from './data/datasets.js'
export { LogDataset, APPEND_BATCH, type RecordView, type ReadOptions, type Progress } from './data/log-dataset.js'
export { FilesDataset, FILE_BLOCK_SIZE, type FileInfo, type PublishResult } from './data/files-dataset.js'
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
} from './node/config.js'
export { formatReadCapability, parseReadCapability } from './data/read-capability.js'
export { handlers, type CommandIO, type CommandInput, type Host, type Handler } from './daemon/commands.js'
export { NodeHost, type HeldCoreRef } from './daemon/host.js'
export { Embassy, type AgencyHolding } from './roles/embassy.js'
export { Mirror, MIRROR_WAIT_MS, type SourceStatus } from './roles/mirror.js'
export { Holder, type HeldCore } from './roles/holder.js'
export { Network, RECONNECT_BACKOFFS, type Peer, type NetworkOptions } from './net/network.js'
export { CustodyChannel } from './net/custody-channel.js'
export { Daemon, type DaemonOptions, type LogEvent } from './daemon/daemon.js'
export { ControlServer, callControl, controlSocketPath } from './daemon/control.js'
export { LocalDHT, DEFAULT_BOOTSTRAP_PORT, DEFAULT_DHT_NODES, type LocalDHTOptions } from './net/local-dht.js'
export { runDemo, type DemoOptions } from './daemon/demo.js'
export { agencyTopic } from './node/caps.js'
export type { DatasetReader, ExportResult } from './data/reader.js'
export { toZ32, parseKey } from './ids.js'
export * as protocol from '../protocol/index.js'
export * from './kit/kit.js'
export * from './verify/verify.js'
export { Gateway, RESPONSE_DEADLINE_MS, SOCKET_IDLE_MS, type GatewayOptions, type GatewayStats, type RequestInfo } from './gateway/gateway.js'
export { HttpError } from './gateway/http.js'
