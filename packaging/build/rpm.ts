// An .rpm with rpmbuild (Debian's rpm package builds for Amazon Linux 2023
// and the like): a spec listing the staged files, %config(noreplace) for
// the operator's files, and the scriptlets.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { architectures, HOMEPAGE, type PackageSpec } from './layout';
import { rpmScriptlets } from './maintainer';
import { stageFiles } from './deb';

export function buildRpm(spec: PackageSpec, version: string, outDir: string, workDir: string): string {
  const top = join(workDir, `${spec.name}-rpm`);
  rmSync(top, { recursive: true, force: true });
  const buildroot = join(top, 'BUILDROOT');
  const staged = join(top, 'staged');
  stageFiles(spec, staged);
  const arch = architectures().rpm;
  const scriptlets = rpmScriptlets(spec);
  const mode = (m: number) => m.toString(8).padStart(4, '0');
  const fileLines = spec.files.map((f) => `${f.conffile ? '%config(noreplace) ' : ''}%attr(${mode(f.mode)},root,root) ${f.path}`);
  const specText = `Name: ${spec.name}
Version: ${version}
Release: 1
Summary: ${spec.summary}
License: Apache-2.0
URL: ${HOMEPAGE}
BuildArch: ${arch}
AutoReqProv: no
${spec.rpmRequires.map((r) => `Requires: ${r}`).join('\n')}

%description
${spec.description}

%install
# rpmbuild empties the build root first: the files staged by packaging/build are copied in here.
cp -a ${staged}/. %{buildroot}/

%post
${scriptlets.post}

%preun
${scriptlets.preun}

%postun
${scriptlets.postun}

%files
${spec.dirs.map((d) => `%dir ${d}`).join('\n')}
${fileLines.join('\n')}
`;
  const specFile = join(top, `${spec.name}.spec`);
  mkdirSync(top, { recursive: true });
  writeFileSync(specFile, specText);
  const rpmsDir = join(top, 'RPMS');
  execFileSync(
    'rpmbuild',
    [
      '-bb',
      '--quiet',
      '--target',
      arch,
      '--buildroot',
      buildroot,
      '--define',
      `_topdir ${top}`,
      '--define',
      `_rpmdir ${rpmsDir}`,
      // The executable holds Node.js itself: no stripping, no debug package, no build-id links.
      '--define',
      '__strip /bin/true',
      '--define',
      'debug_package %{nil}',
      '--define',
      '_build_id_links none',
      '--define',
      '__os_install_post %{nil}',
      '--define',
      '_binary_payload w3.zstdio',
      specFile,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  mkdirSync(outDir, { recursive: true });
  const built = readdirSync(join(rpmsDir, arch)).find((f) => f.endsWith('.rpm'));
  if (!built) throw new Error(`rpmbuild wrote no package under ${rpmsDir}/${arch}`);
  const out = join(outDir, built);
  renameSync(join(rpmsDir, arch, built), out);
  return out;
}
