// The Teleport release rules, judged when settings or an assignment are
// saved: the release fields on their own, and Teleport's compatibility rule
// over the whole plan (every stored assignment under the settings), so that
// a plan an upgrade cannot follow is refused with the hosts and the reason.
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

/** The hosts of a plan with the release each runs, under `settings`, on the `side` of the change. */
function hostsOf(settings: ClusterSettings, plan: PlanEntry[], side: 'before' | 'after', earlier?: ClusterSettings): PlannedHost[] {
  const hosts: PlannedHost[] = [];
  for (const entry of plan) {
    const assignment = entry[side];
    if (!assignment) continue;
    const version = effectiveRelease({ cluster: settings, assignment })?.version;
    if (!version) continue;
    const was = earlier && entry.before ? effectiveRelease({ cluster: earlier, assignment: entry.before })?.version : undefined;
    for (const holder of entry.holders) hosts.push({ holder, auth: assignment.roles.includes('auth'), version, before: was });
  }
  return hosts;
}

/**
 * Refuses a change that breaks Teleport's compatibility rule (see
 * versionProblems) for a host it did not break already, naming the hosts and
 * why: a fleet that is already out of line does not block other changes.
 * `field` is what the error names (the setting or option being saved).
 */
export function checkReleasePlan(before: ClusterSettings, after: ClusterSettings, plan: PlanEntry[], field = 'teleport'): void {
  const known = new Set(versionProblems(hostsOf(before, plan, 'before')).flatMap((p) => p.holders.map((h) => `${p.rule} ${h}`)));
  for (const problem of versionProblems(hostsOf(after, plan, 'after', before))) {
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
): void {
  if (!patched.includes('teleport')) return;
  checkReleasePlan(
    before,
    after,
    stored.map((s) => ({ holders: s.holders, before: s.assignment, after: s.assignment })),
  );
}

/** One instance's new assignment against the rest of the fleet. Reads the fleet only when a release is named. */
export async function checkAssignmentRelease(
  instanceId: string,
  next: Assignment,
  previous: Assignment | undefined,
  settings: ClusterSettings,
  stored: () => Promise<Array<{ assignment: Assignment; holders: string[] }>>,
): Promise<void> {
  if (!effectiveRelease({ cluster: settings, assignment: next })) return;
  const plan: PlanEntry[] = (await stored())
    .map((s) => ({ holders: s.holders.filter((h) => h !== instanceId), before: s.assignment, after: s.assignment }))
    .filter((e) => e.holders.length > 0);
  plan.push({ holders: [instanceId], before: previous, after: next });
  checkReleasePlan(settings, settings, plan, 'teleport');
}
