// The agents' face of the control server: the Bootstrap gRPC service over
// TLS. Enroll needs no client certificate; every other call must present
// the certificate Enroll issued, for the very instance it is about, or come
// on the connection whose client key that Enroll certified. The parts:
// handlers.ts, validation.ts, errors.ts, connections.ts (the connection
// registry) and grpc-internals.ts (all that leans on grpc-js internals).
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { bootstrapProto, MAX_GRPC_MESSAGE_BYTES } from '../../contract/proto';
import { describeError, type Logger } from '../../contract/log';
import type { RateLimitOptions } from '../rate-limit';
import type { ControlService } from '../service';
import { TrackedConnections } from './connections';
import { serverCredentials } from './grpc-internals';
import { bootstrapHandlers } from './handlers';
import { SharedAssignmentEncoding } from './shared-encoding';

export { toAssignmentMessage } from './messages';

export interface GrpcServerOptions {
  service: ControlService;
  log: Logger;
  tls: { certPem: string; keyPem: string; clientCaPem: string };
  /** Enroll calls per minute per peer address (RESOURCE_EXHAUSTED beyond). */
  enrollRateLimit?: RateLimitOptions;
  /**
   * Default true. False: calls after Enroll need the issued certificate even
   * on the connection whose client key Enroll certified, as before agents
   * presented it there (tests of agents against such servers use it).
   */
  enrollmentConnections?: boolean;
}

export interface RunningGrpcServer {
  port: number;
  /** Ends the watch streams, lets unary calls finish, then stops (forcibly after `graceMs`). */
  shutdown(graceMs?: number): Promise<void>;
  forceShutdown(): void;
}

/** Starts the gRPC server on `address` ("host:port"); resolves with the bound port. */
export async function startGrpcServer(address: string, opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const connections = new TrackedConnections();
  const server = new grpc.Server({
    interceptors: opts.enrollmentConnections === false ? [] : [connections.interceptor],
    'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
    // Detects agents that vanished without closing their watch stream.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // Nothing reads channelz; its bookkeeping is work on every connection and call.
    'grpc.enable_channelz': 0,
  });
  const openWatches = new Set<() => void>();
  const definition = bootstrapProto().teleboot.v1.Bootstrap.service;
  const watchEncoding = new SharedAssignmentEncoding(definition.WatchAssignment.responseSerialize);
  server.addService(
    { ...definition, WatchAssignment: { ...definition.WatchAssignment, responseSerialize: watchEncoding.serializer } },
    bootstrapHandlers(opts.service, opts.log, openWatches, opts.enrollRateLimit, watchEncoding),
  );
  // The client certificate is requested but optional at the TLS layer, so that
  // Enroll works without one; the handlers demand it for every other call.
  const credentials = serverCredentials(opts.tls);
  // Our own listeners hand their connections to grpc-js, which runs TLS and
  // HTTP/2 on them as on its own: only the accept queue is longer.
  const injector = server.createConnectionInjector(credentials);
  const listeners = await listen(
    address,
    (socket) => {
      connections.track(socket);
      injector.injectConnection(socket);
    },
    opts.log,
  );
  const stopListening = () => listeners.servers.forEach((s) => s.close());
  return {
    port: listeners.port,
    forceShutdown: () => (stopListening(), server.forceShutdown()),
    shutdown: (graceMs = 1000) =>
      new Promise<void>((resolve) => {
        stopListening();
        for (const end of [...openWatches]) end();
        const timer = setTimeout(() => (server.forceShutdown(), resolve()), graceMs);
        server.tryShutdown(() => (clearTimeout(timer), resolve()));
      }),
  };
}

/**
 * Connections the kernel accepts and queues before the server takes them.
 * A fleet booting at once opens a thousand at the same moment; with Node's
 * default of 511, the rest are dropped and their clients retry only after
 * the TCP retransmission timeout (1 s, then 3 s, 7 s, 15 s), which stalls
 * enrollments while the server sits idle. The kernel caps it at
 * net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/** Listens on every address `address` ("host:port", "[v6]:port") resolves to, as grpc-js's bindAsync would. */
async function listen(address: string, onConnection: (socket: Socket) => void, log: Logger): Promise<{ port: number; servers: Server[] }> {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  if (!m) throw new Error(`invalid gRPC listen address ${JSON.stringify(address)}: expected host:port`);
  const hosts = isIP(m[1]) ? [m[1]] : (await lookup(m[1], { all: true })).map((a) => a.address);
  let port = Number(m[2]);
  const servers: Server[] = [];
  let firstError: Error | undefined;
  for (const host of hosts) {
    const server = createServer(onConnection);
    const error = await new Promise<Error | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => (server.off('error', resolve), resolve(undefined)));
    });
    if (error) {
      firstError ??= error;
      continue;
    }
    // An accept that fails (out of file descriptors) is retried by the client; it must not end the server.
    server.on('error', (err) => log.warn({ err: describeError(err) }, 'gRPC listener error'));
    port = (server.address() as AddressInfo).port;
    servers.push(server);
  }
  if (servers.length === 0) throw firstError ?? new Error(`${address} resolves to no address`);
  return { port, servers };
}
