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
