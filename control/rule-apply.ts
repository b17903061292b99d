// Applying a rule to the instances already enrolled (POST /v1/rules/{id}/apply,
// docs/ROLLOUTS.md): rules otherwise apply only when an instance enrolls
// unassigned. The plan says, per enrolled instance the rule's selector
// matches, whether its role changes or why it is left alone; applied, the
// changes are one rollout (auth first, at the cluster's pace).
import { roleNameOf, type Assignment, type InstanceIdentity } from '../contract/model';
import type { RolloutStrategy } from '../contract/settings';
import { NotFoundError } from './errors';
import { checkAssignmentRenders } from './validation';
import type { RolloutWiring } from './rollout-wiring';
import { summaryOf, type RolloutSummary } from './rollout';
import { disallowedRoles, firstMatchingRule, type AuditEvent, type InstanceRecord, type Rule, type Store } from './store/store';

/** Why a host the rule matches is left alone. */
export type SkipReason = 'explicit-assignment' | 'earlier-rule' | 'roles-not-allowed';

export interface RuleApplyPlan {
  rule: { id: string; name: string; role: string };
  /** Hosts whose role the rule changes, with the role they have and the one they get. */
  changes: Array<{ instanceId: string; hostname: string; from: string | null; to: string }>;
  /** Hosts the rule matches but leaves alone, and why. */
  skipped: Array<{ instanceId: string; hostname: string; reason: SkipReason; detail: string }>;
  /** Hosts the rule matches that have its assignment already. */
  unchanged: number;
}

export interface RuleApplyOptions {
  actor: string;
  /** Only the plan; nothing is saved. */
  dryRun?: boolean;
  /** Also hosts whose assignment an operator set (left alone otherwise). */
  overrideExplicit?: boolean;
  strategy?: RolloutStrategy;
}

/** An assignment set by a rule (at enrollment or by an earlier apply) is the rule's; any other, an operator's. */
const isRuleEvent = (e: AuditEvent) => e.actor.startsWith('rule:') || typeof e.details.rule === 'string';
const ASSIGNMENT_EVENTS = new Set(['assignment.set', 'assignment.clear', 'assignment.restore']);

/** The newest assignment event of an instance, read from the audit log (its only record of who set it). */
async function lastAssignmentEvent(store: Store, instanceId: string): Promise<AuditEvent | undefined> {
  let last: AuditEvent | undefined;
  for (let after = 0; ;) {
    const page = await store.listAudit({ after, limit: 500, target: instanceId });
    for (const e of page) if (ASSIGNMENT_EVENTS.has(e.action)) last = e;
    if (page.length < 500) return last;
    after = page[page.length - 1].id;
  }
}

const matches = (rule: Rule, tags: Record<string, string>) => firstMatchingRule([rule], tags) !== undefined;
const same = (a: Assignment | null, b: Assignment) => JSON.stringify(a) === JSON.stringify(b);

/** The plan for `rule` over every enrolled instance, in instance id order. */
export async function planRuleApply(store: Store, rule: Rule, overrideExplicit: boolean): Promise<RuleApplyPlan> {
  const rules = await store.listRules();
  const wanted: Assignment = { roles: rule.roles, labels: rule.labels };
  const plan: RuleApplyPlan = {
    rule: { id: rule.id, name: rule.name, role: roleNameOf(rule.roles) },
    changes: [],
    skipped: [],
    unchanged: 0,
  };
  for (const record of await enrolled(store)) {
    const identity = record.identity as InstanceIdentity;
    if (!matches(rule, identity.tags)) continue;
    const host = { instanceId: record.instanceId, hostname: identity.hostname };
    if (same(record.assignment, wanted)) {
      plan.unchanged += 1;
      continue;
    }
    const first = firstMatchingRule(rules, identity.tags);
    if (first && first.id !== rule.id) {
      plan.skipped.push({ ...host, reason: 'earlier-rule', detail: `rule ${first.name} (${first.id}) comes first for it` });
      continue;
    }
    const outside = disallowedRoles(rule.roles, record.allowedRoles);
    if (outside.length > 0) {
      plan.skipped.push({
        ...host,
        reason: 'roles-not-allowed',
        detail: `its join token allows ${record.allowedRoles!.join(', ')}; it may not run ${outside.join(', ')}`,
      });
      continue;
    }
    if (!overrideExplicit) {
      const last = await lastAssignmentEvent(store, record.instanceId);
      if (last && !isRuleEvent(last)) {
        plan.skipped.push({
          ...host,
          reason: 'explicit-assignment',
          detail: `${last.actor} set its assignment (${last.action} at ${new Date(last.at).toISOString()}); overrideExplicit applies the rule to it too`,
        });
        continue;
      }
    }
    plan.changes.push({ ...host, from: record.assignment ? roleNameOf(record.assignment.roles) : null, to: plan.rule.role });
  }
  return plan;
}

async function enrolled(store: Store): Promise<InstanceRecord[]> {
  const all: InstanceRecord[] = [];
  for (let after: string | undefined; ;) {
    const page = await store.listInstances({ limit: 1000, ...(after ? { after } : {}) }, { now: 0, offlineBefore: 0 });
    all.push(...page.items.filter((i) => i.identity !== null && i.enrolledAt !== null));
    if (!page.next) return all;
    after = page.next;
  }
}

/** Plans, and unless a dry run saves the changes as one rollout (with its audit records). */
export async function applyRule(
  deps: { store: Store; rollouts: RolloutWiring },
  ruleId: string,
  options: RuleApplyOptions,
): Promise<RuleApplyPlan & { dryRun: boolean; rollout?: RolloutSummary }> {
  const rule = (await deps.store.listRules()).find((r) => r.id === ruleId);
  if (!rule) throw new NotFoundError(`rule ${ruleId} not found; GET /v1/rules lists them`);
  const plan = await planRuleApply(deps.store, rule, options.overrideExplicit ?? false);
  const dryRun = options.dryRun ?? false;
  if (dryRun || plan.changes.length === 0) return { ...plan, dryRun };
  const assignment: Assignment = { roles: rule.roles, labels: rule.labels };
  // The settings may have changed since the rule was added: an impossible layout is refused here, not at boot.
  checkAssignmentRenders(assignment, await deps.store.getSettings());
  const before = new Map(
    (await Promise.all(plan.changes.map((c) => deps.store.getInstance(c.instanceId)))).map((r) => [r!.instanceId, r!]),
  );
  const { rollout } = await deps.rollouts.applyChange(
    { assignments: plan.changes.map((c) => ({ instanceId: c.instanceId, assignment })) },
    {
      actor: options.actor,
      reason: `POST /v1/rules/${rule.id}/apply (${rule.name})`,
      ...(options.strategy ? { strategy: options.strategy } : {}),
    },
    [
      {
        action: 'rule.apply',
        target: `rule:${rule.id}`,
        details: {
          rule: rule.name,
          hosts: plan.changes.length,
          skipped: plan.skipped.length,
          overrideExplicit: !!options.overrideExplicit,
        },
      },
      ...plan.changes.map((c) => ({
        action: 'assignment.set',
        target: c.instanceId,
        details: { before: before.get(c.instanceId)?.assignment ?? null, after: assignment, rule: rule.name, ruleId: rule.id },
      })),
    ],
  );
  return { ...plan, dryRun, ...(rollout ? { rollout: summaryOf(rollout) } : {}) };
}
