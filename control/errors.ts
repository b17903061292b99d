/** Bad input from a caller: names the field and what is wrong with it (REST 400, gRPC INVALID_ARGUMENT). */
export class InputError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export class NotFoundError extends Error {}

/** The request conflicts with what is stored (a name already in use). */
export class ConflictError extends Error {}

/** The caller is not allowed to do this (REST 403, gRPC PERMISSION_DENIED). */
export class ForbiddenError extends Error {}

/** The caller did not prove who it is (gRPC UNAUTHENTICATED, REST 401). */
export class UnauthenticatedError extends Error {}

/** The database cannot be reached now (REST 503, gRPC UNAVAILABLE); the caller retries. */
export class StoreUnavailableError extends Error {}

/** Too many requests from one caller (REST 429, gRPC RESOURCE_EXHAUSTED). */
export class RateLimitedError extends Error {
  constructor(
    message: string,
    /** Seconds until the caller may try again. */
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}
