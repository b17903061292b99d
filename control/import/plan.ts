// What an import would create in teleboot, whatever it was read from: the
// cluster settings (as a PATCH /v1/settings), rules and assignments (as the
// REST API takes them), and every variable it could not map, with why.
import type { ClusterSettingsPatch } from '../../contract/settings';
import type { AssignmentInput, RuleCreation } from '../service';

/** A rule as the REST API takes it (added at the end). */
export type RuleInput = Omit<RuleCreation, 'position'>;

export interface Unmapped {
  variable: string;
  /** Why teleboot has no setting for it, and what to do instead. */
  why: string;
}

export interface ImportPlan {
  /** What the file was: "Teleport AMI conf" or "Ansible variables". */
  source: string;
  settings: ClusterSettingsPatch;
  /** A rule, when the instances are not named: instances carrying the tag get the role. */
  rules: RuleInput[];
  /** Assignments of named instances (--instance-id). */
  assignments: Array<{ instanceId: string; assignment: AssignmentInput }>;
  /** The assignment the preview renders: the rule's role, or the named instance's. */
  preview: AssignmentInput;
  unmapped: Unmapped[];
  /** Variables read and mapped, for the summary. */
  mapped: string[];
}

/** A tag that selects the instances an imported rule assigns. */
export const ROLE_TAG = 'TeleportRole';

/** The rule, or the assignment when an instance is named, for `assignment`. */
export function placeAssignment(
  plan: Pick<ImportPlan, 'rules' | 'assignments' | 'preview' | 'unmapped'>,
  assignment: AssignmentInput,
  ruleName: string,
  instanceId: string | undefined,
): void {
  plan.preview = assignment;
  if (instanceId) {
    plan.assignments.push({ instanceId, assignment });
    return;
  }
  const options = Object.keys(assignment).filter((k) => !['role', 'roles', 'labels'].includes(k));
  if (options.length > 0) {
    plan.unmapped.push({
      variable: '(assignment)',
      why: `role options (${options.join(', ')}) cannot go into a rule: rules carry roles and labels only; run again with --instance-id to assign them to an instance`,
    });
    return;
  }
  const tagValue = assignment.role ?? (assignment.roles ?? []).join('-');
  plan.rules.push({
    name: ruleName,
    selector: { [ROLE_TAG]: tagValue },
    ...(assignment.role ? { role: assignment.role } : { roles: assignment.roles ?? [] }),
    ...(assignment.labels && Object.keys(assignment.labels).length > 0 ? { labels: assignment.labels } : {}),
  });
}

export function emptyPlan(source: string): ImportPlan {
  return { source, settings: {}, rules: [], assignments: [], preview: { role: 'node' }, unmapped: [], mapped: [] };
}
