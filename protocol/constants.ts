/**
 * Version constants and limits of the Data Embassy wire and storage formats.
 * Every byte is described in protocol/SPEC.md. Formats only ever change additively:
 * new optional fields behind flag bits, new message types at the end.
 */

/** Major version of the storage formats (catalog blocks, log records). */
export const FORMAT_VERSION = 1

/** Name written in every catalog header, so a foreign core is recognised. */
export const CATALOG_PROTOCOL = 'data-embassy/catalog'

/** Magic bytes at the start of every plaintext log record ('D', 'E'). */
export const RECORD_MAGIC = Uint8Array.of(0x44, 0x45)

/** Prefix of a read-capability string. */
export const READ_CAPABILITY_PREFIX = 'embassy-read:'

/** Prefix of a verify-capability string (catalog key + agency node key, no read key). */
export const VERIFY_CAPABILITY_PREFIX = 'embassy-verify:'

/** Size of the key-check value carried by the catalog header. */
export const KEY_CHECK_BYTES = 16

/** Size of a dataset id. */
export const DATASET_ID_BYTES = 16

/** Largest log record accepted (value bytes). Hypercore's hard cap is 15 MiB. */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024

/** Largest sealed metadata blob in a catalog entry. */
export const MAX_SEALED_META_BYTES = 64 * 1024

/** Catalog block types. New types are only ever added. */
export const CatalogType = {
  HEADER: 0,
  ADD: 1,
  UPDATE: 2,
  RETIRE: 3
} as const
export type CatalogType = (typeof CatalogType)[keyof typeof CatalogType]

/** Dataset kinds. */
export const DatasetKind = {
  LOG: 1,
  FILES: 2
} as const
export type DatasetKindCode = (typeof DatasetKind)[keyof typeof DatasetKind]
export type DatasetKindName = 'log' | 'files'

export function kindName(code: number): DatasetKindName | null {
  if (code === DatasetKind.LOG) return 'log'
  if (code === DatasetKind.FILES) return 'files'
  return null
}

export function kindCode(name: DatasetKindName): DatasetKindCode {
  return name === 'log' ? DatasetKind.LOG : DatasetKind.FILES
}

/** Log record value types. */
export const RecordType = {
  JSON: 1,
  BYTES: 2
} as const
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType]
