// /etc/teleboot/agent.yaml: baked into the AMI. Validated before the agent
// does anything; every error names the setting.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostPortProblem, parseHostPort } from '../contract/address';
import { parseDuration } from '../contract/duration';
import { ConfigError, DURATION_SCHEMA, HOST_PORT_SCHEMA, loadYamlConfig, REGION_SCHEMA, URL_SCHEMA } from '../contract/config-file';

export const DEFAULT_AGENT_CONFIG_PATH = '/etc/teleboot/agent.yaml';

interface AgentConfigFile {
  control: { endpoints: string[]; ca_file: string; server_name?: string };
  enrollment: { method?: 'ec2' | 'join_token'; join_token_file?: string; ec2_signature?: 'pkcs7' | 'rsa2048' };
  paths?: {
    state_dir?: string;
    teleport_config?: string;
    teleport_data_dir?: string;
    secrets_dir?: string;
    unit_dir?: string;
    environment_file?: string;
  };
  teleport?: {
    binary?: string;
    tctl?: string;
    tsh?: string;
    install_dir?: string;
    package_manager?: 'apt' | 'dnf' | 'yum';
    diag_addr?: string;
    ready_timeout?: string;
    user?: string;
    group?: string;
  };
  publisher?: { roles?: string[]; token_ttl?: string; rotate_every?: string };
  service_manager?: { type?: 'systemd' | 'process'; systemctl?: string; unit_name?: string };
  aws?: { region?: string; imds_endpoint?: string; ssm_endpoint?: string; s3_endpoint?: string; s3_force_path_style?: boolean };
  heartbeat_interval?: string;
  certificate_check_interval?: string;
  retry?: { initial_delay?: string; max_delay?: string };
  log_level?: string;
}

const hostPort = HOST_PORT_SCHEMA;
const absPath = { type: 'string', pattern: '^/[^\\s]*$' };
const url = URL_SCHEMA;

export const AGENT_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['control', 'enrollment'],
  properties: {
    control: {
      type: 'object',
      additionalProperties: false,
      required: ['endpoints', 'ca_file'],
      properties: {
        endpoints: { type: 'array', minItems: 1, items: hostPort },
        ca_file: absPath,
        server_name: { type: 'string', minLength: 1 },
      },
    },
    enrollment: {
      type: 'object',
      additionalProperties: false,
      properties: { method: { enum: ['ec2', 'join_token'] }, join_token_file: absPath, ec2_signature: { enum: ['pkcs7', 'rsa2048'] } },
      // A join token enrollment needs its file.
      if: { not: { properties: { method: { const: 'ec2' } }, required: ['method'] } },
      then: { required: ['join_token_file'] },
    },
    paths: {
      type: 'object',
      additionalProperties: false,
      properties: {
        state_dir: absPath,
        teleport_config: absPath,
        teleport_data_dir: absPath,
        secrets_dir: absPath,
        unit_dir: absPath,
        environment_file: absPath,
      },
    },
    teleport: {
      type: 'object',
      additionalProperties: false,
      properties: {
        binary: absPath,
        tctl: absPath,
        tsh: absPath,
        install_dir: absPath,
        package_manager: { enum: ['apt', 'dnf', 'yum'] },
        diag_addr: hostPort,
        ready_timeout: DURATION_SCHEMA,
        user: { type: 'string', pattern: '^[a-z_][a-z0-9_-]*$' },
        group: { type: 'string', pattern: '^[a-z_][a-z0-9_-]*$' },
      },
    },
    publisher: {
      type: 'object',
      additionalProperties: false,
      properties: {
        roles: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['node', 'proxy', 'kube', 'app', 'db', 'discovery'] } },
        token_ttl: DURATION_SCHEMA,
        rotate_every: DURATION_SCHEMA,
      },
    },
    service_manager: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { enum: ['systemd', 'process'] },
        systemctl: absPath,
        unit_name: { type: 'string', pattern: '^[\\w@.-]+\\.service$' },
      },
    },
    aws: {
      type: 'object',
      additionalProperties: false,
      properties: {
        region: REGION_SCHEMA,
        imds_endpoint: url,
        ssm_endpoint: url,
        s3_endpoint: url,
        s3_force_path_style: { type: 'boolean' },
      },
    },
    heartbeat_interval: DURATION_SCHEMA,
    certificate_check_interval: DURATION_SCHEMA,
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: { initial_delay: DURATION_SCHEMA, max_delay: DURATION_SCHEMA },
    },
    log_level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] },
  },
} as const;

export interface AgentConfig {
  source: string;
  control: { endpoints: string[]; caPem: string; serverName?: string };
  /** How the agent proves who it is: the signed EC2 identity document, or a join token. */
  enrollmentMethod: 'ec2' | 'join_token';
  /** With enrollment.method join_token (the default). */
  joinTokenFile?: string;
  /** Which signature of the identity document to present: pkcs7 (DSA; the shipped AWS certificates) or rsa2048. */
  ec2Signature: 'pkcs7' | 'rsa2048';
  paths: {
    stateDir: string;
    teleportConfig: string;
    teleportDataDir: string;
    secretsDir: string;
    unitDir: string;
    environmentFile: string;
  };
  teleport: {
    binary: string;
    tctl: string;
    /** Default /usr/local/bin/tsh. */
    tsh?: string;
    /** Where releases are installed side by side (one directory per version) when the settings name one; default /opt/teleport. */
    installDir?: string;
    /** The package route: apt, dnf or yum (default: whichever the host has). */
    packageManager?: 'apt' | 'dnf' | 'yum';
    diagAddr: string;
    readyTimeoutMs: number;
    user: string;
    group: string;
  };
  /**
   * What the auth server holding the publisher lease mints and publishes to
   * SSM: the join tokens the control server says the fleet needs (with each
   * lease renewal), plus `roles` when given (default none).
   */
  publisher: { roles: string[]; tokenTtl: string; tokenTtlMs: number; rotateEveryMs: number };
  serviceManager: { type: 'systemd' | 'process'; systemctl: string; unitName: string };
  aws: { region?: string; imdsEndpoint?: string; ssmEndpoint?: string; s3Endpoint?: string; s3ForcePathStyle: boolean };
  heartbeatIntervalMs: number;
  /** Proxies: how often the certificate in S3 is checked for a renewal (its ETag). */
  certificateCheckMs: number;
  /** Backoff between retries of anything unreachable (control server, IMDS, SSM, S3). */
  retry: { initialMs: number; maxMs: number };
  logLevel: string;
}

export function loadAgentConfig(path: string): AgentConfig {
  const file = loadYamlConfig<AgentConfigFile>(path, AGENT_CONFIG_SCHEMA);
  let caPem: string;
  try {
    caPem = readFileSync(file.control.ca_file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: control.ca_file: cannot read ${file.control.ca_file}: ${(err as Error).message}`);
  }
  if (!caPem.includes('BEGIN CERTIFICATE'))
    throw new ConfigError(`${path}: control.ca_file: ${file.control.ca_file} holds no PEM certificate`);
  checkEndpoints(path, file.control.endpoints);
  const stateDir = file.paths?.state_dir ?? '/var/lib/teleboot';
  return {
    source: path,
    control: { endpoints: file.control.endpoints, caPem, serverName: file.control.server_name },
    enrollmentMethod: file.enrollment.method ?? 'join_token',
    joinTokenFile: file.enrollment.join_token_file,
    ec2Signature: file.enrollment.ec2_signature ?? 'pkcs7',
    paths: {
      stateDir,
      teleportConfig: file.paths?.teleport_config ?? '/etc/teleport.yaml',
      teleportDataDir: file.paths?.teleport_data_dir ?? '/var/lib/teleport',
      secretsDir: file.paths?.secrets_dir ?? join(stateDir, 'secrets'),
      unitDir: file.paths?.unit_dir ?? '/etc/systemd/system',
      // HTTP CONNECT proxy variables for Teleport (seed 003_*), read by the unit as EnvironmentFile.
      environmentFile: file.paths?.environment_file ?? '/etc/default/teleport',
    },
    teleport: {
      binary: file.teleport?.binary ?? '/usr/local/bin/teleport',
      tctl: file.teleport?.tctl ?? '/usr/local/bin/tctl',
      tsh: file.teleport?.tsh,
      installDir: file.teleport?.install_dir,
      packageManager: file.teleport?.package_manager,
      diagAddr: file.teleport?.diag_addr ?? '127.0.0.1:3000',
      readyTimeoutMs: parseDuration(file.teleport?.ready_timeout ?? '2m'),
      user: file.teleport?.user ?? 'root',
      group: file.teleport?.group ?? file.teleport?.user ?? 'root',
    },
    publisher: publisherConfig(path, file.publisher),
    serviceManager: {
      type: file.service_manager?.type ?? 'systemd',
      systemctl: file.service_manager?.systemctl ?? '/bin/systemctl',
      unitName: file.service_manager?.unit_name ?? 'teleport.service',
    },
    aws: {
      region: file.aws?.region,
      imdsEndpoint: file.aws?.imds_endpoint,
      ssmEndpoint: file.aws?.ssm_endpoint,
      s3Endpoint: file.aws?.s3_endpoint,
      s3ForcePathStyle: file.aws?.s3_force_path_style ?? false,
    },
    heartbeatIntervalMs: parseDuration(file.heartbeat_interval ?? '30s'),
    certificateCheckMs: parseDuration(file.certificate_check_interval ?? '5m'),
    retry: { initialMs: parseDuration(file.retry?.initial_delay ?? '250ms'), maxMs: parseDuration(file.retry?.max_delay ?? '10s') },
    logLevel: file.log_level ?? process.env.TELEBOOT_LOG_LEVEL ?? 'info',
  };
}

/**
 * The control replicas (or one load balancer): each a usable host:port, each
 * once. A name written twice (in any case) would weigh that replica double
 * and hide a typo for the one meant.
 */
function checkEndpoints(path: string, endpoints: string[]): void {
  const seen = new Map<string, number>();
  endpoints.forEach((endpoint, i) => {
    const problem = hostPortProblem(endpoint);
    if (problem) throw new ConfigError(`${path}: control.endpoints.${i}: ${problem}`);
    const { host, port } = parseHostPort(endpoint);
    const key = `${host.toLowerCase()}:${port}`;
    const first = seen.get(key);
    if (first !== undefined)
      throw new ConfigError(
        `${path}: control.endpoints.${i}: ${endpoint} is listed already (control.endpoints.${first}); list each control replica once`,
      );
    seen.set(key, i);
  });
}

function publisherConfig(path: string, p: AgentConfigFile['publisher']): AgentConfig['publisher'] {
  const tokenTtl = p?.token_ttl ?? '4h';
  const tokenTtlMs = parseDuration(tokenTtl);
  const rotateEveryMs = parseDuration(p?.rotate_every ?? '1h');
  // Rotated well before expiry: a token published just before a holder dies must outlive the takeover.
  if (rotateEveryMs * 2 > tokenTtlMs)
    throw new ConfigError(`${path}: publisher.rotate_every must be at most half of publisher.token_ttl (${tokenTtl})`);
  if (rotateEveryMs < 1000) throw new ConfigError(`${path}: publisher.rotate_every must be at least 1s`);
  return { roles: p?.roles ?? [], tokenTtl, tokenTtlMs, rotateEveryMs };
}
