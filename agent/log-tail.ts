// Teleport's last log lines for a host whose Teleport does not become ready:
// reported with the status, so that an operator sees why without SSH.
import { escapeControlCharacters, maskLines } from '../contract/secret-mask';
import type { ServiceManager } from './service-manager';

/** Lines reported; the control server accepts up to LOG_TAIL_MAX_LINES. */
export const LOG_TAIL_LINES = 40;
/** Longest line reported; longer ones are cut (the control server refuses longer). */
export const LOG_TAIL_MAX_CHARS = 1000;

/** The unit's journal (or the child's output), secrets masked, control characters escaped, lines bounded. */
export async function teleportLogTail(services: Pick<ServiceManager, 'logTail'>, secrets: readonly string[]): Promise<string[]> {
  const lines = await services.logTail(LOG_TAIL_LINES).catch(() => [] as string[]);
  return maskLines(lines, secrets)
    .map(escapeControlCharacters)
    .map((l) => (l.length > LOG_TAIL_MAX_CHARS ? `${l.slice(0, LOG_TAIL_MAX_CHARS - 3)}...` : l));
}
