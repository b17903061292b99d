// Stand-in Teleport releases, laid out as Teleport's tarballs are: one
// directory teleport/ (teleport-ent/ for Enterprise) holding teleport, tctl,
// tsh, tbot and an install script. Each program is a small shell script that runs the stand-in
// (test/bin/teleport, test/bin/tctl) with the release's version baked in,
// so `teleport version` of the unpacked release reports that version.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { releaseArchOf, releaseKey, type TeleportEdition } from '../../contract/teleport-release';
import { parse, stringify } from 'yaml';
import { TCTL_STANDIN, TELEPORT_STANDIN, type AgentFiles, type S3Server } from './harness';

export interface StandinRelease {
  version: string;
  edition: TeleportEdition;
  /** teleport/teleport[-ent]-v{version}-linux-{arch}-bin.tar.gz for this machine's architecture. */
  key: string;
  tarball: Buffer;
  sha256: string;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Builds a release tarball with the host's tar. `reports` makes its
 * teleport claim another version than the one in its name (a broken build).
 */
export function makeStandinRelease(version: string, opts: { edition?: TeleportEdition; reports?: string } = {}): StandinRelease {
  const edition = opts.edition ?? 'oss';
  const staging = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'teleport-release-'));
  try {
    const top = edition === 'enterprise' ? 'teleport-ent' : 'teleport';
    const dir = join(staging, top);
    mkdirSync(dir);
    const env = `TELEPORT_STANDIN_VERSION=${quote(opts.reports ?? version)}${edition === 'enterprise' ? ' TELEPORT_STANDIN_EDITION=enterprise' : ''}`;
    const script = (target: string) =>
      `#!/bin/sh\n# Stand-in Teleport ${version} (test/support/teleport-releases.ts)\n${env} exec ${quote(process.execPath)} ${quote(target)} "$@"\n`;
    const tsh = `#!/bin/sh\necho "Teleport v${opts.reports ?? version} go1.22"\n`;
    const files: Record<string, string> = {
      teleport: script(TELEPORT_STANDIN),
      tctl: script(TCTL_STANDIN),
      tsh,
      tbot: tsh,
      install: '#!/bin/sh\necho "teleboot installs releases itself"\n',
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(dir, name), text);
      chmodSync(join(dir, name), 0o755);
    }
    const file = join(staging, 'release.tar.gz');
    execFileSync('tar', ['-czf', file, '-C', staging, top]);
    const tarball = readFileSync(file);
    return {
      version,
      edition,
      key: releaseKey({ version, edition, fips: false }, releaseArchOf(process.arch)),
      tarball,
      sha256: createHash('sha256').update(tarball).digest('hex'),
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Publishes a release to the bucket as an operator would: the tarball and KEY.sha256 ("<hex>  <name>") beside it. */
export async function publishRelease(s3: S3Server, bucket: string, release: StandinRelease, sha256 = release.sha256): Promise<void> {
  const name = release.key.split('/').pop();
  await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: release.key, Body: release.tarball }));
  await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${release.key}.sha256`, Body: `${sha256}  ${name}\n` }));
}

/**
 * Points an agent's config at a host without Teleport: its commands go
 * where the AMI would have them (nothing there yet), releases under the
 * host's own opt/teleport. Returns those paths.
 */
export function releaseLayout(files: AgentFiles): { bin: string; installDir: string } {
  const bin = join(files.root, 'usr/local/bin');
  const installDir = join(files.root, 'opt/teleport');
  const config = parse(readFileSync(files.configFile, 'utf8'));
  config.teleport = {
    ...config.teleport,
    binary: join(bin, 'teleport'),
    tctl: join(bin, 'tctl'),
    tsh: join(bin, 'tsh'),
    install_dir: installDir,
  };
  writeFileSync(files.configFile, stringify(config));
  return { bin, installDir };
}
