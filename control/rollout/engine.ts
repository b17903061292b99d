// The rollout state machine. Plain data in, decisions out: given a rollout,
// what its hosts' agents reported and the time, `advance` says which hosts to
// release next and whether the rollout halted or completed; pause, resume,
// abort, supersede and admitBooted are the operations around it. No I/O and
// no clock: the caller stores the rollout it gets back and tells the
// released hosts' agents (docs/ROLLOUTS.md).
import { FINISHED_STATES, ROLLOUT_GROUPS, type HostReport, type Rollout, type RolloutGroup, type RolloutHost } from './model';

/** An agent may now apply `generation` (the released host's new files). */
export interface Release {
  instanceId: string;
  generation: number;
}

/** What happened, for the audit log and the operator's view. */
export interface RolloutEvent {
  kind:
    'released' | 'skipped' | 'ready' | 'failed' | 'recovered' | 'halted' | 'completed' | 'paused' | 'resumed' | 'aborted' | 'superseded';
  rolloutId: string;
  instanceId?: string;
  group?: RolloutGroup;
  message: string;
}

/** The engine's answer: the rollout to store, the hosts to release now, what happened. */
/** Events for hosts a new rollout takes over while they were applying: released their newest generation at once. */
export function carriedReleaseEvents(rolloutId: string, released: readonly Release[]): RolloutEvent[] {
  return released.map((r) => ({
    kind: 'released',
    rolloutId,
    instanceId: r.instanceId,
    message: `released generation ${r.generation} (it was applying)`,
  }));
}

export interface Step {
  rollout: Rollout;
  released: Release[];
  events: RolloutEvent[];
}

export interface Timeouts {
  /** An applying host whose agent has not reported for this long counts as failed (it went offline). */
  silentMs: number;
  /** An applying host not ready on its new generation after this long counts as failed; absent: no limit. */
  readyMs?: number;
  /**
   * Silence before this moment does not count: the control server could not
   * reach its store then, so agents' reports were refused (a database
   * outage is not the hosts going offline).
   */
  silentSince?: number;
}

/** An operation the rollout's state does not allow (pause a completed rollout...); the REST layer answers 409. */
export class RolloutStateError extends Error {
  constructor(
    readonly rolloutId: string,
    readonly state: Rollout['state'],
    message: string,
  ) {
    super(`rollout ${rolloutId} is ${state}: ${message}`);
    this.name = 'RolloutStateError';
  }
}

const seconds = (ms: number) => `${Math.round(ms / 1000)}s`;
export const isFinished = (r: Rollout) => FINISHED_STATES.includes(r.state);

/** Hosts counted against maxUnavailable: applying, except those that booted into the rollout (they had nothing to break). */
const pacedApplying = (h: RolloutHost) => h.state === 'applying' && h.outsidePace !== 'booted';

/**
 * Reads the reports, fails silent or slow hosts, halts at a group's failure
 * threshold, releases the next hosts at the pace, and completes the rollout
 * when every host is ready, failed or skipped. Reports about another
 * generation than the one released to a host (an older one still converging)
 * change nothing but its last-seen time. A host in `offline` whose turn
 * comes is skipped: released without being waited for (its agent applies
 * the new generation when it is back), not counted against the pace or the
 * threshold. The caller learns which hosts the step would release and asks
 * again with those that are offline (rollout-wiring.ts).
 */
export function advance(
  rollout: Rollout,
  reports: readonly HostReport[],
  now: number,
  timeouts: Timeouts,
  offline: ReadonlySet<string> = new Set(),
): Step {
  if (isFinished(rollout)) return { rollout, released: [], events: [] };
  const events: RolloutEvent[] = [];
  const note = (e: Omit<RolloutEvent, 'rolloutId'>) => events.push({ rolloutId: rollout.id, ...e });
  // Copy on write: a host record is copied only when this step changes it.
  const hosts = [...rollout.hosts];
  const edit = (i: number): RolloutHost => (hosts[i] = hosts[i] === rollout.hosts[i] ? { ...hosts[i] } : hosts[i]);
  const indexOf = new Map(hosts.map((h, i) => [h.instanceId, i]));

  for (const report of reports) {
    const i = indexOf.get(report.instanceId);
    if (i === undefined) continue;
    const h = edit(i);
    const onNew = report.generation === h.toGeneration;
    if (h.state === 'applying') {
      h.lastSeenAt = Math.max(h.lastSeenAt ?? 0, report.at);
      if (!onNew) continue;
      if (report.message !== undefined) h.message = report.message;
      if (report.state === 'ready') {
        Object.assign(h, { state: 'ready', finishedAt: report.at });
        note({ kind: 'ready', instanceId: h.instanceId, group: h.group, message: `ready on generation ${h.toGeneration}` });
      } else if (report.state === 'failed') {
        Object.assign(h, { state: 'failed', finishedAt: report.at, message: report.message ?? 'the agent reported a failure' });
        note({ kind: 'failed', instanceId: h.instanceId, group: h.group, message: h.message! });
      }
    } else if ((h.state === 'failed' || h.state === 'skipped') && onNew && report.state === 'ready') {
      // Teleport came up late, or the skipped host is back: it counts as ready (a halt stays until resumed).
      Object.assign(h, { state: 'ready', finishedAt: report.at });
      if (report.message === undefined) delete h.message;
      else h.message = report.message;
      note({ kind: 'recovered', instanceId: h.instanceId, group: h.group, message: `ready on generation ${h.toGeneration} after failing` });
    }
  }

  for (const [i, h] of hosts.entries()) {
    if (h.state !== 'applying') continue;
    const released = h.releasedAt ?? now;
    const seen = Math.max(released, h.lastSeenAt ?? 0, timeouts.silentSince ?? 0);
    let reason: string | undefined;
    if (now - seen >= timeouts.silentMs) reason = `no report from the agent for ${seconds(now - seen)} while applying (offline?)`;
    else if (timeouts.readyMs !== undefined && now - released >= timeouts.readyMs)
      reason = `not ready on generation ${h.toGeneration} within ${seconds(timeouts.readyMs)}`;
    if (reason) {
      Object.assign(edit(i), { state: 'failed', finishedAt: now, message: reason });
      note({ kind: 'failed', instanceId: h.instanceId, group: h.group, message: reason });
    }
  }

  let state = rollout.state;
  let stateNote = rollout.note;
  if (rollout.strategy === 'waves' && (state === 'running' || state === 'paused')) {
    for (const group of ROLLOUT_GROUPS) {
      const members = hosts.filter((h) => h.group === group);
      const failed = members.filter((h) => h.state === 'failed');
      const threshold = rollout.pace[group].failureThreshold;
      if (failed.length === 0 || failed.length < threshold) continue;
      state = 'halted';
      const first = failed[0];
      stateNote = `${failed.length} of ${members.length} ${group} hosts failed (threshold ${threshold}); ${first.instanceId}: ${first.message ?? 'failed'}`;
      note({ kind: 'halted', group, message: stateNote });
      break;
    }
  }

  const released: Release[] = [];
  const release = (i: number): boolean => {
    const h = edit(i);
    if (offline.has(h.instanceId)) {
      const message = 'offline when its turn came: skipped, it applies the new generation when its agent is back';
      Object.assign(h, { state: 'skipped', releasedAt: now, finishedAt: now, message });
      released.push({ instanceId: h.instanceId, generation: h.toGeneration });
      note({ kind: 'skipped', instanceId: h.instanceId, group: h.group, message });
      return false;
    }
    Object.assign(h, { state: 'applying', releasedAt: now });
    delete h.lastSeenAt;
    released.push({ instanceId: h.instanceId, generation: h.toGeneration });
    note({ kind: 'released', instanceId: h.instanceId, group: h.group, message: `released generation ${h.toGeneration}` });
    return true;
  };
  if (state === 'running') {
    if (rollout.strategy === 'all-at-once') {
      for (const [i, h] of hosts.entries()) if (h.state === 'pending') release(i);
    } else {
      // The first group with work left releases up to its pace; later groups wait until it is done.
      for (const group of ROLLOUT_GROUPS) {
        const pending: number[] = [];
        let applying = 0;
        for (const [i, h] of hosts.entries()) {
          if (h.group !== group) continue;
          if (h.state === 'pending') pending.push(i);
          else if (pacedApplying(h)) applying += 1;
        }
        if (pending.length === 0 && applying === 0) continue;
        // A skipped host takes no room: the next pending one goes in its place.
        let room = rollout.pace[group].maxUnavailable - applying;
        for (const i of pending) {
          if (room <= 0) break;
          if (release(i)) room -= 1;
        }
        // Every pending host of the group skipped: the next group goes on.
        if (hosts.some((h) => h.group === group && (h.state === 'pending' || h.state === 'applying'))) break;
      }
    }
    if (hosts.every((h) => h.state === 'ready' || h.state === 'failed' || h.state === 'skipped')) {
      state = 'completed';
      const failed = hosts.filter((h) => h.state === 'failed').length;
      const below = rollout.strategy === 'waves' ? ', below the thresholds' : ' (all at once: no halt)';
      stateNote = failed > 0 ? `${failed} of ${hosts.length} hosts failed${below}` : undefined;
      note({ kind: 'completed', message: `${hosts.length - failed} of ${hosts.length} hosts ready` });
    }
  }
  const next: Rollout = { ...rollout, state, hosts, updatedAt: events.length > 0 ? now : rollout.updatedAt };
  if (stateNote === undefined) delete next.note;
  else next.note = stateNote;
  return { rollout: next, released, events };
}
