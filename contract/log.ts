import pino, { type Logger } from 'pino';

// Anything that could carry a secret is censored wherever it appears in a
// log record: join tokens, private keys, nonces, API tokens.
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'joinToken',
  '*.joinToken',
  'join_token',
  '*.join_token',
  'privateKey',
  '*.privateKey',
  'key',
  '*.key',
  'nonce',
  '*.nonce',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'value',
  '*.value',
];

export type { Logger };

export function createLogger(name: string, level = process.env.TELEBOOT_LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  return pino({ name, level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}

/** A short string for an error, for log records and status messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' && typeof code !== 'number') return err.message;
    return err.message.includes(String(code)) ? err.message : `${err.message} (${code})`;
  }
  return String(err);
}
