/**
 * data/: an agency's data as Hypercores — the catalog (signed, unencrypted, names sealed), log and
 * files datasets (block-encrypted with keys derived from the read key), opening them by name
 * (Datasets), the read capability, and the Merkle facts status needs. Everything a reader or a
 * writer does to bytes, nothing about peers or roles.
 * May import: node/, errors, ids, protocol/.
 */
export { Catalog, type DatasetInfo, type CatalogProblem } from './catalog.js'
export { Datasets, datasetCoreName, type Dataset, type DatasetSummary } from './datasets.js'
export { LogDataset, APPEND_BATCH, type RecordView, type ReadOptions, type Progress, type DatasetCore } from './log-dataset.js'
export { FilesDataset, FILE_BLOCK_SIZE, MAX_LISTED_SKIPPED, type FileInfo, type PublishResult, type FilesExportResult } from './files-dataset.js'
export { linkTarget, safeSegments, unsafeDatasetName, type SkippedEntry } from './safe-paths.js'
export { CheckedEncryption, checkBlocksOnRead } from './checked-blocks.js'
export { formatReadCapability, parseReadCapability } from './read-capability.js'
export type { DatasetReader, ReadableCatalog, ExportResult } from './datasets.js'
export type { HeldCoreRef, HeldCoreEntry, UnopenedCore, WindowRef } from './held-core.js'
