// The files a host would get, rendered on the control server by the agent's
// own renderer (contract/render), for a rollout's diff and its "does this
// change touch the host" test. The control server never holds secrets: a
// fetched file is represented by where it comes from, and the CA pin in
// teleport.yaml by its SSM parameter, so a change of source shows as a change.
import type { Assignment, ClusterSettings } from '../../contract/model';
import { DEFAULT_HOST_PATHS, fetchesOf, renderHostFiles, type Fetched, type HostPaths } from '../../contract/render/plan';
import type { RenderInput } from '../../contract/render/render';
import type { RolloutFile } from './diff';
import { effectiveRelease, releaseDirName } from '../../contract/teleport-release';

/** Where the agent writes the unit (agent/systemd); the renderer gives its content only. */
export const UNIT_PATH = '/etc/systemd/system/teleport.service';
/**
 * The Teleport release a host runs, as the link the agent switches
 * (agent.yaml teleport.install_dir, by default /opt/teleport): a version
 * change is a change of this "file", so it rolls out in Teleport's upgrade
 * order like any other, never to every host at once.
 */
export const RELEASE_PATH = '/opt/teleport/current';
const PIN_MARK = `sha256:${'0'.repeat(64)}`;

/**
 * Every file the agent would write for `assignment` in `cluster`. Throws
 * RenderError (naming the setting) when the agent would refuse the result.
 */
export function renderRolloutFiles(
  assignment: Assignment,
  cluster: ClusterSettings,
  instance: RenderInput['instance'],
  paths: HostPaths = DEFAULT_HOST_PATHS,
): RolloutFile[] {
  const fetches = fetchesOf(assignment, cluster, paths);
  const caPin = fetches.ssm.find((f) => f.purpose === 'CA pin');
  const fetched: Fetched = { ssm: {}, s3: {} };
  for (const f of fetches.ssm) fetched.ssm[f.name] = f === caPin ? PIN_MARK : `{from SSM ${f.name}}`;
  for (const f of fetches.s3) fetched.s3[f.key] = `{from s3://${f.bucket}/${f.key}}`;
  const host = renderHostFiles({ assignment, cluster }, instance, paths, fetches, fetched);
  const pinSource = caPin ? JSON.stringify(`{from SSM ${caPin.name}}`) : '';
  const files: RolloutFile[] = host.files.map((f) => ({
    path: f.path,
    // The rendered form of a secret is its source; a changed secret value is a rotation, not a rollout.
    content: caPin && f.path === paths.teleportConfig ? f.content.split(PIN_MARK).join(pinSource) : f.content,
    secret: f.secret,
  }));
  files.push({ path: UNIT_PATH, content: host.unit, secret: false });
  const release = effectiveRelease({ cluster, assignment });
  if (release) {
    const from = release.source === 's3' ? `s3://${release.bucket}` : 'the OS package repository';
    files.push({
      path: RELEASE_PATH,
      content: `-> ${releaseDirName(release)} (Teleport ${release.edition} v${release.version} from ${from})\n`,
      secret: false,
    });
  }
  return files;
}
