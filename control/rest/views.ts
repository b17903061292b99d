// Stored records as the REST API shows them: ISO timestamps, role names.
import { roleNameOf, type Assignment, type HealthState } from '../../contract/model';
import { isoTime } from './iso-time';
import {
  joinTokenProblem,
  type ApiToken,
  type AuditEvent,
  type InstanceRecord,
  type InstanceStatus,
  type JoinToken,
  type Rule,
} from '../store/store';

const iso = (ms: number | null) => (ms === null ? null : isoTime(ms));

export function assignmentView(a: Assignment | null) {
  return a ? { role: roleNameOf(a.roles), ...a } : null;
}

/** The status as the API shows it: the fields the schema names (schemas.ts instanceView), times in ISO. */
function statusView(s: InstanceStatus) {
  return {
    state: s.state,
    teleportUnitState: s.teleportUnitState,
    teleportReady: s.teleportReady,
    message: s.message,
    agentVersion: s.agentVersion,
    teleportVersion: s.teleportVersion,
    reportedAt: iso(s.reportedAt),
    certificateExpiresAt: s.certificateExpiresAt ? iso(s.certificateExpiresAt) : undefined,
    logTail: s.logTail,
    drift: s.drift?.map((d) => ({ path: d.path, diff: d.diff })),
  };
}

/**
 * An instance as the API shows it. The object holds exactly what the
 * schema declares, so that plain JSON.stringify writes it (instanceRoutes):
 * on a page of 100 that is faster than the schema's compiled serializer.
 * `rollout`: the rollout under way that holds the instance, with its state in it.
 */
export function instanceView(r: InstanceRecord & { health: HealthState }, rollout?: { id: string; state: string }) {
  return {
    instanceId: r.instanceId,
    health: r.health,
    identity: r.identity,
    facts: r.facts,
    assignment: assignmentView(r.assignment),
    generation: r.generation,
    appliedGeneration: r.appliedGeneration,
    // Files changed by hand on the host since the agent wrote them (the diffs are in status.drift).
    drifted: Boolean(r.status?.drift?.length),
    status: r.status ? statusView(r.status) : null,
    enrolledAt: iso(r.enrolledAt),
    lastSeenAt: iso(r.lastSeenAt),
    enrolledVia: r.enrolledVia,
    allowedRoles: r.allowedRoles,
    releasedGeneration: r.releasedGeneration ?? null,
    ...(rollout ? { rollout } : {}),
  };
}

export const ruleView = (r: Rule) => ({ ...r, role: roleNameOf(r.roles), createdAt: iso(r.createdAt) });
export const auditView = (e: AuditEvent) => ({ ...e, at: iso(e.at) });

export const apiTokenView = (t: ApiToken) => ({
  ...t,
  createdAt: iso(t.createdAt),
  lastUsedAt: iso(t.lastUsedAt),
  revokedAt: iso(t.revokedAt),
});
export const joinTokenView = (t: JoinToken, now = Date.now()) => ({
  ...t,
  createdAt: iso(t.createdAt),
  expiresAt: iso(t.expiresAt),
  lastUsedAt: iso(t.lastUsedAt),
  revokedAt: iso(t.revokedAt),
  usable: joinTokenProblem(t, now) === undefined,
});
