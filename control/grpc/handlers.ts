// The Bootstrap service's handlers: each checks its message, authorizes the
// caller, calls the service and maps the outcome (errors.ts) to a status.
import * as grpc from '@grpc/grpc-js';
import { AGENT_STATES, isInstanceId, type AgentState } from '../../contract/model';
import type { Logger } from '../../contract/log';
import type { BootstrapHandlers } from '../../proto/gen/teleboot/v1/Bootstrap';
import type { AssignmentState } from '../../proto/gen/teleboot/v1/AssignmentState';
import type { Lease } from '../../proto/gen/teleboot/v1/Lease';
import type { LeaseRequest__Output } from '../../proto/gen/teleboot/v1/LeaseRequest';
import type { WatchAssignmentRequest__Output } from '../../proto/gen/teleboot/v1/WatchAssignmentRequest';
import type { LeaseOutcome } from '../store/store';
import { peerAddress, RateLimiter, type RateLimitOptions } from '../rate-limit';
import type { AssignmentStateView, ControlService } from '../service';
import { bindEnrollment, callerCertificate, type CallWithAuth } from './connections';
import { CallError, endWithError, invalid, serviceError, toStatus } from './errors';
import { leaseMessage, toAssignmentMessage } from './messages';
import type { SharedAssignmentEncoding } from './shared-encoding';
import { statusDetailsFrom } from './status-details';
import { certificateExpiry, factsFrom, identityFrom, limited, NONCE_RE, proofFrom, publicKeyPemFrom, uint64Field } from './validation';

/**
 * Checks the instance_id field, and that the certificate is one Enroll
 * issued, not revoked, to that very instance.
 */
async function authorizedInstance(service: ControlService, call: CallWithAuth, instanceId: string, method: string): Promise<string> {
  const cert = callerCertificate(call);
  if (!cert.commonName)
    throw new CallError(grpc.status.UNAUTHENTICATED, 'this call needs the client certificate issued by Enroll; enroll first');
  service.callLimits.grpcCall(cert.commonName, peerAddress(call.getPeer()));
  if (!isInstanceId(instanceId)) throw invalid('instance_id', 'must be an instance id such as i-0123456789abcdef0');
  await service.trust.authorizeCall(cert, instanceId, method);
  return instanceId;
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
  /** Watchers' messages with their settings encoded once (shared-encoding.ts); absent: each encoded whole. */
  watchEncoding?: SharedAssignmentEncoding,
): BootstrapHandlers {
  const watchMessage = watchEncoding ? (view: AssignmentStateView) => watchEncoding.message(view) : toAssignmentMessage;
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
      const publicKeyPem = publicKeyPemFrom(req.publicKeyPem);
      if (req.nonce && !NONCE_RE.test(req.nonce)) throw invalid('nonce', '16-128 characters of A-Z a-z 0-9 _ -');
      if (proof.ec2Identity && !req.nonce)
        throw invalid(
          'nonce',
          'is required with ec2_identity: the first enrollment binds it, so that a copied identity document cannot enroll another machine',
        );
      const result = await service.enroll(identity, proof, publicKeyPem, { nonce: req.nonce || undefined, peer });
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
      const applied = uint64Field('applied_generation', req.appliedGeneration);
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
          ...statusDetailsFrom(req),
        },
        factsFrom(req.facts),
      );
      return { desiredGeneration: record.generation, heartbeatIntervalSeconds };
    }),

    AcquireLease: lease('AcquireLease', (id, name) => service.acquireLease(id, name)),
    RenewLease: lease('RenewLease', (id, name, fencing) => service.renewLease(id, name, fencing)),
    ReleaseLease: lease('ReleaseLease', (id, name, fencing) => service.releaseLease(id, name, fencing)),

    WatchAssignment: (call) => {
      authorizedInstance(service, call, call.request.instanceId, 'WatchAssignment').then(
        (id) => watchAssignment(call, id),
        (err) => endWithError(call, toStatus(err, log, 'WatchAssignment')),
      );
    },
  };

  /** A lease call: the caller's own instance, the lease name, and (renew, release) the fencing number it holds. */
  function lease(
    method: string,
    act: (id: string, name: string, fencing: number) => Promise<LeaseOutcome & { joinTokenNames?: string[] }>,
  ): grpc.handleUnaryCall<LeaseRequest__Output, Lease> {
    return unary(log, method, async (call) => {
      const req = call.request;
      const id = await authorizedInstance(service, call, req.instanceId, method);
      const name = limited('name', req.name, 64);
      return leaseMessage(req.name, await act(id, name, uint64Field('fencing', req.fencing)), service.publisherLeaseMs);
    });
  }

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
            call.write(watchMessage(view));
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
    const end = () => endWithError(call, serviceError(grpc.status.UNAVAILABLE, 'control server shutting down'));
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
