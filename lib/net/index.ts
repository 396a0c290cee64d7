/**
 * net/: the network — Hyperswarm on a DHT built from an explicit bootstrap list (never the public
 * DHT), the allowlist firewall, replication scoped per connection (what each peer is entitled to)
 * and our custody channel on every connection, and the
 * in-process DHT bootstrapper (LocalDHT). It moves bytes and messages; what they mean is the
 * roles' business.
 * May import: node/ (key pair, host:port), data/ (types), errors, ids, protocol/.
 */
export { Network, RECONNECT_BACKOFFS, DHT_WATCH_MS, KEEP_ALIVE_MS, CONNECTION_TIMEOUT_MS, type Peer, type NetworkOptions, type NetworkEvents, type ReplicationScope } from './network.js'
export { CustodyChannel, type CustodyHandlers, type CustodyChannelEvents } from './custody-channel.js'
export { LocalDHT, DEFAULT_BOOTSTRAP_PORT, DEFAULT_DHT_NODES, type LocalDHTOptions } from './local-dht.js'
