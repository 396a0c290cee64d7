/** A core a node holds, and what it belongs to: what verification, audits and status walk over. */
import type Hypercore from 'hypercore'

export interface HeldCoreRef {
  /** Catalog key of the agency it belongs to. */
  catalog: Buffer
  /** Dataset id (hex, as in the catalog); null for the catalog itself. */
  dataset: string | null
  /** Human label: 'catalog', the dataset name (readers), or the core key (blind holders). */
  name: string
  core: Hypercore
}
