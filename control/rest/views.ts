// Stored records as the REST API shows them: ISO timestamps, role names.
import { roleNameOf, type Assignment, type HealthState } from '../../contract/model';
import { healthOf } from '../store/health';
import { viewRowToInstance, type InstanceViewRow, type StoredInstance } from '../store/rows';
import { isoTime } from './iso-time';
import type { RolloutHold } from '../service';
import {
  joinTokenProblem,
  type ApiToken,
  type AuditEvent,
  type HealthClock,
  type InstanceRecord,
  type InstanceStatus,
  type JoinToken,
  type Page,
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
 * schema declares: the list writes it with plain JSON.stringify
 * (InstancePages), which is faster than the schema's compiled serializer.
 * `rollout`: the rollout under way that holds the instance, with its state in it.
 */
export function instanceView(r: InstanceRecord & { health: HealthState }, rollout?: RolloutHold) {
  return { health: r.health, ...storedInstanceView(r), ...(rollout ? { rollout } : {}) };
}

/** instanceView but the health and the rollout, which depend on the time and on other records: what a stored record alone makes. */
function storedInstanceView(r: StoredInstance) {
  return {
    instanceId: r.instanceId,
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
  };
}

interface RenderedInstance {
  /** The row it was rendered from (rows.ts INSTANCE_VIEW_COLUMNS), compared with the row read now. */
  row: InstanceViewRow;
  /** What the health is read from (healthOf), parsed once. */
  facts: Parameters<typeof healthOf>[0];
  /** instanceView's JSON after its opening brace, without the health (which depends on the time). */
  rest: string;
}

function sameRow(a: InstanceViewRow, b: InstanceViewRow): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Pages of instances as JSON, each instance rendered once for as long as its
 * stored row is unchanged: a page is then mostly string joins, and only the
 * health (which changes with the time) is worked out per request. An entry is
 * checked against the row read for this very request, so it can never be
 * older than the database (a write through another replica or process
 * included). Bounded: the least recently used entries go first.
 */
export class InstancePages {
  private readonly cache = new Map<string, RenderedInstance>();

  constructor(private readonly capacity = 2000) {}

  /** The JSON of { items: instanceView[], next }. */
  render(page: Page<InstanceViewRow>, clock: HealthClock, held: ReadonlyMap<string, RolloutHold> = new Map()): string {
    let items = '';
    for (const row of page.items) {
      const entry = this.entryOf(row);
      const rollout = held.get(String(row[0]));
      const rest = rollout ? `${entry.rest.slice(0, -1)},"rollout":${JSON.stringify(rollout)}}` : entry.rest;
      items += `${items ? ',' : ''}{"health":"${healthOf(entry.facts, clock)}",${rest}`;
    }
    return `{"items":[${items}]${page.next === undefined ? '' : `,"next":${JSON.stringify(page.next)}`}}`;
  }

  private entryOf(row: InstanceViewRow): RenderedInstance {
    const id = String(row[0]);
    const cached = this.cache.get(id);
    // Re-inserted, so that Map order is least recently used first.
    this.cache.delete(id);
    const entry = cached && sameRow(cached.row, row) ? cached : rendered(row);
    this.cache.set(id, entry);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }
}

function rendered(row: InstanceViewRow): RenderedInstance {
  const record = viewRowToInstance(row);
  return { row, facts: record, rest: JSON.stringify(storedInstanceView(record)).slice(1) };
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
