// A change becomes a rollout (control/rollout/plan.ts) of the hosts whose
// rendered files it changes, and only those, in waves auth, proxy, other,
// with one diff per role and distinct change, secrets masked. The files are
// rendered by the agent's own renderer (control/rollout/host-files.ts).
import t from 'tap';
import type { Assignment, ClusterSettings } from '../contract/model';
import { renderRolloutFiles } from '../control/rollout/host-files';
import { planRollout, type PlanHost } from '../control/rollout/plan';
import { TEST_CLUSTER } from './support/fixtures';

interface FleetHost {
  instanceId: string;
  assignment: Assignment;
  n: number;
}
const FLEET: FleetHost[] = [
  { instanceId: 'i-node1', assignment: { roles: ['node'], labels: { env: 'prod' } }, n: 11 },
  { instanceId: 'i-proxy1', assignment: { roles: ['proxy'], labels: {} }, n: 21 },
  { instanceId: 'i-auth1', assignment: { roles: ['auth'], labels: {} }, n: 31 },
  { instanceId: 'i-node2', assignment: { roles: ['node'], labels: { env: 'prod' } }, n: 12 },
  { instanceId: 'i-ap1', assignment: { roles: ['auth', 'proxy'], labels: {} }, n: 41 },
  { instanceId: 'i-node3', assignment: { roles: ['node'], labels: { env: 'prod' } }, n: 13 },
];
const factsOf = (h: FleetHost) => ({
  instanceId: h.instanceId,
  hostname: `ip-10-0-0-${h.n}.ec2.internal`,
  privateIp: `10.0.0.${h.n}`,
  region: 'us-east-1',
});

/** The rollout of going from (cluster, assignments) to (cluster2, assignments2), generation 1 to 2. */
function plan(after: ClusterSettings, change: (h: FleetHost) => Assignment = (h) => h.assignment, before: ClusterSettings = TEST_CLUSTER) {
  const hosts: PlanHost[] = FLEET.map((h) => ({
    host: factsOf(h),
    services: change(h).roles,
    current: { generation: 1, files: renderRolloutFiles(h.assignment, before, factsOf(h)) },
    next: { generation: 2, files: renderRolloutFiles(change(h), after, factsOf(h)) },
  }));
  return planRollout({ id: 'r-1', startedBy: 'alice', reason: 'PATCH /v1/settings', now: 1000, hosts });
}

t.test('a setting every host renders: every host, auth first, then proxies, then nodes', async (t) => {
  const rollout = plan({ ...TEST_CLUSTER, logSeverity: 'DEBUG' })!;
  t.same(
    rollout.hosts.map((h) => [h.instanceId, h.role, h.group]),
    [
      ['i-auth1', 'auth', 'auth'],
      ['i-ap1', 'auth-proxy', 'auth'],
      ['i-proxy1', 'proxy', 'proxy'],
      ['i-node1', 'node', 'other'],
      ['i-node2', 'node', 'other'],
      ['i-node3', 'node', 'other'],
    ],
  );
  t.ok(
    rollout.hosts.every((h) => h.state === 'pending' && h.fromGeneration === 1 && h.toGeneration === 2),
    'every host pending, from generation 1 to 2',
  );
  t.same(rollout.pace, {
    auth: { maxUnavailable: 1, failureThreshold: 1 },
    proxy: { maxUnavailable: 1, failureThreshold: 1 },
    other: { maxUnavailable: 1, failureThreshold: 1 },
  });
  t.same(
    rollout.diffs.map((d) => [d.role, d.hosts, d.changes.length]),
    [
      ['auth', 1, 1],
      ['auth-proxy', 1, 1],
      ['proxy', 1, 1],
      ['node', 3, 1],
    ],
    'one diff per role: the nodes differ only by their own names and addresses',
  );
  const node = rollout.diffs[3].changes[0];
  t.same(node.instanceIds, ['i-node1', 'i-node2', 'i-node3']);
  t.same(
    node.files.map((f) => f.path),
    ['/etc/teleport.yaml'],
    'only teleport.yaml changes',
  );
  t.equal(
    node.files[0].diff,
    [
      '--- a/etc/teleport.yaml',
      '+++ b/etc/teleport.yaml',
      '@@ -14,7 +14,7 @@',
      '   diag_addr: 127.0.0.1:3000',
      '   log:',
      '     output: stderr',
      '-    severity: INFO',
      '+    severity: DEBUG',
      '     format:',
      '       output: text',
      ' auth_service:',
      '',
    ].join('\n'),
  );
});

t.test('a setting only auth servers render touches only them', async (t) => {
  const rollout = plan({ ...TEST_CLUSTER, authType: 'github' })!;
  t.same(
    rollout.hosts.map((h) => h.instanceId),
    ['i-auth1', 'i-ap1'],
    'proxies and nodes are not in the rollout at all',
  );
});

t.test('one host’s assignment changes: that host only', async (t) => {
  const rollout = plan(TEST_CLUSTER, (h) => (h.instanceId === 'i-node2' ? { ...h.assignment, labels: { env: 'staging' } } : h.assignment))!;
  t.same(
    rollout.hosts.map((h) => h.instanceId),
    ['i-node2'],
  );
  t.match(rollout.diffs[0].changes[0].files[0].diff, /-\s+env: prod\n\+\s+env: staging/);
});

t.test('a Teleport version change rolls out to every host in the upgrade order, and the diff names the release', async (t) => {
  const v16 = { ...TEST_CLUSTER, teleport: { version: '16.4.0' } };
  const rollout = plan({ ...TEST_CLUSTER, teleport: { version: '17.1.0' } }, undefined, v16)!;
  t.ok(rollout, 'a release change is a rollout, though teleport.yaml is the same');
  t.same(
    rollout.hosts.map((h) => h.group),
    ['auth', 'auth', 'proxy', 'other', 'other', 'other'],
    'auth servers first, then proxies, then the rest',
  );
  const files = rollout.diffs.flatMap((d) => d.changes.flatMap((c) => c.files));
  t.same([...new Set(files.map((f) => f.path))], ['/opt/teleport/current'], 'only the release changes');
  t.match(files[0].diff, /-.*v16\.4\.0[^]*\+.*v17\.1\.0/);
  t.equal(plan(v16, undefined, v16), undefined, 'the same release again: no rollout');
});

t.test('a change that alters no file makes no rollout', async (t) => {
  t.equal(
    plan({ ...TEST_CLUSTER, rolloutPace: { other: { maxUnavailable: '25%' } } }),
    undefined,
    'the rollout pace itself renders nothing',
  );
  t.equal(plan(TEST_CLUSTER), undefined, 'saving the same settings again');
});

t.test('diffs never show a secret', async (t) => {
  const before = { ...TEST_CLUSTER, httpsProxy: 'http://ops:hunter2@proxy.internal:3128' };
  const after = { ...before, httpsProxy: 'http://ops:correct-horse@proxy.internal:3128', ssmPrefix: '/tp' };
  const rollout = plan(after, undefined, before)!;
  const text = JSON.stringify(rollout);
  t.notMatch(text, /hunter2|correct-horse/, 'proxy passwords are masked');
  const auth = rollout.diffs.find((d) => d.role === 'auth')!.changes[0].files;
  t.equal(
    auth.find((f) => f.path === '/etc/default/teleport')!.diff,
    'only masked (secret) values change\n',
    'a changed proxy password is a change, not shown',
  );
  const moved = plan({ ...before, httpsProxy: 'http://ops:correct-horse@proxy2.internal:3128' }, undefined, before)!;
  t.match(
    moved.diffs[0].changes[0].files[0].diff,
    /-HTTPS_PROXY=http:\/\/ops:\*\*\*@proxy.internal:3128\n\+HTTPS_PROXY=http:\/\/ops:\*\*\*@proxy2.internal:3128/,
    'the rest of the line shows, the password masked',
  );
  t.notMatch(JSON.stringify(moved), /hunter2|correct-horse/);
  const node = rollout.diffs.find((d) => d.role === 'node')!.changes[0].files;
  t.same(
    node.find((f) => f.path === '/var/lib/teleboot/secrets/join-token'),
    { path: '/var/lib/teleboot/secrets/join-token', diff: 'secret file changes (content not shown)\n' },
    'a join token whose source moves is a change, shown without content',
  );
  t.match(
    node.find((f) => f.path === '/etc/teleport.yaml')!.diff,
    /\+\s+- "\{from SSM \/tp\/main\/ca-pin-hash\}"/,
    'the CA pin as its source',
  );
});

t.test('percentages resolve against the rollout’s own group sizes', async (t) => {
  const hosts: PlanHost[] = [];
  for (let i = 0; i < 948; i++) {
    const files = (s: string) => [{ path: '/etc/teleport.yaml', content: s, secret: false }];
    hosts.push({
      host: { instanceId: `n${i}` },
      services: ['node'],
      current: { generation: 1, files: files('a') },
      next: { generation: 2, files: files('b') },
    });
  }
  const rollout = planRollout({ id: 'r', startedBy: 'a', reason: 'r', now: 0, hosts, policy: { other: { failureThreshold: 3 } } })!;
  t.same(rollout.pace.other, { maxUnavailable: 95, failureThreshold: 3 }, '10 % of 948 rounds up to 95; a count stays a count');
});
