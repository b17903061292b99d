// Rows as both databases return them, and the records they stand for.
// Numbers are read with Number(): drivers may give BIGINT columns as strings.
import type { Assignment, HostFacts, InstanceIdentity, ServiceRole } from '../../contract/model';
import type {
  ApiScope,
  ApiToken,
  AuditEvent,
  IssuedCertificate,
  InstanceRecord,
  InstanceStatus,
  JoinToken,
  Lease,
  ProxyCertificate,
  ProxyCertificateState,
  Rule,
  RuleInput,
} from './store';

export interface InstanceRow {
  instance_id: string;
  identity: string | null;
  enrolled_at: number | null;
  last_seen_at: number | null;
  assignment: string | null;
  generation: number;
  applied_generation: number;
  released_generation?: number | string | null;
  status: string | null;
  facts: string | null;
  created_at: number;
  updated_at: number;
  enrolled_via?: string | null;
  allowed_roles?: string | null;
}

/** The columns a record is made of (not those kept for indexes: roles_key, status_state, teleport_ready). */
export const INSTANCE_COLUMNS =
  'instance_id, identity, enrolled_at, last_seen_at, assignment, generation, applied_generation, status, facts, created_at, updated_at, enrolled_via, allowed_roles, released_generation';

export interface ApiTokenRow {
  id: string;
  name: string;
  scope: string;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface JoinTokenRow {
  id: string;
  name: string;
  roles: string | null;
  expires_at: number;
  max_uses: number | null;
  uses: number;
  created_at: number;
  created_by: string;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  details: string;
  count: number;
  last_at: number | null;
}

export interface LeaseRow {
  name: string;
  holder: string;
  fencing: number;
  acquired_at: number;
  expires_at: number;
}

export interface ProxyCertificateRow {
  domain: string;
  state: string;
  serial: string | null;
  not_before: number | null;
  not_after: number | null;
  etag: string | null;
  issued_at: number | null;
  checked_at: number | null;
  last_attempt_at: number | null;
  failures: number;
  last_error: string | null;
  next_attempt_at: number | null;
  renew_requested: number | boolean;
  updated_at: number;
}

export interface RuleRow {
  id: string;
  body: string;
  created_at: number;
}

export interface CertificateRow {
  serial: string;
  instance_id: string;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export const numOrNull = (v: number | string | bigint | null): number | null => (v === null ? null : Number(v));
const parse = <T>(text: string | null | undefined): T | null => (text == null ? null : (JSON.parse(text) as T));

export const rowToInstance = (row: InstanceRow): InstanceRecord => ({
  ...storedInstanceOf(row),
  createdAt: Number(row.created_at),
  updatedAt: Number(row.updated_at),
});

/** The columns an instance's REST view is made of; an InstanceViewRow holds them in this order. */
export const INSTANCE_VIEW_COLUMNS = [
  'instance_id',
  'identity',
  'enrolled_at',
  'last_seen_at',
  'assignment',
  'generation',
  'applied_generation',
  'status',
  'facts',
  'enrolled_via',
  'allowed_roles',
  'released_generation',
] as const satisfies ReadonlyArray<keyof InstanceRow>;

/** A row of INSTANCE_VIEW_COLUMNS as the database gave it (Sql.arrays); on PostgreSQL its row_version follows. */
export type InstanceViewRow = unknown[];

/**
 * An instance of a page of the REST list. `version`: its row's version
 * (PostgreSQL: a new one from a sequence at every insert and update, never
 * given twice, so one version is one content); null on SQLite, whose rows
 * are compared column by column. Either `cached`, what the caller keeps for
 * that version, or `row`, the columns (the caller keeps none, or not of that version).
 */
export interface ListedInstance<T> {
  id: string;
  version: number | null;
  cached?: T;
  row?: InstanceViewRow;
}

/** The record an InstanceViewRow stands for (without the times of its creation and last change, not shown). */
export function viewRowToInstance(values: InstanceViewRow): StoredInstance {
  const row = Object.fromEntries(INSTANCE_VIEW_COLUMNS.map((column, i) => [column, values[i]]));
  return storedInstanceOf(row as unknown as InstanceRow);
}

export type StoredInstance = Omit<InstanceRecord, 'createdAt' | 'updatedAt'>;

const storedInstanceOf = (row: InstanceRow): StoredInstance => ({
  instanceId: row.instance_id,
  identity: parse<InstanceIdentity>(row.identity),
  enrolledAt: numOrNull(row.enrolled_at),
  lastSeenAt: numOrNull(row.last_seen_at),
  assignment: parse<Assignment>(row.assignment),
  generation: Number(row.generation),
  appliedGeneration: Number(row.applied_generation),
  releasedGeneration: row.released_generation == null ? null : Number(row.released_generation),
  status: parse<InstanceStatus>(row.status),
  facts: parse<HostFacts>(row.facts),
  enrolledVia: row.enrolled_via ?? null,
  allowedRoles: parse<ServiceRole[]>(row.allowed_roles),
});

export const rowToApiToken = (r: ApiTokenRow): ApiToken => ({
  id: r.id,
  name: r.name,
  scope: r.scope as ApiScope,
  createdAt: Number(r.created_at),
  createdBy: r.created_by,
  lastUsedAt: numOrNull(r.last_used_at),
  revokedAt: numOrNull(r.revoked_at),
});

export const rowToJoinToken = (r: JoinTokenRow): JoinToken => ({
  id: r.id,
  name: r.name,
  roles: parse<ServiceRole[]>(r.roles),
  expiresAt: Number(r.expires_at),
  maxUses: numOrNull(r.max_uses),
  uses: Number(r.uses),
  createdAt: Number(r.created_at),
  createdBy: r.created_by,
  lastUsedAt: numOrNull(r.last_used_at),
  revokedAt: numOrNull(r.revoked_at),
});

export const rowToAudit = (r: AuditRow): AuditEvent => ({
  id: Number(r.id),
  at: Number(r.at),
  actor: r.actor,
  action: r.action,
  target: r.target,
  details: JSON.parse(r.details) as Record<string, unknown>,
  count: Number(r.count),
  lastAt: numOrNull(r.last_at),
});

export const rowToLease = (row: LeaseRow): Lease => ({
  name: row.name,
  holder: row.holder,
  fencing: Number(row.fencing),
  acquiredAt: Number(row.acquired_at),
  expiresAt: Number(row.expires_at),
});

export const rowToProxyCertificate = (row: ProxyCertificateRow): ProxyCertificate => ({
  domain: row.domain,
  state: row.state as ProxyCertificateState,
  serial: row.serial,
  notBefore: numOrNull(row.not_before),
  notAfter: numOrNull(row.not_after),
  etag: row.etag,
  issuedAt: numOrNull(row.issued_at),
  checkedAt: numOrNull(row.checked_at),
  lastAttemptAt: numOrNull(row.last_attempt_at),
  failures: Number(row.failures),
  lastError: row.last_error,
  nextAttemptAt: numOrNull(row.next_attempt_at),
  renewRequested: !!row.renew_requested,
  updatedAt: Number(row.updated_at),
});

export const rowToRule = (r: RuleRow): Rule => ({ ...(JSON.parse(r.body) as RuleInput), id: r.id, createdAt: Number(r.created_at) });

export const rowToCertificate = (r: CertificateRow): IssuedCertificate => ({
  serial: r.serial,
  instanceId: r.instance_id,
  issuedAt: Number(r.issued_at),
  expiresAt: Number(r.expires_at),
  revokedAt: numOrNull(r.revoked_at),
});

/** ",auth,proxy,": a role filter is a LIKE on one column. */
export const rolesKey = (a: Assignment | null): string | null => (a ? `,${[...a.roles].sort().join(',')},` : null);

/** Ids per statement of a read by ids: well under SQLite's limit of bound parameters. */
const ID_CHUNK = 500;

/** "?, ?, ?" for `ids`. */
export const marks = (ids: readonly unknown[]): string => ids.map(() => '?').join(', ');

/** `read` over `ids` in chunks of ID_CHUNK, the rows of every chunk. */
export async function inChunks<R>(ids: readonly string[], read: (chunk: string[]) => Promise<R[]>): Promise<R[]> {
  const rows: R[] = [];
  for (let i = 0; i < ids.length; i += ID_CHUNK) rows.push(...(await read(ids.slice(i, i + ID_CHUNK))));
  return rows;
}
