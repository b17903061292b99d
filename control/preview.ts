// What an instance would get, seen from the control server: the teleport.yaml,
// the unit and /etc/default/teleport its agent would write, rendered by the
// agent's own code, with every secret masked (the control server never holds
// them): the join token is shown as the file teleport.yaml names, the CA pin
// as the SSM parameter it comes from, and the list of SSM parameters and S3
// objects says what the agent will fetch.
import { type ClusterSettings } from '../contract/model';
import {
  DEFAULT_HOST_PATHS,
  fetchesOf,
  maskProxyCredentials,
  renderFilesOf,
  renderHostFiles,
  type Fetched,
  type Fetches,
  type HostPaths,
} from '../contract/render/plan';
import type { RenderWarning } from '../contract/render/layout-settings';
import { RenderError, renderTeleportConfig, renderWarnings, teleportConfigToYaml, type ConfigProblem } from '../contract/render/render';
import type { InstanceRecord } from './store/store';
import { checkInput, fieldOf } from './validation';

const PLACEHOLDER_PIN = `sha256:${'c'.repeat(64)}`;
const UNIT_PATH = '/etc/systemd/system/teleport.service';

export interface ConfigPreview {
  instanceId: string;
  generation: number;
  roles: string[];
  /** False when the agent would refuse to write anything; `problems` says why. */
  valid: boolean;
  problems: Array<ConfigProblem & { field?: string }>;
  /** What deserves a look but does not stop the agent: teleport.yaml fragment keys teleboot does not know. */
  warnings: Array<RenderWarning & { field?: string }>;
  /** "enrolled": hostname and IP from the instance; "placeholder": it has not enrolled yet. */
  instanceFacts: 'enrolled' | 'placeholder';
  /** The agent's default paths are assumed; an agent.yaml may move them. */
  paths: HostPaths;
  fetches: {
    ssm: Array<{ name: string; purpose: string; secret: boolean }>;
    s3: Array<{ bucket: string; key: string; purpose: string; secret: boolean }>;
  };
  files: Array<{ path: string; mode: string; secret: boolean; source: string }>;
  /** Present when valid; with problems, a draft of what the renderer produced. */
  teleportYaml?: string;
  unit?: string;
  environmentFile?: { path: string; content: string };
}

const withField = <P extends ConfigProblem | RenderWarning>(p: P) => ({
  ...p,
  ...(fieldOf(p.setting) ? { field: fieldOf(p.setting) } : {}),
});

export function previewConfig(
  record: Pick<InstanceRecord, 'instanceId' | 'identity' | 'generation' | 'assignment'>,
  settings: ClusterSettings,
  paths: HostPaths = DEFAULT_HOST_PATHS,
): ConfigPreview {
  if (!record.assignment) throw new Error(`instance ${record.instanceId} has no assignment`);
  const assignment = record.assignment;
  const identity = record.identity;
  const instance = identity
    ? { instanceId: identity.instanceId, hostname: identity.hostname, privateIp: identity.privateIp, region: identity.region }
    : { ...checkInput(assignment, settings).instance, instanceId: record.instanceId };
  const base: ConfigPreview = {
    instanceId: record.instanceId,
    generation: record.generation,
    roles: [...assignment.roles],
    valid: false,
    problems: [],
    warnings: [],
    instanceFacts: identity ? 'enrolled' : 'placeholder',
    paths,
    fetches: { ssm: [], s3: [] },
    files: [],
  };
  let fetches: Fetches;
  try {
    fetches = fetchesOf(assignment, settings, paths);
  } catch (err) {
    if (err instanceof RenderError) return { ...base, problems: err.problems.map(withField) };
    throw err;
  }
  base.fetches = {
    ssm: fetches.ssm.map(({ name, purpose, secret }) => ({ name, purpose, secret })),
    s3: fetches.s3.map(({ bucket, key, purpose, secret }) => ({ bucket, key, purpose, secret })),
  };
  const caPin = fetches.ssm.find((f) => f.purpose === 'CA pin');
  const fetched: Fetched = { ssm: {}, s3: {} };
  for (const f of fetches.ssm) fetched.ssm[f.name] = f === caPin ? PLACEHOLDER_PIN : 'masked';
  for (const f of fetches.s3) fetched.s3[f.key] = 'masked';
  // The pin comes from SSM at boot; the preview names the parameter instead.
  const unmask = (yaml: string) => (caPin ? yaml.split(PLACEHOLDER_PIN).join(JSON.stringify(`{from SSM ${caPin.name}}`)) : yaml);
  try {
    const host = renderHostFiles({ assignment, cluster: settings }, instance, paths, fetches, fetched);
    const sources = new Map<string, string>([
      ...fetches.ssm.filter((f) => f.file).map((f) => [f.file!, `ssm:${f.name}`] as [string, string]),
      ...fetches.s3.map((f) => [f.file, `s3://${f.bucket}/${f.key}`] as [string, string]),
    ]);
    return {
      ...base,
      valid: true,
      files: [
        ...host.files.map((f) => ({
          path: f.path,
          mode: f.mode.toString(8).padStart(4, '0'),
          secret: f.secret,
          source: sources.get(f.path) ?? 'rendered',
        })),
        { path: UNIT_PATH, mode: '0644', secret: false, source: 'rendered' },
      ],
      warnings: host.warnings.map(withField),
      teleportYaml: unmask(host.teleportYaml),
      unit: host.unit,
      ...(host.environment !== undefined
        ? { environmentFile: { path: paths.environmentFile, content: maskProxyCredentials(host.environment) } }
        : {}),
    };
  } catch (err) {
    if (!(err instanceof RenderError)) throw err;
    const draftInput = {
      assignment,
      cluster: settings,
      instance,
      files: renderFilesOf(paths, true),
      caPins: caPin ? [PLACEHOLDER_PIN] : [],
      diagAddr: paths.diagAddr,
    };
    let draft: string | undefined;
    try {
      draft = unmask(teleportConfigToYaml(renderTeleportConfig(draftInput)));
    } catch {
      draft = undefined;
    }
    return {
      ...base,
      problems: err.problems.map(withField),
      warnings: renderWarnings(draftInput).map(withField),
      ...(draft ? { teleportYaml: draft } : {}),
    };
  }
}
