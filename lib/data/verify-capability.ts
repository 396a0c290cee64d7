/**
 * The verify capability: what a blind auditor needs to audit an agency's embassies — the catalog
 * key (which cores, and the topic where embassies announce) and the agency's node key (who signs
 * the holder list) — and nothing to read with (no read key). Text form `embassy-verify:` +
 * z-base-32 of the payload and a checksum (read-capability.ts), so a damaged one is refused.
 *
 * Payload: version (uint, 1) ‖ catalog key (32 bytes) ‖ agency node key (32 bytes).
 */
import c from 'compact-encoding'
import { EmbassyError } from '../errors.js'
import { VERIFY_CAPABILITY_PREFIX, decode, encode, type Codec } from '../../protocol/index.js'
import { capabilityBytes, checkCapabilityChecksum, formatCapability } from './read-capability.js'

export interface VerifyCapability {
  catalogKey: Uint8Array
  agencyNodeKey: Uint8Array
}

const VERSION = 1

export const verifyCapability: Codec<VerifyCapability> = {
  preencode(state, m) {
    c.uint.preencode(state, VERSION)
    c.fixed32.preencode(state, m.catalogKey)
    c.fixed32.preencode(state, m.agencyNodeKey)
  },
  encode(state, m) {
    c.uint.encode(state, VERSION)
    c.fixed32.encode(state, m.catalogKey)
    c.fixed32.encode(state, m.agencyNodeKey)
  },
  decode(state) {
    const v = c.uint.decode(state)
    if (v !== VERSION) throw new Error(`verify capability version ${v} (this build reads ${VERSION})`)
    return { catalogKey: c.fixed32.decode(state), agencyNodeKey: c.fixed32.decode(state) }
  }
}

export function formatVerifyCapability(cap: VerifyCapability): string {
  return formatCapability(VERIFY_CAPABILITY_PREFIX, encode(verifyCapability, cap))
}

/** Parses a verify capability's text; BAD_CAPABILITY (never quoting it) when it is damaged. */
export function parseVerifyCapability(text: string): VerifyCapability {
  const what = 'verify capability'
  const payload = checkCapabilityChecksum(VERIFY_CAPABILITY_PREFIX, capabilityBytes(VERIFY_CAPABILITY_PREFIX, text, what), what)
  try {
    return decode(verifyCapability, payload)
  } catch (err) {
    throw EmbassyError.badCapability(`the ${what} is damaged: its checksum matches but its contents do not decode (${(err as Error).message})`, err)
  }
}
