// The rollout pace: the cluster setting `rolloutPace` (contract/settings.ts)
// resolved to host counts for the size of each role group, and the group a
// host belongs to. Teleport's upgrade order is auth, then proxy, then the
// rest; a host running several services (auth-proxy, all) goes with the
// earliest of its groups, so it is paced as carefully as its most critical service.
import type { RolloutPace, RolloutPolicy } from '../../contract/settings';
import { ROLLOUT_GROUPS, type GroupPace, type RolloutGroup } from './model';

/** The pace of a group the setting leaves out (the defaults). */
export const DEFAULT_PACE: Readonly<Record<RolloutGroup, Required<RolloutPace>>> = {
  auth: { maxUnavailable: 1, failureThreshold: 1 },
  proxy: { maxUnavailable: 1, failureThreshold: 1 },
  other: { maxUnavailable: '10%', failureThreshold: '5%' },
};

/** The group of a host running `services`: the earliest in the upgrade order it belongs to. */
export function groupOf(services: readonly string[]): RolloutGroup {
  if (services.includes('auth')) return 'auth';
  if (services.includes('proxy')) return 'proxy';
  return 'other';
}

/** A count, or "N%" of `groupSize` rounded up; at least 1 so a rollout always moves and one failure can halt it. */
export function resolveShare(share: number | string, groupSize: number): number {
  if (typeof share === 'number') return Math.max(1, Math.floor(share));
  const match = /^(\d{1,3})%$/.exec(share);
  if (!match) throw new Error(`rollout pace "${share}" is neither a count nor a percentage such as "10%"`);
  return Math.max(1, Math.ceil((Number(match[1]) * groupSize) / 100));
}

/** The pace of every group for a rollout whose groups have `sizes` hosts. */
export function resolvePace(
  policy: RolloutPolicy | undefined,
  sizes: Readonly<Record<RolloutGroup, number>>,
): Record<RolloutGroup, GroupPace> {
  const pace = {} as Record<RolloutGroup, GroupPace>;
  for (const group of ROLLOUT_GROUPS) {
    const setting = policy?.[group];
    pace[group] = {
      maxUnavailable: resolveShare(setting?.maxUnavailable ?? DEFAULT_PACE[group].maxUnavailable, sizes[group]),
      failureThreshold: resolveShare(setting?.failureThreshold ?? DEFAULT_PACE[group].failureThreshold, sizes[group]),
    };
  }
  return pace;
}
