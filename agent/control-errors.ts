// What a failed control-server call means to the agent, decided once here
// from its gRPC status, so that the rest of the agent acts on types rather
// than on raw status codes.
import { status, type ServiceError } from '@grpc/grpc-js';

export class ControlCallError extends Error {
  constructor(
    /** The gRPC status code, kept for logs and for callers that show it. */
    readonly code: status,
    readonly details: string,
  ) {
    super(`${status[code] ?? code}: ${details}`);
  }
}

/**
 * The control server has no record of this instance or of its certificate
 * (NOT_FOUND, UNAUTHENTICATED): it forgot it, or revoked the certificate.
 * The agent enrolls again, and keeps running what it last applied.
 */
export class InstanceUnknown extends ControlCallError {}

/** Worth retrying as is: unreachable, overloaded, timed out or failed inside. */
export class ControlUnavailable extends ControlCallError {}

/** Refused for good: the same call cannot succeed by retrying it. */
export class ControlRefused extends ControlCallError {}

const TRANSIENT = new Set<status>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.INTERNAL,
  status.UNKNOWN,
  status.ABORTED,
]);

/** The typed error of a failed call. */
export function controlError(err: ServiceError): ControlCallError {
  const details = err.details || err.message;
  if (err.code === status.NOT_FOUND || err.code === status.UNAUTHENTICATED) return new InstanceUnknown(err.code, details);
  if (TRANSIENT.has(err.code)) return new ControlUnavailable(err.code, details);
  return new ControlRefused(err.code, details);
}

/** Anything but a refusal is retried: a typed transient error, or a failure below gRPC (a socket, a timer). */
export const isRetryable = (err: unknown): boolean => !(err instanceof ControlRefused || err instanceof InstanceUnknown);
