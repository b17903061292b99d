// Everything the control server takes from grpc-js beyond its public API,
// in one place. Why: two things the server needs are not offered publicly.
// 1. The TLS socket under a call, to read the client certificate presented
//    in the handshake even when it is not signed by the CA (the self-signed
//    certificate of the key an Enroll certifies; see connections.ts).
//    grpc-js's auth context only carries a certificate the CA verified.
// 2. Certificate-provider credentials that answer before the first
//    connection: grpc-js reads the TLS options before it subscribes to the
//    provider, so fresh credentials would refuse the first handshakes.
// 3. A TLS option grpc-js does not pass through (secureOptions: no session
//    tickets), added to the options its credentials give the HTTP/2 server.
// test/grpc-internals.test.ts fails when a grpc-js upgrade moves either.
import { constants } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { experimental } from '@grpc/grpc-js';

/**
 * The TLS socket under a call, where grpc-js 1.10-1.14 keep it: the base
 * ServerInterceptingCall's HTTP/2 `stream`, its `session`, its `socket`.
 * Undefined should a version keep it elsewhere (no same-connection binding then).
 */
export function tlsSocketOf(call: grpc.ServerInterceptingCallInterface): TLSSocket | undefined {
  const socket = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  return socket && typeof (socket as TLSSocket).getPeerX509Certificate === 'function' ? (socket as TLSSocket) : undefined;
}

/** Serves one key pair and CA to grpc-js, which asks through listeners. */
class StaticCertificateProvider implements experimental.CertificateProvider {
  constructor(
    private readonly certPem: string,
    private readonly keyPem: string,
    private readonly caPem: string,
  ) {}
  addCaCertificateListener(l: experimental.CaCertificateUpdateListener) {
    l({ caCertificate: Buffer.from(this.caPem) });
  }
  removeCaCertificateListener() {}
  addIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener) {
    l({ certificate: Buffer.from(this.certPem), privateKey: Buffer.from(this.keyPem) });
  }
  removeIdentityCertificateListener() {}
}

/** What `_addWatcher` and `_getConstructorOptions` need to exist for (see serverCredentials). */
type WatchableCredentials = grpc.ServerCredentials & {
  _addWatcher?: (watcher: () => void) => void;
  _getConstructorOptions?: () => object | null;
};

/**
 * No TLS session tickets. After each handshake an OpenSSL 3 server encodes
 * the session, client certificate included, and decodes it again to seal a
 * ticket (two tickets in TLS 1.3): measured about 7 % of the control server's
 * CPU while a fleet enrolls. No one uses them: agents keep their connection,
 * and grpc-js clients never resume a session (a reconnection is a full
 * handshake with or without tickets). The credentials never change (a static
 * provider), so grpc-js never rebuilds the context without this option.
 */
const TLS_SECURE_OPTIONS = constants.SSL_OP_NO_TICKET;

/**
 * Server credentials that request a client certificate without requiring
 * one (Enroll comes without), ready for the first connection: a watcher
 * added at once (grpc-js's internal `_addWatcher`) makes the provider
 * answer before the listener opens.
 */
export function serverCredentials(tls: { certPem: string; keyPem: string; clientCaPem: string }): grpc.ServerCredentials {
  const provider = new StaticCertificateProvider(tls.certPem, tls.keyPem, tls.clientCaPem);
  const credentials: WatchableCredentials = experimental.createCertificateProviderServerCredentials(provider, provider, false);
  if (typeof credentials._addWatcher !== 'function' || typeof credentials._getConstructorOptions !== 'function')
    throw new Error(
      '@grpc/grpc-js no longer has ServerCredentials._addWatcher or _getConstructorOptions; see control/grpc/grpc-internals.ts',
    );
  const constructorOptions = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => ({ ...constructorOptions(), secureOptions: TLS_SECURE_OPTIONS });
  credentials._addWatcher(() => {});
  return credentials;
}
