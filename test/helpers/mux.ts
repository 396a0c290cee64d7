/** Two Protomux muxers over a Noise secret-stream pair piped in memory, destroyed at teardown. */
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import type test from 'brittle'

export function muxPair(t: test.Assert): { a: NoiseSecretStream; b: NoiseSecretStream; ma: Protomux; mb: Protomux } {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  a.rawStream!.pipe(b.rawStream!).pipe(a.rawStream!)
  t.teardown(() => {
    a.destroy()
    b.destroy()
  })
  return { a, b, ma: Protomux.from(a), mb: Protomux.from(b) }
}
