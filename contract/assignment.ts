// What an operator asks an instance to run, declared once: the TypeScript
// types, the REST schemas (control/rest/schemas.ts) and the gRPC mapping
// (contract/wire.ts) all come from these schemas. Shapes only: whether the
// options fit the roles is the renderer's judgement (contract/render).
import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN } from './duration';
import { AllOptional, ConfigFragment, NO_CONTROL_PATTERN, StringEnum, StringMap, Text } from './schema';
import { TeleportRelease } from './teleport-release';

/**
 * Teleport services an instance can run. auth, proxy and node are the
 * classic cluster (seeds 000_*, 001_*); kube, app, db and discovery are
 * agents that reach the cluster through the proxy (seeds 002_*, 003_*, 004_*).
 */
export const SERVICE_ROLES = ['auth', 'proxy', 'node', 'kube', 'app', 'db', 'discovery'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

/** Where joining hosts connect: the auth service (auth_server, 3025) or the proxy (proxy_server, reverse tunnel). */
export const JOIN_VIA = ['auth', 'proxy'] as const;
export type JoinVia = (typeof JOIN_VIA)[number];

/** Protocols of db_service.databases in Teleport's config reference. */
export const DATABASE_PROTOCOLS = [
  'cassandra',
  'clickhouse',
  'clickhouse-http',
  'cockroachdb',
  'dynamodb',
  'elasticsearch',
  'mongodb',
  'mysql',
  'oracle',
  'postgres',
  'redis',
  'snowflake',
  'spanner',
  'sqlserver',
] as const;

/** Resource types an AWS matcher of the Discovery Service finds. */
export const DISCOVERY_AWS_TYPES = [
  'ec2',
  'eks',
  'rds',
  'rdsproxy',
  'redshift',
  'redshift-serverless',
  'elasticache',
  'memorydb',
  'opensearch',
] as const;

/** Teleport label keys: letters, digits and . _ - / (as Teleport accepts them). */
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';

/** Static labels: Teleport label keys, values of one line. */
export const LabelMap = (description: string) =>
  StringMap(Text({ maxLength: 256 }), {
    description,
    maxProperties: 64,
    propertyNames: { pattern: LABEL_KEY_PATTERN },
  });

/** A label selector: keys are label keys or "*", values a value or "*". */
export const Selector = (description: string, limits: { minProperties?: number; maxProperties: number }) =>
  StringMap(Text({ maxLength: 256 }), {
    description,
    ...limits,
    propertyNames: { minLength: 1, maxLength: 128, pattern: NO_CONTROL_PATTERN },
  });

const NonEmpty = (maxLength: number, description?: string) => Text({ minLength: 1, maxLength, ...(description ? { description } : {}) });

/** A dynamic label: Teleport runs `command` every `period` and uses its output (seed 001_*). */
export const CommandLabel = Type.Object(
  {
    name: Type.String({ pattern: LABEL_KEY_PATTERN, examples: ['arch'] }),
    command: Type.Array(NonEmpty(1024), {
      minItems: 1,
      maxItems: 32,
      description: 'program and arguments, e.g. ["/bin/uname", "-p"]',
    }),
    period: Type.String({ pattern: DURATION_PATTERN, description: 'how often to run it, e.g. 1m0s', examples: ['1m0s'] }),
  },
  { additionalProperties: false },
);
export type CommandLabel = Static<typeof CommandLabel>;

/** kubernetes_service: which kube_cluster resources (e.g. found by discovery, seed 004_*) this host serves. */
export const KubeOptions = Type.Object(
  {
    resources: Type.Array(
      Type.Object(
        { labels: Selector('label selector; {"*": "*"} matches every cluster', { maxProperties: 32 }) },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 16 },
    ),
    labels: Type.Optional(LabelMap('static labels of the Kubernetes service')),
  },
  {
    additionalProperties: false,
    description: 'kubernetes_service: which kube_cluster resources (e.g. found by the Discovery Service) this host serves',
  },
);
export type KubeOptions = Static<typeof KubeOptions>;

/** One app of app_service.apps. */
export const AppSpec = Type.Object(
  {
    name: Text({ maxLength: 63, description: 'a lower-case DNS label' }),
    uri: NonEmpty(2048, 'http://, https:// or tcp:// address of the app'),
    ...AllOptional({
      publicAddr: NonEmpty(253, 'DNS name users reach the app at (no port)'),
      description: Text({ maxLength: 512 }),
      labels: LabelMap('app labels'),
      insecureSkipVerify: Type.Boolean(),
    }),
  },
  { additionalProperties: false },
);
export type AppSpec = Static<typeof AppSpec>;

/** One database of db_service.databases. */
export const DatabaseSpec = Type.Object(
  {
    name: Text({ maxLength: 63, description: 'a lower-case DNS label' }),
    protocol: StringEnum(DATABASE_PROTOCOLS),
    uri: NonEmpty(2048, 'host:port of the database'),
    ...AllOptional({
      description: Text({ maxLength: 512 }),
      awsRegion: NonEmpty(32, 'aws.region, e.g. for RDS or Redshift'),
      redshiftClusterId: NonEmpty(63, 'aws.redshift.cluster_id'),
      staticLabels: LabelMap('database labels'),
    }),
  },
  { additionalProperties: false },
);
export type DatabaseSpec = Static<typeof DatabaseSpec>;

/** One discovery_service.aws matcher (seeds 002_*, 004_*). */
export const AwsMatcher = Type.Object(
  {
    types: Type.Array(StringEnum(DISCOVERY_AWS_TYPES), { minItems: 1, maxItems: 9 }),
    regions: Type.Array(NonEmpty(32), { minItems: 1, maxItems: 32, description: 'AWS regions, or ["*"] for all' }),
    ...AllOptional({
      tags: Selector('AWS tags to match; {"*": "*"} matches any', { maxProperties: 32 }),
      ssmDocumentName: NonEmpty(128, 'EC2: the SSM document that installs Teleport (default TeleportDiscoveryInstaller)'),
      installTokenName: NonEmpty(128, 'EC2: the IAM join token discovered instances use (default aws-discovery-iam-token)'),
      assumeRoleArn: NonEmpty(2048),
    }),
  },
  { additionalProperties: false },
);
export type AwsMatcher = Static<typeof AwsMatcher>;

export const DiscoveryOptions = Type.Object(
  {
    group: Type.Optional(NonEmpty(128, 'discovery_group: Discovery Services watching the same resources share one')),
    aws: Type.Array(AwsMatcher, { minItems: 1, maxItems: 16 }),
  },
  { additionalProperties: false },
);
export type DiscoveryOptions = Static<typeof DiscoveryOptions>;

/** The options of the roles in an assignment; each optional. */
export const assignmentOptions = AllOptional({
  commandLabels: Type.Array(CommandLabel, { maxItems: 32, description: 'dynamic node labels (ssh_service.commands)' }),
  advertiseIp: NonEmpty(253, 'teleport.advertise_ip: an address, or "private-ip"'),
  joinVia: StringEnum(JOIN_VIA, { description: "overrides the cluster's joinVia for this instance" }),
  kube: KubeOptions,
  apps: Type.Array(AppSpec, { minItems: 1, maxItems: 64 }),
  databases: Type.Array(DatabaseSpec, { minItems: 1, maxItems: 64 }),
  discovery: DiscoveryOptions,
  configFragment: ConfigFragment("teleport.yaml merged into this instance's config, over the cluster's configFragment"),
  teleport: Type.Object(TeleportRelease.properties, {
    additionalProperties: false,
    description: "overrides the cluster's Teleport release for this instance, key by key",
  }),
});

/** Static labels of the Teleport node (ssh_service.labels). */
export const NodeLabels = LabelMap('Teleport node labels (ssh_service.labels)');
/** Overrides the Teleport nodename; the instance hostname otherwise. */
export const Nodename = NonEmpty(253, 'overrides the Teleport nodename (the instance hostname otherwise)');

/** What an operator asked an instance to run. */
export const Assignment = Type.Object(
  {
    roles: Type.Array(StringEnum(SERVICE_ROLES)),
    labels: NodeLabels,
    nodename: Type.Optional(Nodename),
    ...assignmentOptions,
  },
  { additionalProperties: false },
);
export type Assignment = Static<typeof Assignment>;
