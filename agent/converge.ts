// One convergence step: from an assignment to the files on disk and a
// running Teleport. Everything is fetched and rendered before the first
// write, so a failure never leaves a partial config behind.
import { join } from 'node:path';
import { certDomainOf, type Assignment, type ClusterSettings, type InstanceIdentity } from '../common/model';
import { writeFileIfChanged } from '../common/files';
import { certKeys, ssmNames, type SecretSource } from './aws';
import type { AgentConfig } from './config';
import { renderTeleportYaml, requirementsOf } from './render/render';
import { renderTeleportUnit } from './render/systemd-unit';
import type { ServiceManager } from './service-manager';

export interface DesiredFile {
  path: string;
  content: string;
  mode: number;
  /** Secret files are never printed, only described. */
  secret: boolean;
}

export interface Plan {
  files: DesiredFile[];
  unit: string;
  teleportYaml: string;
}

export interface DesiredState {
  generation: number;
  assignment: Assignment;
  cluster: ClusterSettings;
}

export function secretPaths(config: AgentConfig) {
  const dir = config.paths.secretsDir;
  return { joinToken: join(dir, 'join-token'), cert: join(dir, 'proxy-fullchain.pem'), key: join(dir, 'proxy-privkey.pem') };
}

export function splitPins(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

/** Fetches what the assignment needs and renders every file; writes nothing. */
export async function preparePlan(desired: DesiredState, instance: InstanceIdentity, config: AgentConfig, secrets: SecretSource): Promise<Plan> {
  const { assignment, cluster } = desired;
  const needs = requirementsOf(assignment);
  const names = ssmNames(cluster.ssmPrefix, cluster.clusterName);
  const paths = secretPaths(config);
  const wanted = [...(needs.joinTokenRole ? [names.token(needs.joinTokenRole)] : []), ...(needs.caPin ? [names.caPin] : [])];
  const domain = certDomainOf(cluster);
  const keys = certKeys(domain);
  const [params, fullchain, privkey] = await Promise.all([
    secrets.parameters(wanted),
    needs.proxyCertificate ? secrets.object(cluster.s3Bucket, keys.fullchain) : undefined,
    needs.proxyCertificate ? secrets.object(cluster.s3Bucket, keys.privkey) : undefined,
  ]);
  const teleportYaml = renderTeleportYaml({
    assignment,
    cluster,
    instance: { instanceId: instance.instanceId, hostname: instance.hostname, privateIp: instance.privateIp, region: instance.region },
    files: { dataDir: config.paths.teleportDataDir, joinTokenFile: paths.joinToken, certFile: paths.cert, keyFile: paths.key },
    caPins: needs.caPin ? splitPins(params[names.caPin]) : [],
    diagAddr: config.teleport.diagAddr,
  });
  const files: DesiredFile[] = [];
  if (needs.joinTokenRole) files.push({ path: paths.joinToken, content: params[names.token(needs.joinTokenRole)].trim() + '\n', mode: 0o600, secret: true });
  if (fullchain && privkey) {
    files.push({ path: paths.cert, content: fullchain.body, mode: 0o644, secret: false });
    files.push({ path: paths.key, content: privkey.body, mode: 0o600, secret: true });
  }
  // The config goes last: it names the files above, which must exist first.
  files.push({ path: config.paths.teleportConfig, content: teleportYaml, mode: 0o600, secret: false });
  const unit = renderTeleportUnit({
    teleportBinary: config.teleport.binary,
    configPath: config.paths.teleportConfig,
    pidFile: '/run/teleport.pid',
  });
  return { files, unit, teleportYaml };
}

export interface ApplyResult {
  /** Paths of the files that were (re)written. */
  written: string[];
  unitChanged: boolean;
  restarted: boolean;
}

/** Writes what differs, installs the unit, and starts or restarts Teleport only when something changed. */
export async function applyPlan(plan: Plan, services: ServiceManager, owner: { uid: number; gid: number }): Promise<ApplyResult> {
  const written: string[] = [];
  for (const file of plan.files) {
    if (await writeFileIfChanged(file.path, file.content, { mode: file.mode, ...owner })) written.push(file.path);
  }
  const unitChanged = await services.installUnit(plan.unit);
  const before = await services.activeState();
  const running = before === 'active' || before === 'activating' || before === 'reloading';
  const restart = running && (written.length > 0 || unitChanged);
  await services.ensureRunning(restart);
  return { written, unitChanged, restarted: restart };
}
