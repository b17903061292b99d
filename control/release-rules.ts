// The Teleport release rules, judged when settings or an assignment are
// saved: the release fields on their own, and Teleport's compatibility rule
// over the whole plan (every stored assignment under the settings), so that
// a plan an upgrade cannot follow is refused with the hosts and the reason.
// A host that reported the version it runs is judged on that version, not
// on the one it should run: an auth server whose upgrade failed still runs
// the old major, and a node may not go past it.
import type { Assignment } from '../contract/model';
import type { ClusterSettings } from '../contract/settings';
import { effectiveRelease, versionProblems, type PlannedHost, type TeleportRelease } from '../contract/teleport-release';
import { InputError } from './errors';

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The release fields of the settings, or of an assignment's override (`at`: "teleport"). */
export function validateReleaseFields(release: TeleportRelease | undefined, enterpriseCluster: boolean, at = 'teleport'): void {
  if (!release) return;
  if (release.bucket !== undefined && !BUCKET_RE.test(release.bucket))
    throw new InputError(`${at}.bucket`, 'an S3 bucket name: 3 to 63 lower-case letters, digits, "." and "-"');
  if (release.bucket !== undefined && release.source === 'package')
    throw new InputError(`${at}.bucket`, "is for source s3; the package route installs from the host's package repository");
  if (enterpriseCluster && release.edition === 'oss')
    throw new InputError(`${at}.edition`, 'the cluster is Teleport Enterprise (enterprise: true): its hosts run the enterprise edition');
}

/** Holders shown in a message: the first five, then a count. */
const shown = (holders: string[]) => holders.slice(0, 5).join(', ') + (holders.length > 5 ? ` and ${holders.length - 5} more` : '');

/** An assignment and who holds it, before and after the change being checked. */
export interface PlanEntry {
  holders: string[];
  before?: Assignment;
  after?: Assignment;
}

/** The Teleport version each host reported running, by instance id. */
export type RunningVersions = ReadonlyMap<string, string>;

const plannedVersion = (cluster: ClusterSettings, assignment: Assignment | undefined) =>
  assignment ? effectiveRelease({ cluster, assignment })?.version : undefined;

/**
 * The hosts of a plan with the version each runs, on the `side` of the
 * change (`settings` being that side's). A host runs the version it
 * reported (`running`), or its planned one when it reported none; after
 * the change, a host whose planned version the change alters runs the new
 * one (the rollout upgrades it), the others keep what they run.
 */
function hostsOf(
  settings: ClusterSettings,
  plan: PlanEntry[],
  side: 'before' | 'after',
  running: RunningVersions,
  earlier?: ClusterSettings,
): PlannedHost[] {
  const hosts: PlannedHost[] = [];
  for (const entry of plan) {
    const assignment = entry[side];
    if (!assignment) continue;
    const planned = plannedVersion(settings, assignment);
    const plannedBefore = earlier ? plannedVersion(earlier, entry.before) : undefined;
    const upgraded = side === 'after' && planned !== undefined && planned !== plannedBefore;
    for (const holder of entry.holders) {
      const runs = running.get(holder);
      const version = upgraded ? planned : (runs ?? planned);
      if (!version) continue;
      const before = side === 'after' ? (runs ?? plannedBefore) : undefined;
      hosts.push({ holder, auth: assignment.roles.includes('auth'), version, before });
    }
  }
  return hosts;
}

/**
 * Refuses a change that breaks Teleport's compatibility rule (see
 * versionProblems) for a host it did not break already, naming the hosts and
 * why: a fleet that is already out of line does not block other changes.
 * `field` is what the error names (the setting or option being saved).
 */
export function checkReleasePlan(
  before: ClusterSettings,
  after: ClusterSettings,
  plan: PlanEntry[],
  field = 'teleport',
  running: RunningVersions = new Map(),
): void {
  const known = new Set(versionProblems(hostsOf(before, plan, 'before', running)).flatMap((p) => p.holders.map((h) => `${p.rule} ${h}`)));
  for (const problem of versionProblems(hostsOf(after, plan, 'after', running, before))) {
    const holders = problem.holders.filter((h) => !known.has(`${problem.rule} ${h}`));
    if (holders.length > 0) throw new InputError(field, `${shown(holders)}: ${problem.reason}`);
  }
}

/** A settings change against every stored assignment; only a change of the release setting can break the rule. */
export function checkSettingsRelease(
  before: ClusterSettings,
  after: ClusterSettings,
  stored: Array<{ assignment: Assignment; holders: string[] }>,
  patched: string[],
  running?: RunningVersions,
): void {
  if (!patched.includes('teleport')) return;
  checkReleasePlan(
    before,
    after,
    stored.map((s) => ({ holders: s.holders, before: s.assignment, after: s.assignment })),
    'teleport',
    running,
  );
}

/** One instance's new assignment against the rest of the fleet. Reads the fleet only when a release is named. */
export async function checkAssignmentRelease(
  instanceId: string,
  next: Assignment,
  previous: Assignment | undefined,
  settings: ClusterSettings,
  stored: () => Promise<Array<{ assignment: Assignment; holders: string[] }>>,
  running: () => Promise<RunningVersions> = async () => new Map(),
): Promise<void> {
  if (!effectiveRelease({ cluster: settings, assignment: next })) return;
  const plan: PlanEntry[] = (await stored())
    .map((s) => ({ holders: s.holders.filter((h) => h !== instanceId), before: s.assignment, after: s.assignment }))
    .filter((e) => e.holders.length > 0);
  plan.push({ holders: [instanceId], before: previous, after: next });
  checkReleasePlan(settings, settings, plan, 'teleport', await running());
}
