// JSON schemas of the role options in an assignment and of the layout
// settings of the cluster. Shapes and types only: whether they fit together
// is decided by the agent's renderer when they are saved (control/validation.ts).
import { DURATION_PATTERN } from '../../contract/duration';
import {
  AUTH_TYPES,
  DATABASE_PROTOCOLS,
  DISCOVERY_AWS_TYPES,
  JOIN_METHODS,
  JOIN_VIA,
  LABEL_KEY_PATTERN,
  LOG_FORMATS,
  LOG_SEVERITY_SETTINGS,
  PROXY_LISTENER_MODES,
  SECOND_FACTORS,
  TLS_SOURCES,
  TRUST_ROLES,
} from '../../contract/model';

const labelMap = (description: string) =>
  ({
    type: 'object',
    description,
    maxProperties: 64,
    propertyNames: { pattern: LABEL_KEY_PATTERN },
    additionalProperties: { type: 'string', maxLength: 256 },
  }) as const;

/** A label selector: keys are label keys or "*", values a value or "*". */
const selector = (description: string) =>
  ({
    type: 'object',
    description,
    maxProperties: 32,
    propertyNames: { minLength: 1, maxLength: 128 },
    additionalProperties: { type: 'string', maxLength: 256 },
  }) as const;

const str = (maxLength: number, description?: string) =>
  ({ type: 'string', minLength: 1, maxLength, ...(description ? { description } : {}) }) as const;

export const commandLabel = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'command', 'period'],
  properties: {
    name: { type: 'string', pattern: LABEL_KEY_PATTERN },
    command: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      items: str(1024),
      description: 'program and arguments, e.g. ["/bin/uname", "-p"]',
    },
    period: { type: 'string', pattern: DURATION_PATTERN, description: 'how often to run it, e.g. 1m0s' },
  },
} as const;

export const kubeOptions = {
  type: 'object',
  additionalProperties: false,
  required: ['resources'],
  description: 'kubernetes_service: which kube_cluster resources (e.g. found by the Discovery Service) this host serves',
  properties: {
    resources: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['labels'],
        properties: { labels: selector('label selector; {"*": "*"} matches every cluster') },
      },
    },
    labels: labelMap('static labels of the Kubernetes service'),
  },
} as const;

export const appSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'uri'],
  properties: {
    name: { type: 'string', maxLength: 63, description: 'a lower-case DNS label' },
    uri: str(2048, 'http://, https:// or tcp:// address of the app'),
    publicAddr: str(253, 'DNS name users reach the app at (no port)'),
    description: { type: 'string', maxLength: 512 },
    labels: labelMap('app labels'),
    insecureSkipVerify: { type: 'boolean' },
  },
} as const;

export const databaseSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'protocol', 'uri'],
  properties: {
    name: { type: 'string', maxLength: 63, description: 'a lower-case DNS label' },
    protocol: { type: 'string', enum: [...DATABASE_PROTOCOLS] },
    uri: str(2048, 'host:port of the database'),
    description: { type: 'string', maxLength: 512 },
    awsRegion: str(32),
    redshiftClusterId: str(63),
    staticLabels: labelMap('database labels'),
  },
} as const;

export const awsMatcher = {
  type: 'object',
  additionalProperties: false,
  required: ['types', 'regions'],
  properties: {
    types: { type: 'array', minItems: 1, maxItems: 9, items: { type: 'string', enum: [...DISCOVERY_AWS_TYPES] } },
    regions: { type: 'array', minItems: 1, maxItems: 32, items: str(32), description: 'AWS regions, or ["*"] for all' },
    tags: selector('AWS tags to match; {"*": "*"} matches any'),
    ssmDocumentName: str(128, 'EC2: the SSM document that installs Teleport'),
    installTokenName: str(128, 'EC2: the IAM join token discovered instances use'),
    assumeRoleArn: str(2048),
  },
} as const;

export const discoveryOptions = {
  type: 'object',
  additionalProperties: false,
  required: ['aws'],
  properties: {
    group: str(128, 'discovery_group: Discovery Services watching the same resources share one'),
    aws: { type: 'array', minItems: 1, maxItems: 16, items: awsMatcher },
  },
} as const;

/** Role options of an assignment body and view. */
export const assignmentOptions = {
  commandLabels: { type: 'array', maxItems: 32, items: commandLabel, description: 'dynamic node labels (ssh_service.commands)' },
  advertiseIp: str(253, 'teleport.advertise_ip: an address, or "private-ip"'),
  joinVia: { type: 'string', enum: [...JOIN_VIA], description: "overrides the cluster's joinVia for this instance" },
  kube: kubeOptions,
  apps: { type: 'array', minItems: 1, maxItems: 64, items: appSpec },
  databases: { type: 'array', minItems: 1, maxItems: 64, items: databaseSpec },
  discovery: discoveryOptions,
} as const;

const nullable = <T extends { type: string }>(schema: T) => ({ ...schema, type: [schema.type, 'null'] }) as const;
const nullableEnum = (values: readonly string[], description: string) =>
  ({ type: ['string', 'null'], enum: [...values, null], description }) as const;
const hostPort = (description: string) => nullable({ type: 'string', maxLength: 260, description });
const positive = (description: string) => nullable({ type: 'integer', minimum: 1, maximum: 1_000_000_000, description });

/** Optional cluster settings; null removes one (it falls back to its default). */
export const layoutSettings = {
  joinMethod: nullableEnum(JOIN_METHODS, 'token (a token file from SSM, default) or iam (no secret)'),
  iamTokenName: nullable({ type: 'string', maxLength: 128, description: 'the IAM join token resource, with joinMethod iam' }),
  joinVia: nullableEnum(JOIN_VIA, 'auth (auth_server on 3025, default) or proxy (proxy_server, reverse tunnel)'),
  proxyListenerMode: nullableEnum(PROXY_LISTENER_MODES, 'separate (3023/3024/3080, default) or multiplex (TLS routing on 443)'),
  tlsSource: nullableEnum(TLS_SOURCES, 'letsencrypt (certificate from S3, default) or acm (terminated on a load balancer)'),
  sshPublicAddr: hostPort('separate listeners: where clients reach the proxy SSH port'),
  tunnelPublicAddr: hostPort('separate listeners: where agents reach the reverse tunnel'),
  kubePublicAddr: hostPort('separate listeners: a Kubernetes listener (3026) advertised here'),
  mysqlPublicAddr: hostPort('separate listeners: a MySQL listener (3036) advertised here'),
  postgresPublicAddr: hostPort('separate listeners: a PostgreSQL listener (5432) advertised here'),
  mongoPublicAddr: hostPort('separate listeners: a MongoDB listener (27017) advertised here'),
  maxConnections: positive('teleport.connection_limits.max_connections'),
  maxUsers: positive('teleport.connection_limits.max_users'),
  logSeverity: nullableEnum(LOG_SEVERITY_SETTINGS, 'teleport.log.severity (default INFO)'),
  logFormat: nullableEnum(LOG_FORMATS, 'teleport.log.format.output (default text)'),
  authType: nullableEnum(AUTH_TYPES, 'auth_service.authentication.type'),
  secondFactor: nullableEnum(SECOND_FACTORS, 'auth_service.authentication.second_factor'),
  keepAliveInterval: nullable({ type: 'string', maxLength: 32, description: 'auth_service.keep_alive_interval, e.g. 1m' }),
  keepAliveCountMax: positive('auth_service.keep_alive_count_max'),
  enterprise: nullable({ type: 'boolean', description: 'Teleport Enterprise: auth servers take their license from SSM' }),
  httpsProxy: nullable({ type: 'string', maxLength: 2048, description: 'HTTPS_PROXY in /etc/default/teleport' }),
  httpProxy: nullable({ type: 'string', maxLength: 2048, description: 'HTTP_PROXY in /etc/default/teleport' }),
  noProxy: nullable({ type: 'string', maxLength: 4096, description: 'NO_PROXY in /etc/default/teleport' }),
  trustRole: nullableEnum(
    TRUST_ROLES,
    'trusted clusters: standalone (default), root (publishes tokens/trusted_cluster) or leaf (trusts rootClusterName)',
  ),
  rootClusterName: nullable({ type: 'string', maxLength: 253, description: "with trustRole leaf: the root cluster's name" }),
  rootWebProxyAddr: hostPort("with trustRole leaf: host:port of the root's web proxy"),
  rootTunnelAddr: hostPort("with trustRole leaf: host:port of the root's reverse tunnel (default: rootWebProxyAddr)"),
  rootRoleMap: nullable({
    type: 'array',
    maxItems: 64,
    description: "with trustRole leaf: the root's roles (remote: a name, * or a regular expression) mapped to local roles",
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['remote', 'local'],
      properties: {
        remote: { type: 'string', maxLength: 256 },
        local: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 256 } },
      },
    },
  }),
} as const;
