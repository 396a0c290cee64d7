/**
 * UDP sockets with a larger receive buffer. With 1 MiB file blocks, UDX's default buffer fills and
 * the kernel drops thousands of datagrams per 256 MiB; congestion control then halves throughput
 * (BENCHMARKS.md: files 25–39 → 53–56 MiB/s with 4 MiB). Linux caps the request at
 * net.core.rmem_max: raise it on nodes that move a lot of data (README, "Running it for real").
 */
import UDX from 'udx-native'

/** Receive buffer asked for on every UDP socket of a node. */
export const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024

/** A UDX whose sockets ask for UDP_RECEIVE_BUFFER once bound (where the kernel allows). */
export function udxWithLargeBuffers(size = UDP_RECEIVE_BUFFER): UDX {
  const udx = new UDX()
  const createSocket = udx.createSocket.bind(udx)
  udx.createSocket = (opts?: unknown) => {
    const socket = createSocket(opts)
    const bind = socket.bind.bind(socket)
    socket.bind = (port?: number, host?: string) => {
      const result = bind(port, host)
      try {
        socket.setRecvBufferSize(size)
      } catch {
        // not fatal: the default buffer still works, only slower on fast links
      }
      return result
    }
    return socket
  }
  return udx
}
