// Error mapping: what a refusal or failure inside the control server means
// as a gRPC status. The proto's comments list the codes each RPC answers.
import * as grpc from '@grpc/grpc-js';
import { describeError, type Logger } from '../../contract/log';
import { EnrollmentDenied, VerifierUnavailable, type DenialReason } from '../enrollment';
import { ForbiddenError, InputError, NotFoundError, RateLimitedError, StoreUnavailableError, UnauthenticatedError } from '../errors';
import { PublicKeyError } from '../pki';

/** A refusal decided in the gRPC layer, with its status. */
export class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** INVALID_ARGUMENT naming the field and what it must be. */
export const invalid = (field: string, reason: string): CallError => new CallError(grpc.status.INVALID_ARGUMENT, `${field}: ${reason}`);

/**
 * Enroll's refusals, as gRPC's status guidance has them: a proof that does
 * not prove who the caller is (a wrong, expired, revoked or used-up token, a
 * bad signature, a missing or different nonce) is UNAUTHENTICATED; an
 * identity proven but outside what this server allows is PERMISSION_DENIED.
 */
const NOT_PROVEN: ReadonlySet<DenialReason> = new Set<DenialReason>([
  'no-proof',
  'token-unknown',
  'token-unusable',
  'bad-signature',
  'identity-mismatch',
  'nonce-required',
  'nonce-mismatch',
]);

/** A ServiceError grpc-js can send (details go to the client, as the status message). */
export function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/**
 * The status of an error thrown by a handler. Anything unexpected is
 * INTERNAL with no detail for the client (the log has it).
 */
export function toStatus(err: unknown, log: Logger, method: string): grpc.ServiceError {
  if (err instanceof CallError) return serviceError(err.code, err.message);
  if (err instanceof InputError || err instanceof PublicKeyError) return serviceError(grpc.status.INVALID_ARGUMENT, err.message);
  if (err instanceof NotFoundError) return serviceError(grpc.status.NOT_FOUND, err.message);
  if (err instanceof EnrollmentDenied)
    return serviceError(NOT_PROVEN.has(err.reason) ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED, err.message);
  if (err instanceof ForbiddenError) return serviceError(grpc.status.PERMISSION_DENIED, err.message);
  if (err instanceof UnauthenticatedError) return serviceError(grpc.status.UNAUTHENTICATED, err.message);
  if (err instanceof RateLimitedError) return serviceError(grpc.status.RESOURCE_EXHAUSTED, err.message);
  if (err instanceof StoreUnavailableError) return serviceError(grpc.status.UNAVAILABLE, err.message);
  if (err instanceof VerifierUnavailable) {
    log.warn({ method, err: describeError(err) }, 'identity verification unavailable');
    return serviceError(grpc.status.UNAVAILABLE, 'the control server cannot verify the identity right now; retry');
  }
  log.error({ method, err: describeError(err) }, 'gRPC call failed');
  return serviceError(grpc.status.INTERNAL, 'internal error; the control server log has the details');
}

/**
 * Ends a server stream with `err` as its status. (A stream's destroy() would
 * close it without sending any status: the client would wait on.)
 */
export function endWithError(call: grpc.ServerWritableStream<unknown, unknown>, err: Error): void {
  if (!call.writableEnded) call.emit('error', err);
}
