// Ambient types for udx-native (CommonJS), the part Data Embassy uses: a UDX instance whose
// sockets it configures before HyperDHT binds them.
declare module 'udx-native' {
  class UDXSocket {
    bind(port?: number, host?: string): unknown
    setRecvBufferSize(size: number): number
    getRecvBufferSize(): number
  }
  class UDX {
    constructor()
    createSocket(opts?: unknown): UDXSocket
  }
  export = UDX
}
