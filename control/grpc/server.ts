// The agents' face of the control server: the Bootstrap gRPC service over
// TLS. Enroll needs no client certificate; every other call must present
// the certificate Enroll issued, for the very instance it is about, or come
// on the connection whose client key that Enroll certified.
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { experimental } from '@grpc/grpc-js';
import type { ServerSurfaceCall as SurfaceCall } from '@grpc/grpc-js/build/src/server-call';
import { AGENT_STATES, isAwsRegion, isInstanceId, type AgentState, type HostFacts, type InstanceIdentity } from '../../contract/model';
import { bootstrapProto, MAX_GRPC_MESSAGE_BYTES } from '../../contract/proto';
import { assignmentToMessage, clusterToMessage } from '../../contract/wire';
import { describeError, type Logger } from '../../contract/log';
import type { BootstrapHandlers } from '../../proto/gen/teleboot/v1/Bootstrap';
import type { AssignmentState } from '../../proto/gen/teleboot/v1/AssignmentState';
import type { Lease } from '../../proto/gen/teleboot/v1/Lease';
import type { LeaseOutcome } from '../store/store';
import type { HostFacts__Output } from '../../proto/gen/teleboot/v1/HostFacts';
import type { InstanceIdentity__Output } from '../../proto/gen/teleboot/v1/InstanceIdentity';
import type { WatchAssignmentRequest__Output } from '../../proto/gen/teleboot/v1/WatchAssignmentRequest';
import { EnrollmentDenied, VerifierUnavailable, type EnrollmentProof } from '../enrollment';
import { ForbiddenError, InputError, NotFoundError, RateLimitedError, UnauthenticatedError } from '../errors';
import { PublicKeyError } from '../pki';
import { peerAddress, RateLimiter, type RateLimitOptions } from '../rate-limit';
import { MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES } from '../ec2-identity';
import type { AssignmentStateView, ControlService } from '../service';

class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (field: string, reason: string) => new CallError(grpc.status.INVALID_ARGUMENT, `${field}: ${reason}`);

function toStatus(err: unknown, log: Logger, method: string): grpc.ServiceError {
  let code = grpc.status.INTERNAL;
  let details = 'internal error; the control server log has the details';
  if (err instanceof CallError) [code, details] = [err.code, err.message];
  else if (err instanceof InputError || err instanceof PublicKeyError) [code, details] = [grpc.status.INVALID_ARGUMENT, err.message];
  else if (err instanceof NotFoundError) [code, details] = [grpc.status.NOT_FOUND, err.message];
  else if (err instanceof EnrollmentDenied || err instanceof ForbiddenError) [code, details] = [grpc.status.PERMISSION_DENIED, err.message];
  else if (err instanceof UnauthenticatedError) [code, details] = [grpc.status.UNAUTHENTICATED, err.message];
  else if (err instanceof RateLimitedError) [code, details] = [grpc.status.RESOURCE_EXHAUSTED, err.message];
  else if (err instanceof VerifierUnavailable) {
    [code, details] = [grpc.status.UNAVAILABLE, 'the control server cannot verify the identity right now; retry'];
    log.warn({ method, err: describeError(err) }, 'identity verification unavailable');
  } else log.error({ method, err: describeError(err) }, 'gRPC call failed');
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/**
 * What a call knows of its connection beyond grpc-js's auth context: the
 * key the TLS client proved it holds, and the enrollment bound to it.
 */
interface CallConnection {
  /** Set by Enroll when the connection's TLS client key is the key it certified. */
  enrolled?: { commonName: string; serial: string };
  /** DER SubjectPublicKeyInfo of the client certificate presented in the handshake, verified against the CA or not. */
  presentedKey(): Buffer | undefined;
}

const CONNECTION = Symbol('teleboot.connection');
type ConnectionAuthContext = ReturnType<SurfaceCall['getAuthContext']> & { [CONNECTION]?: CallConnection };

/**
 * The caller's instance id (CN) and certificate serial: from the client
 * certificate the TLS layer verified against the control CA or, on a
 * connection whose client key an Enroll certified, from that enrollment.
 */
function callerCertificate(call: SurfaceCall): { commonName?: string; serial?: string } {
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
function bindEnrollment(call: SurfaceCall, spkiDer: Buffer, enrolled: { commonName: string; serial: string }): boolean {
  const connection = (call.getAuthContext() as ConnectionAuthContext | undefined)?.[CONNECTION];
  if (!connection || !connection.presentedKey()?.equals(spkiDer)) return false;
  connection.enrolled = enrolled;
  return true;
}

/**
 * Checks the instance_id field, and that the certificate is one Enroll
 * issued, not revoked, to that very instance.
 */
async function authorizedInstance(service: ControlService, call: SurfaceCall, instanceId: string, method: string): Promise<string> {
  const cert = callerCertificate(call);
  if (!cert.commonName)
    throw new CallError(grpc.status.UNAUTHENTICATED, 'this call needs the client certificate issued by Enroll; enroll first');
  service.callLimits.grpcCall(cert.commonName, peerAddress(call.getPeer()));
  if (!isInstanceId(instanceId)) throw invalid('instance_id', 'must be an instance id such as i-0123456789abcdef0');
  await service.trust.authorizeCall(cert, instanceId, method);
  return instanceId;
}

/** A nonce as agents make them: 32 random bytes, base64url. */
const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;

function proofFrom(req: {
  proof?: { kind?: string; joinToken?: string; ec2Identity?: { document?: string; pkcs7Signature?: string } | null } | null;
}): EnrollmentProof {
  const proof = req.proof;
  if (!proof || !proof.kind) throw invalid('proof', 'is required: a join_token or an ec2_identity');
  if (proof.kind === 'joinToken') {
    if (!proof.joinToken) throw invalid('proof.join_token', 'is empty');
    return { joinToken: limited('proof.join_token', proof.joinToken, 256) };
  }
  const ec2 = proof.ec2Identity;
  if (!ec2?.document) throw invalid('proof.ec2_identity.document', 'is required: /latest/dynamic/instance-identity/document');
  if (!ec2.pkcs7Signature)
    throw invalid('proof.ec2_identity.pkcs7_signature', 'is required: /latest/dynamic/instance-identity/rsa2048 or /pkcs7');
  return {
    ec2Identity: {
      document: limited('proof.ec2_identity.document', ec2.document, MAX_DOCUMENT_BYTES),
      pkcs7Signature: limited('proof.ec2_identity.pkcs7_signature', ec2.pkcs7Signature, MAX_SIGNATURE_BYTES * 2),
    },
  };
}

/** The served certificate's expiry, when reported (0 or absent: none). */
function certificateExpiry(value: number | string | undefined): { certificateExpiresAt?: number } {
  const ms = Number(value ?? 0);
  if (ms === 0) return {};
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalid('proxy_certificate_expires_unix_ms', 'must be a unix time in milliseconds');
  return { certificateExpiresAt: ms };
}

const limited = (field: string, value: string, max: number): string => {
  if (value.length > max) throw invalid(field, `longer than ${max} characters`);
  return value;
};

function identityFrom(msg: InstanceIdentity__Output | null): InstanceIdentity {
  if (!msg) throw invalid('identity', 'is required');
  if (!isInstanceId(msg.instanceId)) throw invalid('identity.instance_id', 'must be an instance id such as i-0123456789abcdef0');
  if (msg.region && !isAwsRegion(msg.region)) throw invalid('identity.region', 'must be an AWS region such as us-east-1');
  if (msg.privateIp && !/^[0-9a-fA-F.:]{2,45}$/.test(msg.privateIp)) throw invalid('identity.private_ip', 'must be an IP address');
  const tags = msg.tags ?? {};
  if (Object.keys(tags).length > 50) throw invalid('identity.tags', 'EC2 allows at most 50 tags');
  for (const [k, v] of Object.entries(tags)) {
    if (k.length === 0 || k.length > 128 || v.length > 256)
      throw invalid(`identity.tags.${k.slice(0, 40)}`, 'tag keys are 1-128 characters, values up to 256');
  }
  return {
    instanceId: msg.instanceId,
    region: msg.region,
    availabilityZone: limited('identity.availability_zone', msg.availabilityZone, 64),
    accountId: limited('identity.account_id', msg.accountId, 32),
    privateIp: msg.privateIp,
    hostname: limited('identity.hostname', msg.hostname, 253),
    instanceType: limited('identity.instance_type', msg.instanceType, 64),
    imageId: limited('identity.image_id', msg.imageId, 64),
    tags,
  };
}

function factsFrom(msg: HostFacts__Output | null): HostFacts | null {
  if (!msg) return null;
  return {
    os: limited('facts.os', msg.os, 200),
    kernel: limited('facts.kernel', msg.kernel, 200),
    arch: limited('facts.arch', msg.arch, 32),
    cpus: msg.cpus,
    memoryTotalBytes: Number(msg.memoryTotalBytes),
    memoryAvailableBytes: Number(msg.memoryAvailableBytes),
    loadAverage1m: msg.loadAverage_1m ?? 0,
    uptimeSeconds: Number(msg.uptimeSeconds),
    rootDiskFreeBytes: Number(msg.rootDiskFreeBytes),
  };
}

export function toAssignmentMessage(view: AssignmentStateView): AssignmentState {
  return {
    instanceId: view.instanceId,
    generation: view.generation,
    assigned: view.assigned,
    assignment: view.assignment ? assignmentToMessage(view.assignment) : null,
    cluster: clusterToMessage(view.cluster),
  };
}

function leaseMessage(name: string, outcome: LeaseOutcome & { joinTokenNames?: string[] }, periodMs: number): Lease {
  return {
    name: outcome.lease?.name ?? (name || 'publisher'),
    holder: outcome.lease?.holder ?? '',
    fencing: outcome.lease?.fencing ?? 0,
    expiresUnixMs: outcome.lease?.expiresAt ?? 0,
    granted: outcome.granted,
    periodMs,
    joinTokenNames: outcome.joinTokenNames ?? [],
  };
}

/**
 * Ends a server stream with `err` as its status. (A stream's destroy() would
 * close it without sending any status: the client would wait on.)
 */
function endWithError(call: grpc.ServerWritableStream<unknown, unknown>, err: Error): void {
  if (!call.writableEnded) call.emit('error', err);
}

function unary<Req, Res>(
  log: Logger,
  method: string,
  handle: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handle(call).then(
      (res) => callback(null, res),
      (err) => callback(toStatus(err, log, method)),
    );
  };
}

export function bootstrapHandlers(
  service: ControlService,
  log: Logger,
  openWatches = new Set<() => void>(),
  enrollLimit: RateLimitOptions = { perMinute: 0, exemptLoopback: true },
): BootstrapHandlers {
  const heartbeatIntervalSeconds = Math.round(service.heartbeatIntervalMs / 1000);
  const enrollLimiter = new RateLimiter(enrollLimit);
  return {
    Enroll: unary(log, 'Enroll', async (call) => {
      const req = call.request;
      const peer = peerAddress(call.getPeer());
      if (!enrollLimiter.take(peer)) {
        log.warn({ peer }, 'Enroll rate limit reached');
        throw new CallError(grpc.status.RESOURCE_EXHAUSTED, 'too many enrollments from this address; retry later');
      }
      const identity = identityFrom(req.identity);
      const proof = proofFrom(req);
      if (!req.publicKeyPem) throw invalid('public_key_pem', 'is required: the PEM public key the client certificate is issued for');
      limited('public_key_pem', req.publicKeyPem, 4096);
      if (req.nonce && !NONCE_RE.test(req.nonce)) throw invalid('nonce', '16-128 characters of A-Z a-z 0-9 _ -');
      if (proof.ec2Identity && !req.nonce)
        throw invalid(
          'nonce',
          'is required with ec2_identity: the first enrollment binds it, so that a copied identity document cannot enroll another machine',
        );
      const result = await service.enroll(identity, proof, req.publicKeyPem, { nonce: req.nonce || undefined, peer });
      const sameConnection = bindEnrollment(call, result.spkiDer, { commonName: identity.instanceId, serial: result.serial });
      log.info({ instanceId: identity.instanceId, via: result.via, rule: result.matchedRule?.name, sameConnection }, 'instance enrolled');
      return {
        instanceId: identity.instanceId,
        clientCertificatePem: result.certPem,
        caCertificatePem: result.caPem,
        certificateExpiresUnixMs: result.expiresAt.getTime(),
        heartbeatIntervalSeconds,
        assignment: toAssignmentMessage(result.assignment),
      };
    }),

    GetAssignment: unary(log, 'GetAssignment', async (call) => {
      const id = await authorizedInstance(service, call, call.request.instanceId, 'GetAssignment');
      return toAssignmentMessage(await service.assignmentState(id));
    }),

    ReportStatus: unary(log, 'ReportStatus', async (call) => {
      const req = call.request;
      const id = await authorizedInstance(service, call, req.instanceId, 'ReportStatus');
      if (!(AGENT_STATES as readonly string[]).includes(req.state)) throw invalid('state', `must be one of ${AGENT_STATES.join(', ')}`);
      const applied = Number(req.appliedGeneration);
      if (!Number.isSafeInteger(applied) || applied < 0) throw invalid('applied_generation', 'must be a non-negative integer');
      const record = await service.reportStatus(
        id,
        applied,
        {
          state: req.state as AgentState,
          teleportUnitState: limited('teleport_unit_state', req.teleportUnitState, 64),
          teleportReady: req.teleportReady,
          message: limited('message', req.message, 4096),
          agentVersion: limited('agent_version', req.agentVersion, 64),
          ...certificateExpiry(req.proxyCertificateExpiresUnixMs),
        },
        factsFrom(req.facts),
      );
      return { desiredGeneration: record.generation, heartbeatIntervalSeconds };
    }),

    AcquireLease: unary(log, 'AcquireLease', async (call) => {
      const id = await authorizedInstance(service, call, call.request.instanceId, 'AcquireLease');
      return leaseMessage(
        call.request.name,
        await service.acquireLease(id, limited('name', call.request.name, 64)),
        service.publisherLeaseMs,
      );
    }),

    RenewLease: unary(log, 'RenewLease', async (call) => {
      const id = await authorizedInstance(service, call, call.request.instanceId, 'RenewLease');
      return leaseMessage(
        call.request.name,
        await service.renewLease(id, limited('name', call.request.name, 64), Number(call.request.fencing)),
        service.publisherLeaseMs,
      );
    }),

    ReleaseLease: unary(log, 'ReleaseLease', async (call) => {
      const id = await authorizedInstance(service, call, call.request.instanceId, 'ReleaseLease');
      return leaseMessage(
        call.request.name,
        await service.releaseLease(id, limited('name', call.request.name, 64), Number(call.request.fencing)),
        service.publisherLeaseMs,
      );
    }),

    WatchAssignment: (call) => {
      authorizedInstance(service, call, call.request.instanceId, 'WatchAssignment').then(
        (id) => watchAssignment(call, id),
        (err) => endWithError(call, toStatus(err, log, 'WatchAssignment')),
      );
    },
  };

  function watchAssignment(call: grpc.ServerWritableStream<WatchAssignmentRequest__Output, AssignmentState>, id: string): void {
    let lastSent = -1;
    let busy = false;
    let again = false;
    // Coalesces bursts of changes: one read in flight, one more queued.
    const push = async () => {
      if (busy) return void (again = true);
      busy = true;
      try {
        do {
          again = false;
          const view = await service.assignmentState(id);
          if (view.generation !== lastSent && !call.cancelled) {
            lastSent = view.generation;
            call.write(toAssignmentMessage(view));
          }
        } while (again);
      } catch (err) {
        stop();
        endWithError(call, toStatus(err, log, 'WatchAssignment'));
      } finally {
        busy = false;
      }
    };
    const unsubscribe = service.watch(id, () => void push());
    // At shutdown the stream ends with UNAVAILABLE, and the agent reconnects.
    const end = () =>
      endWithError(
        call,
        Object.assign(new Error('control server shutting down'), {
          code: grpc.status.UNAVAILABLE,
          details: 'control server shutting down',
        }),
      );
    openWatches.add(end);
    const stop = () => {
      unsubscribe();
      openWatches.delete(end);
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    void push();
  }
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

type AuthContext = ReturnType<grpc.ServerInterceptingCallInterface['getAuthContext']>;
type ConnectionInfo = ReturnType<grpc.ServerInterceptingCallInterface['getConnectionInfo']>;

/** The TLS socket under a call, where grpc-js keeps it (undefined should a version keep it elsewhere: no binding then). */
function tlsSocketOf(call: grpc.ServerInterceptingCallInterface): TLSSocket | undefined {
  const socket = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  return socket && typeof (socket as TLSSocket).getPeerX509Certificate === 'function' ? (socket as TLSSocket) : undefined;
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

  presentedKey(): Buffer | undefined {
    return this.socket?.getPeerX509Certificate()?.publicKey.export({ type: 'spki', format: 'der' });
  }
}

/**
 * Each connection's client certificate, as the TLS layer verified it, read
 * at its first call and kept for the others (grpc-js asks OpenSSL for it,
 * getPeerCertificate, on every call otherwise), and the enrollment bound to
 * it. A connection is known by its two addresses and ports, which no two
 * open connections share; its entry goes when its socket closes, before the
 * kernel lets the same addresses and ports connect again.
 */
class TrackedConnections {
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
  server.addService(
    bootstrapProto().teleboot.v1.Bootstrap.service,
    bootstrapHandlers(opts.service, opts.log, openWatches, opts.enrollRateLimit),
  );
  // The client certificate is requested but optional at the TLS layer, so that
  // Enroll works without one; the handlers demand it for every other call.
  const provider = new StaticCertificateProvider(opts.tls.certPem, opts.tls.keyPem, opts.tls.clientCaPem);
  const credentials = experimental.createCertificateProviderServerCredentials(provider, provider, false);
  // grpc-js reads the TLS options before it subscribes to the provider, so a
  // fresh credentials object would refuse the first connections. A watcher
  // added now makes the provider answer before the listener opens.
  credentials._addWatcher(() => {});
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
