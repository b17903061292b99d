// A change becomes a rollout: the hosts whose files it changes, in waves
// (auth, proxy, other), with the pace resolved for the waves' sizes and the
// diff per role. A host whose files do not change is not in it at all: the
// change does not touch that host.
import { roleNameOf } from '../../contract/model';
import type { RolloutPolicy } from '../../contract/settings';
import { diffFiles, type HostValues, type RolloutFile } from './diff';
import {
  ROLLOUT_GROUPS,
  type FileDiff,
  type RoleDiff,
  type Rollout,
  type RolloutGroup,
  type RolloutHost,
  type RolloutStrategy,
} from './model';
import { groupOf, resolvePace } from './policy';

/** One host as the change finds it and as it would leave it. */
export interface PlanHost {
  /** instanceId and the values diffs write as placeholders. */
  host: HostValues;
  /** The services the host runs after the change (its assignment's roles). */
  services: readonly string[];
  /**
   * What the host has: its applied generation, or the one a running rollout
   * released to it, with those files (host-files.ts renders them).
   */
  current: { generation: number; files: readonly RolloutFile[] };
  /** What the change gives it. */
  next: { generation: number; files: readonly RolloutFile[] };
}

export interface PlanInput {
  id: string;
  startedBy: string;
  reason: string;
  now: number;
  strategy?: RolloutStrategy;
  /** The cluster setting `rolloutPace`; absent groups take the defaults. */
  policy?: RolloutPolicy;
  hosts: readonly PlanHost[];
}

/** The rollout for a change, or undefined when it changes no host's files. */
export function planRollout(input: PlanInput): Rollout | undefined {
  const changed: Array<{ host: RolloutHost; files: FileDiff[] }> = [];
  for (const h of input.hosts) {
    const files = diffFiles(h.current.files, h.next.files, h.host);
    if (files.length === 0) continue;
    changed.push({
      files,
      host: {
        instanceId: h.host.instanceId,
        role: roleNameOf(h.services),
        group: groupOf(h.services),
        fromGeneration: h.current.generation,
        toGeneration: h.next.generation,
        state: 'pending',
      },
    });
  }
  if (changed.length === 0) return undefined;
  const ordered = ROLLOUT_GROUPS.flatMap((group) => changed.filter((c) => c.host.group === group));
  const hosts = ordered.map((c) => c.host);
  return {
    id: input.id,
    kind: 'change',
    strategy: input.strategy ?? 'waves',
    state: 'running',
    startedBy: input.startedBy,
    reason: input.reason,
    createdAt: input.now,
    updatedAt: input.now,
    pace: resolvePace(input.policy, groupSizes(hosts)),
    hosts,
    diffs: roleDiffs(ordered.map((c) => ({ instanceId: c.host.instanceId, role: c.host.role, files: c.files }))),
  };
}

/** Hosts sorted by group in the upgrade order, stably (callers order hosts within a group). */
export function inWaveOrder<H extends { group: RolloutGroup }>(hosts: readonly H[]): H[] {
  return ROLLOUT_GROUPS.flatMap((group) => hosts.filter((h) => h.group === group));
}

export function groupSizes(hosts: ReadonlyArray<{ group: RolloutGroup }>): Record<RolloutGroup, number> {
  const sizes: Record<RolloutGroup, number> = { auth: 0, proxy: 0, other: 0 };
  for (const h of hosts) sizes[h.group] += 1;
  return sizes;
}

/** Per role, each distinct change once, with the hosts it applies to. */
export function roleDiffs(hosts: ReadonlyArray<{ instanceId: string; role: string; files: FileDiff[] }>): RoleDiff[] {
  const byRole = new Map<string, RoleDiff>();
  const byChange = new Map<string, RoleDiff['changes'][number]>();
  for (const h of hosts) {
    let role = byRole.get(h.role);
    if (!role) byRole.set(h.role, (role = { role: h.role, hosts: 0, changes: [] }));
    role.hosts += 1;
    const key = `${h.role}\u0000${JSON.stringify(h.files)}`;
    const change = byChange.get(key);
    if (change) change.instanceIds.push(h.instanceId);
    else {
      const created = { instanceIds: [h.instanceId], files: h.files };
      byChange.set(key, created);
      role.changes.push(created);
    }
  }
  return [...byRole.values()];
}
