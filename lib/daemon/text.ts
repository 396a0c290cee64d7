/**
 * Small helpers for the human text of command results: aligned tables, byte sizes, short keys,
 * and escapeText() for any text that came from someone else (a peer's message, an agency's
 * dataset names and descriptions) before it reaches a terminal or a text log.
 *
 * Owns: nothing but text. May import: nothing.
 */

/** Rows as aligned columns (two spaces apart; the last column is not padded). */
export function table(rows: string[][]): string {
  if (rows.length === 0) return ''
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n'
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** A key shortened for a table: first 8 and last 4 characters. */
/** A span of milliseconds for humans: '850 ms', '42 s', '15 min', '3.5 h'. */
export function fmtDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(0)} s`
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(0)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

export function short(key: string): string {
  return key.length > 16 ? `${key.slice(0, 8)}…${key.slice(-4)}` : key
}

/**
 * Characters that must never reach a terminal or a text log raw: C0 controls (ESC starts terminal
 * sequences; CR and LF forge lines), DEL, C1 controls (U+009B is a one-character CSI), the Unicode
 * line and paragraph separators, and the bidirectional overrides and isolates (text that reads
 * differently from what it is).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `text` with every control character escaped (`\n`, `\x1b`, `\u202e`), for human output and text
 * logs. JSON output needs none of this (JSON.stringify escapes control characters itself).
 */
export function escapeText(text: string): string {
  return String(text).replace(UNSAFE, (c) => {
    const named = NAMED[c]
    if (named) return named
    const code = c.charCodeAt(0)
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}

/** Capability prefixes (read, verify): text that starts with one is a secret. */
const CAPABILITY_TEXT = /^\s*embassy-[a-z]+:/i

/**
 * `text` as an error may quote it: a pasted capability (a secret) becomes "(a capability, not
 * shown)", anything else is cut to 80 characters. Error lines must never echo secrets.
 */
export function redactSecret(text: string): string {
  const t = String(text)
  if (CAPABILITY_TEXT.test(t) || /^[ybndrfg8ejkmcpqxot1uwisza345h769]{100,}$/.test(t.trim())) return '(a capability, not shown)'
  return t.length > 80 ? `${t.slice(0, 80)}…` : t
}
