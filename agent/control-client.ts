// The agent's side of the Bootstrap gRPC service. Every call runs over TLS
// that verifies the control server against the CA from agent.yaml. Enroll
// presents a self-signed certificate of the key it asks to have certified,
// and the calls that follow go on over that same connection; any later
// connection presents the certificate Enroll issued (mutual TLS).
import * as grpc from '@grpc/grpc-js';
import { bootstrapClientConstructor, MAX_GRPC_MESSAGE_BYTES } from '../contract/proto-client';
import type { InstanceIdentity } from '../contract/model';
import type { BootstrapClient } from '../proto/gen/teleboot/v1/Bootstrap';
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import type { EnrollResponse__Output } from '../proto/gen/teleboot/v1/EnrollResponse';
import type { ReportStatusRequest } from '../proto/gen/teleboot/v1/ReportStatusRequest';
import type { ReportStatusResponse__Output } from '../proto/gen/teleboot/v1/ReportStatusResponse';
import type { Lease__Output } from '../proto/gen/teleboot/v1/Lease';
import type { Logger } from '../contract/log';
import { newEnrollmentKey, type EnrollmentKey } from './enrollment-key';
import { controlError, ControlRefused, InstanceUnknown, type ControlCallError } from './control-errors';

export interface ClientCredentials {
  instanceId: string;
  keyPem: string;
  certPem: string;
  caPem: string;
  expiresAt: number;
  issuedAt: number;
}

/** What an enrollment gives: credentials to keep, and the assignment as of now (servers that send it). */
export interface Enrollment {
  credentials: ClientCredentials;
  assignment?: AssignmentState__Output;
  /** The control server's heartbeat interval (0: not said). */
  heartbeatIntervalSeconds: number;
}

export interface EnrollProof {
  joinToken?: string;
  ec2Identity?: { document: string; pkcs7Signature: string };
}

export interface ControlEndpoint {
  endpoints: string[];
  caPem: string;
  serverName?: string;
}

const CALL_TIMEOUT_MS = 15_000;
/**
 * Enrollment is the costliest call (a certificate is signed). When a whole
 * fleet boots at once, a call that gave up early would be signed for
 * nothing and asked again: it may wait longer.
 */
const ENROLL_TIMEOUT_MS = 60_000;

/**
 * Channel credentials hold a TLS secure context, which costs about as much
 * to build as the handshake itself. Those without a client certificate
 * depend on the CA alone and are shared; the others are built once per key
 * and certificate, not per channel.
 */
const serverOnly = new Map<string, grpc.ChannelCredentials>();

function serverOnlyCredentials(caPem: string): grpc.ChannelCredentials {
  let ssl = serverOnly.get(caPem);
  if (!ssl) {
    if (serverOnly.size >= 8) serverOnly.clear();
    serverOnly.set(caPem, (ssl = grpc.credentials.createSsl(Buffer.from(caPem))));
  }
  return ssl;
}

export interface ControlClientOptions {
  /** Told when the client moves to another endpoint (never of the credentials). */
  log?: Pick<Logger, 'warn'>;
  /** Where to start in the list (default: a random place, so that a fleet spreads over the replicas). */
  startAt?: number;
}

export class ControlClient {
  /** The endpoint in use: the list is tried in order from a random place, moving on when one is unavailable. */
  private index: number;
  private client: BootstrapClient | undefined;
  /** What the next channel is built with; none: the CA alone, no client certificate. */
  private ssl: grpc.ChannelCredentials | undefined;
  /** The key of the enrollment under way, kept across its retries, and the credentials that present it. */
  private enrolling: { instanceId: string; key: EnrollmentKey; ssl: grpc.ChannelCredentials } | undefined;
  /**
   * Set while the open channel is the one its enrollment went over: the
   * control server takes the calls on that connection as these credentials.
   * A new connection must present them, so the channel is replaced.
   */
  private onEnrollConnection: ClientCredentials | undefined;

  constructor(
    private readonly target: ControlEndpoint,
    private readonly options: ControlClientOptions = {},
  ) {
    this.index = options.startAt ?? Math.floor(Math.random() * target.endpoints.length);
  }

  get endpoint(): string {
    return this.target.endpoints[this.index % this.target.endpoints.length];
  }

  private channel(): BootstrapClient {
    if (!this.client) {
      // A channel opened anew is a new connection: the enrollment's is gone.
      if (this.onEnrollConnection) this.useCredentials(this.onEnrollConnection);
      const ssl = this.ssl ?? serverOnlyCredentials(this.target.caPem);
      const Bootstrap = bootstrapClientConstructor();
      this.client = new Bootstrap(this.endpoint, ssl, {
        'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
        // No DNS TXT lookup for a service config (none is published) and no
        // channelz bookkeeping (nothing reads it) on every channel and call.
        'grpc.service_config_disable_resolution': 1,
        'grpc.enable_channelz': 0,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.keepalive_permit_without_calls': 1,
        // grpc-js backs off reconnects up to 2 minutes by default; an agent
        // should be back within seconds of the control server.
        // An agent talks to one server; the process-wide subchannel pool only
        // costs a scan of every other channel when many agents share a process.
        'grpc.use_local_subchannel_pool': 1,
        'grpc.initial_reconnect_backoff_ms': 500,
        'grpc.max_reconnect_backoff_ms': 10_000,
        ...(this.target.serverName ? { 'grpc.ssl_target_name_override': this.target.serverName } : {}),
      });
    }
    return this.client;
  }

  /**
   * Moves to the next endpoint after a call on endpoint number `from` found
   * it unavailable. The identity stays: every replica trusts the same CA, so
   * the client certificate is good at each. A call that failed on an
   * endpoint already left (several fail together when a replica dies) moves
   * nothing, so that the client does not skip over a live one.
   */
  private failover(from: number, reason: string): void {
    if (this.target.endpoints.length < 2 || from !== this.index) return;
    const left = this.endpoint;
    this.index = (this.index + 1) % this.target.endpoints.length;
    this.options.log?.warn({ from: left, to: this.endpoint, reason }, 'control endpoint unavailable; moving to the next one');
    this.reset();
  }

  private reset(): void {
    // Forgotten before it closes: watchers of the closing channel see it is no longer the one in use.
    const client = this.client;
    this.client = undefined;
    client?.close();
  }

  /** Calls from now on present these credentials, on a new connection. */
  useCredentials(creds: ClientCredentials): void {
    this.ssl = grpc.credentials.createSsl(Buffer.from(this.target.caPem), Buffer.from(creds.keyPem), Buffer.from(creds.certPem));
    this.onEnrollConnection = undefined;
    this.reset();
  }

  /**
   * Once the enrollment's connection is gone (its channel leaves READY),
   * the channel is replaced by one that presents the issued certificate,
   * rather than let grpc-js reconnect with a key the server took only there.
   */
  private leaveEnrollConnectionWhenGone(): void {
    const client = this.client;
    if (!client) return;
    const channel = client.getChannel();
    const state = channel.getConnectivityState(false);
    const leave = () => this.client === client && this.onEnrollConnection && this.useCredentials(this.onEnrollConnection);
    if (state !== grpc.connectivityState.READY) return void leave();
    channel.watchConnectivityState(state, Infinity, leave);
  }

  /**
   * True when a call on `client` was refused for want of a certificate
   * because grpc-js reconnected the enrollment's channel: the new connection
   * is not the one the key was certified on. The channel is replaced by one
   * that presents the issued certificate, and the call may be made again.
   */
  private leftEnrollConnection(client: BootstrapClient, err: grpc.ServiceError | undefined): boolean {
    if (err?.code !== grpc.status.UNAUTHENTICATED || !this.onEnrollConnection || this.client !== client) return false;
    this.useCredentials(this.onEnrollConnection);
    return true;
  }

  /**
   * The endpoint cannot be reached: UNAVAILABLE (refused, reset, gone), or a
   * call that ran out of time without the channel ever connecting (an
   * address that drops packets, a TLS handshake never answered). A call that
   * timed out on a live connection is the server being slow, not gone.
   */
  private unreachable(client: BootstrapClient, err: grpc.ServiceError): boolean {
    if (err.code === grpc.status.UNAVAILABLE) return true;
    return err.code === grpc.status.DEADLINE_EXCEEDED && client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY;
  }

  private unary<Res>(
    invoke: (client: BootstrapClient, deadline: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void,
    timeoutMs = CALL_TIMEOUT_MS,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const client = this.channel();
      const at = this.index;
      invoke(client, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolve(res as Res);
        if (this.leftEnrollConnection(client, err)) return resolve(this.unary(invoke, timeoutMs));
        if (this.unreachable(client, err)) this.failover(at, err.details || err.message);
        reject(controlError(err));
      });
    });
  }

  /**
   * Enrolls with a join token (a string) or the EC2 identity proof. `nonce`
   * is bound to the instance at its first enrollment (trust on first use)
   * and must come with every later one.
   */
  async enroll(identity: InstanceIdentity, proof: string | EnrollProof, agentVersion: string, nonce?: string): Promise<Enrollment> {
    // A fresh key for every enrollment (only its public half leaves the host),
    // kept with its channel across the retries of this one.
    if (this.enrolling?.instanceId !== identity.instanceId) {
      const key = newEnrollmentKey(identity.instanceId);
      this.enrolling = {
        instanceId: identity.instanceId,
        key,
        ssl: grpc.credentials.createSsl(Buffer.from(this.target.caPem), Buffer.from(key.keyPem), Buffer.from(key.selfSignedCertPem)),
      };
    }
    const { key, ssl } = this.enrolling;
    if (this.ssl !== ssl) {
      this.ssl = ssl;
      this.onEnrollConnection = undefined;
      this.reset();
    }
    const res = await this.enrollCall((c, o, cb) =>
      c.enroll(
        {
          identity,
          proof:
            typeof proof === 'string'
              ? { joinToken: proof }
              : proof.ec2Identity
                ? { ec2Identity: proof.ec2Identity }
                : { joinToken: proof.joinToken },
          publicKeyPem: key.publicKeyPem,
          agentVersion,
          nonce: nonce ?? '',
        },
        o,
        cb,
      ),
    );
    const creds: ClientCredentials = {
      instanceId: identity.instanceId,
      keyPem: key.keyPem,
      certPem: res.clientCertificatePem,
      caPem: res.caCertificatePem,
      expiresAt: Number(res.certificateExpiresUnixMs),
      issuedAt: Date.now(),
    };
    this.enrolling = undefined;
    // The calls that follow stay on this connection, which the key was certified on.
    this.onEnrollConnection = creds;
    this.leaveEnrollConnectionWhenGone();
    return { credentials: creds, assignment: res.assignment ?? undefined, heartbeatIntervalSeconds: res.heartbeatIntervalSeconds };
  }

  /** Enroll's refusals are refusals of the proof (UNAUTHENTICATED included), never an unknown instance. */
  private enrollCall(
    invoke: (
      client: BootstrapClient,
      deadline: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: EnrollResponse__Output) => void,
    ) => void,
  ): Promise<EnrollResponse__Output> {
    return this.unary(invoke, ENROLL_TIMEOUT_MS).catch((err: unknown) => {
      throw err instanceof InstanceUnknown ? new ControlRefused(err.code, err.details) : err;
    });
  }

  getAssignment(instanceId: string): Promise<AssignmentState__Output> {
    return this.unary((c, o, cb) => c.getAssignment({ instanceId }, o, cb));
  }

  reportStatus(req: ReportStatusRequest): Promise<ReportStatusResponse__Output> {
    return this.unary((c, o, cb) => c.reportStatus(req, o, cb));
  }

  /** The publisher lease: acquire (or extend), renew with the fencing number granted, release. */
  acquireLease(instanceId: string, name: string): Promise<Lease__Output> {
    return this.unary((c, o, cb) => c.acquireLease({ instanceId, name }, o, cb));
  }

  renewLease(instanceId: string, name: string, fencing: number): Promise<Lease__Output> {
    return this.unary((c, o, cb) => c.renewLease({ instanceId, name, fencing }, o, cb));
  }

  releaseLease(instanceId: string, name: string, fencing: number): Promise<Lease__Output> {
    return this.unary((c, o, cb) => c.releaseLease({ instanceId, name, fencing }, o, cb));
  }

  /** Streams assignment states until cancelled; `onEnd` tells why the stream ended. */
  watch(instanceId: string, onState: (s: AssignmentState__Output) => void, onEnd: (err: ControlCallError | undefined) => void): () => void {
    let ended = false;
    let cancel = () => {};
    const open = () => {
      const client = this.channel();
      const at = this.index;
      const call = client.watchAssignment({ instanceId });
      let closed = false;
      const end = (err?: grpc.ServiceError) => {
        if (closed || ended) return;
        closed = true;
        if (this.leftEnrollConnection(client, err)) return open();
        ended = true;
        if (err?.code === grpc.status.UNAVAILABLE) this.failover(at, err.details || err.message);
        onEnd(err && controlError(err));
      };
      call.on('data', onState);
      call.on('error', (err: grpc.ServiceError) => end(err));
      call.on('end', () => end());
      cancel = () => call.cancel();
    };
    open();
    return () => {
      ended = true;
      cancel();
    };
  }

  close(): void {
    this.reset();
  }
}
