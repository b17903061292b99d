// The rollout engine's interface for the control server (docs/ROLLOUTS.md):
// plan a change into a rollout, advance it with the agents' reports, the
// operator's operations, the generation an agent may apply, and the views.
export * from './model';
export { DEFAULT_PACE, groupOf, resolvePace, resolveShare } from './policy';
export { diffFiles, maskSecrets, reverseDiff, type HostValues, type RolloutFile } from './diff';
export { renderRolloutFiles, UNIT_PATH } from './host-files';
export { planRollout, type PlanHost, type PlanInput } from './plan';
export { advance, isFinished, RolloutStateError, type Release, type RolloutEvent, type Step, type Timeouts } from './engine';
export { abort, pause, resume, type AbortOptions } from './operations';
export { supersede } from './supersede';
export { admitBooted, releasedGeneration, type GateHost } from './release-gate';
export {
  countStates,
  currentWaveOf,
  metricSamples,
  progressOf,
  summaryOf,
  wavesOf,
  type HostProgress,
  type RolloutProgress,
  type RolloutSummary,
  type StateCounts,
  type Wave,
} from './progress';
