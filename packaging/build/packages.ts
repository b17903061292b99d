// The two packages. teleboot-agent: the single executable, nothing else to
// install but a 16 KB addon of its own. teleboot-control: a private Node.js under /opt/teleboot-control
// (Debian 12's own is 18), the bundle, and better-sqlite3's native addon.
import { cpSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { INSTALLED_RELEASE_MEMORY_ADDON } from '../../agent/boot-memory';
import type { BundleEntry } from './bundle';
import { repoRoot, type PackageFile, type PackageSpec } from './layout';

const packaging = (name: string) => join(repoRoot(), 'packaging', name);
const UNIT_DIR = '/usr/lib/systemd/system';

export const AGENT_STATE_DIR = '/var/lib/teleboot';
export const CONTROL_PREFIX = '/opt/teleboot-control';
/**
 * V8 flags the control server runs with, on a host (its /usr/bin wrapper) and in tests and the bench
 * (test/support/harness.ts). A 128 MiB first old-generation limit: the enrollment burst grows the heap
 * to ~50 MiB live without a full GC every few MiB (9 -> 3 mark-compacts per 1,000-host fleet run,
 * control CPU per host -8 %, RSS unchanged; issue 12). Node 20 refuses it in NODE_OPTIONS, and
 * v8.setFlagsFromString comes too late (the heap is configured when the isolate starts).
 */
export const CONTROL_NODE_FLAGS = ['--initial-old-space-size=128'];

export function agentSpec(built: { executable: string; releaseMemory: string }): PackageSpec {
  return {
    name: 'teleboot-agent',
    summary: 'teleboot agent: brings an EC2 instance up in its Teleport role',
    description:
      'Baked into the AMI. At boot it reads its identity from IMDSv2, enrolls with\nteleboot-control, fetches its join token from SSM, writes /etc/teleport.yaml\nand runs Teleport under systemd. One executable: no Node.js needed.',
    files: [
      { path: '/usr/bin/teleboot-agent', mode: 0o755, from: built.executable },
      { path: INSTALLED_RELEASE_MEMORY_ADDON, mode: 0o644, from: built.releaseMemory },
      { path: `${UNIT_DIR}/teleboot-agent.service`, mode: 0o644, from: packaging('teleboot-agent.service') },
      { path: '/etc/teleboot/agent.yaml', mode: 0o644, from: packaging('agent.yaml.example'), conffile: true },
    ],
    dirs: ['/etc/teleboot', dirname(INSTALLED_RELEASE_MEMORY_ADDON)],
    stateDirs: [
      { path: AGENT_STATE_DIR, mode: 0o700, owner: 'root' },
      { path: `${AGENT_STATE_DIR}/secrets`, mode: 0o700, owner: 'root' },
    ],
    unit: 'teleboot-agent.service',
    // The executable is Node.js itself, which links the C++ runtime.
    debDepends: ['libstdc++6'],
    rpmRequires: ['libstdc++'],
  };
}

/** Every file under dir, as package files under prefix. */
function tree(dir: string, prefix: string, mode = (_f: string) => 0o644): PackageFile[] {
  const out: PackageFile[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push({ path: join(prefix, relative(dir, full)), mode: mode(full), from: full });
    }
  };
  walk(dir);
  return out;
}

/** better-sqlite3 as it loads at run time: its lib/, package.json, the addon, and bindings' two small modules. */
function nativeModules(stage: string): string {
  const nm = join(stage, 'node_modules');
  const src = join(repoRoot(), 'node_modules');
  for (const mod of ['bindings', 'file-uri-to-path']) cpSync(join(src, mod), join(nm, mod), { recursive: true });
  for (const part of ['package.json', 'lib', 'build/Release/better_sqlite3.node'])
    cpSync(join(src, 'better-sqlite3', part), join(nm, 'better-sqlite3', part), { recursive: true });
  return nm;
}

/** stage: the bundles (<name>.js) already built there. */
export function controlSpec(stage: string, bundles: BundleEntry[], version: string): PackageSpec {
  const pkgJson = join(stage, 'package.json');
  // control/ec2-identity.ts finds the shipped AWS certificates beside the nearest package.json.
  writeFileSync(pkgJson, JSON.stringify({ name: 'teleboot', version, private: true }) + '\n');
  const nm = nativeModules(stage);
  const files: PackageFile[] = [
    { path: `${CONTROL_PREFIX}/bin/node`, mode: 0o755, from: process.execPath },
    { path: `${CONTROL_PREFIX}/package.json`, mode: 0o644, from: pkgJson },
    ...tree(nm, `${CONTROL_PREFIX}/lib/node_modules`, (f) => (f.endsWith('.node') ? 0o755 : 0o644)),
    ...tree(join(repoRoot(), 'control', 'data'), `${CONTROL_PREFIX}/control/data`),
    { path: `${UNIT_DIR}/teleboot-control.service`, mode: 0o644, from: packaging('teleboot-control.service') },
    { path: '/etc/teleboot/control.yaml', mode: 0o644, from: packaging('control.yaml.example'), conffile: true },
  ];
  for (const b of bundles) {
    if (!existsSync(join(stage, `${b.name}.js`))) throw new Error(`bundle ${b.name}.js missing in ${stage}`);
    files.push({ path: `${CONTROL_PREFIX}/lib/${b.name}.js`, mode: 0o644, from: join(stage, `${b.name}.js`) });
    files.push({
      path: `/usr/bin/${b.name}`,
      mode: 0o755,
      text: `#!/bin/sh\n# ${b.name}, run by the private Node.js of teleboot-control.\nexec ${[`${CONTROL_PREFIX}/bin/node`, ...(b.name === 'teleboot-control' ? CONTROL_NODE_FLAGS : []), `${CONTROL_PREFIX}/lib/${b.name}.js`].join(' ')} "$@"\n`,
    });
  }
  const dirs = [...new Set(files.filter((f) => f.path.startsWith(CONTROL_PREFIX)).map((f) => f.path.split('/').slice(0, -1).join('/')))];
  return {
    name: 'teleboot-control',
    summary: 'teleboot control server: desired roles, settings and health of a Teleport fleet',
    description:
      'Holds the desired role of every instance, cluster settings and rules; answers\nagents over gRPC and operators over a REST API; SQLite store. Ships its own\nNode.js under /opt/teleboot-control.',
    files,
    dirs: ['/etc/teleboot', ...dirs],
    // The unit runs with DynamicUser=yes: systemd creates /var/lib/private/teleboot-control (0700) for its user.
    stateDirs: [],
    unit: 'teleboot-control.service',
    debDepends: ['libstdc++6'],
    rpmRequires: ['libstdc++'],
  };
}
