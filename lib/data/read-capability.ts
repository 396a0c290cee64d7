/** The read capability: one copy-pastable string with what a mirror needs. */
import z32 from 'z32'
import { EmbassyError } from '../errors.js'
import { READ_CAPABILITY_PREFIX, decode, encode, readCapability, type ReadCapability } from '../../protocol/index.js'

export function formatReadCapability(cap: ReadCapability): string {
  return READ_CAPABILITY_PREFIX + z32.encode(encode(readCapability, cap))
}

export function parseReadCapability(text: string): ReadCapability {
  const t = String(text).trim()
  if (!t.startsWith(READ_CAPABILITY_PREFIX)) {
    throw EmbassyError.badArgument(`a read capability starts with "${READ_CAPABILITY_PREFIX}" (got "${t.slice(0, 24)}…"); get one with \`embassy capability\` on the agency`)
  }
  try {
    return decode(readCapability, z32.decode(t.slice(READ_CAPABILITY_PREFIX.length)))
  } catch (err) {
    throw EmbassyError.badArgument(`the read capability is damaged: ${(err as Error).message}`, err)
  }
}
