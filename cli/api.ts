// The REST API's answers as the CLI reads them (see README "REST API" and
// GET /openapi.json); only the fields the CLI shows are typed.

export interface AssignmentView {
  role: string;
  roles: string[];
  labels: Record<string, string>;
  nodename?: string;
  [option: string]: unknown;
}

export interface InstanceView {
  instanceId: string;
  health: string;
  identity: {
    privateIp?: string;
    hostname?: string;
    region?: string;
    availabilityZone?: string;
    instanceType?: string;
    tags?: Record<string, string>;
  } | null;
  facts: { os?: string; arch?: string; cpus?: number } | null;
  assignment: AssignmentView | null;
  generation: number;
  appliedGeneration: number;
  /** Files the agent wrote were changed by hand on the host (diffs in status.drift). */
  drifted?: boolean;
  status: {
    state?: string;
    message?: string;
    teleportReady?: boolean;
    agentVersion?: string;
    teleportVersion?: string;
    reportedAt?: string;
    logTail?: string[];
    drift?: Array<{ path: string; diff: string }>;
  } | null;
  enrolledAt: string | null;
  lastSeenAt: string | null;
  enrolledVia: string | null;
  allowedRoles: string[] | null;
}

export interface Page<T, C = string> {
  items: T[];
  next?: C;
}

export interface RuleView {
  id: string;
  name: string;
  selector: Record<string, string>;
  role: string;
  roles: string[];
  labels: Record<string, string>;
  createdAt: string;
}

export interface AuditEventView {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
}

export interface HealthView {
  total: number;
  byHealth: Record<string, number>;
  byRole: Record<string, Record<string, number>>;
  certificates: unknown;
  alerts: Array<string | { message?: string; [key: string]: unknown }>;
}

export interface PreviewView {
  instanceId: string;
  generation: number;
  roles: string[];
  valid: boolean;
  problems: Array<{ path?: string; setting?: string; field?: string; message: string }>;
  teleportYaml?: string;
  [key: string]: unknown;
}

export interface ApiTokenView {
  id: string;
  name: string;
  scope: string;
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  token?: string;
}

export interface JoinTokenView {
  id: string;
  name: string;
  roles: string[] | null;
  expiresAt: string;
  maxUses: number | null;
  uses: number;
  usable: boolean;
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  token?: string;
}

/** A path segment, escaped. */
export const seg = (value: string) => encodeURIComponent(value);

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : '';
}
