// A rollout as plain data: what the store keeps and the engine (engine.ts)
// turns into the next rollout. No I/O, no clock: times are milliseconds
// given by the caller. docs/ROLLOUTS.md describes the model.
import type { Assignment } from '../../contract/model';
import type { RolloutGroup, RolloutStrategy } from '../../contract/settings';

export { ROLLOUT_GROUPS, type RolloutGroup } from '../../contract/settings';

/**
 * A host in a rollout:
 * pending   not reached yet: the agent keeps its old files (fromGeneration)
 * applying  released: the agent may apply toGeneration; not ready on it yet
 * ready     reported ready on toGeneration
 * failed    reported a failure on toGeneration, or went silent while applying
 * skipped   offline when its turn came: released without being waited for
 *           (it applies toGeneration when its agent is back), never a failure
 */
export const HOST_STATES = ['pending', 'applying', 'ready', 'failed', 'skipped'] as const;
export type HostState = (typeof HOST_STATES)[number];

/**
 * running     releasing hosts at the group's pace
 * paused      by an operator: no host is released; applying hosts still report
 * halted      by itself, when a group's failures reached its threshold
 * completed   every host ready or failed (below the thresholds)
 * aborted     by an operator; its rollback is a rollout of its own
 * superseded  a newer change took over its hosts (engine.ts, supersede)
 */
export const ROLLOUT_STATES = ['running', 'paused', 'halted', 'completed', 'aborted', 'superseded'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** Rollout states after which nothing changes any more. */
export const FINISHED_STATES: readonly RolloutState[] = ['completed', 'aborted', 'superseded'];

/** waves: paced per group; all-at-once: every host released at once (the audited escape for emergencies). */
export { ROLLOUT_STRATEGIES, type RolloutStrategy } from '../../contract/settings';

/** A group's pace resolved to host counts for its size (policy.ts). */
export interface GroupPace {
  /** Hosts of the group applying at once. */
  maxUnavailable: number;
  /** Failed hosts of the group that halt the rollout. */
  failureThreshold: number;
}

export interface RolloutHost {
  instanceId: string;
  /** The role name the operator knows ("auth-proxy", "node"). */
  role: string;
  group: RolloutGroup;
  /** The generation the host had before: what it keeps while pending, and what a rollback restores. */
  fromGeneration: number;
  /** The generation this rollout releases to it. */
  toGeneration: number;
  state: HostState;
  /** When it was released (applying), when it became ready or failed. */
  releasedAt?: number;
  finishedAt?: number;
  /** When the host last reported, while applying; an old one means it went silent. */
  lastSeenAt?: number;
  /** The host's last status message (a failure's reason, log lines from the agent). */
  message?: string;
  /** Released outside the pace: it booted with nothing applied, or it was already applying when this rollout took over. */
  outsidePace?: 'booted' | 'carried';
}

/** One file's change, secrets masked, host-specific values written as {instanceId}, {hostname}, {privateIp}. */
export interface FileDiff {
  path: string;
  /** A unified diff; for a secret file only a line saying it changes. */
  diff: string;
}

/** What changes for the hosts of one role: each distinct change with the hosts it applies to. */
export interface RoleDiff {
  role: string;
  hosts: number;
  changes: Array<{ instanceIds: string[]; files: FileDiff[] }>;
}

export interface Rollout {
  id: string;
  /** change: an operator's change; rollback: the reached hosts of an aborted rollout, back to their files before it. */
  kind: 'change' | 'rollback';
  strategy: RolloutStrategy;
  state: RolloutState;
  /** Who started it, and what (as the audit log says it: "PATCH /v1/settings logSeverity"). */
  startedBy: string;
  reason: string;
  createdAt: number;
  updatedAt: number;
  /** The pace per group, resolved for this rollout's group sizes when it was planned. */
  pace: Record<RolloutGroup, GroupPace>;
  /** Hosts in wave order: auth, proxy, other; within a group in release order. */
  hosts: RolloutHost[];
  diffs: RoleDiff[];
  /** Why it halted, paused or was aborted, for the operator. */
  note?: string;
  /** What the change saved, so that an abort puts it back (operations.ts abort, rollout-wiring.ts). */
  undo?: RolloutUndo;
  /** Links: the rollout this one supersedes or rolls back, and the one that superseded it. */
  supersedes?: string;
  rollbackOf?: string;
  supersededBy?: string;
}

/**
 * What a change stored, to restore at an abort: the settings fields it
 * changed with their values before (a field absent before is absent in
 * `before`), the assignments it changed, and the hosts it gave a new
 * generation outside the rollout (offline, booting, or only a setting the
 * agent reads itself changed).
 */
export interface RolloutUndo {
  settings?: { keys: string[]; before: Record<string, unknown> };
  assignments?: Array<{ instanceId: string; before: Assignment | null; after: Assignment | null }>;
  outside?: string[];
}

/** What an agent said about a host (its status report or heartbeat), as the engine reads it. */
export interface HostReport {
  instanceId: string;
  /** The generation the agent reports about. */
  generation: number;
  /** applying: still converging (a heartbeat); ready or failed on `generation`. */
  state: 'applying' | 'ready' | 'failed';
  message?: string;
  at: number;
}
