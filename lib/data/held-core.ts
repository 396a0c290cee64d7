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
  /**
   * Opened again for this reading (it was closed while idle): its peers are still attaching, so
   * a repair waits for one before calling it unreachable.
   */
  reopened?: boolean
}

/**
 * A held core described without opening it (what a verification or repair selects from before
 * it opens the cores it chose, a window at a time).
 */
export interface HeldCoreEntry {
  /** Catalog key of the agency it belongs to. */
  catalog: Buffer
  /** Dataset id (hex); null for the catalog itself. */
  dataset: string | null
  /** Human label, as in HeldCoreRef (a command may relabel it before the core is opened). */
  name: string
  /** The core's key. */
  key: Buffer
  /** Its known length (progress totals), from the open core or the figures of a closed one. */
  length: number
}

/** A held core that could not be opened for a reading (its storage failed): described, with why. */
export interface UnopenedCore extends HeldCoreEntry {
  error: Error
}

/** A held core as a window of a reading gives it: open, or why it could not be opened. */
export type WindowRef = HeldCoreRef | UnopenedCore
