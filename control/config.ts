// teleboot-control's configuration: an optional YAML file, then flags.
import { join } from 'node:path';
import { parseDuration } from '../contract/duration';
import { ConfigError, DURATION_SCHEMA, HOST_PORT_SCHEMA, loadYamlConfig, REGION_SCHEMA, validateConfig } from '../contract/config-file';
import {
  ACME_CONFIG_SCHEMA,
  AWS_CONFIG_SCHEMA,
  acmeConfigFrom,
  awsConfigFrom,
  type AcmeConfig,
  type AcmeConfigFile,
  type AwsConfig,
  type AwsConfigFile,
} from './acme/config';
import { CA_CONFIG_SCHEMA, caConfigFrom, type CaConfig, type CaConfigFile } from './cluster-ca';
import { PG_TLS_MODES, pgTarget, type PgTlsMode } from './store/postgres-target';

export interface ControlConfigFile {
  data_dir?: string;
  grpc_listen?: string;
  rest_listen?: string;
  rest_tls?: boolean;
  store?: {
    type?: 'sqlite' | 'postgres';
    path?: string;
    url?: string;
    password_file?: string;
    tls?: { mode: PgTlsMode; ca_file?: string };
  };
  tls?: { cert_file?: string; key_file?: string; ca_file?: string; ca_key_file?: string; server_names?: string[] };
  ca?: CaConfigFile;
  enrollment?: {
    join_token_file?: string;
    bootstrap_token?: boolean;
    ec2?: {
      allowed_accounts: string[];
      allowed_regions?: string[];
      certificates_dir?: string;
      describe_instances?: boolean;
      ec2_endpoint?: string;
    };
  };
  rest_auth?: { probes_public?: boolean };
  rate_limits?: {
    enroll_per_minute?: number;
    rest_writes_per_minute?: number;
    rest_reads_per_minute?: number;
    grpc_calls_per_minute?: number;
    exempt_loopback?: boolean;
  };
  audit?: { max_age?: string; max_rows?: number; prune_interval?: string };
  client_certificate_lifetime?: string;
  heartbeat_interval?: string;
  publisher_lease?: string;
  log_level?: string;
  acme?: AcmeConfigFile;
  aws?: AwsConfigFile;
}

const addr = HOST_PORT_SCHEMA;
const duration = DURATION_SCHEMA;

export const CONTROL_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    data_dir: { type: 'string', minLength: 1 },
    grpc_listen: addr,
    rest_listen: addr,
    rest_tls: { type: 'boolean' },
    store: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { enum: ['sqlite', 'postgres'] },
        path: { type: 'string', minLength: 1 },
        url: { type: 'string', pattern: '^postgres(ql)?://' },
        password_file: { type: 'string', minLength: 1 },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['mode'],
          properties: { mode: { enum: PG_TLS_MODES }, ca_file: { type: 'string', minLength: 1 } },
        },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cert_file: { type: 'string' },
        key_file: { type: 'string' },
        ca_file: { type: 'string' },
        ca_key_file: { type: 'string' },
        server_names: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
      },
    },
    ca: CA_CONFIG_SCHEMA,
    enrollment: {
      type: 'object',
      additionalProperties: false,
      properties: {
        join_token_file: { type: 'string', minLength: 1 },
        bootstrap_token: { type: 'boolean' },
        ec2: {
          type: 'object',
          additionalProperties: false,
          required: ['allowed_accounts'],
          properties: {
            allowed_accounts: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^\\d{12}$' } },
            allowed_regions: { type: 'array', items: REGION_SCHEMA },
            certificates_dir: { type: 'string', minLength: 1 },
            describe_instances: { type: 'boolean' },
            ec2_endpoint: { type: 'string', pattern: '^https?://' },
          },
        },
      },
    },
    rest_auth: { type: 'object', additionalProperties: false, properties: { probes_public: { type: 'boolean' } } },
    rate_limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enroll_per_minute: { type: 'integer', minimum: 0 },
        rest_writes_per_minute: { type: 'integer', minimum: 0 },
        rest_reads_per_minute: { type: 'integer', minimum: 0 },
        grpc_calls_per_minute: { type: 'integer', minimum: 0 },
        exempt_loopback: { type: 'boolean' },
      },
    },
    audit: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_age: duration,
        max_rows: { type: 'integer', minimum: 1000, maximum: 1_000_000_000 },
        prune_interval: duration,
      },
    },
    client_certificate_lifetime: duration,
    heartbeat_interval: duration,
    publisher_lease: duration,
    log_level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] },
    acme: ACME_CONFIG_SCHEMA,
    aws: AWS_CONFIG_SCHEMA,
  },
} as const;

export interface ControlConfig {
  dataDir: string;
  grpcListen: string;
  restListen: string;
  restTls: boolean;
  /** The SQLite file (the default store; also named by the data directory's checks). */
  storePath: string;
  /** PostgreSQL instead of SQLite (store.url or --store). */
  postgres?: PostgresConfig;
  tls: { certFile?: string; keyFile?: string; caFile?: string; caKeyFile?: string; serverNames: string[] };
  /** Where the cluster CA (and with ssm, the join token) lives. */
  ca: CaConfig;
  joinTokenFile: string;
  /** Accept the pre-shared token in joinTokenFile (bootstrap and development). */
  bootstrapToken: boolean;
  /** EC2 instance identity enrollment, when configured. */
  ec2?: { allowedAccounts: string[]; allowedRegions: string[]; certificatesDir?: string; describeInstances: boolean; ec2Endpoint?: string };
  restAuth: { probesPublic: boolean };
  rateLimits: {
    enrollPerMinute: number;
    restWritesPerMinute: number;
    /** Per API token. */
    restReadsPerMinute: number;
    /** Per instance. */
    grpcCallsPerMinute: number;
    exemptLoopback: boolean;
  };
  /** How long audit events are kept, how many at most, and how often the older ones are removed. */
  audit: { maxAgeMs: number; maxRows: number; pruneIntervalMs: number };
  clientCertificateLifetimeMs: number;
  heartbeatIntervalMs: number;
  /** How long the publisher lease lasts without renewal. */
  publisherLeaseMs: number;
  logLevel: string;
  /** The proxy certificate from an ACME CA (Let's Encrypt), when configured. */
  acme?: AcmeConfig;
  /** AWS endpoints and region for S3, SSM and Route 53 (the cluster's region by default). */
  aws: AwsConfig;
}

/** Where the PostgreSQL store is; its password is read from passwordFile, or PGPASSWORD, never from the URL. */
export interface PostgresConfig {
  url: string;
  passwordFile?: string;
  tls?: { mode: PgTlsMode; caFile?: string };
}

export const CONTROL_DEFAULTS = {
  dataDir: '/var/lib/teleboot-control',
  grpcListen: '0.0.0.0:7443',
  restListen: '127.0.0.1:7080',
  clientCertificateLifetime: '24h',
  heartbeatInterval: '30s',
  publisherLease: '30s',
  /** 90 days. */
  auditMaxAge: '2160h',
  auditMaxRows: 1_000_000,
  auditPruneInterval: '1h',
};

export interface ControlFlags {
  config?: string;
  'data-dir'?: string;
  'grpc-listen'?: string;
  'rest-listen'?: string;
  'log-level'?: string;
  'heartbeat-interval'?: string;
  'publisher-lease'?: string;
  'ca-source'?: string;
  /** postgres://user@host:port/database: the PostgreSQL store instead of SQLite. */
  store?: string;
}

/** The settings each command-line flag overrides. */
const FLAG_SETTINGS = {
  'data-dir': 'data_dir',
  'grpc-listen': 'grpc_listen',
  'rest-listen': 'rest_listen',
  'log-level': 'log_level',
  'heartbeat-interval': 'heartbeat_interval',
  'publisher-lease': 'publisher_lease',
} as const;

export function loadControlConfig(flags: ControlFlags): ControlConfig {
  const file = flags.config ? loadYamlConfig<ControlConfigFile>(flags.config, CONTROL_CONFIG_SCHEMA) : {};
  const fromFlags: Record<string, string> = {};
  const labels: Record<string, string> = {};
  for (const [flag, key] of Object.entries(FLAG_SETTINGS)) {
    const value = flags[flag as keyof typeof FLAG_SETTINGS];
    if (value) fromFlags[key] = value;
    labels[key] = `--${flag}`;
  }
  // The flags alone first, so that a bad value is named by its flag.
  validateConfig<ControlConfigFile>(fromFlags, CONTROL_CONFIG_SCHEMA, 'the command line', labels);
  const merged = validateConfig<ControlConfigFile>({ ...file, ...fromFlags }, CONTROL_CONFIG_SCHEMA, flags.config ?? 'the configuration');
  if (flags.store !== undefined) merged.store = storeFromFlag(flags.store, merged.store);
  const dataDir = merged.data_dir ?? CONTROL_DEFAULTS.dataDir;
  const tls = merged.tls ?? {};
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    throw new ConfigError('tls: give both cert_file and key_file, or neither (a certificate is then generated)');
  }
  return {
    dataDir,
    grpcListen: merged.grpc_listen ?? CONTROL_DEFAULTS.grpcListen,
    restListen: merged.rest_listen ?? CONTROL_DEFAULTS.restListen,
    restTls: merged.rest_tls ?? true,
    storePath: merged.store?.path ?? join(dataDir, 'control.db'),
    postgres: postgresConfigFrom(merged.store, flags.config ?? 'the configuration'),
    tls: {
      certFile: tls.cert_file,
      keyFile: tls.key_file,
      caFile: tls.ca_file,
      caKeyFile: tls.ca_key_file,
      serverNames: tls.server_names ?? ['localhost', '127.0.0.1'],
    },
    ca: caConfigFrom(
      flags['ca-source'] ?? merged.ca?.source,
      merged.ca?.kms_key_id,
      flags['ca-source'] ? '--ca-source' : `${flags.config ?? 'the configuration'}: ca.source`,
      flags.config ?? 'the configuration',
    ),
    joinTokenFile: merged.enrollment?.join_token_file ?? join(dataDir, 'join-token'),
    bootstrapToken: merged.enrollment?.bootstrap_token ?? true,
    ec2: merged.enrollment?.ec2 && {
      allowedAccounts: merged.enrollment.ec2.allowed_accounts,
      allowedRegions: merged.enrollment.ec2.allowed_regions ?? [],
      certificatesDir: merged.enrollment.ec2.certificates_dir,
      describeInstances: merged.enrollment.ec2.describe_instances ?? false,
      ec2Endpoint: merged.enrollment.ec2.ec2_endpoint,
    },
    restAuth: { probesPublic: merged.rest_auth?.probes_public ?? true },
    rateLimits: {
      enrollPerMinute: merged.rate_limits?.enroll_per_minute ?? 60,
      restWritesPerMinute: merged.rate_limits?.rest_writes_per_minute ?? 120,
      restReadsPerMinute: merged.rate_limits?.rest_reads_per_minute ?? 1200,
      grpcCallsPerMinute: merged.rate_limits?.grpc_calls_per_minute ?? 300,
      exemptLoopback: merged.rate_limits?.exempt_loopback ?? true,
    },
    audit: {
      maxAgeMs: parseDuration(merged.audit?.max_age ?? CONTROL_DEFAULTS.auditMaxAge),
      maxRows: merged.audit?.max_rows ?? CONTROL_DEFAULTS.auditMaxRows,
      pruneIntervalMs: parseDuration(merged.audit?.prune_interval ?? CONTROL_DEFAULTS.auditPruneInterval),
    },
    clientCertificateLifetimeMs: parseDuration(merged.client_certificate_lifetime ?? CONTROL_DEFAULTS.clientCertificateLifetime),
    heartbeatIntervalMs: parseDuration(merged.heartbeat_interval ?? CONTROL_DEFAULTS.heartbeatInterval),
    publisherLeaseMs: parseDuration(merged.publisher_lease ?? CONTROL_DEFAULTS.publisherLease),
    logLevel: merged.log_level ?? process.env.TELEBOOT_LOG_LEVEL ?? 'info',
    acme: acmeConfigFrom(merged.acme),
    aws: awsConfigFrom(merged.aws),
  };
}

/** --store URL: the PostgreSQL store, keeping the file's password_file and tls. */
function storeFromFlag(url: string, file: ControlConfigFile['store']): NonNullable<ControlConfigFile['store']> {
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new ConfigError(
      `--store: "${url}" is not a PostgreSQL URL; give postgres://user@host:port/database (SQLite needs no flag: it is the default)`,
    );
  if (hasPassword(url))
    throw new ConfigError(
      '--store: the URL holds a password, which every user of this host can read on the command line; ' +
        'give the URL without it and the password in store.password_file (control.yaml) or the PGPASSWORD environment variable',
    );
  return { ...file, type: 'postgres', url, path: undefined };
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

function postgresConfigFrom(store: ControlConfigFile['store'], source: string): PostgresConfig | undefined {
  const type = store?.type ?? (store?.url ? 'postgres' : 'sqlite');
  if (type === 'sqlite') {
    if (store?.url || store?.password_file || store?.tls)
      throw new ConfigError(
        `${source}: store.url, store.password_file and store.tls are for type: postgres (the SQLite store takes store.path)`,
      );
    return undefined;
  }
  if (!store?.url) throw new ConfigError(`${source}: store type postgres needs store.url (postgres://user@host:port/database)`);
  if (store.path) throw new ConfigError(`${source}: store.path is for SQLite; PostgreSQL takes store.url`);
  if (hasPassword(store.url))
    throw new ConfigError(
      `${source}: store.url holds a password; give the URL without it and the password in store.password_file or the PGPASSWORD environment variable`,
    );
  try {
    pgTarget(store.url);
  } catch (err) {
    throw new ConfigError(`${source}: store.url: ${(err as Error).message}`);
  }
  if (store.tls?.ca_file && store.tls.mode !== 'verify-full')
    throw new ConfigError(`${source}: store.tls.ca_file is used with mode verify-full only (mode ${store.tls.mode} checks no certificate)`);
  return {
    url: store.url,
    passwordFile: store.password_file,
    tls: store.tls && { mode: store.tls.mode, caFile: store.tls.ca_file },
  };
}
