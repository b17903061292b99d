// JSON schemas of the REST API: they validate requests and document the API
// in /openapi.json. Field rules that need more than a schema live in
// control/validation.ts.
import { HEALTH_STATES, INSTANCE_ID_PATTERN, LABEL_KEY_PATTERN, ROLE_NAMES, SERVICE_ROLES } from '../../contract/model';
import { assignmentOptions, layoutSettings } from './role-schemas';

export const instanceIdParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: INSTANCE_ID_PATTERN, description: 'EC2 instance id, or the name of a host outside EC2' } },
} as const;

export const labels = {
  type: 'object',
  description: 'Teleport node labels (ssh_service.labels)',
  maxProperties: 64,
  propertyNames: { pattern: LABEL_KEY_PATTERN },
  // No control characters (newlines included): a value must stay one YAML scalar and one line of config.
  additionalProperties: { type: 'string', maxLength: 256, pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
} as const;

export const roleName = { type: 'string', maxLength: 64, description: `a role: ${ROLE_NAMES.join(', ')}` } as const;

export const assignmentBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Give "role" (a role or preset such as auth-proxy) or "roles" (a list of services)',
  properties: {
    role: roleName,
    roles: { type: 'array', minItems: 1, maxItems: 8, items: roleName },
    labels,
    nodename: { type: 'string', minLength: 1, maxLength: 253 },
    ...assignmentOptions,
  },
} as const;

const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: 'null' }] });

export const assignmentView = {
  type: 'object',
  properties: {
    role: { type: 'string', description: 'role name, or services joined with "+"' },
    roles: { type: 'array', items: { type: 'string', enum: [...SERVICE_ROLES] } },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    nodename: { type: 'string' },
    ...assignmentOptions,
  },
} as const;

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
    status: nullable({
      type: 'object',
      properties: {
        state: { type: 'string' },
        teleportUnitState: { type: 'string' },
        teleportReady: { type: 'boolean' },
        message: { type: 'string' },
        agentVersion: { type: 'string' },
        reportedAt: { type: 'string', format: 'date-time' },
        certificateExpiresAt: {
          type: 'string',
          format: 'date-time',
          description: 'proxies: when the TLS certificate Teleport serves expires',
        },
      },
    }),
    enrolledAt: nullable({ type: 'string', format: 'date-time' }),
    lastSeenAt: nullable({ type: 'string', format: 'date-time' }),
    enrolledVia: nullable({ type: 'string', description: 'how the instance proved itself: ec2, join-token:<id>, bootstrap-token' }),
    allowedRoles: nullable({ type: 'array', items: { type: 'string' }, description: 'services its join token allows; null: any' }),
  },
} as const;

export const storageSettings = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['dir', 'dynamodb'] },
    tableName: { type: 'string', maxLength: 255 },
    region: { type: 'string', maxLength: 32 },
    auditEventsUri: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 512 } },
    auditSessionsUri: { type: 'string', maxLength: 512 },
  },
} as const;

export const clusterSettings = {
  type: 'object',
  additionalProperties: false,
  properties: {
    clusterName: { type: 'string', maxLength: 253 },
    authAddr: { type: 'string', maxLength: 260, description: 'host:port of the auth service, e.g. auth.example.internal:3025' },
    proxyPublicAddr: { type: 'string', maxLength: 260, description: 'host:port users reach the proxy at, e.g. teleport.example.com:443' },
    s3Bucket: { type: 'string', maxLength: 63 },
    ssmPrefix: { type: 'string', maxLength: 512 },
    region: { type: 'string', maxLength: 32 },
    storage: storageSettings,
    ...layoutSettings,
  },
} as const;

export const ruleBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'selector'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 128 },
    selector: {
      type: 'object',
      description: 'EC2 tags that must all match; "*" matches any value of a present tag',
      minProperties: 1,
      maxProperties: 16,
      propertyNames: { minLength: 1, maxLength: 128 },
      additionalProperties: { type: 'string', maxLength: 256 },
    },
    role: roleName,
    roles: { type: 'array', minItems: 1, maxItems: 8, items: roleName },
    labels,
    position: { type: 'integer', minimum: 0, description: '0-based place in the rule list; the end when absent' },
  },
} as const;

export const errorView = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
} as const;
