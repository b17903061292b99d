// One convergence step: from an assignment to the files on disk and a
// running Teleport. Everything is fetched and rendered before the first
// write, so a failure never leaves a partial config behind.
import { createPublicKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { type Assignment, type ClusterSettings, type InstanceIdentity } from '../contract/model';
import { writeFileIfChanged } from '../contract/files';
import type { SecretSource } from './aws';
import type { AgentConfig } from './config';
import { fetchesOf, renderHostFiles, splitPins, type DesiredFile, type Fetches, type HostPaths } from '../contract/render/plan';
import type { ServiceManager } from './service-manager';
import { GENERATED_HEADER } from '../contract/render/systemd-unit';

export { splitPins, type DesiredFile };

export interface Plan {
  files: DesiredFile[];
  /** Files to remove when teleboot generated them (see removeIfGenerated). */
  obsolete: string[];
  unit: string;
  teleportYaml: string;
  /** /etc/default/teleport when an HTTP CONNECT proxy is set. */
  environment?: string;
  /** What was fetched from SSM and S3 to render this plan. */
  fetches: Fetches;
  /** ETags of the S3 objects fetched, by key. */
  etags: Record<string, string>;
}

/** The proxy certificate and key in S3 do not belong together (a renewal caught half-written): retried. */
export class MismatchedKeyPairError extends Error {}

/** Throws MismatchedKeyPairError unless the chain's first certificate is for this private key. */
export function checkKeyPair(fullchainPem: string, privkeyPem: string, where: string): void {
  let matches = false;
  try {
    const certKey = new X509Certificate(fullchainPem).publicKey.export({ format: 'der', type: 'spki' });
    matches = certKey.equals(createPublicKey(privkeyPem).export({ format: 'der', type: 'spki' }));
  } catch (err) {
    throw new MismatchedKeyPairError(`${where}: the certificate or key cannot be read: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!matches)
    throw new MismatchedKeyPairError(
      `${where}: the certificate is not for the private key next to it (a renewal being written?); retrying`,
    );
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
export async function preparePlan(
  desired: DesiredState,
  instance: InstanceIdentity,
  config: AgentConfig,
  secrets: SecretSource,
): Promise<Plan> {
  const { cluster } = desired;
  const paths = hostPathsOf(config);
  const fetches = fetchesOf(desired.assignment, cluster, paths);
  const [ssm, ...objects] = await Promise.all([
    secrets.parameters(fetches.ssm.map((f) => f.name)),
    ...fetches.s3.map((f) => secrets.object(f.bucket, f.key)),
  ]);
  const s3: Record<string, string> = {};
  const etags: Record<string, string> = {};
  fetches.s3.forEach((f, i) => {
    const object = objects[i];
    s3[f.key] = object.body;
    etags[f.key] = object.etag;
  });
  const cert = fetches.s3.find((f) => f.purpose === 'proxy certificate');
  const key = fetches.s3.find((f) => f.purpose === 'proxy private key');
  if (cert && key) checkKeyPair(s3[cert.key], s3[key.key], `s3://${cert.bucket}/${cert.key}`);
  const host = renderHostFiles(
    desired,
    { instanceId: instance.instanceId, hostname: instance.hostname, privateIp: instance.privateIp, region: instance.region },
    paths,
    fetches,
    { ssm, s3 },
  );
  return { ...host, fetches, etags };
}

export interface ApplyResult {
  /** Paths of the files that were (re)written. */
  written: string[];
  /** Paths of files an earlier plan wrote that were removed. */
  removed: string[];
  unitChanged: boolean;
  restarted: boolean;
  /** Only the certificate and key changed: Teleport was told to reload them (SIGHUP) instead. */
  reloaded: boolean;
}

/** Files Teleport re-reads on SIGHUP without a restart: its HTTPS certificate and key. */
function reloadablePaths(plan: Plan): Set<string> {
  return new Set(plan.fetches.s3.map((f) => f.file));
}

/** Removes a file only when its first line says teleboot generated it (an operator's own file is left alone). */
async function removeIfGenerated(path: string): Promise<boolean> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (!text.startsWith(GENERATED_HEADER)) return false;
  await fs.rm(path, { force: true });
  return true;
}

/** A host file could not be written: the message names the path and the cause (ENOSPC, EROFS, EACCES). */
export class HostFileError extends Error {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot write ${path}: ${(cause as Error).message ?? String(cause)}`, { cause });
  }
}

/**
 * The files whose hand edits are drift, with what the plan writes there:
 * teleport.yaml, /etc/default/teleport (when the plan has one) and the unit.
 */
export function watchedFiles(plan: Plan, config: AgentConfig, unitPath: string | undefined): Array<{ path: string; content: string }> {
  const out = [{ path: config.paths.teleportConfig, content: plan.teleportYaml }];
  if (plan.environment !== undefined) out.push({ path: config.paths.environmentFile, content: plan.environment });
  if (unitPath !== undefined) out.push({ path: unitPath, content: plan.unit });
  return out;
}

/** The values of the secret files of a plan (join token, license): masked literally wherever the agent reports text. */
export function secretValuesOf(plan: Plan): string[] {
  return plan.files.filter((f) => f.secret).map((f) => f.content.trim());
}

/**
 * Writes what differs, installs the unit, and acts on Teleport only as the
 * change needs: nothing when no file changed, a reload (SIGHUP) when only the
 * certificate and key changed, a restart otherwise. Paths in `keep` (files
 * changed by hand, left until the next change) are not written.
 * `binaryChanged`: a new Teleport release was installed, which only a
 * restart runs.
 */
export async function applyPlan(
  plan: Plan,
  services: ServiceManager,
  owner: { uid: number; gid: number },
  { keep = new Set<string>(), binaryChanged = false }: { keep?: ReadonlySet<string>; binaryChanged?: boolean } = {},
): Promise<ApplyResult> {
  // All at once: each is its own atomic write, and their fsyncs, which a first boot waits for, overlap.
  const changed = await Promise.all(
    plan.files.map((file) =>
      keep.has(file.path)
        ? Promise.resolve(false)
        : writeFileIfChanged(file.path, file.content, { mode: file.mode, ...owner }).catch((err: unknown) => {
            throw new HostFileError(file.path, err);
          }),
    ),
  );
  const written = plan.files.filter((_, i) => changed[i]).map((f) => f.path);
  const removedNow = await Promise.all(plan.obsolete.map(removeIfGenerated));
  const removed = plan.obsolete.filter((_, i) => removedNow[i]);
  const unitChanged = services.unitPath !== undefined && keep.has(services.unitPath) ? false : await services.installUnit(plan.unit);
  const before = await services.activeState();
  const running = before === 'active' || before === 'activating' || before === 'reloading';
  const reloadable = reloadablePaths(plan);
  const reload =
    running && !binaryChanged && !unitChanged && removed.length === 0 && written.length > 0 && written.every((p) => reloadable.has(p));
  const restart = running && !reload && (binaryChanged || written.length > 0 || removed.length > 0 || unitChanged);
  if (reload) await services.reload();
  else await services.ensureRunning(restart);
  return { written, removed, unitChanged, restarted: restart, reloaded: reload };
}
