// Which generation an agent may apply. Hosts outside a rollout keep the
// generation they applied; a host in one gets its new generation only once
// the rollout released it; an instance that boots with nothing applied gets
// the newest at once (it has nothing to break).
import type { Release, RolloutEvent, Step } from './engine';
import { isFinished } from './engine';
import type { Rollout } from './model';

export interface GateHost {
  instanceId: string;
  /** The generation the agent last applied; undefined for an instance that has applied nothing yet (booting). */
  appliedGeneration: number | undefined;
  /** The newest generation the store has for it. */
  latestGeneration: number;
}

/**
 * The generation `host`'s agent may apply while `rollout` (the newest rollout
 * that holds the host, finished or not) decides: its new one once released,
 * its old one while pending; outside any rollout what it applied, or the
 * newest when it has applied nothing.
 */
export function releasedGeneration(rollout: Rollout | undefined, host: GateHost): number {
  const h = rollout?.hosts.find((x) => x.instanceId === host.instanceId);
  if (h) return h.state === 'pending' ? (host.appliedGeneration === undefined ? h.toGeneration : h.fromGeneration) : h.toGeneration;
  return host.appliedGeneration ?? host.latestGeneration;
}

/**
 * An instance of the rollout booted with nothing applied: it is released at
 * once, outside the pace (it cannot take anything down), and reports like
 * any released host. Unchanged for a host that is not pending.
 */
export function admitBooted(rollout: Rollout, instanceId: string, now: number): Step {
  const h = rollout.hosts.find((x) => x.instanceId === instanceId);
  if (isFinished(rollout) || h?.state !== 'pending') return { rollout, released: [], events: [] };
  const release: Release = { instanceId, generation: h.toGeneration };
  const hosts = rollout.hosts.map((x) =>
    x === h ? { ...x, state: 'applying' as const, releasedAt: now, outsidePace: 'booted' as const } : x,
  );
  const event: RolloutEvent = {
    kind: 'released',
    rolloutId: rollout.id,
    instanceId,
    group: h.group,
    message: `released generation ${h.toGeneration} at boot`,
  };
  return { rollout: { ...rollout, hosts, updatedAt: now }, released: [release], events: [event] };
}
