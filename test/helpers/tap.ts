/**
 * Reading brittle's TAP output after its process died early (the stress runner goes on with the
 * files after the one that crashed).
 */

/** The top-level test that was running when the TAP output ended: a header without a result. */
export function interruptedTest(tap: string): string | null {
  let current: string | null = null
  for (const line of tap.split('\n')) {
    const head = /^# (.+)$/.exec(line)
    if (head && !/^(tests|asserts|time) = /.test(head[1]!) && head[1] !== 'ok' && head[1] !== 'not ok') current = head[1]!
    else if (current && /^(not )?ok \d+ - /.test(line)) current = null
  }
  return current
}

/** Shortest part of a test name worth searching for (shorter ones match too much). */
const MIN_PREFIX = 16

/**
 * The index in `files` of the file that holds the top-level test named `name`: the one file whose
 * text contains the longest run of the name's words (a name built from a template, or holding an
 * escaped quote, is found by the part around it). -1 when no file, or more than one, matches.
 */
export function fileOfTest(files: readonly string[], name: string, read: (file: string) => string): number {
  const texts = files.map((f) => read(f))
  const words = name.split(' ')
  const runs: string[] = []
  for (let n = words.length; n >= 1; n--) for (let i = 0; i + n <= words.length; i++) runs.push(words.slice(i, i + n).join(' '))
  for (const part of runs) {
    if (part.length < MIN_PREFIX) continue
    const hits: number[] = []
    for (let i = 0; i < texts.length; i++) if (texts[i]!.includes(part)) hits.push(i)
    if (hits.length === 1) return hits[0]!
    if (hits.length > 1) return -1
  }
  return -1
}
