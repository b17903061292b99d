// Following changes: a watch stream kept open, reconnecting with backoff;
// each state it brings goes to the feed. A stream the control server ends
// because it does not know this instance leads to enrolling again.
import { backoffDelay, sleep, type BackoffOptions } from '../contract/backoff';
import { describeError, type Logger } from '../contract/log';
import type { AssignmentFeed } from './assignment-feed';
import type { ControlClient } from './control-client';
import { InstanceUnknown, type ControlCallError } from './control-errors';
import type { Credentials } from './credentials';

export interface WatchDeps {
  log: Logger;
  control: ControlClient;
  credentials: Credentials;
  feed: AssignmentFeed;
  backoff: Pick<BackoffOptions, 'initialMs' | 'maxMs'>;
}

/** Duty: runs until aborted; throws only when enrolling again fails for good. */
export async function followChanges(deps: WatchDeps, signal: AbortSignal): Promise<void> {
  const { control, credentials, feed, log } = deps;
  let attempt = 0;
  while (!signal.aborted) {
    const enrollment = credentials.enrollment;
    const ended = await new Promise<{ err: ControlCallError | undefined } | undefined>((resolve) => {
      const cancel = control.watch(
        credentials.instance.instanceId,
        (state) => {
          attempt = 0;
          feed.set(state);
        },
        (err) => {
          signal.removeEventListener('abort', onAbort);
          resolve({ err });
        },
      );
      const onAbort = () => {
        cancel();
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    if (!ended) return;
    attempt++;
    const delay = backoffDelay(attempt + 1, deps.backoff);
    log.warn(
      { err: ended.err ? describeError(ended.err) : 'stream ended', retryInMs: delay },
      'assignment watch interrupted; reconnecting',
    );
    await sleep(delay, signal).catch(() => {});
    if (ended.err instanceof InstanceUnknown && !signal.aborted) await credentials.forgotten(ended.err, enrollment, signal);
  }
}
