// Every file one instance gets, as a pure function: which SSM parameters and
// S3 objects the agent must fetch for an assignment, and the files it writes
// once it has them. The agent fills in the fetched values; the control
// server's preview fills in placeholders and masks the secrets.
import { join } from 'node:path';
import { certDomainOf, hasProxyEnvironment, type Assignment, type ClusterSettings } from '../model';
import { RenderError, renderTeleportYaml, renderWarnings, requirementsOf, type RenderInput, type Requirements } from './render';
import type { RenderWarning } from './layout-settings';
import { renderProxyEnvironment, renderTeleportUnit } from './systemd-unit';

/** SSM parameter names, as Teleport's AMI and the seed Ansible roles publish them. */
export const ssmNames = (prefix: string, cluster: string) => ({
  token: (role: string) => `${prefix}/${cluster}/tokens/${role}`,
  caPin: `${prefix}/${cluster}/ca-pin-hash`,
  license: `${prefix}/${cluster}/license`,
});

/** S3 keys of the proxy certificate, as the get-cert role (seed 000_*) uploads them. */
export const certKeys = (domain: string) => ({ fullchain: `live/${domain}/fullchain.pem`, privkey: `live/${domain}/privkey.pem` });

/** Where the agent puts what it fetched (all below the secrets directory). */
export function secretFiles(secretsDir: string) {
  return {
    joinToken: join(secretsDir, 'join-token'),
    cert: join(secretsDir, 'proxy-fullchain.pem'),
    key: join(secretsDir, 'proxy-privkey.pem'),
    license: join(secretsDir, 'license.pem'),
  };
}

/** The files teleport.yaml names, under `paths`; the license only where the plan fetches one. */
export function renderFilesOf(paths: Pick<HostPaths, 'secretsDir' | 'teleportDataDir'>, license: boolean): RenderInput['files'] {
  const files = secretFiles(paths.secretsDir);
  return {
    dataDir: paths.teleportDataDir,
    joinTokenFile: files.joinToken,
    certFile: files.cert,
    keyFile: files.key,
    ...(license ? { licenseFile: files.license } : {}),
  };
}

/** The host paths a plan depends on (the agent's configuration). */
export interface HostPaths {
  teleportConfig: string;
  teleportDataDir: string;
  secretsDir: string;
  /** /etc/default/teleport: HTTP CONNECT proxy variables, read by the unit. */
  environmentFile: string;
  teleportBinary: string;
  pidFile: string;
  diagAddr: string;
}

export type SecretPurpose = 'join token' | 'CA pin' | 'license' | 'proxy certificate' | 'proxy private key';

export interface SsmFetch {
  name: string;
  purpose: SecretPurpose;
  /** SecureStrings: never printed. */
  secret: boolean;
  /** The file the value is written to; the CA pin goes into teleport.yaml instead. */
  file?: string;
}

export interface S3Fetch {
  bucket: string;
  key: string;
  purpose: SecretPurpose;
  secret: boolean;
  file: string;
}

/** What must be fetched before anything is rendered. Throws RenderError for unknown roles. */
export interface Fetches {
  requirements: Requirements;
  ssm: SsmFetch[];
  s3: S3Fetch[];
}

export function fetchesOf(assignment: Assignment, cluster: ClusterSettings, paths: Pick<HostPaths, 'secretsDir'>): Fetches {
  const requirements = requirementsOf(assignment, cluster);
  const names = ssmNames(cluster.ssmPrefix, cluster.clusterName);
  const files = secretFiles(paths.secretsDir);
  const ssm: SsmFetch[] = [];
  if (requirements.joinTokenRole)
    ssm.push({ name: names.token(requirements.joinTokenRole), purpose: 'join token', secret: true, file: files.joinToken });
  if (requirements.caPin) ssm.push({ name: names.caPin, purpose: 'CA pin', secret: false });
  if (requirements.license) ssm.push({ name: names.license, purpose: 'license', secret: true, file: files.license });
  const s3: S3Fetch[] = [];
  if (requirements.proxyCertificate) {
    const keys = certKeys(certDomainOf(cluster));
    s3.push({ bucket: cluster.s3Bucket, key: keys.fullchain, purpose: 'proxy certificate', secret: false, file: files.cert });
    s3.push({ bucket: cluster.s3Bucket, key: keys.privkey, purpose: 'proxy private key', secret: true, file: files.key });
  }
  return { requirements, ssm, s3 };
}

export interface DesiredFile {
  path: string;
  content: string;
  mode: number;
  /** Secret files are never printed, only described. */
  secret: boolean;
}

export interface HostFiles {
  /** In write order: what teleport.yaml names comes before it. */
  files: DesiredFile[];
  unit: string;
  teleportYaml: string;
  /** /etc/default/teleport, when an HTTP CONNECT proxy is set. */
  environment?: string;
  /** Files an earlier plan may have written that this one has not: removed when teleboot generated them. */
  obsolete: string[];
  /** Keys of teleport.yaml fragments that teleboot does not know, written as given. */
  warnings: RenderWarning[];
}

/** Values fetched for `fetches`, by SSM name and S3 key. */
export interface Fetched {
  ssm: Record<string, string>;
  s3: Record<string, string>;
}

/** "sha256:a,sha256:b" or one per line, as tctl prints them. */
export function splitPins(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

/**
 * Renders every file of an instance from the fetched values. Throws
 * RenderError, each problem naming its setting, when Teleport would refuse
 * the result.
 */
export function renderHostFiles(
  desired: { assignment: RenderInput['assignment']; cluster: RenderInput['cluster'] },
  instance: RenderInput['instance'],
  paths: HostPaths,
  fetches: Fetches,
  fetched: Fetched,
): HostFiles {
  const { assignment, cluster } = desired;
  const caPinFetch = fetches.ssm.find((f) => f.purpose === 'CA pin');
  const renderInput: RenderInput = {
    assignment,
    cluster,
    instance,
    files: renderFilesOf(paths, fetches.requirements.license === true),
    caPins: caPinFetch ? splitPins(fetched.ssm[caPinFetch.name] ?? '') : [],
    diagAddr: paths.diagAddr,
  };
  const teleportYaml = renderTeleportYaml(renderInput);
  const out: DesiredFile[] = [];
  for (const f of fetches.ssm) {
    if (f.file) out.push({ path: f.file, content: (fetched.ssm[f.name] ?? '').trim() + '\n', mode: 0o600, secret: f.secret });
  }
  for (const f of fetches.s3)
    out.push({ path: f.file, content: fetched.s3[f.key] ?? '', mode: f.secret ? 0o600 : 0o644, secret: f.secret });
  let environment: string | undefined;
  if (hasProxyEnvironment(cluster)) {
    environment = proxyEnvironmentOf(cluster);
    // Read by systemd as root. World-readable like the one Teleport's packages
    // use, unless a proxy URL carries a password.
    const credentials = environment !== maskProxyCredentials(environment);
    out.push({ path: paths.environmentFile, content: environment, mode: credentials ? 0o600 : 0o644, secret: false });
  }
  // The config goes last: it names the files above, which must exist first.
  out.push({ path: paths.teleportConfig, content: teleportYaml, mode: 0o600, secret: false });
  const unit = renderTeleportUnit({
    teleportBinary: paths.teleportBinary,
    configPath: paths.teleportConfig,
    pidFile: paths.pidFile,
    ...(environment !== undefined ? { environmentFile: paths.environmentFile } : {}),
    ...(cluster.fips ? { fips: true } : {}),
  });
  return {
    files: out,
    unit,
    teleportYaml,
    ...(environment !== undefined ? { environment } : {}),
    obsolete: environment === undefined ? [paths.environmentFile] : [],
    warnings: renderWarnings(renderInput),
  };
}

/** /etc/default/teleport for the cluster's HTTP CONNECT proxy; RenderError naming the setting when a value would break the file. */
export function proxyEnvironmentOf(cluster: Pick<ClusterSettings, 'httpsProxy' | 'httpProxy' | 'noProxy'>): string {
  try {
    return renderProxyEnvironment({
      ...(cluster.httpsProxy ? { httpsProxy: cluster.httpsProxy } : {}),
      ...(cluster.httpProxy ? { httpProxy: cluster.httpProxy } : {}),
      ...(cluster.noProxy ? { noProxy: cluster.noProxy } : {}),
    });
  } catch (err) {
    const message = (err as Error).message;
    const setting = /^(httpsProxy|httpProxy|noProxy)\b/.exec(message)?.[1] ?? 'httpsProxy';
    throw new RenderError([{ path: '/etc/default/teleport', setting: `cluster.${setting}`, message: message.replace(/^\w+ /, '') }]);
  }
}

/** The environment file with any proxy password replaced by "***" (for printing). */
export function maskProxyCredentials(text: string): string {
  return text.replace(/(=(?:[a-z][a-z0-9+.-]*:\/\/)?[^\s:@/]+):[^\s@/]*@/gi, '$1:***@');
}

/** The agent's default paths (agent/config.ts), for previews made without an agent. */
export const DEFAULT_HOST_PATHS: HostPaths = {
  teleportConfig: '/etc/teleport.yaml',
  teleportDataDir: '/var/lib/teleport',
  secretsDir: '/var/lib/teleboot/secrets',
  environmentFile: '/etc/default/teleport',
  teleportBinary: '/usr/local/bin/teleport',
  pidFile: '/run/teleport.pid',
  diagAddr: '127.0.0.1:3000',
};
