// What the store keeps for rollouts (docs/ROLLOUTS.md): the rollouts
// themselves, and per instance the generation a rollout released to it with
// the config of each generation it may be served. The rules of a rollout
// live in control/rollout; the store only keeps its steps, each with the
// change that made it in one transaction.
import type { Assignment, ClusterSettings } from '../../contract/model';
import type { Rollout } from '../rollout/model';
import type { InstanceRecord, Page } from './store';

/** A stored rollout and its revision (grows at every save). */
export interface StoredRollout {
  rollout: Rollout;
  revision: number;
}

/** What an instance runs at a generation. */
export interface InstanceConfig {
  instanceId: string;
  generation: number;
  assignment: Assignment | null;
  settings: ClusterSettings;
}

/**
 * One change with the rollout steps it makes, written together: a settings
 * or assignment change, the generations it gives the hosts whose files it
 * changes, their configs, the rollouts it saves and the generations it
 * releases. Every part is optional (a step of a rollout alone has only
 * rollouts and releases).
 */
export interface ChangeWrite {
  settings?: ClusterSettings;
  /** With settings: saved only while the settings are at this version (VersionConflictError otherwise, nothing written). */
  settingsBasedOn?: number;
  /** Assignments set by the change (each bumps its instance's generation). */
  assignments?: Array<{ instanceId: string; assignment: Assignment | null }>;
  /** New generations (above the current ones) of the hosts the change alters. */
  generations?: Array<{ instanceId: string; generation: number }>;
  configs?: InstanceConfig[];
  /** Each saved only when its stored revision is still `revision` (null: a new rollout); otherwise ConflictError, nothing written. */
  rollouts?: Array<{ rollout: Rollout; revision: number | null }>;
  /** The generation each host is served from now on; null: the newest (no pin). */
  releases?: Array<{ instanceId: string; generation: number | null }>;
  audit?: Array<{ action: string; target: string; details: Record<string, unknown> }>;
}

export interface RolloutQuery {
  limit: number;
  /** Keyset cursor from the previous page (newest first). */
  before?: string;
}

export interface RolloutStore {
  /** Saves a change in one transaction; with settings, returns their new version. */
  saveChange(change: ChangeWrite, actor: string, now: number): Promise<{ settingsVersion?: number }>;
  getRollout(id: string): Promise<StoredRollout | undefined>;
  /** Newest first. */
  listRollouts(query: RolloutQuery): Promise<Page<Rollout>>;
  /** The newest rollout still under way (running, paused or halted), if any. */
  activeRollout(): Promise<StoredRollout | undefined>;
  /** The config an instance is served: the generation released to it, or undefined when it is served the newest. */
  releasedConfig(instanceId: string): Promise<InstanceConfig | undefined>;
  /** The released configs of the pinned instances among `instanceIds`; without, of every pinned instance (for planning a change over the fleet). */
  releasedConfigs(instanceIds?: readonly string[]): Promise<InstanceConfig[]>;
  /** The generations whose config is kept for an instance, oldest first (the others were pruned: RolloutRecords.pruneConfigs). */
  configGenerations(instanceId: string): Promise<number[]>;
  /** Every assigned instance (for planning a change over the fleet). */
  assignedInstances(): Promise<InstanceRecord[]>;
}
