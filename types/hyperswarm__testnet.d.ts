// Ambient types for @hyperswarm/testnet v3 — it is just `module.exports = require('hyperdht/testnet')` (see hyperdht.d.ts).
// Usage: `import createTestnet from '@hyperswarm/testnet'`; `const testnet = await createTestnet(3, t.teardown)`.

declare module '@hyperswarm/testnet' {
  import createTestnet = require('hyperdht/testnet.js')
  export = createTestnet
}
