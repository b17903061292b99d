// The operator's operations on a rollout: pause, resume and abort (whose
// rollback is a rollout of its own). Each returns what engine.ts's advance
// returns; after resume, advance releases the next hosts.
import { reverseDiff } from './diff';
import { carriedReleaseEvents, RolloutStateError, type Release, type RolloutEvent, type Step } from './engine';
import { ROLLOUT_GROUPS, type RoleDiff, type Rollout, type RolloutHost } from './model';

function transition(rollout: Rollout, allowed: readonly Rollout['state'][], to: Rollout['state'], doing: string): Rollout {
  if (!allowed.includes(rollout.state))
    throw new RolloutStateError(rollout.id, rollout.state, `cannot ${doing} it (only when ${allowed.join(' or ')})`);
  return { ...rollout, state: to };
}

/** Stops releasing hosts; hosts already applying finish and report. */
export function pause(rollout: Rollout, by: string, now: number): Step {
  const paused = { ...transition(rollout, ['running'], 'paused', 'pause'), updatedAt: now, note: `paused by ${by}` };
  return { rollout: paused, released: [], events: [{ kind: 'paused', rolloutId: rollout.id, message: paused.note }] };
}

/**
 * Releases hosts again from where it stopped (call advance next). A halted
 * rollout resumes with its failed hosts back to pending: they are tried again.
 */
export function resume(rollout: Rollout, by: string, now: number): Step {
  const resumed = transition(rollout, ['paused', 'halted'], 'running', 'resume');
  const retried = rollout.state === 'halted' ? rollout.hosts.filter((h) => h.state === 'failed').length : 0;
  const hosts = rollout.hosts.map((h) => {
    if (rollout.state !== 'halted' || h.state !== 'failed') return h;
    const { releasedAt: _r, finishedAt: _f, lastSeenAt: _l, ...rest } = h;
    return { ...rest, state: 'pending' as const };
  });
  const { note: _note, ...rest } = resumed;
  const message = `resumed by ${by}${retried > 0 ? `; ${retried} failed hosts will be tried again` : ''}`;
  return { rollout: { ...rest, hosts, updatedAt: now }, released: [], events: [{ kind: 'resumed', rolloutId: rollout.id, message }] };
}

export interface AbortOptions {
  by: string;
  now: number;
  /** The id of the rollback rollout. */
  rollbackId: string;
  /** all-at-once puts every reached host back at once (the audited emergency escape); default waves. */
  strategy?: Rollout['strategy'];
}

/**
 * Stops the rollout; the hosts it reached (applying, ready or failed) go back
 * to their generation before it, as a rollout of its own (auth, proxy, then
 * the rest, at the same pace). Hosts it never reached keep their files. A
 * host caught applying is released its old generation at once (it is down
 * already); broken ones go before working ones. No rollback when it reached
 * no host.
 */
export function abort(
  rollout: Rollout,
  options: AbortOptions,
): { aborted: Rollout; rollback?: Rollout; released: Release[]; events: RolloutEvent[] } {
  const { by, now } = options;
  const aborted: Rollout = {
    ...transition(rollout, ['running', 'paused', 'halted'], 'aborted', 'abort'),
    updatedAt: now,
    note: `aborted by ${by}`,
  };
  const events: RolloutEvent[] = [{ kind: 'aborted', rolloutId: rollout.id, message: aborted.note! }];
  // A skipped host was released its new generation (it applies it when back): it is rolled back too.
  const rank = { applying: 0, failed: 1, ready: 2, skipped: 3, pending: 4 } as const;
  const reached = rollout.hosts.filter((h) => h.state !== 'pending').sort((a, b) => rank[a.state] - rank[b.state]);
  if (reached.length === 0) return { aborted, released: [], events };
  const released: Release[] = [];
  const hosts: RolloutHost[] = ROLLOUT_GROUPS.flatMap((group) => reached.filter((h) => h.group === group)).map((h) => {
    const back: RolloutHost = {
      instanceId: h.instanceId,
      role: h.role,
      group: h.group,
      fromGeneration: h.toGeneration,
      toGeneration: h.fromGeneration,
      state: 'pending',
    };
    if (h.state !== 'applying') return back;
    released.push({ instanceId: h.instanceId, generation: back.toGeneration });
    return { ...back, state: 'applying', releasedAt: now, outsidePace: 'carried' };
  });
  const rollback: Rollout = {
    id: options.rollbackId,
    kind: 'rollback',
    strategy: options.strategy ?? 'waves',
    state: 'running',
    startedBy: by,
    reason: `rollback of ${rollout.id} (${rollout.reason})`,
    createdAt: now,
    updatedAt: now,
    pace: rollout.pace,
    hosts,
    diffs: reversedDiffs(rollout, new Set(reached.map((h) => h.instanceId))),
    rollbackOf: rollout.id,
  };
  events.push(...carriedReleaseEvents(rollback.id, released));
  return { aborted, rollback, released, events };
}

/** The rollout's diffs for the `reached` hosts only, each undone. */
function reversedDiffs(rollout: Rollout, reached: ReadonlySet<string>): RoleDiff[] {
  const diffs: RoleDiff[] = [];
  for (const role of rollout.diffs) {
    const changes = role.changes
      .map((c) => ({ instanceIds: c.instanceIds.filter((id) => reached.has(id)), files: c.files.map(reverseDiff) }))
      .filter((c) => c.instanceIds.length > 0);
    if (changes.length > 0) diffs.push({ role: role.role, hosts: changes.reduce((n, c) => n + c.instanceIds.length, 0), changes });
  }
  return diffs;
}
