// One convergence step: from an assignment to the files on disk and a
// running Teleport. Everything is fetched and rendered before the first
// write, so a failure never leaves a partial config behind.
import { type Assignment, type ClusterSettings, type InstanceIdentity } from '../common/model';
import { writeFileIfChanged } from '../common/files';
import type { SecretSource } from './aws';
import type { AgentConfig } from './config';
import { fetchesOf, renderHostFiles, splitPins, type DesiredFile, type Fetches, type HostPaths } from './render/plan';
import type { ServiceManager } from './service-manager';

export { splitPins, type DesiredFile };

export interface Plan {
  files: DesiredFile[];
  unit: string;
  teleportYaml: string;
  /** /etc/default/teleport when an HTTP CONNECT proxy is set. */
  environment?: string;
  /** What was fetched from SSM and S3 to render this plan. */
  fetches: Fetches;
}

export interface DesiredState {
  generation: number;
  assignment: Assignment;
  cluster: ClusterSettings;
}

export const TELEPORT_PID_FILE = '/run/teleport.pid';

export function hostPathsOf(config: AgentConfig): HostPaths {
  return {
    teleportConfig: config.paths.teleportConfig,
    teleportDataDir: config.paths.teleportDataDir,
    secretsDir: config.paths.secretsDir,
    environmentFile: config.paths.environmentFile,
    teleportBinary: config.teleport.binary,
    pidFile: TELEPORT_PID_FILE,
    diagAddr: config.teleport.diagAddr,
  };
}

/**
 * Fetches what the assignment needs and renders every file; writes nothing.
 * The join token: one SSM SecureString per host, named by the services that
 * join (tokens/node, tokens/discovery-kube: see joinTokenNameOf); none for an
 * auth host or IAM joining. The CA pin only when joining the auth service
 * directly; the license for the auth hosts of an enterprise cluster; the
 * proxy certificate from S3 unless ACM terminates TLS.
 */
export async function preparePlan(desired: DesiredState, instance: InstanceIdentity, config: AgentConfig, secrets: SecretSource): Promise<Plan> {
  const { cluster } = desired;
  const paths = hostPathsOf(config);
  const fetches = fetchesOf(desired.assignment, cluster, paths);
  const [ssm, ...objects] = await Promise.all([
    secrets.parameters(fetches.ssm.map((f) => f.name)),
    ...fetches.s3.map((f) => secrets.object(f.bucket, f.key)),
  ]);
  const s3: Record<string, string> = {};
  fetches.s3.forEach((f, i) => (s3[f.key] = (objects[i] as { body: string }).body));
  const host = renderHostFiles(
    desired,
    { instanceId: instance.instanceId, hostname: instance.hostname, privateIp: instance.privateIp, region: instance.region },
    paths,
    fetches,
    { ssm: ssm as Record<string, string>, s3 },
  );
  return { ...host, fetches };
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
