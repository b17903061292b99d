// JSON schemas of the REST API: they validate requests and document the API
// in /openapi.json. The settings and the role options are declared once in
// contract/ (TypeBox, plain JSON Schema); the routes' own shapes are here.
// Field rules that need more than a schema live in control/validation.ts.
import { Type } from '@sinclair/typebox';
import { Assignment, assignmentOptions, NodeLabels, Nodename, Selector } from '../../contract/assignment';
import { HEALTH_STATES, INSTANCE_ID_PATTERN, ROLE_NAMES, SERVICE_ROLES } from '../../contract/model';
import { Nullable, StringEnum, Text } from '../../contract/schema';
import { ClusterSettingsPatch, RolloutRequest } from '../../contract/settings';
import { HOST_STATES } from '../rollout/model';

export const instanceIdParam = Type.Object({
  id: Type.String({ pattern: INSTANCE_ID_PATTERN, description: 'EC2 instance id, or the name of a host outside EC2' }),
});

export const labels = NodeLabels;

export const roleName = Text({ maxLength: 64, description: `a role: ${ROLE_NAMES.join(', ')}` });

export const assignmentBody = Type.Object(
  {
    role: Type.Optional(roleName),
    roles: Type.Optional(Type.Array(roleName, { minItems: 1, maxItems: 8 })),
    labels: Type.Optional(labels),
    nodename: Type.Optional(Nodename),
    ...assignmentOptions,
    rollout: Type.Optional(RolloutRequest),
  },
  { additionalProperties: false, description: 'Give "role" (a role or preset such as auth-proxy) or "roles" (a list of services)' },
);

// OpenAPI 3.0's "nullable", not anyOf with null: the response serializer
// (fast-json-stringify) writes it directly, where anyOf validates each value to pick a branch.
const nullable = <T extends object>(schema: T) => ({ ...schema, nullable: true });

/** An assignment as the API shows it: its services, and the name an operator would use for them. */
export const assignmentView = Type.Object({
  role: Type.String({ description: 'role name, or services joined with "+"' }),
  ...Assignment.properties,
});

export const instanceView = {
  type: 'object',
  properties: {
    instanceId: { type: 'string' },
    health: { type: 'string', enum: [...HEALTH_STATES] },
    identity: nullable({ type: 'object', additionalProperties: true }),
    facts: nullable({ type: 'object', additionalProperties: true }),
    assignment: nullable(assignmentView),
    generation: { type: 'integer', description: 'bumped by every change to what the instance should run' },
    appliedGeneration: { type: 'integer', description: 'the generation the agent last applied' },
    drifted: {
      type: 'boolean',
      description: 'teleport.yaml, the unit or /etc/default/teleport was changed by hand on the host (diffs in status.drift)',
    },
    status: nullable({
      type: 'object',
      properties: {
        state: { type: 'string' },
        teleportUnitState: { type: 'string' },
        teleportReady: { type: 'boolean' },
        message: { type: 'string' },
        agentVersion: { type: 'string' },
        teleportVersion: { type: 'string', description: 'the Teleport version the host runs, as its agent reported it' },
        reportedAt: { type: 'string', format: 'date-time' },
        certificateExpiresAt: {
          type: 'string',
          format: 'date-time',
          description: 'proxies: when the TLS certificate Teleport serves expires',
        },
        logTail: {
          type: 'array',
          items: { type: 'string' },
          description: "when Teleport is not ready: the last lines of its log (the unit's journal), secrets masked",
        },
        drift: {
          type: 'array',
          description: 'files changed by hand since the agent wrote them, put back per the driftRepair setting',
          items: {
            type: 'object',
            properties: { path: { type: 'string' }, diff: { type: 'string', description: 'unified diff, secrets masked' } },
          },
        },
      },
    }),
    enrolledAt: nullable({ type: 'string', format: 'date-time' }),
    lastSeenAt: nullable({ type: 'string', format: 'date-time' }),
    enrolledVia: nullable({ type: 'string', description: 'how the instance proved itself: ec2, join-token:<id>, bootstrap-token' }),
    allowedRoles: nullable({ type: 'array', items: { type: 'string' }, description: 'services its join token allows; null: any' }),
    releasedGeneration: nullable({
      type: 'integer',
      description: 'the generation a rollout released to it (what its agent is served; health compares with it); null: the newest',
    }),
    rollout: {
      type: 'object',
      description: 'the rollout under way that holds the instance, and its state in it (docs/ROLLOUTS.md)',
      properties: { id: { type: 'string' }, state: { type: 'string', enum: [...HOST_STATES] } },
    },
  },
} as const;

export const clusterSettings = ClusterSettingsPatch;

/** A settings change, and how it rolls out ("rollout": {"strategy": "all-at-once"}, the audited escape; docs/ROLLOUTS.md). */
export const settingsChange = Type.Object(
  { ...ClusterSettingsPatch.properties, rollout: Type.Optional(RolloutRequest) },
  { additionalProperties: false },
);

export const ruleBody = Type.Object(
  {
    name: Text({ minLength: 1, maxLength: 128 }),
    selector: Selector('EC2 tags that must all match; "*" matches any value of a present tag', { minProperties: 1, maxProperties: 16 }),
    role: Type.Optional(roleName),
    roles: Type.Optional(Type.Array(roleName, { minItems: 1, maxItems: 8 })),
    labels: Type.Optional(labels),
    position: Type.Optional(Type.Integer({ minimum: 0, description: '0-based place in the rule list; the end when absent' })),
  },
  { additionalProperties: false },
);

const stringMapView = Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' } });

/** A rule as the API shows it. */
export const ruleView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  selector: stringMapView,
  role: Type.String({ description: 'role name, or services joined with "+"' }),
  roles: Type.Array(StringEnum(SERVICE_ROLES)),
  labels: stringMapView,
  createdAt: Nullable(Type.String({ format: 'date-time' })),
});

export const errorView = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
} as const;

/** 409 for a change made on an old version (If-Match): the current version is also in the ETag header. */
export const versionConflictView = {
  type: 'object',
  properties: { ...errorView.properties, currentVersion: { type: 'integer' } },
} as const;
