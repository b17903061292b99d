// Which Teleport release a host runs: declared once for the cluster settings
// (`teleport`) and the assignment's override, and the pure rules both
// programs share: the effective release of a host, the name of its tarball
// in S3 (Teleport's own naming), what `teleport version` prints, and
// Teleport's version compatibility rule.
import { Type, type Static } from '@sinclair/typebox';
import { AllOptional, StringEnum, Text } from './schema';

export const TELEPORT_EDITIONS = ['oss', 'enterprise'] as const;
export type TeleportEdition = (typeof TELEPORT_EDITIONS)[number];
/** s3: the release tarball from the operator's bucket; package: the OS package repository (apt or yum), pinned. */
export const TELEPORT_SOURCES = ['s3', 'package'] as const;
export type TeleportSource = (typeof TELEPORT_SOURCES)[number];

/** A Teleport release version as its tarballs and packages name it: 15.4.2, or 16.0.0-rc.1. */
export const TELEPORT_VERSION_PATTERN =
  '^(0|[1-9][0-9]{0,3})\\.(0|[1-9][0-9]{0,3})\\.(0|[1-9][0-9]{0,3})(-[0-9A-Za-z]+(\\.[0-9A-Za-z]+)*)?$';
const VERSION_RE = new RegExp(TELEPORT_VERSION_PATTERN);
export const isTeleportVersion = (v: string): boolean => VERSION_RE.test(v);

/**
 * The release a cluster runs, or an assignment's override of it (merged key
 * by key over the cluster's). No defaults in the schema: an assignment that
 * names only a version keeps the cluster's edition and source.
 */
export const TeleportRelease = Type.Object(
  {
    version: Type.String({
      pattern: TELEPORT_VERSION_PATTERN,
      maxLength: 64,
      description: 'the Teleport version, e.g. 15.4.2',
      examples: ['15.4.2'],
    }),
    ...AllOptional({
      edition: StringEnum(TELEPORT_EDITIONS, { description: 'oss or enterprise (default: enterprise when the cluster is, else oss)' }),
      source: StringEnum(TELEPORT_SOURCES, {
        description:
          's3: {bucket}/teleport/teleport[-ent]-v{version}-linux-{arch}-bin.tar.gz with its .sha256 (default); package: apt or yum, pinned',
      }),
      bucket: Text({ maxLength: 63, description: 'with source s3: the bucket holding the tarballs (default: s3Bucket)' }),
    }),
  },
  { additionalProperties: false },
);
export type TeleportRelease = Static<typeof TeleportRelease>;

/** What a host must run, with every default filled in. */
export interface EffectiveRelease {
  version: string;
  edition: TeleportEdition;
  source: TeleportSource;
  /** With source s3. */
  bucket: string;
  /** The Enterprise FIPS build (cluster setting fips). */
  fips: boolean;
}

/** The parts of the cluster settings and the assignment that decide the release. */
export interface ReleaseInputs {
  cluster: { teleport?: TeleportRelease; s3Bucket: string; enterprise?: boolean; fips?: boolean };
  assignment?: { teleport?: TeleportRelease };
}

/** The release a host runs; undefined when neither the cluster nor the assignment names one (teleboot leaves the binary alone). */
export function effectiveRelease({ cluster, assignment }: ReleaseInputs): EffectiveRelease | undefined {
  const merged = cluster.teleport || assignment?.teleport ? { ...cluster.teleport, ...assignment?.teleport } : undefined;
  if (!merged?.version) return undefined;
  return {
    version: merged.version,
    edition: merged.edition ?? (cluster.enterprise ? 'enterprise' : 'oss'),
    source: merged.source ?? 's3',
    bucket: merged.bucket ?? cluster.s3Bucket,
    fips: cluster.fips === true,
  };
}

/** Node's process.arch as Teleport's release names spell it. */
export function releaseArchOf(nodeArch: string): string {
  const arch = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' }[nodeArch];
  if (!arch) throw new Error(`Teleport publishes no release for the architecture ${nodeArch}`);
  return arch;
}

/** The tarball's S3 key: teleport/teleport[-ent]-v{version}-linux-{arch}[-fips]-bin.tar.gz (its checksum is KEY.sha256). */
export function releaseKey(r: Pick<EffectiveRelease, 'version' | 'edition' | 'fips'>, arch: string): string {
  const product = r.edition === 'enterprise' ? 'teleport-ent' : 'teleport';
  return `teleport/${product}-v${r.version}-linux-${arch}${r.fips && r.edition === 'enterprise' ? '-fips' : ''}-bin.tar.gz`;
}

/** The directory name a release is installed under (/opt/teleport/15.4.2, /opt/teleport/15.4.2-ent). */
export function releaseDirName(r: Pick<EffectiveRelease, 'version' | 'edition' | 'fips'>): string {
  return `${r.version}${r.edition === 'enterprise' ? '-ent' : ''}${r.fips && r.edition === 'enterprise' ? '-fips' : ''}`;
}

/** What `teleport version` reports: "Teleport v15.4.2 git:v15.4.2-0-g1234 go1.21.10", "Teleport Enterprise v15.4.2 ...". */
export interface ReportedVersion {
  version: string;
  edition: TeleportEdition;
}

export function parseTeleportVersion(output: string): ReportedVersion | undefined {
  const m = /^Teleport (Enterprise )?v(\S+)/m.exec(output);
  if (!m || !isTeleportVersion(m[2])) return undefined;
  return { version: m[2], edition: m[1] ? 'enterprise' : 'oss' };
}

export const majorOf = (version: string): number => Number(version.split('.')[0]);

/** A host and the release it is to run, for the compatibility check. */
export interface PlannedHost {
  /** An instance id, or `rule "name"`. */
  holder: string;
  auth: boolean;
  version: string;
  /** The version it ran before the change being checked, when known. */
  before?: string;
}

/** One broken rule: which, the hosts and why. */
export interface VersionProblem {
  rule: 'newer-than-auth' | 'behind-auth' | 'skips-major';
  holders: string[];
  reason: string;
}

/**
 * Teleport's compatibility rule over a plan: no host runs a newer major
 * version than the auth servers (they are upgraded first), nothing is more
 * than one major version behind them, and no host skips a major version in
 * one change. Hosts without a known release are not judged.
 */
export function versionProblems(hosts: PlannedHost[]): VersionProblem[] {
  const problems: VersionProblem[] = [];
  const add = (rule: VersionProblem['rule'], holders: string[], reason: string) =>
    holders.length > 0 && problems.push({ rule, holders, reason });
  const skipping = hosts.filter((h) => h.before !== undefined && majorOf(h.version) - majorOf(h.before) > 1);
  add(
    'skips-major',
    skipping.map((h) => h.holder),
    `would skip a major version (${[...new Set(skipping.map((h) => `${h.before} to ${h.version}`))].join(', ')}); upgrade one major version at a time`,
  );
  const authMajors = hosts.filter((h) => h.auth).map((h) => majorOf(h.version));
  if (authMajors.length > 0) {
    const oldestAuth = Math.min(...authMajors);
    const newestAuth = Math.max(...authMajors);
    const newer = hosts.filter((h) => !h.auth && majorOf(h.version) > oldestAuth);
    add(
      'newer-than-auth',
      newer.map((h) => h.holder),
      `would run a newer major version (${[...new Set(newer.map((h) => h.version))].join(', ')}) than the auth servers (v${oldestAuth}); upgrade the auth servers first`,
    );
    const behind = hosts.filter((h) => majorOf(h.version) < newestAuth - 1);
    add(
      'behind-auth',
      behind.map((h) => h.holder),
      `would be more than one major version behind the auth servers (v${newestAuth}): ${[...new Set(behind.map((h) => h.version))].join(', ')}; Teleport supports one major version of difference`,
    );
  }
  return problems;
}
