/**
 * HTML text escaping: the one function every page we render uses (the gateway's pages and the
 * drill report's page), so there is one place that decides what is safe inside HTML text and
 * attribute values. A bottom layer of its own: imports nothing.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** `s` as HTML text, safe in element content and in quoted attribute values: & < > " ' escaped; null and undefined are ''. */
export function escapeHtml(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]!)
}
