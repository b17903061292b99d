// Stored records as the REST API shows them: ISO timestamps, role names.
import { HEALTH_STATES, roleNameOf, type Assignment, type HealthState } from '../../contract/model';
import { healthOf } from '../store/health';
import { viewRowToInstance, type InstanceViewRow, type ListedInstance, type StoredInstance } from '../store/rows';
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
  /** The row version it was rendered from (PostgreSQL), or null: then `row` is compared with the row read now. */
  version: number | null;
  /** The row it was rendered from (rows.ts INSTANCE_VIEW_COLUMNS), kept when there is no version to compare. */
  row: InstanceViewRow | undefined;
  /** What the health is read from (healthOf), parsed once. */
  facts: Parameters<typeof healthOf>[0];
  /** instanceView's JSON (UTF-8) after its opening brace, without the health (which depends on the time). */
  rest: Buffer;
  /** InstancePages' count of entries looked up when this one last moved to the end of the cache's order. */
  moved: number;
}

/** What a list page is made of, in UTF-8: a page is one copy of its instances' cached bytes, not a string to encode. */
const ITEMS_START = Buffer.from('{"items":[');
const COMMA = Buffer.from(',');
/** `{"health":"ready",`: each listed instance starts with its health. */
const HEALTH_STARTS = new Map(HEALTH_STATES.map((h) => [h, Buffer.from(`{"health":"${h}",`)]));

function sameRow(a: InstanceViewRow, b: InstanceViewRow): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Pages of instances as JSON, each instance rendered once for as long as its
 * stored row is unchanged: a page is then mostly string joins, and only the
 * health (which changes with the time) is worked out per request. An entry is
 * checked against the row version (PostgreSQL) or the row (SQLite) read for
 * this very request, so it can never be older than the database (a write
 * through another replica or process included). Bounded: the least recently
 * used entries go first.
 */
export class InstancePages {
  private readonly cache = new Map<string, RenderedInstance>();
  /** Entries looked up so far. */
  private lookups = 0;

  constructor(private readonly capacity = 2000) {}

  /** The entry rendered from an instance's row at `version` (Store.listInstanceViews asks while it reads a page). */
  readonly cachedView = (id: string, version: number): RenderedInstance | undefined => {
    const entry = this.cache.get(id);
    return entry?.version === version ? entry : undefined;
  };

  /** The JSON of { items: instanceView[], next }, in UTF-8. */
  render(page: Page<ListedInstance<RenderedInstance>>, clock: HealthClock, held: ReadonlyMap<string, RolloutHold> = new Map()): Buffer {
    const parts: Buffer[] = [ITEMS_START];
    for (const item of page.items) {
      const entry = this.entryOf(item);
      if (parts.length > 1) parts.push(COMMA);
      parts.push(HEALTH_STARTS.get(healthOf(entry.facts, clock))!);
      const rollout = held.get(item.id);
      if (!rollout) parts.push(entry.rest);
      else parts.push(entry.rest.subarray(0, -1), Buffer.from(`,"rollout":${JSON.stringify(rollout)}}`));
    }
    parts.push(Buffer.from(`]${page.next === undefined ? '' : `,"next":${JSON.stringify(page.next)}`}}`));
    return Buffer.concat(parts);
  }

  private entryOf({ id, version, cached, row }: ListedInstance<RenderedInstance>): RenderedInstance {
    this.lookups++;
    // Moved to the end within the last capacity / 2 lookups: still in the cache (see below), or replaced there by a newer version.
    if (cached && this.lookups - cached.moved <= this.capacity / 2) return cached;
    const kept = this.cache.get(id);
    // `cached` was taken when the page was read: the entry of that version, even when it has left the cache since.
    const entry =
      cached ?? (kept && kept.version === null && version === null && sameRow(kept.row!, row!) ? kept : rendered(row!, version));
    // A newer version a concurrent request put there stays.
    const keep = kept?.version != null && entry.version !== null && kept.version > entry.version ? kept : entry;
    // Moved to the end (Map order: least recently used first) unless it moved there within the last capacity / 2
    // lookups: a page read again and again costs a lookup an instance, not a delete and an insert. An entry looked
    // up within the last capacity / 2 lookups is still never the one evicted.
    if (keep !== kept || this.lookups - keep.moved > this.capacity / 2) {
      this.cache.delete(id);
      this.cache.set(id, keep);
      keep.moved = this.lookups;
      if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    }
    return entry;
  }
}

function rendered(row: InstanceViewRow, version: number | null): RenderedInstance {
  const record = viewRowToInstance(row);
  const rest = Buffer.from(JSON.stringify(storedInstanceView(record)).slice(1));
  return { version, row: version === null ? row : undefined, facts: record, rest, moved: 0 };
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
