// The connection registry: what a call knows of its connection beyond
// grpc-js's auth context. Each connection's client certificate, as the TLS
// layer verified it, is read at its first call and kept for the others
// (grpc-js asks OpenSSL for it, getPeerCertificate, on every call
// otherwise), with the enrollment bound to it.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { isKeyOf } from '../pki';
import { tlsSocketOf } from './grpc-internals';

type AuthContext = ReturnType<grpc.ServerInterceptingCallInterface['getAuthContext']>;
type ConnectionInfo = ReturnType<grpc.ServerInterceptingCallInterface['getConnectionInfo']>;

/** Any server call: unary or streaming, each shows its auth context and its peer. */
export interface CallWithAuth {
  getAuthContext(): AuthContext;
  getPeer(): string;
}

/** What the handlers know of a connection. */
interface CallConnection {
  /** Set by Enroll when the connection's TLS client key is the key it certified. */
  enrolled?: { commonName: string; serial: string };
  /** Whether the client certificate presented in the handshake (verified against the CA or not) holds the key of `spkiDer`. */
  presents(spkiDer: Buffer): boolean;
}

const CONNECTION = Symbol('teleboot.connection');
type ConnectionAuthContext = AuthContext & { [CONNECTION]?: CallConnection };

/**
 * The caller's instance id (CN) and certificate serial: from the client
 * certificate the TLS layer verified against the control CA or, on a
 * connection whose client key an Enroll certified, from that enrollment.
 */
export function callerCertificate(call: CallWithAuth): { commonName?: string; serial?: string } {
  const context: ConnectionAuthContext = call.getAuthContext() ?? {};
  const cert = context.sslPeerCertificate;
  if (!cert) return context[CONNECTION]?.enrolled ?? {};
  const cn = cert.subject?.CN;
  return { commonName: Array.isArray(cn) ? cn[0] : cn, serial: cert.serialNumber };
}

/**
 * After an enrollment: when the TLS client on this connection proved, in its
 * handshake, that it holds the very key just certified, the calls that follow
 * on the connection act with that certificate (Trust.authorizeCall still checks
 * it on each), so a first boot needs no second connection. The binding ends
 * with the connection.
 */
export function bindEnrollment(call: CallWithAuth, spkiDer: Buffer, enrolled: { commonName: string; serial: string }): boolean {
  const connection = (call.getAuthContext() as ConnectionAuthContext | undefined)?.[CONNECTION];
  if (!connection?.presents(spkiDer)) return false;
  connection.enrolled = enrolled;
  return true;
}

/** One connection as the handlers see it. */
class TrackedConnection implements CallConnection {
  auth?: ConnectionAuthContext;
  enrolled?: { commonName: string; serial: string };
  private socket?: TLSSocket;

  /** Remembers the TLS socket from the first call that shows it. */
  see(call: grpc.ServerInterceptingCallInterface): this {
    this.socket ??= tlsSocketOf(call);
    return this;
  }

  presents(spkiDer: Buffer): boolean {
    const key = this.socket?.getPeerX509Certificate()?.publicKey;
    return key !== undefined && isKeyOf(key, spkiDer);
  }
}

/**
 * The open connections. A connection is known by its two addresses and
 * ports, which no two open connections share; its entry goes when its
 * socket closes, before the kernel lets the same addresses and ports
 * connect again.
 */
export class TrackedConnections {
  private readonly open = new Map<string, TrackedConnection>();

  /** Undefined for a socket already gone, which must share no entry with another. */
  private static key(c: Partial<ConnectionInfo>): string | undefined {
    const { remoteAddress, remotePort, localAddress, localPort } = c;
    if (!remoteAddress || !remotePort || !localAddress || !localPort) return undefined;
    return `${remoteAddress}|${remotePort}|${localAddress}|${localPort}`;
  }

  /** A connection accepted, before any of its bytes are read. */
  track(socket: Socket): void {
    const key = TrackedConnections.key(socket);
    if (key === undefined) return;
    const entry = new TrackedConnection();
    this.open.set(key, entry);
    socket.once('close', () => this.open.get(key) === entry && this.open.delete(key));
  }

  /** The connection's auth context, read through `call` once (every time, and bound to nothing, on a connection not tracked). */
  authContext(call: grpc.ServerInterceptingCallInterface): AuthContext {
    const key = TrackedConnections.key(call.getConnectionInfo());
    const entry = (key === undefined ? undefined : this.open.get(key)) ?? new TrackedConnection();
    return (entry.auth ??= { ...call.getAuthContext(), [CONNECTION]: entry.see(call) });
  }

  readonly interceptor: grpc.ServerInterceptor = (_method, call) => new TrackedConnectionCall(call, this);
}

class TrackedConnectionCall extends grpc.ServerInterceptingCall {
  constructor(
    private readonly base: grpc.ServerInterceptingCallInterface,
    private readonly connections: TrackedConnections,
  ) {
    super(base);
  }

  override getAuthContext(): AuthContext {
    return this.connections.authContext(this.base);
  }
}
