/**
 * A holder says each held core caught up (`progress`, then `caught-up`) once per length, however
 * it noticed: a block's download event, opening the core again, or closing it. Hypercore updates a
 * core's length and contiguous length before it tells the core's sessions of the block (its
 * download event comes after a storage write): a core the bound closed in between — its receipt
 * sent at once from the roots in memory, as an embassy's is — must still be said to have caught
 * up, or its operator's log and every wait on `caught-up` lack it for good.
 */
import crypto from 'node:crypto'
import path from 'node:path'
import test from 'brittle'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Catalog } from '../lib/data/catalog.js'
import { treeHashAt } from '../lib/data/tree.js'
import { Holder } from '../lib/roles/holder.js'
import { OpenCores } from '../lib/roles/open-cores.js'
import { CatalogType, DatasetKind, KEY_CHECK_BYTES, catalogBlock, encode } from '../protocol/index.js'
import { eventually, type Test } from './helpers/index.js'

async function store(t: Test, dir?: string): Promise<Corestore> {
  const s = new Corestore(dir ?? path.join(await t.tmp(), 'store'))
  t.teardown(() => s.close())
  await s.ready()
  return s
}

/** A writer's catalog listing one log dataset, and that dataset's core with `blocks` blocks. */
async function writer(t: Test, blocks: number): Promise<{ w: Corestore; catalog: Hypercore; data: Hypercore }> {
  const w = await store(t)
  const data = w.get({ name: 'dataset' })
  await data.ready()
  for (let i = 0; i < blocks; i++) await data.append(Buffer.from(`block ${i}`))
  const catalog = w.get({ name: 'catalog' })
  await catalog.ready()
  await Catalog.writeHeader(catalog, { agencyNodeKey: crypto.randomBytes(32), keyCheck: crypto.randomBytes(KEY_CHECK_BYTES), meta: Buffer.alloc(0) })
  await catalog.append(encode(catalogBlock, { type: CatalogType.ADD, id: crypto.randomBytes(16), kind: DatasetKind.LOG, cores: [data.key!], meta: Buffer.alloc(0) }))
  return { w, catalog, data }
}

function replicate(t: Test, a: Corestore, b: Corestore): void {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.pipe(s2).pipe(s1)
  t.teardown(() => {
    s1.destroy()
    s2.destroy()
  })
}

/** What a holder said of core `key`: the lengths of its `caught-up` and `progress` events. */
function listen(holder: Holder, key: Buffer): { caught: number[]; progress: number[] } {
  const said = { caught: [] as number[], progress: [] as number[] }
  holder.on('caught-up', (core) => core.key!.equals(key) && said.caught.push(core.length))
  holder.on('progress', (core) => core.key!.equals(key) && said.progress.push(core.length))
  return said
}

test('caught up: a core the bound closes as its last block lands — after Hypercore counted it, before its download event — is said to have caught up, with a receipt that can still be signed', async (t) => {
  const { w, catalog, data } = await writer(t, 1)
  const h = await store(t)
  replicate(t, w, h)
  const bound = new OpenCores(1)
  const holder = new Holder(h, catalog.key!, new Map(), { bound, parkable: () => true })
  t.teardown(() => holder.close())
  const said = listen(holder, data.key!)
  // What the embassy does at `progress`: sign a receipt from the roots in memory (the session must still be open).
  const receipts: Array<{ length: number; treeHash: Buffer }> = []
  holder.on('progress', (core) => {
    if (!core.key!.equals(data.key!)) return
    const length = core.contiguousLength
    void treeHashAt(core, length).then((treeHash) => receipts.push({ length, treeHash }), () => {})
  })
  // Hypercore counts a downloaded block (length, contiguous length) and then writes its hints to
  // storage before it emits the block's download event: the turn of the event loop an embassy's
  // tick can take to receipt the core and the bound to close it. Here the bound closes the core in
  // that write (pick-up waiting for a slot does just that): a hook on the write, nothing else.
  let closedInWindow = -1
  holder.on('core-opened', (key, core) => {
    if (!key.equals(data.key!)) return
    const inner = (core as unknown as { core: { flushHints(): Promise<void> } }).core
    const flushHints = inner.flushHints.bind(inner)
    inner.flushHints = async () => {
      if (closedInWindow === -1 && core.length > 0 && core.contiguousLength === core.length) {
        closedInWindow = core.length
        t.ok(bound.full(), 'the bound is full (one core open under a bound of one)')
        t.ok(core.closing, 'and it closed the core in that window')
      }
      return flushHints()
    }
  })
  await holder.open()
  const e = await eventually('the core picked up and closed again', () => {
    const x = holder.cores.get(data.key!.toString('hex'))
    return x && x.core === null && !x.busy ? x : null
  })
  t.is(closedInWindow, 1, 'the bound closed it when its one block had landed')
  t.is(e.contiguousLength, 1, 'its figures: the block is held')
  t.alike(said.caught, [1], 'caught up at 1, said as it closed')
  t.alike(said.progress, [1], 'with the progress that receipts it')
  t.alike(receipts, [{ length: 1, treeHash: Buffer.from(await data.treeHash(1)) }], 'and the receipt’s tree hash is the writer’s, signed while closing')

  // Opened again, nothing new: nothing more is said. The writer appends while it is open: said once.
  const core = (await holder.wake(data.key!))!
  t.alike(said.caught, [1], 'opened again at the same length, nothing more is said')
  await data.append(Buffer.from('block 1'))
  await eventually('the second block arrived', () => core.contiguousLength === 2)
  await eventually('said caught up at 2', () => said.caught.length === 2)
  t.alike(said.caught, [1, 2], 'each length said once')
})

test('caught up: what storage already held at start says nothing again; a block beyond it does, once', async (t) => {
  const { w, catalog, data } = await writer(t, 2)
  const dir = path.join(await t.tmp(), 'holder')
  {
    const h = new Corestore(dir)
    await h.ready()
    const s1 = w.replicate(true)
    const s2 = h.replicate(false)
    s1.pipe(s2).pipe(s1)
    const holder = new Holder(h, catalog.key!)
    const said = listen(holder, data.key!)
    await holder.open()
    await eventually('held whole the first time', () => said.caught.includes(2))
    t.alike(said.caught, [2], 'said once the first time')
    await holder.close()
    s1.destroy()
    s2.destroy()
    await h.close()
  }
  // A restart of the node: the same storage, held whole already.
  const h = await store(t, dir)
  const holder = new Holder(h, catalog.key!)
  t.teardown(() => holder.close())
  const said = listen(holder, data.key!)
  await holder.open()
  const e = holder.cores.get(data.key!.toString('hex'))!
  t.is(e.core?.contiguousLength, 2, 'opened whole from storage')
  t.alike(said.caught, [], 'nothing said again at a restart')
  replicate(t, w, h)
  await data.append(Buffer.from('block 2'))
  await eventually('said caught up at 3', () => said.caught.length > 0)
  t.alike(said.caught, [3], 'the new length said once')
})
