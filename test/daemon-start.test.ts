/** A refused start exits: nothing the node opened before the refusal keeps the process alive. */
import test from 'brittle'
import { cli, initDir } from './helpers/index.js'

test('daemon: run --http on an embassy is refused (WRONG_ROLE, exit 2) and the process exits', async (t) => {
  const dir = await initDir(t, 'embassy', 'embassy')
  // A bootstrap that answers nothing: the start is refused before the network matters.
  const r = await cli(['run', '--dir', dir, '--bootstrap', '127.0.0.1:9', '--http', '127.0.0.1:0'], { timeout: 60_000 })
  t.is(r.code, 2, `exit code (stderr: ${r.stderr.trim()})`)
  t.ok(/WRONG_ROLE: an embassy is blind/.test(r.stderr), 'the reason is named')
})

test('daemon: a start that fails after the network is up (gateway port in use) releases everything and exits', async (t) => {
  const net = await import('node:net')
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const port = (blocker.address() as { port: number }).port
  const dir = await initDir(t, 'agency', 'agency')
  const r = await cli(['run', '--dir', dir, '--bootstrap', '127.0.0.1:9', '--http', `127.0.0.1:${port}`], { timeout: 60_000 })
  t.not(r.code, 0, `refused (exit ${r.code}; stderr: ${r.stderr.trim()})`)
  t.not(r.code, null, 'the process exited by itself')
  // The directory is free again: a one-shot command opens it at once.
  const id = await cli(['id', '--dir', dir, '--json'])
  t.is(id.code, 0, 'the node directory was released')
})
