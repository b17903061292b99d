// An agent on a broken host: a key that does not match its certificate, a
// nonce file it did not write, a full disk under teleport.yaml or under its
// state directory, temporaries a killed write left behind. Real agents as
// processes; the full disks are small tmpfs mounts (root only).
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BIN, AWS_ENV, runNode, startAgentProcess, until } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('agent-host');
});
t.teardown(() => world?.close());

const once = (configFile: string) => runNode(AGENT_BIN, ['once', '-c', configFile], AWS_ENV);
const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;
const isRoot = process.getuid?.() === 0;

/** Enrollments of an instance, as the audit log recorded them. */
async function enrollments(id: string): Promise<number> {
  const items: Array<{ action: string }> = (await world.control.rest('GET', `/v1/audit?target=${id}&limit=1000`)).body.items;
  return items.filter((e) => e.action === 'instance.enroll').length;
}

/** A new instance assigned a node, and its agent's files (not started). */
async function nodeInstance(heartbeat?: string) {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  return { id, files: await world.agentConfig(imds, 'process', heartbeat) };
}

/** A tmpfs of `kib` KiB at `dir`, filled up; returns a function that frees it. Unmounted when the test ends. */
function fullTmpfs(t: Test, dir: string, kib = 64, before?: () => void): () => void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0700`, 'tmpfs', dir]);
  t.teardown(() => execFileSync('umount', ['-l', dir]));
  before?.();
  const filler = join(dir, 'filler');
  try {
    writeFileSync(filler, Buffer.alloc(kib * 1024));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  return () => rmSync(filler, { force: true });
}

t.test('saved credentials whose key does not match the certificate: the agent enrolls again', async (t) => {
  const { id, files } = await nodeInstance();
  const first = await once(files.configFile);
  t.equal(first.code, 0, first.stderr);
  const path = join(files.stateDir, 'credentials.json');
  const saved = JSON.parse(readFileSync(path, 'utf8'));
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(path, JSON.stringify({ ...saved, keyPem: other }), { mode: 0o600 });

  const second = await once(files.configFile);
  t.equal(second.code, 0, 'ready again, no OpenSSL error');
  t.match(second.stdout, /the private key does not match the certificate; enrolling again/);
  t.equal(await enrollments(id), 2, 'one more enrollment');
  const renewed = JSON.parse(readFileSync(path, 'utf8'));
  t.not(renewed.keyPem, other, 'new credentials saved');
});

t.test('a garbage or empty nonce file is refused, named, and never replaced', async (t) => {
  for (const content of ['not a nonce!\n', '']) {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    const files = await world.agentConfig(imds, 'process');
    mkdirSync(files.stateDir, { recursive: true, mode: 0o700 });
    const nonce = join(files.stateDir, 'nonce');
    writeFileSync(nonce, content, { mode: 0o600 });
    const r = await once(files.configFile);
    t.not(r.code, 0, `refused (${JSON.stringify(content)})`);
    t.match(r.stderr + r.stdout, new RegExp(`${nonce} is ${content ? 'not a nonce this agent wrote' : 'empty'}`), 'names the file');
    t.match(r.stderr + r.stdout, new RegExp(`DELETE /v1/instances/${id}/binding`), 'says how an administrator resets it');
    t.equal(readFileSync(nonce, 'utf8'), content, 'the file is left as it was');
    t.equal(await enrollments(id), 0, 'nothing enrolled');
  }
});

t.test('temporaries of a killed write are removed at start; other files stay', async (t) => {
  const { files } = await nodeInstance();
  const etc = join(files.root, 'etc');
  mkdirSync(files.secretsDir, { recursive: true });
  mkdirSync(etc, { recursive: true });
  const stale = [join(etc, '.teleport.yaml.0123456789ab.tmp'), join(files.secretsDir, '.join-token.ba9876543210.tmp')];
  const kept = [join(etc, '.other.yaml.0123456789ab.tmp'), join(etc, 'notes.tmp')];
  for (const path of [...stale, ...kept]) writeFileSync(path, 'left over', { mode: 0o600 });
  const r = await once(files.configFile);
  t.equal(r.code, 0, r.stderr);
  for (const path of stale) t.notOk(existsSync(path), `removed: ${path}`);
  for (const path of kept) t.ok(existsSync(path), `not the agent's, kept: ${path}`);
  t.match(r.stdout, /removed temporary files left by interrupted writes/);
});

t.test(
  'a full disk under teleport.yaml is reported naming the path and the cause',
  { skip: !isRoot && 'mounting a tmpfs needs root' },
  async (t) => {
    const { id, files } = await nodeInstance('500ms');
    const free = fullTmpfs(t, join(files.root, 'etc'), 64, () => execFileSync('chmod', ['0755', join(files.root, 'etc')]));
    startAgentProcess(t, files);
    const seen = await world.control.waitForInstance(id, (i) => /ENOSPC/.test(i.status?.message ?? ''));
    t.equal(seen.status.state, 'converging');
    t.match(seen.status.message, `cannot write ${files.teleportConfig}: ENOSPC: no space left on device`);
    t.notMatch(seen.status.message, /systemd/, 'not "waiting for systemd"');
    free();
    await world.control.waitForInstance(id, ready);
    t.ok(existsSync(files.teleportConfig), 'written once there is room');
  },
);

t.test(
  'a full state directory keeps the issued credentials and waits; it does not enroll again',
  { skip: !isRoot && 'mounting a tmpfs needs root' },
  async (t) => {
    const { id, files } = await nodeInstance('500ms');
    // The nonce of an earlier boot is there; then the directory fills up.
    const free = fullTmpfs(t, files.stateDir, 16, () =>
      writeFileSync(join(files.stateDir, 'nonce'), 'A'.repeat(43) + '\n', { mode: 0o600 }),
    );
    const credentials = join(files.stateDir, 'credentials.json');
    const { proc, logs } = startAgentProcess(t, files);
    await until('three waits for room', () => (logs().match(/waiting for room to save the credentials/g) ?? []).length >= 3, 30_000);
    t.match(logs(), new RegExp(`waiting for room to save the credentials in ${credentials}`), 'names the file');
    t.match(logs(), /ENOSPC/, 'and the cause');
    t.equal(await enrollments(id), 1, 'one enrollment: the certificate issued is kept, not asked for again');
    t.equal(proc.exitCode, null, 'the agent waits rather than exit (and enroll again at every restart)');
    free();
    await world.control.waitForInstance(id, ready);
    t.ok(existsSync(credentials), 'saved once there is room');
    t.equal(await enrollments(id), 1, 'still one enrollment');
  },
);
