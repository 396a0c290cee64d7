/**
 * The read-only web gateway's public surface: the Gateway class, its options and its limits.
 * Everything else in lib/gateway/ is internal. Imports: ./server.ts only.
 */
export { Gateway, RESPONSE_DEADLINE_MS, SOCKET_IDLE_MS, type GatewayOptions, type GatewayStats, type RequestInfo, type CustodySource, type CustodyNow } from './server.js'
