/**
 * A one-line progress bar on stderr, redrawn at most every 100 ms; silent unless enabled.
 *
 * Owns: the progress line. May import: lib/index.ts.
 */
import * as cli from '../lib/daemon/index.js'

const { fmtBytes } = cli

const WIDTH = 30

export class ProgressBar {
  readonly enabled: boolean
  #label = ''
  #last = 0
  #drawn = false
  #started = Date.now()

  constructor(enabled: boolean) {
    this.enabled = enabled
  }

  update(label: string, done: number, total: number, unit: 'bytes' | 'items' = 'bytes'): void {
    if (!this.enabled) return
    if (label !== this.#label) {
      this.#label = label
      this.#started = Date.now()
    }
    const now = Date.now()
    if (now - this.#last < 100 && done < total) return
    this.#last = now
    const frac = total > 0 ? Math.min(1, done / total) : 1
    const filled = Math.round(frac * WIDTH)
    const secs = Math.max(0.001, (now - this.#started) / 1000)
    const rate = unit === 'bytes' ? `${fmtBytes(done / secs)}/s` : `${Math.round(done / secs)}/s`
    const amount = unit === 'bytes' ? `${fmtBytes(done)}/${fmtBytes(total)}` : `${done}/${total}`
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${amount} ${rate}\x1b[K`)
    this.#drawn = true
  }

  done(): void {
    if (this.#drawn) process.stderr.write('\n')
    this.#drawn = false
  }
}
