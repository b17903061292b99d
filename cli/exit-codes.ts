// The exit codes of teleboot, one place: the commands use them, and the
// reference page (docs/CLI.md) lists them from here.

export const EXIT = {
  ok: 0,
  /** The server refused the request (bad input, conflict, rate limit) or failed. */
  failed: 1,
  /** `health`: the fleet has unhealthy instances or alerts; `preview`: the config would be refused. */
  unhealthy: 2,
  /** The instance, rule or token named does not exist. */
  notFound: 3,
  /** The API token is missing, unknown, revoked, or lacks the scope the command needs. */
  access: 4,
  /** The control server could not be reached: connection refused, name unknown, timeout, TLS verification failed. */
  unreachable: 5,
  /** Bad flags, arguments or input files. */
  usage: 64,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_MEANINGS: ReadonlyArray<[ExitCode, string]> = [
  [EXIT.ok, 'success; for `health`, the fleet is healthy'],
  [EXIT.failed, 'the server refused the request (bad input, conflict, rate limit) or failed; the message says why'],
  [EXIT.unhealthy, '`health`: an instance is unhealthy or there is an alert; `preview`: the agent would refuse the config'],
  [EXIT.notFound, 'the instance, rule or token named does not exist'],
  [EXIT.access, 'the API token is missing, unknown, revoked or expired (401), or lacks the scope the command needs (403)'],
  [EXIT.unreachable, 'the control server could not be reached: connection refused, unknown host, timeout, or TLS verification failed'],
  [EXIT.usage, 'bad flags, arguments or input files'],
];

/** An error for the operator: a message that says what to do, and the exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);
