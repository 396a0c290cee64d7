/**
 * 2. Publish: `embassy publish` of a folder (many small files and a few large), MiB/s, against a
 * plain Hypercore append of the same bytes at the same block size; and a 100,000-record NDJSON
 * import through `embassy append`, records/s, against a plain Hypercore append of the same lines
 * in the same batches. Both sides are whole processes timed from spawn to exit (node start,
 * storage open and close included on both).
 */
import fs from 'node:fs'
import path from 'node:path'
import { FILE_BLOCK_SIZE } from '../../lib/data/files-dataset.js'
import { APPEND_BATCH } from '../../lib/data/log-dataset.js'
import { cliOk, setupCli, median, MiB, mibPerS, result, rmdir, round, tmpdir, NODE_WORKER, RAW_WORKER, type Result } from '../harness.js'
import { makeFolder, newAgency, record, spawnWorker, type NodeDir } from '../product.js'
import type { Ctx } from '../context.js'

/** Raw append in its own process, spawn → exit. */
async function rawAppend(cfg: Record<string, unknown>): Promise<{ wallMs: number; appendMs: number; bytes: number; blocks: number }> {
  const dir = tmpdir('raw-append')
  const proc = spawnWorker(RAW_WORKER, { role: 'writer', dir, bootstrap: ['127.0.0.1:1'], appendOnly: true, ...cfg }, 'raw-append')
  try {
    const e = await proc.waitEvent((x) => x.event === 'appended' || x.event === 'error', 900_000, 'raw append')
    if (e.event === 'error') throw new Error(`raw append: ${e.message}`)
    await proc.exited
    return { wallMs: Date.now() - proc.spawnedAt, appendMs: e.ms, bytes: e.bytes, blocks: e.blocks }
  } finally {
    await proc.kill()
    rmdir(dir)
  }
}

/** The publish-batched variant in a node-worker process on a fresh agency; wall ms, spawn → exit. */
async function publishBatched(src: string, files: number): Promise<number> {
  const agency = await newAgency('publish-batched')
  await setupCli(['dataset', 'create', 'docs', '--kind', 'files', '--dir', agency.dir, '--json'])
  const w = spawnWorker(NODE_WORKER, { role: 'publish-batched', dir: agency.dir, dataset: 'docs', source: src }, 'publish-batched')
  try {
    const e = await w.waitEvent((x) => x.event === 'done' || x.event === 'error', 900_000, 'batched publish')
    if (e.event === 'error') throw new Error(`publish-batched: ${e.message}`)
    if (e.files !== files) throw new Error(`publish-batched wrote ${e.files} files, expected ${files}`)
    await w.exited
    return Date.now() - w.spawnedAt
  } finally {
    await w.kill()
    rmdir(path.dirname(agency.dir))
  }
}

/** A fresh agency with one dataset (`kind`) named `name`, made through the CLI. */
async function agencyWith(label: string, name: string, kind: 'files' | 'log'): Promise<NodeDir> {
  const agency = await newAgency(label)
  await setupCli(['dataset', 'create', name, '--kind', kind, '--dir', agency.dir, '--json'])
  return agency
}

export async function publish(ctx: Ctx): Promise<Result[]> {
  const results: Result[] = []
  const bytes = ctx.pick(1024, 128) * MiB
  // Quick: one trial of each (a smoke check of the same results; full mode's two show the spread).
  const trials = ctx.pick(2, 1)
  const root = tmpdir('publish')
  const made: NodeDir[] = []
  try {
    const src = path.join(root, 'src')
    const t0 = performance.now()
    // Set-up, before anything is measured: the trials' fresh agencies are made two at a time while the folder is written.
    const agencies = (async () => {
      const labels = [...Array.from({ length: trials }, () => ['publish', 'docs', 'files'] as const), ...Array.from({ length: trials }, () => ['import', 'events', 'log'] as const)]
      const out: NodeDir[] = []
      for (let i = 0; i < labels.length; i += 2) {
        const pair = await Promise.all(labels.slice(i, i + 2).map(([label, name, kind]) => agencyWith(label, name, kind)))
        made.push(...pair)
        out.push(...pair)
      }
      return out
    })()
    agencies.catch(() => {})
    const shape = makeFolder(src, bytes)
    const folderS = round((performance.now() - t0) / 1000, 1)
    const ready = await agencies
    const publishAgencies = ready.slice(0, trials)
    const importAgencies = ready.slice(trials)
    ctx.say(`  folder: ${shape.files} files (${shape.largeFiles} large, ${shape.smallFiles} small), ${round(shape.bytes / MiB)} MiB, written in ${folderS} s`)
    const product: number[] = []
    const raw: number[] = []
    const whole: number[] = []
    for (let t = 0; t < trials; t++) {
      const agency = publishAgencies[t]!
      const r = await cliOk(['publish', 'docs', src, '--dir', agency.dir, '--json'], { timeoutMs: 900_000 })
      if (r.json?.files !== shape.files) throw new Error(`publish reported ${r.json?.files} files, expected ${shape.files}`)
      rmdir(path.dirname(agency.dir))
      product.push(mibPerS(shape.bytes, r.ms))
      if (ctx.variants) {
        whole.push(mibPerS(shape.bytes, await publishBatched(src, shape.files)))
      }
      const b = await rawAppend({ source: src, blockSize: FILE_BLOCK_SIZE, batch: 64 })
      raw.push(mibPerS(b.bytes, b.wallMs))
      ctx.say(`  publish trial ${t + 1}/${trials}: embassy publish ${round(product[t]!, 1)} MiB/s (${round(r.ms / 1000, 1)} s), raw append ${round(raw[t]!, 1)} MiB/s (${round(b.wallMs / 1000, 1)} s)`)
    }
    results.push(
      result({
        name: `publish folder ${round(bytes / MiB)} MiB (${shape.files} files)`,
        value: median(product),
        unit: 'MiB/s',
        baseline: `plain Hypercore append of the same file bytes in ${FILE_BLOCK_SIZE / 1024} KiB blocks (no index), process spawn → exit`,
        baselineValue: median(raw),
        better: 'higher',
        detail: { trials: product.map((x) => round(x, 1)), baselineTrials: raw.map((x) => round(x, 1)), ...shape }
      })
    )
    if (whole.length) {
      results.push(
        result({
          name: 'variant: publish folder, small files put whole in one drive.batch()',
          value: median(whole),
          unit: 'MiB/s',
          baseline: 'product defaults (same rounds)',
          baselineValue: median(product),
          better: 'higher',
          detail: { trials: whole.map((x) => round(x, 1)) }
        })
      )
    }
    rmdir(src)

    // NDJSON import
    const count = 100_000
    const ndjson = path.join(root, 'records.ndjson')
    const lines: string[] = new Array(count)
    for (let i = 0; i < count; i++) lines[i] = record(i, 200)
    fs.writeFileSync(ndjson, lines.join('\n') + '\n')
    const ndBytes = fs.statSync(ndjson).size
    const prod: number[] = []
    const base: number[] = []
    const encrypted: number[] = []
    for (let t = 0; t < trials; t++) {
      const agency = importAgencies[t]!
      const r = await cliOk(['append', 'events', '--dir', agency.dir, '--json'], { input: fs.createReadStream(ndjson), timeoutMs: 300_000 })
      if (r.json?.appended !== count) throw new Error(`append reported ${r.json?.appended} records, expected ${count}`)
      prod.push(count / (r.ms / 1000))
      rmdir(path.dirname(agency.dir))
      const b = await rawAppend({ ndjson, batch: APPEND_BATCH })
      base.push(b.blocks / (b.wallMs / 1000))
      // The same plain append with Hypercore's block encryption, which every record of ours has (embassies are blind).
      const e = await rawAppend({ ndjson, batch: APPEND_BATCH, encrypt: true })
      encrypted.push(e.blocks / (e.wallMs / 1000))
      ctx.say(`  import trial ${t + 1}/${trials}: embassy append ${Math.round(prod[t]!)} records/s (${round(r.ms / 1000, 2)} s), raw append ${Math.round(base[t]!)} records/s, raw append block-encrypted ${Math.round(encrypted[t]!)} records/s`)
    }
    results.push(
      result({
        name: `import NDJSON ${count / 1000}k records`,
        value: median(prod),
        unit: 'records/s',
        baseline: `plain Hypercore append of the same lines, ${APPEND_BATCH} per append, process spawn → exit`,
        baselineValue: median(base),
        better: 'higher',
        detail: { trials: prod.map((x) => Math.round(x)), baselineTrials: base.map((x) => Math.round(x)), bytes: ndBytes, recordBytes: 200 }
      }),
      // What block encryption alone costs the plain append: the most the import's ratio above can
      // reach while records are encrypted.
      result({
        name: `import NDJSON ${count / 1000}k records: plain append, block-encrypted`,
        value: median(encrypted),
        unit: 'records/s',
        baseline: `plain Hypercore append of the same lines, unencrypted (the import's baseline), same run`,
        baselineValue: median(base),
        better: 'higher',
        detail: { trials: encrypted.map((x) => Math.round(x)), baselineTrials: base.map((x) => Math.round(x)) }
      }),
      result({
        name: `import NDJSON ${count / 1000}k records vs a block-encrypted plain append`,
        value: median(prod),
        unit: 'records/s',
        baseline: `plain Hypercore append of the same lines with Hypercore's block encryption, ${APPEND_BATCH} per append, process spawn → exit`,
        baselineValue: median(encrypted),
        better: 'higher',
        detail: { trials: prod.map((x) => Math.round(x)), baselineTrials: encrypted.map((x) => Math.round(x)) }
      })
    )
    if (ctx.variants) {
      // Is APPEND_BATCH right? The plain append of the same lines at other batch sizes.
      for (const batch of [100, 500, 10_000]) {
        const b = await rawAppend({ ndjson, batch })
        const other = await rawAppend({ ndjson, batch: APPEND_BATCH })
        results.push(
          result({
            name: `variant: plain append of the NDJSON lines, ${batch} per append`,
            value: b.blocks / (b.appendMs / 1000),
            unit: 'records/s',
            baseline: `plain append, ${APPEND_BATCH} per append (APPEND_BATCH), append time only`,
            baselineValue: other.blocks / (other.appendMs / 1000),
            better: 'higher'
          })
        )
      }
    }
  } finally {
    for (const a of made) rmdir(path.dirname(a.dir))
    rmdir(root)
  }
  return results
}
