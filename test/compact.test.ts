/**
 * Records an embassy keeps for as long as it holds a core (its witnessed head, in the guard and
 * the HeadBook; its newest receipt) own their bytes: their 32- and 64-byte fields are not views of
 * Node's shared 8 KiB Buffer pool or of a received message, which keeping them would keep alive.
 */
import test from 'brittle'
import crypto from 'hypercore-crypto'
import { HeadBook, compactHead, signWitnessedHead, verifyWitnessSignature } from '../lib/custody/heads.js'
import { compactReceipt, signReceipt, verifyReceiptSignature } from '../lib/custody/receipts.js'
import type { WitnessedHead } from '../protocol/index.js'

/** A 32-byte value as a small Buffer.from makes it: a view of the shared pool. */
function pooled(fill: number, size = 32): Buffer {
  return Buffer.from(new Uint8Array(size).fill(fill))
}

/** The byte fields of `o` keep no byte but their own: the ArrayBuffers they view add up to their sizes. */
function ownsExactly(o: Record<string, unknown>, fields: string[]): boolean {
  const bufs = fields.map((f) => o[f] as Uint8Array)
  const total = bufs.reduce((n, b) => n + b.byteLength, 0)
  const kept = new Set(bufs.map((b) => b.buffer))
  return [...kept].reduce((n, ab) => n + ab.byteLength, 0) === total
}

const HEAD_FIELDS = ['core', 'treeHash', 'agencySignature', 'witness', 'signature']

function head(kp: ReturnType<typeof crypto.keyPair>, treeFill: number): WitnessedHead {
  return signWitnessedHead(kp, { core: pooled(1), length: 10, fork: 0, treeHash: pooled(treeFill), agencySignature: pooled(3, 64), time: 1 })
}

test('compact: a witnessed head keeps its own bytes only, still verifies, and is not copied twice', async (t) => {
  const kp = crypto.keyPair()
  const h = head(kp, 2)
  t.ok(h.treeHash.buffer.byteLength > 1024, 'as made, the tree hash is a view of the shared pool (the case this guards)')
  const c = compactHead(h)
  t.ok(ownsExactly(c as unknown as Record<string, unknown>, HEAD_FIELDS), 'compact: its fields keep no other bytes')
  for (const f of HEAD_FIELDS) t.alike(Buffer.from((c as unknown as Record<string, Uint8Array>)[f]!), Buffer.from((h as unknown as Record<string, Uint8Array>)[f]!), `${f} unchanged`)
  t.is(c.length, h.length)
  t.is(c.time, h.time)
  t.ok(verifyWitnessSignature(c), 'the witness signature still verifies')
  t.is(compactHead(c), c, 'a compact head is kept as it is')
})

test('compact: the HeadBook keeps heads compact (also one received as a view of a larger message)', async (t) => {
  const kp = crypto.keyPair()
  const book = new HeadBook()
  // As a decoded message gives it: every field a view of one larger buffer.
  const a = head(kp, 2)
  const message = Buffer.alloc(4096)
  let at = 0
  const view = (b: Uint8Array): Buffer => {
    message.set(b, at)
    const v = message.subarray(at, at + b.byteLength)
    at += b.byteLength
    return v
  }
  const received: WitnessedHead = { ...a, core: view(a.core), treeHash: view(a.treeHash), agencySignature: view(a.agencySignature), witness: view(a.witness), signature: view(a.signature) }
  t.is(book.add(received).kind, 'ok')
  // Equivocation (same length and fork, another tree hash) returns the head the book kept.
  const verdict = book.add(head(kp, 9))
  t.is(verdict.kind, 'equivocation')
  const known = (verdict as { known: WitnessedHead }).known
  t.ok(ownsExactly(known as unknown as Record<string, unknown>, HEAD_FIELDS), 'the kept head owns exactly its bytes, not the message')
  t.alike(Buffer.from(known.treeHash), Buffer.from(a.treeHash), 'and is the head added')
  t.is(book.newest(a.core)?.treeHash, Buffer.from(a.treeHash).toString('hex'))
})

test('compact: a receipt keeps its own bytes only and still verifies', async (t) => {
  const kp = crypto.keyPair()
  const r = signReceipt(kp, { core: pooled(4), length: 5, treeHash: pooled(5), fork: 0, time: 2 })
  t.ok(r.treeHash.buffer.byteLength > 1024, 'as given, the tree hash is a view of the shared pool (the case this guards)')
  const c = compactReceipt(r)
  t.ok(ownsExactly(c as unknown as Record<string, unknown>, ['core', 'treeHash', 'signature']), 'compact: its fields keep no other bytes')
  t.alike([Buffer.from(c.core), Buffer.from(c.treeHash), Buffer.from(c.signature), c.length, c.fork, c.time], [Buffer.from(r.core), Buffer.from(r.treeHash), Buffer.from(r.signature), r.length, r.fork, r.time])
  t.ok(verifyReceiptSignature(c, kp.publicKey), 'the signature still verifies')
})
