// teleboot instances ls | show, assign, unassign, preview against a real
// control server: paging over the "next" cursor, filters, every output
// format, colours and progress only on a terminal, tables fitted to it.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { stripVTControlCharacters } from 'node:util';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CLI_BIN, startCliWorld, type CliWorld } from './support/cli';
import { EXIT } from '../cli/exit-codes';

let world: CliWorld;
const ESC = '\u001b[';

t.before(async () => {
  world = await startCliWorld('cli-inst');
  // More than one page at --page-size 7: 12 nodes and 4 proxies assigned ahead of time.
  for (let i = 0; i < 16; i++) {
    const res = await world.control.rest('PUT', `/v1/instances/host-${String(i).padStart(2, '0')}/assignment`, {
      role: i % 4 === 3 ? 'proxy' : 'node',
      labels: { env: 'prod' },
    });
    if (res.status !== 200) throw new Error(`assign: ${res.status} ${JSON.stringify(res.body)}`);
  }
});
t.teardown(() => world.close());

t.test('instances ls follows the cursor over every page, and filters', async (t) => {
  const all = await world.run(['instances', 'ls', '--page-size', '7', '-o', 'json']);
  t.equal(all.code, 0, all.stderr);
  const ids = JSON.parse(all.stdout).map((i: { instanceId: string }) => i.instanceId);
  t.equal(ids.length, 16, 'three pages of 7, 7 and 2, all of them');
  t.same(ids, [...ids].sort(), 'in order');
  t.equal(new Set(ids).size, 16, 'none twice');
  t.equal(all.stderr, '', 'no progress when stderr is not a terminal');

  const proxies = await world.run(['instances', 'ls', '--role', 'proxy', '--health', 'expected', '--page-size', '3', '-o', 'yaml']);
  t.same(
    parseYaml(proxies.stdout).map((i: { instanceId: string }) => i.instanceId),
    ['host-03', 'host-07', 'host-11', 'host-15'],
  );
  const none = await world.run(['instances', 'ls', '--health', 'degraded']);
  t.equal(none.stdout, 'no instances\n');

  const table = await world.run(['instances', 'ls', '--role', 'proxy']);
  const lines = table.stdout.trimEnd().split('\n');
  t.match(lines[0], /^INSTANCE\s+ROLE\s+HEALTH\s+APPLIED\s+TELEPORT\s+LAST SEEN\s+ADDRESS\s+LABELS\s+MESSAGE$/);
  t.match(lines[1], /^host-03\s+proxy\s+expected\s+0\/1\s+-\s+-\s+-\s+env=prod\s+-$/);
  t.notMatch(table.stdout, ESC, 'no colours in a pipe');

  const bad = await world.run(['instances', 'ls', '--health', 'sleepy']);
  t.equal(bad.code, EXIT.usage);
  t.match(bad.stderr, /option '--health <state>' argument 'sleepy' is invalid. Allowed choices are expected, unassigned/);
});

t.test('tables fit the width: whole columns from the left, the last one cut', async (t) => {
  const narrow = await world.run(['instances', 'ls', '--role', 'proxy'], { COLUMNS: '44' });
  const lines = narrow.stdout.trimEnd().split('\n');
  for (const line of lines) t.ok(line.length <= 44, `"${line}" fits 44 columns`);
  t.match(lines[0], /^INSTANCE\s+ROLE\s+HEALTH\s+APPLIED/);
  t.match(lines[1], /^host-03\s+proxy\s+expected/, 'the instance id is whole');
});

t.test('on a terminal: colours, progress on stderr, the terminal width; NO_COLOR turns colours off', async (t) => {
  const { spawn } = await import('node:child_process');
  // script(1) gives the CLI a real pseudo-terminal of 70 columns.
  const onTty = (extra: Record<string, string>) =>
    new Promise<string>((done) => {
      const command = `stty cols 70; ${process.execPath} ${CLI_BIN} instances ls --page-size 5`;
      const proc = spawn('script', ['-qec', command, '/dev/null'], {
        env: { ...process.env, ...world.env, HOME: world.home, NO_COLOR: '', FORCE_COLOR: '', TERM: 'xterm', ...extra },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      proc.on('close', () => done(out));
    });
  const coloured = await onTty({});
  t.match(coloured, 'fetching instances: page 3, 15 so far', 'progress while paging');
  t.match(coloured, `${ESC}33mexpected${ESC}39m`, 'health in colour');
  const rows = coloured.split(/\r?\n/).filter((l) => l.includes('host-'));
  t.equal(rows.length, 16);
  for (const row of rows) t.ok(stripVTControlCharacters(row).length <= 70, 'fits the terminal');
  const plain = await onTty({ NO_COLOR: '1' });
  t.notMatch(plain, `${ESC}33m`, 'NO_COLOR: no colours');
  t.notMatch(plain, `${ESC}1m`, 'not even bold headers');
});

t.test('assign, show, preview, unassign', async (t) => {
  const id = 'i-0123456789abcdef0';
  const assigned = await world.run(['assign', id, '--role', 'node', '--label', 'env=prod', '--label', 'team=db', '--nodename', 'db-1']);
  t.equal(assigned.code, 0, assigned.stderr);
  t.equal(assigned.stdout, `assigned ${id}: node (generation 1)\n`);

  const shown = await world.run(['instances', 'show', id, '-o', 'json']);
  t.match(JSON.parse(shown.stdout), {
    instanceId: id,
    health: 'expected',
    generation: 1,
    assignment: { role: 'node', roles: ['node'], labels: { env: 'prod', team: 'db' }, nodename: 'db-1' },
  });
  const text = await world.run(['instances', 'show', id]);
  t.match(text.stdout, /^Instance:\s+i-0123456789abcdef0$/m);
  t.match(text.stdout, /^Labels:\s+env=prod,team=db$/m);
  t.match(text.stdout, /^Generation:\s+1 \(applied 0\)$/m);

  const both = await world.run(['assign', id, '--roles', 'auth,proxy', '-o', 'yaml']);
  t.match(parseYaml(both.stdout), { assignment: { role: 'auth-proxy', roles: ['auth', 'proxy'] }, generation: 2 });

  // Role options from a file, with the labels of the flags on top of the file's.
  const options = join(world.home, 'kube.yaml');
  writeFileSync(options, 'kube:\n  resources:\n    - labels: {"*": "*"}\nlabels:\n  tier: k8s\n');
  const kube = await world.run(['assign', id, '--role', 'kube', '--options', options, '--label', 'env=prod', '-o', 'json']);
  t.equal(kube.code, 0, kube.stderr);
  t.match(JSON.parse(kube.stdout).assignment, {
    roles: ['kube'],
    labels: { tier: 'k8s', env: 'prod' },
    kube: { resources: [{ labels: { '*': '*' } }] },
  });

  const refused = await world.run(['assign', id, '--role', 'kube']);
  t.equal(refused.code, EXIT.failed);
  t.match(refused.stderr, /refused PUT \/v1\/instances\/i-0123456789abcdef0\/assignment \(400\): kube/);
  const notAFile = await world.run(['assign', id, '--role', 'kube', '--options', join(world.home, 'nope.yaml')]);
  t.equal(notAFile.code, EXIT.usage);
  t.match(notAFile.stderr, /--options: cannot read .*nope\.yaml: no such file/);
  const noRole = await world.run(['assign', id, '--label', 'env=prod']);
  t.equal(noRole.code, EXIT.usage);
  t.match(noRole.stderr, /give --role .* or --roles/);

  await world.control.rest('PATCH', '/v1/settings', {
    clusterName: 'prod',
    authAddr: 'auth.internal:3025',
    proxyPublicAddr: 'teleport.example.com:443',
    behindLoadBalancer: true,
    region: 'us-east-1',
    s3Bucket: 'example-certs',
  });
  await world.run(['assign', id, '--role', 'node', '--label', 'env=prod']);
  const preview = await world.run(['preview', id]);
  t.equal(preview.code, 0, preview.stderr);
  const yaml = parseYaml(preview.stdout);
  t.match(yaml, {
    version: 'v3',
    teleport: { auth_server: 'auth.internal:3025' },
    ssh_service: { enabled: true, labels: { env: 'prod' } },
  });
  const full = await world.run(['preview', id, '-o', 'json']);
  t.match(JSON.parse(full.stdout), { instanceId: id, valid: true, teleportYaml: preview.stdout });

  const unassigned = await world.run(['unassign', id, '-o', 'json']);
  t.equal(unassigned.code, 0);
  t.equal(JSON.parse(unassigned.stdout).assignment, null);
  const nothing = await world.run(['preview', id]);
  t.equal(nothing.code, EXIT.failed);
  t.match(
    nothing.stderr,
    `instance ${id} has no assignment, so nothing would be written; assign it first: teleboot assign ${id} --role node`,
  );

  const unknown = await world.run(['unassign', 'i-0000000000000dead']);
  t.equal(unknown.code, EXIT.notFound);
  t.match(unknown.stderr, /instance i-0000000000000dead not found/);
});

t.test('preview of a config the agent would refuse exits 2 and names the setting', async (t) => {
  await world.control.rest('PUT', '/v1/instances/edge-1/assignment', { role: 'proxy' });
  await world.control.rest('PATCH', '/v1/settings', { proxyPublicAddr: '' });
  const res = await world.run(['preview', 'edge-1']);
  t.equal(res.code, EXIT.unhealthy);
  t.match(res.stderr, /problem: proxy_service\.public_addr.*\(change proxyPublicAddr\)/);
  t.match(res.stderr, 'the agent would refuse this config and write nothing');
});
