/**
 * InOrder (lib/custody/in-order.ts): an embassy's receipts of one core leave in the order they were
 * begun, and an agency judges a holder's receipts of one core in the order they came, whatever each
 * one's tree hash costs. Without it a receipt hashed from storage (below the signed length) that was
 * begun first could be done after a newer one hashed from memory, and the agency read the holder's
 * custody as gone back (`custody-regressed`, and behind for good: seen in the fault suite's damage
 * scenario, twice in 16 runs).
 */
import test from 'brittle'
import { InOrder } from '../lib/custody/in-order.js'

/** A promise the test settles when it wants. */
function gate(): { promise: Promise<void>; open: () => void; fail: (err: Error) => void } {
  let open!: () => void
  let fail!: (err: Error) => void
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve
    fail = reject
  })
  return { promise, open, fail }
}

test('in order: a slow job begun first ends before a quick one begun after it, for the same key', async (t) => {
  const q = new InOrder()
  const log: string[] = []
  const slow = gate()
  const first = q.run('core', async () => {
    log.push('older begins')
    await slow.promise
    log.push('older sent')
  })
  const second = q.run('core', async () => {
    log.push('newer begins')
    log.push('newer sent')
  })
  t.alike(log, ['older begins'], 'the first runs at once, in this turn; the second waits')
  await new Promise((resolve) => setImmediate(resolve))
  t.alike(log, ['older begins'], 'still waiting while the first has not ended')
  slow.open()
  await Promise.all([first, second])
  t.alike(log, ['older begins', 'older sent', 'newer begins', 'newer sent'], 'sent in the order begun')
  t.is(q.pending, 0, 'nothing kept once none is in flight')
})

test('in order: other keys do not wait; a failed job fails alone and the next still runs', async (t) => {
  const q = new InOrder()
  const log: string[] = []
  const held = gate()
  const a1 = q.run('a', async () => {
    await held.promise
    log.push('a1')
  })
  await q.run('b', async () => {
    log.push('b1')
  })
  t.alike(log, ['b1'], 'a job of another key ran while the first key’s was in flight')
  t.is(q.pending, 1, 'one key in flight')
  const a2 = q.run('a', async () => {
    log.push('a2')
  })
  held.fail(new Error('hash failed'))
  await t.exception(a1, /hash failed/, 'the failed job rejects to its own caller')
  await a2
  t.alike(log, ['b1', 'a2'], 'the next job of that key ran after it')
  t.is(q.pending, 0)
})

test('in order: at most `max` jobs of one key wait — more are refused and counted, other keys unaffected', async (t) => {
  const q = new InOrder(2)
  const held = gate()
  const ran: number[] = []
  const jobs = [1, 2, 3, 4].map((n) =>
    q.run('flood', async () => {
      if (n === 1) await held.promise
      ran.push(n)
    })
  )
  t.is(q.refused, 2, 'the third and fourth job of the key are refused while two are queued')
  await q.run('other', async () => {
    ran.push(0)
  })
  t.alike(ran, [0], 'another key still runs at once')
  held.open()
  await Promise.all(jobs)
  t.alike(ran, [0, 1, 2], 'the two queued ones ran, in order; the refused never')
  await q.run('flood', async () => {
    ran.push(5)
  })
  t.alike(ran, [0, 1, 2, 5], 'once they ended, the key takes jobs again')
  t.is(q.pending, 0)
})
