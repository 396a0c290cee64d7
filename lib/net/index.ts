/**
 * net/: the network — Hyperswarm on a DHT built from an explicit bootstrap list (never the public
 * DHT), the allowlist firewall, replication scoped per connection (what each peer is entitled to)
 * and our custody channel on every connection, reconnection (fast retries, direct probes and dials
 * at last known addresses, back-off reset on network activity: reconnect.ts), and the
 * in-process DHT bootstrapper (LocalDHT), and the bulk lane (lane.ts, lane-link.ts: direct TCP
 * with the same keys and admission, an extra replication connection of a connected peer). It
 * moves bytes and messages; what they mean is the roles' business.
 * May import: node/ (key pair, host:port), data/ (types), errors, ids, protocol/.
 */
export { Network, RECONNECT_BACKOFFS, DHT_WATCH_MS, KEEP_ALIVE_MS, CONNECTION_TIMEOUT_MS, type Peer, type NetworkOptions, type NetworkEvents, type ReplicationScope } from './network.js'
export { CustodyChannel, type CustodyHandlers, type CustodyChannelEvents } from './custody-channel.js'
export { Reconnector, FAST_RETRY_MS, FAST_RETRY_WINDOW_MS, PROBE_MS, STALE_DIAL_MS, ONE_SIDED_MS, MAX_PROBES_IN_FLIGHT, type ReconnectHost, type PeerAddress } from './reconnect.js'
export { NetMemory, NET_MEMORY_FILE, MAX_REMEMBERED_PEERS, readNetMemory, writeNetMemory, type NetMemoryData } from './net-memory.js'
export { LocalDHT, DEFAULT_BOOTSTRAP_PORT, DEFAULT_DHT_NODES, type LocalDHTOptions } from './local-dht.js'
export { LaneLink, LANE_BACKOFFS, MAX_LANE_DIALS, type LaneLinkOptions, type LaneInfo, type LaneHost, type LanePeer } from './lane-link.js'
export { LaneServer, dialLane, LANE_HANDSHAKE_TIMEOUT_MS, MAX_PENDING_HANDSHAKES, MAX_HANDSHAKE_FRAME, LANE_KEEP_ALIVE_MS, LANE_TIMEOUT_MS, type LaneServerOptions, type LaneServerEvents, type LaneStats, type LaneFirewall, type DialLaneOptions } from './lane.js'
