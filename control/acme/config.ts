// The `acme` and `aws` sections of control.yaml: where the proxy certificate
// comes from, how it is proven, and when it is renewed.
import { parseDuration } from '../../contract/duration';
import { ConfigError, DURATION_SCHEMA, HOST_PORT_SCHEMA, REGION_SCHEMA, URL_SCHEMA } from '../../contract/config-file';

export interface AcmeConfigFile {
  directory_url?: string;
  email?: string;
  terms_of_service_agreed?: boolean;
  additional_domains?: string[];
  challenge?: 'http-01' | 'dns-01';
  http01_listen?: string;
  route53?: { hosted_zone_id?: string; propagation_timeout?: string };
  account_key_parameter?: string;
  directory_ca_file?: string;
  key_type?: 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';
  renew_remaining_fraction?: number;
  alert_before?: string;
  check_interval?: string;
  lease?: string;
  server_side_encryption?: 'AES256' | 'aws:kms';
  kms_key_id?: string;
}

export interface AwsConfigFile {
  region?: string;
  s3_endpoint?: string;
  s3_force_path_style?: boolean;
  ssm_endpoint?: string;
  route53_endpoint?: string;
}

const duration = DURATION_SCHEMA;
const url = URL_SCHEMA;
const addr = HOST_PORT_SCHEMA;
// A DNS name, optionally with a leading wildcard label.
const DOMAIN_PATTERN = '^(\\*\\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$';

export const ACME_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['email', 'terms_of_service_agreed'],
  properties: {
    directory_url: url,
    email: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$' },
    terms_of_service_agreed: { const: true },
    additional_domains: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', pattern: DOMAIN_PATTERN },
    },
    challenge: { enum: ['http-01', 'dns-01'] },
    http01_listen: addr,
    route53: {
      type: 'object',
      additionalProperties: false,
      properties: { hosted_zone_id: { type: 'string', pattern: '^[A-Z0-9]{1,32}$' }, propagation_timeout: duration },
    },
    account_key_parameter: { type: 'string', pattern: '^/[\\w./-]+$' },
    directory_ca_file: { type: 'string', minLength: 1 },
    key_type: { enum: ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096'] },
    renew_remaining_fraction: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
    alert_before: duration,
    check_interval: duration,
    lease: duration,
    server_side_encryption: { enum: ['AES256', 'aws:kms'] },
    kms_key_id: { type: 'string', minLength: 1 },
  },
} as const;

export const AWS_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    region: REGION_SCHEMA,
    s3_endpoint: url,
    s3_force_path_style: { type: 'boolean' },
    ssm_endpoint: url,
    route53_endpoint: url,
  },
} as const;

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeConfig {
  directoryUrl: string;
  email: string;
  /** Names on the certificate besides the proxy's public host (which it is stored under). */
  additionalDomains: string[];
  challenge: 'http-01' | 'dns-01';
  /** Where the HTTP-01 answers are served (the ACME server must reach it on port 80 of the domain). */
  http01Listen: string;
  route53: { hostedZoneId?: string; propagationTimeoutMs: number };
  /** SSM SecureString holding the ACME account key; default {ssm_prefix}/{cluster}/acme/account-key. */
  accountKeyParameter?: string;
  /** Extra CA to trust for the ACME directory's HTTPS (a private ACME server). */
  directoryCaFile?: string;
  keyType: 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';
  /** Renew when less than this fraction of the lifetime remains. */
  renewRemainingFraction: number;
  /** A served certificate closer than this to expiry is an alert. */
  alertBeforeMs: number;
  checkIntervalMs: number;
  /** The lease that lets one control replica at a time order certificates. */
  leaseMs: number;
  serverSideEncryption: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
}

export interface AwsConfig {
  region?: string;
  s3Endpoint?: string;
  s3ForcePathStyle: boolean;
  ssmEndpoint?: string;
  route53Endpoint?: string;
}

export function acmeConfigFrom(file: AcmeConfigFile | undefined): AcmeConfig | undefined {
  if (!file) return undefined;
  if (file.kms_key_id && file.server_side_encryption !== 'aws:kms') {
    throw new ConfigError('acme.kms_key_id is only used with acme.server_side_encryption: aws:kms');
  }
  if (file.challenge !== 'dns-01' && file.additional_domains?.some((d) => d.startsWith('*.'))) {
    throw new ConfigError('acme.additional_domains: a wildcard name can only be proven with acme.challenge: dns-01');
  }
  const config: AcmeConfig = {
    directoryUrl: file.directory_url ?? LETS_ENCRYPT_DIRECTORY,
    email: file.email!,
    additionalDomains: file.additional_domains ?? [],
    challenge: file.challenge ?? 'http-01',
    http01Listen: file.http01_listen ?? '0.0.0.0:80',
    route53: { hostedZoneId: file.route53?.hosted_zone_id, propagationTimeoutMs: parseDuration(file.route53?.propagation_timeout ?? '2m') },
    accountKeyParameter: file.account_key_parameter,
    directoryCaFile: file.directory_ca_file,
    keyType: file.key_type ?? 'ecdsa-p256',
    renewRemainingFraction: file.renew_remaining_fraction ?? 1 / 3,
    alertBeforeMs: parseDuration(file.alert_before ?? '336h'),
    checkIntervalMs: parseDuration(file.check_interval ?? '1h'),
    leaseMs: parseDuration(file.lease ?? '5m'),
    serverSideEncryption: file.server_side_encryption ?? 'AES256',
    kmsKeyId: file.kms_key_id,
  };
  if (config.checkIntervalMs < 1000) throw new ConfigError('acme.check_interval must be at least 1s');
  if (config.leaseMs < 2000) throw new ConfigError('acme.lease must be at least 2s');
  return config;
}

export function awsConfigFrom(file: AwsConfigFile | undefined): AwsConfig {
  return {
    region: file?.region,
    s3Endpoint: file?.s3_endpoint,
    s3ForcePathStyle: file?.s3_force_path_style ?? false,
    ssmEndpoint: file?.ssm_endpoint,
    route53Endpoint: file?.route53_endpoint,
  };
}
