/**
 * Admission: how many requests the gateway works on at once, per client (remote address) and in
 * all. A request over either limit waits in a FIFO queue; a client whose queue is full gets 429
 * TOO_MANY_REQUESTS, and when the whole queue is full everyone gets 503 BUSY, at once. A queued
 * request whose client leaves is dropped without ever running.
 * Imports: lib/errors only.
 */
import { EmbassyError } from '../errors.js'

/** Requests worked on at once for one client (remote address). */
export const MAX_ACTIVE_PER_CLIENT = 8
/** Requests worked on at once in all. */
export const MAX_ACTIVE = 64
/** Requests one client may have waiting. */
export const MAX_QUEUED_PER_CLIENT = 1024
/** Requests waiting in all. */
export const MAX_QUEUED = 4096
/** Seconds a refused client is told to wait. */
const RETRY_AFTER_S = '1'

export interface AdmissionLimits {
  /** @default MAX_ACTIVE_PER_CLIENT */
  activePerClient?: number
  /** @default MAX_ACTIVE */
  active?: number
  /** @default MAX_QUEUED_PER_CLIENT */
  queuedPerClient?: number
  /** @default MAX_QUEUED */
  queued?: number
}

interface Waiter {
  client: string
  start: () => void
}

interface ClientCount {
  active: number
  queued: number
}

export class Admission {
  readonly limits: Required<AdmissionLimits>
  #active = 0
  #queue: Waiter[] = []
  #clients = new Map<string, ClientCount>()
  /** Requests refused (429 or 503) since the start. */
  refused = 0

  constructor(limits: AdmissionLimits = {}) {
    this.limits = {
      activePerClient: limits.activePerClient ?? MAX_ACTIVE_PER_CLIENT,
      active: limits.active ?? MAX_ACTIVE,
      queuedPerClient: limits.queuedPerClient ?? MAX_QUEUED_PER_CLIENT,
      queued: limits.queued ?? MAX_QUEUED
    }
  }

  /** Requests being worked on now. */
  get active(): number {
    return this.#active
  }

  /** Requests waiting now. */
  get queued(): number {
    return this.#queue.length
  }

  #count(client: string): ClientCount {
    let c = this.#clients.get(client)
    if (!c) {
      c = { active: 0, queued: 0 }
      this.#clients.set(client, c)
    }
    return c
  }

  #forget(client: string, c: ClientCount): void {
    if (c.active === 0 && c.queued === 0) this.#clients.delete(client)
  }

  #canRun(c: ClientCount): boolean {
    return this.#active < this.limits.active && c.active < this.limits.activePerClient
  }

  /**
   * Waits for a slot for `client`; resolves with the function that gives it back, or with null
   * when `signal` aborted first (the client left). Throws TOO_MANY_REQUESTS / BUSY at once when
   * the queues are full.
   */
  enter(client: string, signal: AbortSignal): Promise<(() => void) | null> {
    const c = this.#count(client)
    if (this.#canRun(c)) return Promise.resolve(this.#run(client, c))
    if (c.queued >= this.limits.queuedPerClient) {
      this.refused++
      this.#forget(client, c)
      throw EmbassyError.tooManyRequests(`this client has ${c.active + c.queued} requests open (at most ${this.limits.activePerClient} are worked on at once, ${this.limits.queuedPerClient} may wait)`, { 'Retry-After': RETRY_AFTER_S })
    }
    if (this.#queue.length >= this.limits.queued) {
      this.refused++
      this.#forget(client, c)
      throw EmbassyError.busy(`the gateway has ${this.#active + this.#queue.length} requests open; try again shortly`, { 'Retry-After': RETRY_AFTER_S })
    }
    if (signal.aborted) return Promise.resolve(null)
    return new Promise((resolve) => {
      c.queued++
      const waiter: Waiter = {
        client,
        start: () => {
          signal.removeEventListener('abort', onAbort)
          c.queued--
          resolve(this.#run(client, c))
        }
      }
      const onAbort = (): void => {
        const i = this.#queue.indexOf(waiter)
        if (i === -1) return
        this.#queue.splice(i, 1)
        c.queued--
        this.#forget(client, c)
        resolve(null)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(waiter)
    })
  }

  #run(client: string, c: ClientCount): () => void {
    this.#active++
    c.active++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#active--
      c.active--
      this.#forget(client, c)
      this.#next()
    }
  }

  /** Starts the first waiting request that may run now. */
  #next(): void {
    for (let i = 0; i < this.#queue.length && this.#active < this.limits.active; i++) {
      const w = this.#queue[i]!
      if (!this.#canRun(this.#count(w.client))) continue
      this.#queue.splice(i, 1)
      w.start()
      return
    }
  }
}
