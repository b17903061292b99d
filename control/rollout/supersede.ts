// A change saved while another rollout runs supersedes it, the way a new
// Kubernetes Deployment revision or Nomad job version replaces one that is
// still rolling out: queueing would make an operator's fix wait behind the
// very rollout it fixes (a halted one, or 948 nodes at 10 %), and every host
// would restart twice. Superseding keeps one rollout at a time; hosts that
// the old one reached go straight to the newest files, hosts it never
// reached go from their old files to the newest in one step.
//
// The new rollout is planned (plan.ts) against what each host has been
// released: the old rollout's new generation for the hosts it reached, its
// old one for the hosts it did not. Then:
// - a host still applying stays applying, now towards the newest generation
//   (it is down already), and keeps counting against its group's pace;
//   when the newest change leaves its files as the old rollout gave them, it
//   is carried over as it is, still awaited. Carried hosts may outnumber the
//   new pace (resolved for the hosts the new change plans); the group then
//   releases nothing until it is below it;
// - a host that failed is carried over failed when the newest change leaves
//   its files alone (the failure is on the files it must keep), and goes
//   first in its group otherwise; either way a rollback would take it back
//   to the files it had before the old rollout, its last good ones;
// - a paused rollout's successor starts paused (the operator paused for a
//   reason); a halted one's starts running, and halts again if the carried
//   failures reach the threshold.
import { carriedReleaseEvents, isFinished, RolloutStateError, type Release, type RolloutEvent } from './engine';
import { ROLLOUT_GROUPS, type Rollout, type RolloutHost } from './model';

export function supersede(
  current: Rollout,
  next: Rollout,
  now: number,
): { superseded: Rollout; next: Rollout; released: Release[]; events: RolloutEvent[] } {
  if (isFinished(current)) throw new RolloutStateError(current.id, current.state, 'only a rollout still under way can be superseded');
  const old = new Map(current.hosts.map((h) => [h.instanceId, h]));
  const released: Release[] = [];
  const hosts: RolloutHost[] = next.hosts.map((h) => {
    const was = old.get(h.instanceId);
    old.delete(h.instanceId);
    if (was?.state === 'applying') {
      released.push({ instanceId: h.instanceId, generation: h.toGeneration });
      return { ...h, fromGeneration: was.fromGeneration, state: 'applying', releasedAt: now, outsidePace: was.outsidePace ?? 'carried' };
    }
    if (was?.state === 'failed') return { ...h, fromGeneration: was.fromGeneration };
    return h;
  });
  // Hosts the newest change does not touch but the old rollout left applying or failed.
  for (const was of old.values()) {
    if (was.state === 'applying') hosts.push({ ...was, outsidePace: was.outsidePace ?? 'carried' });
    else if (was.state === 'failed') hosts.push({ ...was });
  }
  // Within a group: hosts down already first, then the broken ones, then the rest in planned order.
  const failedBefore = new Set(current.hosts.filter((h) => h.state === 'failed').map((h) => h.instanceId));
  const priority = (h: RolloutHost) => (h.state === 'applying' ? 0 : failedBefore.has(h.instanceId) ? 1 : 2);
  const ordered = ROLLOUT_GROUPS.flatMap((group) =>
    hosts
      .map((h, i) => ({ h, i }))
      .filter(({ h }) => h.group === group)
      .sort((a, b) => priority(a.h) - priority(b.h) || a.i - b.i)
      .map(({ h }) => h),
  );
  const successor: Rollout = {
    ...next,
    hosts: ordered,
    supersedes: current.id,
    updatedAt: now,
    ...(current.state === 'paused' ? { state: 'paused' as const, note: `paused: it took over ${current.id}, which was paused` } : {}),
  };
  const superseded: Rollout = { ...current, state: 'superseded', supersededBy: next.id, updatedAt: now, note: `superseded by ${next.id}` };
  const events: RolloutEvent[] = [{ kind: 'superseded', rolloutId: current.id, message: `superseded by ${next.id} (${next.reason})` }];
  events.push(...carriedReleaseEvents(next.id, released));
  return { superseded, next: successor, released, events };
}
