/**
 * Every key derivation of Data Embassy, in one place, each under its own namespace
 * (BLAKE2b keyed with the secret, domain-separated by a namespace from hypercore-crypto).
 */
import crypto from 'hypercore-crypto'
import sodium from 'sodium-universal'
import { KEY_CHECK_BYTES } from '../../protocol/constants.js'

const [NS_BLOCK, NS_META, NS_CHECK, NS_TOPIC] = crypto.namespace('data-embassy', 4) as [Buffer, Buffer, Buffer, Buffer]

/** Name under which a node's swarm key pair is derived from its Corestore primary key. */
export const SWARM_KEY_NAME = 'data-embassy/swarm'
/** Name of the agency's catalog core in its Corestore. */
export const CATALOG_CORE_NAME = 'data-embassy/catalog'

function keyed(out: number, parts: Uint8Array[], key?: Uint8Array): Buffer {
  const buf = Buffer.alloc(out)
  if (key) sodium.crypto_generichash_batch(buf, parts, key)
  else sodium.crypto_generichash_batch(buf, parts)
  return buf
}

/** The block-encryption key of one dataset: every core of the dataset uses it (hypercore mixes in the core key). */
export function datasetEncryptionKey(readKey: Uint8Array, datasetId: Uint8Array): Buffer {
  return keyed(32, [NS_BLOCK, datasetId], readKey)
}

/** The key that seals catalog metadata (names, descriptions). */
export function metadataKey(readKey: Uint8Array): Buffer {
  return keyed(32, [NS_META], readKey)
}

/** The key-check value stored in the catalog header: tells a wrong read key apart. */
export function keyCheck(readKey: Uint8Array): Buffer {
  return keyed(KEY_CHECK_BYTES, [NS_CHECK], readKey)
}

/** The Hyperswarm topic on which holders of one agency's data find each other. */
export function agencyTopic(catalogKey: Uint8Array): Buffer {
  return keyed(32, [NS_TOPIC, catalogKey])
}

/** 32 fresh random bytes (a read key, a dataset id seed). */
export function randomKey(bytes = 32): Buffer {
  const buf = Buffer.alloc(bytes)
  sodium.randombytes_buf(buf)
  return buf
}
