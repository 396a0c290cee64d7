/**
 * A small line chart as inline SVG (no script, no external asset): time on x, a value on y, one
 * line per series, with axes, tick labels, a legend in text, and <title>/<desc> for screen readers.
 * Series differ by colour AND dash pattern AND marker shape (never colour alone). Every label is
 * escaped (the `html` tag). Rendering only: no I/O.
 * Imports: ./pages.ts (html, Html).
 */
import { html, type Html } from './pages.js'

export interface ChartSeries {
  label: string
  /** [time ms, value], in time order. */
  points: Array<[number, number]>
}

export interface ChartOptions {
  /** Unique in the page (ids of <title>/<desc>). */
  id: string
  title: string
  /** A sentence describing what the chart shows (also its <desc>). */
  description: string
  since: number
  until: number
  /** The y axis' unit, e.g. "blocks" or "s". */
  unit: string
  series: ChartSeries[]
  /** Formats a y tick. @default String */
  format?: (v: number) => string
  /** Allowed upper bounds of the y axis (e.g. SECOND_STEPS). @default 4, 8, 20, 40 × 10^n */
  steps?: readonly number[]
}

const W = 720
const H = 270
/** Room for tick labels at the larger size a phone gets (see DASHBOARD_CSS). */
const M = { left: 100, right: 24, top: 16, bottom: 50 }
/** Colours readable on light and dark backgrounds (≥ 3:1 against both for lines). */
const COLOURS = ['#1f6fd1', '#c2410c', '#15803d', '#9333ea', '#b45309', '#0e7490', '#be123c', '#4d7c0f']
const DASHES = ['', '6 4', '2 3', '10 3 2 3', '1 5', '8 8', '4 2 1 2', '12 4']

/** Upper bounds for the y axis whose quarters are whole (4, 8, 20, 40 × 10^n). */
function niceMax(v: number, steps?: readonly number[]): number {
  if (!(v > 0) || !Number.isFinite(v)) return steps?.[0] ?? 4
  if (steps) return steps.find((m) => m >= v) ?? Math.ceil(v)
  for (let p = 1; ; p *= 10) for (const m of [4, 8, 20, 40]) if (m * p >= v) return m * p
}

/** Upper bounds for an axis of seconds whose quarters read well as durations. */
export const SECOND_STEPS = [60, 240, 480, 1200, 3600, 7200, 14_400, 28_800, 86_400, 172_800, 345_600, 691_200, 2_592_000, 5_184_000] as const

function timeLabel(ms: number, span: number): string {
  const iso = new Date(ms).toISOString()
  return span > 2 * 86_400_000 ? iso.slice(5, 10) : iso.slice(11, 16)
}

function marker(shape: number, x: number, y: number, colour: string): Html {
  const s = shape % 3
  if (s === 0) return html`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${colour}"/>`
  if (s === 1) return html`<rect x="${(x - 3).toFixed(1)}" y="${(y - 3).toFixed(1)}" width="6" height="6" fill="${colour}"/>`
  return html`<path d="M${x.toFixed(1)} ${(y - 4).toFixed(1)} l4 7 h-8 z" fill="${colour}"/>`
}

/** The chart as an inline <svg>, or a sentence when there is nothing to draw. */
export function lineChart(o: ChartOptions): Html {
  const fmt = o.format ?? ((v: number) => String(v))
  const span = Math.max(1, o.until - o.since)
  const max = niceMax(Math.max(0, ...o.series.flatMap((s) => s.points.map((p) => p[1]))), o.steps)
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const x = (t: number): number => M.left + ((Math.min(Math.max(t, o.since), o.until) - o.since) / span) * pw
  const y = (v: number): number => M.top + ph - (Math.max(0, v) / max) * ph
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max)
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => o.since + f * span)
  const empty = o.series.every((s) => s.points.length === 0)
  const lines = o.series.map((s, i) => {
    const colour = COLOURS[i % COLOURS.length] as string
    const dash = DASHES[i % DASHES.length] as string
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)} ${y(p[1]).toFixed(1)}`).join(' ')
    // A marker at the last point (and at every point when there are few) tells the lines apart without colour.
    const marks = s.points.filter((_, j) => s.points.length <= 12 || j === s.points.length - 1).map((p) => marker(i, x(p[0]), y(p[1]), colour))
    return html`<g class="series"><title>${s.label}</title>${d ? html`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"${dash ? html` stroke-dasharray="${dash}"` : ''}/>` : ''}${marks}</g>`
  })
  const svg = html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${o.id}-title ${o.id}-desc" preserveAspectRatio="xMidYMid meet">
<title id="${o.id}-title">${o.title}</title>
<desc id="${o.id}-desc">${o.description}</desc>
<g class="axes" fill="currentColor" font-size="12">
${yTicks.map((v, i) => html`<line x1="${M.left}" x2="${W - M.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="currentColor" stroke-opacity="0.18"/><text class="${i % 2 ? 'tick minor' : 'tick'}" x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`)}
${xTicks.map((t, i) => html`<text class="${i % 2 ? 'tick minor' : 'tick'}" x="${x(t).toFixed(1)}" y="${H - M.bottom + 20}" text-anchor="${i === 0 ? 'start' : i === xTicks.length - 1 ? 'end' : 'middle'}">${timeLabel(t, span)}</text>`)}
<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" stroke="currentColor"/>
<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}" stroke="currentColor"/>
<text class="axis-label" x="${M.left + pw / 2}" y="${H - 4}" text-anchor="middle">time (UTC)</text>
<text class="axis-label" x="14" y="${M.top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${M.top + ph / 2})">${o.unit}</text>
</g>
${empty ? html`<text x="${M.left + pw / 2}" y="${M.top + ph / 2}" text-anchor="middle" fill="currentColor" font-size="14">no samples in this window yet</text>` : ''}
${lines}
</svg>`
  const legend = html`<ul class="legend">${o.series.map(
    (s, i) =>
      html`<li><svg class="swatch" viewBox="0 0 28 10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"${DASHES[i % DASHES.length] ? html` stroke-dasharray="${DASHES[i % DASHES.length]}"` : ''}/>${marker(i, 14, 5, COLOURS[i % COLOURS.length] as string)}</svg>${s.label}</li>`
  )}</ul>`
  return html`<figure class="chart-box">${svg}${o.series.length > 0 ? legend : ''}</figure>`
}
