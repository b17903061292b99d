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

/** A change made on an older version of a document than the stored one (REST 409 with the current ETag). */
export class VersionConflictError extends ConflictError {
  override readonly name = 'VersionConflictError';
  constructor(
    /** What changed meanwhile: "settings" or "rules". */
    readonly document: string,
    readonly basedOn: number,
    readonly current: number,
    /** Where to read it again. */
    readonly readPath: string,
  ) {
    super(
      `the ${document} changed since version ${basedOn} (now version ${current}): another change was saved first. ` +
        `Read them again (GET ${readPath}), make your change on what they are now, and send it with If-Match: "${current}"`,
    );
  }
}

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
