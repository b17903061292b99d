// The latest assignment state the agent knows, from whichever source told
// it last (enrollment, the watch stream, a fetch after a heartbeat), and a
// way to wait for the next one.
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import { assignmentFromMessage, clusterFromMessage } from '../contract/wire';
import type { DesiredState } from './converge';

/** Assignment state from the wire, as the converge step wants it; null when unassigned. */
export function desiredFrom(msg: AssignmentState__Output): DesiredState | null {
  if (!msg.assigned || !msg.assignment || !msg.cluster) return null;
  return {
    generation: Number(msg.generation),
    assignment: assignmentFromMessage(msg.assignment),
    cluster: clusterFromMessage(msg.cluster),
  };
}

export class AssignmentFeed {
  private state: AssignmentState__Output | undefined;
  private readonly waiters = new Set<() => void>();

  get latest(): AssignmentState__Output | undefined {
    return this.state;
  }

  /** The generation of the latest state; -1 before any. */
  get generation(): number {
    return this.state ? Number(this.state.generation) : -1;
  }

  /** The desired state to apply, when the latest state assigns one. */
  desired(): DesiredState | null {
    return this.state ? desiredFrom(this.state) : null;
  }

  set(state: AssignmentState__Output): void {
    this.state = state;
    for (const wake of [...this.waiters]) wake();
  }

  /** Wakes whoever waits in next() without a new state (work other than a new generation is due). */
  wake(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** Resolves at the next state, or after `timeoutMs`; rejects on abort. Leaves no listener behind. */
  next(signal?: AbortSignal, timeoutMs?: number): Promise<void> {
    const aborted = () => (signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(aborted());
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(wake);
      };
      const onAbort = () => {
        done();
        reject(aborted());
      };
      const wake = () => {
        done();
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(wake);
      if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs);
    });
  }
}
