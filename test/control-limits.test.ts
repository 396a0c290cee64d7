/**
 * The control socket's request cap: a request line over MAX_REQUEST_BYTES gets REQUEST_TOO_LARGE
 * and its connection is closed, the node keeps serving; the CLI's side refuses such a request
 * before sending it.
 */
import net from 'node:net'
import test from 'brittle'
import { callControl } from '../lib/daemon/index.js'
import { MAX_CONTROL_CONNECTIONS, MAX_REQUEST_BYTES } from '../lib/daemon/control.js'
import type { CommandIO } from '../lib/daemon/command.js'
import { eventually, serveAgency, type Test } from './helpers/index.js'

const quiet: CommandIO = { json: true, progress() {}, line() {} }

/** Writes `bytes` (no newline) as fast as the socket takes them; resolves with every reply line and how it ended. */
function oversized(socketPath: string, bytes: number): Promise<{ lines: string[]; wrote: number }> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath)
    let received = ''
    let wrote = 0
    const chunk = Buffer.alloc(1024 * 1024, 0x61) // 'a': never a newline
    socket.on('error', () => {}) // EPIPE / ECONNRESET once the node closes: expected
    socket.on('data', (d: Buffer) => {
      received += d.toString('utf8')
    })
    socket.on('close', () => resolve({ lines: received.split('\n').filter(Boolean), wrote }))
    const pump = () => {
      while (wrote < bytes && !socket.destroyed) {
        const n = Math.min(chunk.byteLength, bytes - wrote)
        wrote += n
        if (!socket.write(chunk.subarray(0, n))) {
          socket.once('drain', pump)
          return
        }
      }
    }
    socket.on('connect', pump)
  })
}

test('control socket: a request over the cap gets REQUEST_TOO_LARGE, the connection closes, the node keeps serving', { timeout: 180_000 }, async (t) => {
  const { dir, server } = await serveAgency(t, 'Cap Agency')
  t.is(server.maxRequestBytes, 64 * 1024 * 1024, 'the cap is 64 MiB (it was 1 GiB)')
  // Twice the cap: the node must answer and close long before the client is done.
  const { lines } = await oversized(server.path, 2 * MAX_REQUEST_BYTES)
  t.is(lines.length, 1, 'one reply line')
  const reply = JSON.parse(lines[0]!) as { t: string; error: { code: string; message: string; details: { limit: number } } }
  t.is(reply.t, 'error')
  t.is(reply.error.code, 'REQUEST_TOO_LARGE', reply.error.message)
  t.ok(/limited to 67108864 bytes/.test(reply.error.message), 'names the limit')
  t.is(reply.error.details.limit, MAX_REQUEST_BYTES)
  // The node still runs commands.
  const r = await callControl(dir, 'id', { args: [], opts: {} }, quiet)
  t.ok(r.running && (r.value as { nodeKey?: string }).nodeKey, 'the node still serves: `id` answered')
})

test('control socket: a request just under the cap is still read (and judged as a request)', { timeout: 180_000 }, async (t) => {
  const { server } = await serveAgency(t, 'Cap Agency')
  // A line of MAX - 1 bytes plus its newline is exactly at the cap: read whole, then refused as malformed JSON.
  const reply = await new Promise<string>((resolve) => {
    const socket = net.connect(server.path)
    let received = ''
    socket.on('error', () => {})
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')))
    socket.on('close', () => resolve(received))
    socket.on('connect', () => {
      socket.write(Buffer.alloc(MAX_REQUEST_BYTES - 1, 0x61))
      socket.write('\n')
    })
  })
  const ev = JSON.parse(reply.trim()) as { t: string; error: { code: string } }
  t.is(ev.error.code, 'BAD_MESSAGE', 'read to its newline, then refused for what it says, not for its size')
})

test('control socket: the client refuses an oversized request before sending it', { timeout: 180_000 }, async (t) => {
  const { dir } = await serveAgency(t, 'Cap Agency')
  const record = JSON.stringify({ pad: 'x'.repeat(1024 * 1024) })
  const texts = Array.from({ length: 65 }, () => record)
  const err = await callControl(dir, 'append', { args: ['log'], opts: {}, records: { texts, lines: texts.map((_, i) => i + 1) } }, quiet).then(
    () => null,
    (e: Error & { code?: string; exitCode?: number }) => e
  )
  t.ok(err, 'refused')
  t.is(err?.code, 'REQUEST_TOO_LARGE', err?.message)
  t.is(err?.exitCode, 2, 'a usage error (exit 2)')
  t.ok(/split the input/.test(err?.message ?? ''), 'says what to do')
})

test('control socket: connections beyond the cap are answered BUSY and closed; the node keeps serving', { timeout: 180_000 }, async (t) => {
  const { dir, server } = await serveAgency(t, 'Cap Agency')
  const idle: net.Socket[] = []
  t.teardown(() => idle.forEach((s) => s.destroy()))
  for (let i = 0; i < MAX_CONTROL_CONNECTIONS; i++) {
    const s = net.connect(server.path)
    s.on('error', () => {})
    idle.push(s)
    await new Promise((resolve) => s.once('connect', resolve))
  }
  // Each idle connection sent half a request (no newline): held open, buffering nothing much.
  for (const s of idle) s.write('{"command":')
  const reply = await new Promise<string>((resolve) => {
    const s = net.connect(server.path)
    let received = ''
    s.on('error', () => {})
    s.on('data', (d: Buffer) => (received += d.toString('utf8')))
    s.on('close', () => resolve(received))
  })
  const ev = JSON.parse(reply.trim()) as { t: string; error: { code: string; message: string } }
  t.is(ev.error.code, 'BUSY', ev.error.message)
  for (const s of idle) s.destroy()
  // Until the node has seen every close, BUSY is its (clear) answer: wait until it serves again.
  const served = await eventually('the node serves again', async () => {
    const r = await callControl(dir, 'id', { args: [], opts: {} }, quiet).catch(() => null)
    return r?.running ?? false
  })
  t.ok(served, 'serves again once the idle connections are gone')
})
