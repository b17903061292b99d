// The HTTP listener both emulators share: loopback only, and a switch that
// makes the service unreachable (every connection reset, as a dropped route
// or a dead host behind a proxy would look).
import * as http from 'node:http';
import type * as net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface EmulatorListener {
  endpoint: string;
  // Properties, not methods: emulators hand them on unbound.
  setUnreachable: (on: boolean) => void;
  close: () => Promise<void>;
}

export async function listenOnLoopback(server: http.Server, port = 0): Promise<EmulatorListener> {
  const sockets = new Set<net.Socket>();
  let unreachable = false;
  server.on('connection', (socket) => {
    if (unreachable) return socket.resetAndDestroy();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    setUnreachable: (on) => {
      unreachable = on;
      // Kept-alive connections would otherwise still get through.
      if (on) for (const s of sockets) s.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
