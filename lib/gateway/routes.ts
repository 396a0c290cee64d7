/**
 * The route table: which handler answers a parsed request target, under which route label (for
 * metrics and the access log), whether it is a page (HTML errors) and whether it serves data
 * (503 NOT_READY while the node is starting).
 * Imports: the handler files (./api.ts, ./files.ts, ./browse.ts, ./metrics.ts, ./dashboard.ts), ./context.ts, ./http.ts.
 */
import { apiIndex, apiInfo, apiList, apiRecord, apiRecords, apiStatus } from './api.js'
import { datasetPage, fileView, folderView, home, recordView, stylesheet } from './browse.js'
import type { RoutedCtx } from './context.js'
import { dashboard, dashboardStylesheet } from './dashboard.js'
import { apiFile, apiFolder } from './files.js'
import type { RequestTarget } from './http.js'
import { metrics } from './metrics.js'

export interface Route {
  /** The route label, e.g. `/api/datasets/:name` (metrics, access log). */
  route: string
  /** An HTML page: errors are HTML when the client accepts it. */
  page: boolean
  /** Serves data: answered 503 NOT_READY while the node says it is not ready. */
  data: boolean
  handle(ctx: RoutedCtx): Promise<void>
}

type Handler = Route['handle']

const plain = (route: string, handle: Handler): Route => ({ route, page: false, data: false, handle })
const page = (route: string, handle: Handler): Route => ({ route, page: true, data: true, handle })
const api = (route: string, handle: Handler): Route => ({ route, page: false, data: true, handle })

/** The route for `target`, or null (404). */
export function match(target: RequestTarget): Route | null {
  const s = target.segments
  const [a, b, c, d] = s

  if (s.length === 0) return { route: '/', page: true, data: false, handle: home }
  if (a === 'assets' && b === 'style.css' && s.length === 2) return plain('/assets/style.css', stylesheet)
  if (a === 'metrics' && s.length === 1) return plain('/metrics', metrics)
  if (a === 'custody' && s.length === 1) return { route: '/custody', page: true, data: false, handle: dashboard }
  if (a === 'assets' && b === 'dashboard.css' && s.length === 2) return plain('/assets/dashboard.css', dashboardStylesheet)
  if (a === 'datasets' && b !== undefined) {
    if (s.length === 2) return page('/datasets/:name', (ctx) => datasetPage(ctx, b))
    if (c === 'records' && s.length === 4) return page('/datasets/:name/records/:seq', (ctx) => recordView(ctx, b, d as string))
    if (c === 'files') {
      const path = '/' + s.slice(3).join('/')
      if (s.length === 3 || target.trailingSlash) return page('/datasets/:name/files/', (ctx) => folderView(ctx, b, path))
      return page('/datasets/:name/files/*', (ctx) => fileView(ctx, b, path))
    }
  }
  if (a === 'api') {
    if (s.length === 1) return plain('/api', apiIndex)
    if (b === 'status' && s.length === 2) return plain('/api/status', apiStatus)
    if (b === 'datasets') {
      if (s.length === 2) return api('/api/datasets', apiList)
      const name = c as string
      if (s.length === 3) return api('/api/datasets/:name', (ctx) => apiInfo(ctx, name))
      if (d === 'records' && s.length === 4) return api('/api/datasets/:name/records', (ctx) => apiRecords(ctx, name))
      if (d === 'records' && s.length === 5) return api('/api/datasets/:name/records/:seq', (ctx) => apiRecord(ctx, name, s[4] as string))
      if (d === 'files') {
        const path = '/' + s.slice(4).join('/')
        if (s.length === 4 || target.trailingSlash) return api('/api/datasets/:name/files/', (ctx) => apiFolder(ctx, name, path))
        return api('/api/datasets/:name/files/*', (ctx) => apiFile(ctx, name, path))
      }
    }
  }
  return null
}
