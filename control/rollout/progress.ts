// Views of a rollout for GET /v1/rollouts/{id}, the list, /v1/health and
// /metrics: counts per group and per role, the wave under way, each host's
// state with its last status message.
import { HOST_STATES, ROLLOUT_GROUPS, type HostState, type Rollout, type RolloutGroup } from './model';

export type StateCounts = Record<HostState, number> & { total: number };

export interface HostProgress {
  instanceId: string;
  role: string;
  group: RolloutGroup;
  state: HostState;
  fromGeneration: number;
  toGeneration: number;
  releasedAt?: number;
  finishedAt?: number;
  message?: string;
}

export interface RolloutSummary {
  id: string;
  kind: Rollout['kind'];
  strategy: Rollout['strategy'];
  state: Rollout['state'];
  startedBy: string;
  reason: string;
  createdAt: number;
  updatedAt: number;
  note?: string;
  /** The group releasing hosts now (the first with hosts pending or applying); none when all are done. */
  currentWave?: RolloutGroup;
  hosts: StateCounts;
}

/** A wave: the rollout's hosts of one group, in the upgrade order; done, under way or waiting for the one before. */
export interface Wave {
  group: RolloutGroup;
  instanceIds: string[];
  status: 'done' | 'current' | 'waiting';
}

export interface RolloutProgress extends RolloutSummary {
  waves: Wave[];
  groups: Record<RolloutGroup, StateCounts & { maxUnavailable: number; failureThreshold: number }>;
  roles: Record<string, StateCounts>;
  hostStates: HostProgress[];
  diffs: Rollout['diffs'];
  supersedes?: string;
  supersededBy?: string;
  rollbackOf?: string;
}

const zero = (): StateCounts => ({ pending: 0, applying: 0, ready: 0, failed: 0, skipped: 0, total: 0 });

export function countStates(hosts: ReadonlyArray<{ state: HostState }>): StateCounts {
  const counts = zero();
  for (const h of hosts) {
    counts[h.state] += 1;
    counts.total += 1;
  }
  return counts;
}

export function currentWaveOf(rollout: Rollout): RolloutGroup | undefined {
  return ROLLOUT_GROUPS.find((g) => rollout.hosts.some((h) => h.group === g && (h.state === 'pending' || h.state === 'applying')));
}

/** The waves of a rollout (groups without hosts have none). */
export function wavesOf(rollout: Rollout): Wave[] {
  const current = currentWaveOf(rollout);
  let seenCurrent = false;
  const waves: Wave[] = [];
  for (const group of ROLLOUT_GROUPS) {
    const instanceIds = rollout.hosts.filter((h) => h.group === group).map((h) => h.instanceId);
    if (instanceIds.length === 0) continue;
    const status = group === current ? 'current' : current === undefined || !seenCurrent ? 'done' : 'waiting';
    if (group === current) seenCurrent = true;
    waves.push({ group, instanceIds, status });
  }
  return waves;
}

/** The list entry, and what /v1/health shows of the current rollout. */
export function summaryOf(rollout: Rollout): RolloutSummary {
  const wave = currentWaveOf(rollout);
  return {
    id: rollout.id,
    kind: rollout.kind,
    strategy: rollout.strategy,
    state: rollout.state,
    startedBy: rollout.startedBy,
    reason: rollout.reason,
    createdAt: rollout.createdAt,
    updatedAt: rollout.updatedAt,
    ...(rollout.note !== undefined ? { note: rollout.note } : {}),
    ...(wave ? { currentWave: wave } : {}),
    hosts: countStates(rollout.hosts),
  };
}

/** Everything about one rollout: per group (with its pace), per role, per host. */
export function progressOf(rollout: Rollout): RolloutProgress {
  const groups = {} as RolloutProgress['groups'];
  for (const g of ROLLOUT_GROUPS) groups[g] = { ...countStates(rollout.hosts.filter((h) => h.group === g)), ...rollout.pace[g] };
  const roles: Record<string, StateCounts> = {};
  for (const h of rollout.hosts) {
    const counts = (roles[h.role] ??= zero());
    counts[h.state] += 1;
    counts.total += 1;
  }
  return {
    ...summaryOf(rollout),
    waves: wavesOf(rollout),
    groups,
    roles,
    hostStates: rollout.hosts.map((h) => ({
      instanceId: h.instanceId,
      role: h.role,
      group: h.group,
      state: h.state,
      fromGeneration: h.fromGeneration,
      toGeneration: h.toGeneration,
      ...(h.releasedAt !== undefined ? { releasedAt: h.releasedAt } : {}),
      ...(h.finishedAt !== undefined ? { finishedAt: h.finishedAt } : {}),
      ...(h.message !== undefined ? { message: h.message } : {}),
    })),
    diffs: rollout.diffs,
    ...(rollout.supersedes ? { supersedes: rollout.supersedes } : {}),
    ...(rollout.supersededBy ? { supersededBy: rollout.supersededBy } : {}),
    ...(rollout.rollbackOf ? { rollbackOf: rollout.rollbackOf } : {}),
  };
}

/** Samples for a gauge teleboot_rollout_hosts{group, state} of the current rollout (prom-client sets them). */
export function metricSamples(rollout: Rollout): Array<{ labels: { group: RolloutGroup; state: HostState }; value: number }> {
  return ROLLOUT_GROUPS.flatMap((group) => {
    const counts = countStates(rollout.hosts.filter((h) => h.group === group));
    return HOST_STATES.map((state) => ({ labels: { group, state }, value: counts[state] }));
  });
}
