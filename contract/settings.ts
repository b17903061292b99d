// The cluster settings, declared once: the TypeScript types, the REST schema
// of GET/PATCH /v1/settings (published in /openapi.json), the defaults, the
// settings a PATCH may remove with null, and the gRPC mapping's key list
// (contract/wire.ts) all come from this one schema. Whether settings fit
// together is judged by control/validation.ts and the renderer.
import { Type, type Static, type StringOptions, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { JOIN_VIA } from './assignment';
import { AllOptional, ConfigFragment, defaultsOf, Nullable, StringEnum, Text, withoutDefault } from './schema';
import { TeleportRelease } from './teleport-release';

/** How hosts prove themselves when they join: a token file from SSM, or their IAM role (seed 002_*). */
export const JOIN_METHODS = ['token', 'iam'] as const;
export type JoinMethodSetting = (typeof JOIN_METHODS)[number];
/** Proxy listeners: one per protocol (3023/3024/3080), or TLS routing on one port (443). */
export const PROXY_LISTENER_MODES = ['separate', 'multiplex'] as const;
export type ProxyListenerMode = (typeof PROXY_LISTENER_MODES)[number];
/** Where the proxy's web certificate comes from: Let's Encrypt via S3, or ACM on a load balancer. */
export const TLS_SOURCES = ['letsencrypt', 'acm'] as const;
export type TlsSource = (typeof TLS_SOURCES)[number];
/** teleport.log.severity */
export const LOG_SEVERITY_SETTINGS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
/** teleport.log.format.output */
export const LOG_FORMATS = ['text', 'json'] as const;
/** auth_service.authentication.type; oidc and saml need Teleport Enterprise. */
export const AUTH_TYPES = ['local', 'github', 'oidc', 'saml'] as const;
/** auth_service.authentication.second_factor values Teleport 16+ accepts. */
export const SECOND_FACTORS = ['on', 'otp', 'webauthn'] as const;
/**
 * Trusted clusters (seed 000_*): a standalone cluster; a root, whose
 * publisher also publishes a trusted_cluster join token; or a leaf, whose
 * publisher creates a trusted_cluster resource with the root's token.
 */
export const TRUST_ROLES = ['standalone', 'root', 'leaf'] as const;
export type TrustRole = (typeof TRUST_ROLES)[number];
/** proxy_protocol of auth and proxy servers: on requires a PROXY header on every connection, off refuses it. */
export const PROXY_PROTOCOL_MODES = ['on', 'off'] as const;
/** teleport.cache of auth servers and proxies (Teleport's AMI writes in-memory for proxies). */
export const CACHE_SETTINGS = ['in-memory', 'off'] as const;
/** The public addresses of the proxy's separate listeners (ssh, tunnel, kube, databases); TLS routing has none. */
export const SEPARATE_LISTENER_ADDRS = [
  'sshPublicAddr',
  'tunnelPublicAddr',
  'kubePublicAddr',
  'mysqlPublicAddr',
  'postgresPublicAddr',
  'mongoPublicAddr',
] as const;
/**
 * Files an agent wrote that were changed by hand (drift): put back at the
 * next change the host applies, or at once.
 */
export const DRIFT_REPAIR_MODES = ['next-change', 'immediate'] as const;
export type DriftRepairMode = (typeof DRIFT_REPAIR_MODES)[number];
/** Where Teleport keeps its state: on local disk, or in DynamoDB (+ S3 for recordings). */
export const STORAGE_TYPES = ['dir', 'dynamodb'] as const;

const HostPort = (description: string, options: StringOptions = {}) => Text({ maxLength: 260, description, ...options });
const Positive = (description: string) => Type.Integer({ minimum: 1, maximum: 1_000_000_000, description });

export const StorageSettings = Type.Object(
  {
    type: StringEnum(STORAGE_TYPES, { description: 'dir keeps Teleport state on local disk; dynamodb in DynamoDB (+ S3 for recordings)' }),
    ...AllOptional({
      tableName: Text({ maxLength: 255 }),
      region: Text({ maxLength: 32 }),
      auditEventsUri: Type.Array(Text({ maxLength: 512 }), { maxItems: 4 }),
      auditSessionsUri: Text({ maxLength: 512 }),
    }),
  },
  { additionalProperties: false, default: { type: 'dir' } },
);
export type StorageSettings = Static<typeof StorageSettings>;

/** One role_map entry of a trusted_cluster resource: the root's role `remote` ("*", a name or a regular expression) maps to `local`. */
export const RoleMapping = Type.Object(
  {
    remote: Text({ maxLength: 256 }),
    local: Type.Array(Text({ maxLength: 256 }), { maxItems: 32 }),
  },
  { additionalProperties: false },
);
export type RoleMapping = Static<typeof RoleMapping>;

/**
 * Rollout pace of one role group: a host count or a percentage of the
 * group's hosts ("10%"), resolved by control/rollout/policy.ts.
 */
const HostShare = (description: string, example: number | string) =>
  Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.String({ pattern: '^(100|[1-9][0-9]?)%$' })], {
    description,
    examples: [example],
  });
export const RolloutPace = Type.Object(
  AllOptional({
    maxUnavailable: HostShare('hosts of this group applying a change at once: a count or "N%" (ceil, at least 1)', 2),
    failureThreshold: HostShare('failed hosts of this group that halt the rollout: a count or "N%" (ceil, at least 1)', '5%'),
  }),
  { additionalProperties: false },
);
export type RolloutPace = Static<typeof RolloutPace>;
/** The role groups a rollout goes through, in Teleport's upgrade order. */
export const ROLLOUT_GROUPS = ['auth', 'proxy', 'other'] as const;
export type RolloutGroup = (typeof ROLLOUT_GROUPS)[number];
/**
 * Cluster setting `rolloutPace`: the pace per role group (docs/ROLLOUTS.md). A
 * group left out takes the defaults: 1 and 1 for auth and proxy, 10% and 5%
 * for the rest.
 */
export const RolloutPolicy = Type.Object(AllOptional({ auth: RolloutPace, proxy: RolloutPace, other: RolloutPace }), {
  additionalProperties: false,
  description: 'pace and failure threshold of rollouts per role group (auth, proxy, other); read by the control server only',
});
export type RolloutPolicy = Static<typeof RolloutPolicy>;

/** waves: paced per group (the default); all-at-once: every host at once, the audited escape for emergencies. */
export const ROLLOUT_STRATEGIES = ['waves', 'all-at-once'] as const;
export type RolloutStrategy = (typeof ROLLOUT_STRATEGIES)[number];
/**
 * `"rollout": {"strategy": "all-at-once"}` beside a change in a request body
 * (settings, an assignment, a rule): how that change rolls out. The pace
 * itself is the setting `rolloutPace`, so the two never share a key.
 */
export const RolloutRequest = Type.Object(
  { strategy: StringEnum(ROLLOUT_STRATEGIES, { description: 'waves (default) or all-at-once (no pace, no halt; audited)' }) },
  { additionalProperties: false },
);
export type RolloutRequest = Static<typeof RolloutRequest>;

/** Settings every cluster has (empty until an operator sets them). */
const requiredSettings = {
  clusterName: Text({ maxLength: 253, default: '' }),
  authAddr: HostPort('host:port of the auth service, e.g. auth.example.internal:3025', { default: '' }),
  proxyPublicAddr: HostPort('host:port users reach the proxy at, e.g. teleport.example.com:443', { default: '' }),
  s3Bucket: Text({ maxLength: 63, default: '' }),
  ssmPrefix: Text({ maxLength: 512, default: '/teleport', description: 'prefix of the SSM parameters, /teleport by convention' }),
  region: Text({ maxLength: 32, default: '' }),
  storage: StorageSettings,
};

/**
 * Settings that may be absent: settings saved before they existed load
 * unchanged, and an absent one means its default. A PATCH removes one with null.
 */
const optionalSettings = {
  joinMethod: StringEnum(JOIN_METHODS, { description: 'token (a token file from SSM, default) or iam (no secret)', default: 'token' }),
  iamTokenName: Text({ maxLength: 128, description: 'the IAM join token resource, with joinMethod iam' }),
  joinVia: StringEnum(JOIN_VIA, {
    description: 'auth (auth_server on 3025, default) or proxy (proxy_server, reverse tunnel)',
    default: 'auth',
  }),
  proxyListenerMode: StringEnum(PROXY_LISTENER_MODES, {
    description: 'separate (3023/3024/3080, default) or multiplex (TLS routing on 443)',
    default: 'separate',
  }),
  tlsSource: StringEnum(TLS_SOURCES, {
    description: 'letsencrypt (certificate from S3, default) or acm (terminated on a load balancer)',
    default: 'letsencrypt',
  }),
  sshPublicAddr: HostPort('separate listeners: where clients reach the proxy SSH port'),
  tunnelPublicAddr: HostPort('separate listeners: where agents reach the reverse tunnel'),
  kubePublicAddr: HostPort('separate listeners: a Kubernetes listener (3026) advertised here'),
  mysqlPublicAddr: HostPort('separate listeners: a MySQL listener (3036) advertised here'),
  postgresPublicAddr: HostPort('separate listeners: a PostgreSQL listener (5432) advertised here'),
  mongoPublicAddr: HostPort('separate listeners: a MongoDB listener (27017) advertised here'),
  maxConnections: Positive('teleport.connection_limits.max_connections'),
  maxUsers: Positive('teleport.connection_limits.max_users'),
  logSeverity: StringEnum(LOG_SEVERITY_SETTINGS, { description: 'teleport.log.severity (default INFO)' }),
  logFormat: StringEnum(LOG_FORMATS, { description: 'teleport.log.format.output (default text)' }),
  authType: StringEnum(AUTH_TYPES, { description: 'auth_service.authentication.type' }),
  secondFactor: StringEnum(SECOND_FACTORS, { description: 'auth_service.authentication.second_factor' }),
  keepAliveInterval: Text({ maxLength: 32, description: 'auth_service.keep_alive_interval, e.g. 1m' }),
  keepAliveCountMax: Positive('auth_service.keep_alive_count_max'),
  enterprise: Type.Boolean({ description: 'Teleport Enterprise: auth servers take their license from SSM' }),
  httpsProxy: Text({ maxLength: 2048, description: 'HTTPS_PROXY in /etc/default/teleport' }),
  httpProxy: Text({ maxLength: 2048, description: 'HTTP_PROXY in /etc/default/teleport' }),
  noProxy: Text({ maxLength: 4096, description: 'NO_PROXY in /etc/default/teleport' }),
  trustRole: StringEnum(TRUST_ROLES, {
    description: 'trusted clusters: standalone (default), root (publishes tokens/trusted_cluster) or leaf (trusts rootClusterName)',
    default: 'standalone',
  }),
  rootClusterName: Text({ maxLength: 253, description: "with trustRole leaf: the root cluster's name" }),
  rootWebProxyAddr: HostPort("with trustRole leaf: host:port of the root's web proxy"),
  rootTunnelAddr: HostPort("with trustRole leaf: host:port of the root's reverse tunnel (default: rootWebProxyAddr)"),
  rootRoleMap: Type.Array(RoleMapping, {
    maxItems: 64,
    description: "with trustRole leaf: the root's roles (remote: a name, * or a regular expression) mapped to local roles",
  }),
  fips: Type.Boolean({
    description: 'FIPS mode: teleport start --fips with the Enterprise FIPS build, local authentication off; needs enterprise',
  }),
  proxyProtocol: StringEnum(PROXY_PROTOCOL_MODES, {
    description: 'proxy_protocol of auth and proxy servers behind a load balancer that sends (on) or never sends (off) PROXY headers',
  }),
  proxyWebListenPort: Type.Integer({
    minimum: 1,
    maximum: 65535,
    description:
      "port of the proxy's web listener: 443 on a bare host, 3080 behind a load balancer (default: 443 with TLS routing and Let's Encrypt, else 3080)",
  }),
  behindLoadBalancer: Type.Boolean({
    description:
      "a load balancer forwards proxyPublicAddr to the proxies, so its port may differ from the web listener's (ACM implies one)",
  }),
  cache: StringEnum(CACHE_SETTINGS, { description: 'teleport.cache of auth servers and proxies: in-memory or off' }),
  rolloutPace: RolloutPolicy,
  teleport: Type.Object(TeleportRelease.properties, {
    additionalProperties: false,
    description: 'the Teleport release every host runs (agents install it); unset: teleboot leaves the installed Teleport alone',
  }),
  configFragment: ConfigFragment(
    'teleport.yaml merged into every host\'s config (keys teleboot manages are refused, unknown keys warned), e.g. {"auth_service": {"session_recording": "node"}}',
  ),
  driftRepair: StringEnum(DRIFT_REPAIR_MODES, {
    description:
      'teleport.yaml, the unit or /etc/default/teleport changed by hand on a host: put back at the next change it applies (next-change, default) or at once (immediate)',
    default: 'next-change',
  }),
};

/**
 * Settings only the control server reads: they render no file and do not
 * travel to agents (contract/wire.ts maps the others).
 */
export const CONTROL_ONLY_SETTINGS = ['rolloutPace'] as const;
export type ControlOnlySetting = (typeof CONTROL_ONLY_SETTINGS)[number];

export const ClusterSettings = Type.Object({ ...requiredSettings, ...AllOptional(optionalSettings) }, { additionalProperties: false });
export type ClusterSettings = Static<typeof ClusterSettings>;

/** What a new cluster starts with, and what a setting removed with null falls back to. */
export const DEFAULT_CLUSTER_SETTINGS: ClusterSettings = defaultsOf(ClusterSettings);

/** Cluster settings that may be removed with null in a PATCH (they fall back to their default). */
export const OPTIONAL_CLUSTER_SETTINGS = Object.keys(optionalSettings) as Array<keyof typeof optionalSettings>;
export type OptionalClusterSetting = keyof typeof optionalSettings;

/** Storage in a PATCH: the keys given are merged into the current storage (type "dir" resets it). */
const StoragePatch = Type.Object(AllOptional(StorageSettings.properties), { additionalProperties: false });
const { storage: _storage, ...requiredScalars } = requiredSettings;
const patchOf = <P extends Record<string, TSchema>>(p: P) =>
  AllOptional(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, withoutDefault(v)])) as P);
const nullableOf = <P extends Record<string, TSchema>>(p: P) =>
  AllOptional(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Nullable(v)])) as { [K in keyof P]: TUnsafe<Static<P[K]> | null> });

/**
 * PATCH /v1/settings (and its answer): any subset of the settings; null
 * removes an optional one. No `default`s: ajv fills them in, and a PATCH
 * must not reset what it does not name.
 */
export const ClusterSettingsPatch = Type.Object(
  { ...patchOf(requiredScalars), storage: Type.Optional(StoragePatch), ...nullableOf(optionalSettings) },
  { additionalProperties: false },
);
export type ClusterSettingsPatch = Static<typeof ClusterSettingsPatch>;
