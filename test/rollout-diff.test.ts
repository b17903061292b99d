// The diffs a rollout shows (control/rollout/diff.ts): unified diffs of the
// changed files only, secrets masked, hosts' own values as placeholders,
// and the reverse diff a rollback shows.
import t from 'tap';
import { diffFiles, maskSecrets, reverseDiff, type RolloutFile } from '../control/rollout/diff';

const file = (path: string, content: string, secret = false): RolloutFile => ({ path, content, secret });
const HOST = { instanceId: 'i-0abc', hostname: 'ip-10-0-0-5.ec2.internal', privateIp: '10.0.0.5' };

t.test('only changed files, added and removed ones included', async (t) => {
  const before = [file('/a', 'one\ntwo\n'), file('/same', 'x\n'), file('/gone', 'bye\n')];
  const after = [file('/a', 'one\nTWO\n'), file('/same', 'x\n'), file('/new', 'hi\n')];
  const diffs = diffFiles(before, after, HOST);
  t.same(
    diffs.map((d) => d.path),
    ['/a', '/new', '/gone'],
  );
  t.equal(diffs[0].diff, '--- a/a\n+++ b/a\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n');
  t.equal(diffs[1].diff, '--- /dev/null\n+++ b/new\n@@ -0,0 +1,1 @@\n+hi\n');
  t.equal(diffs[2].diff, '--- a/gone\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-bye\n');
  t.same(diffFiles(before, before, HOST), [], 'no change, no diff');
});

t.test('secret files are never shown, only that they change', async (t) => {
  const diffs = diffFiles([file('/token', 'abc123', true)], [file('/token', 'def456', true), file('/key', 'k', true)], HOST);
  t.same(diffs, [
    { path: '/token', diff: 'secret file changes (content not shown)\n' },
    { path: '/key', diff: 'secret file is added (content not shown)\n' },
  ]);
  t.same(reverseDiff(diffs[1]), { path: '/key', diff: 'secret file is removed\n' });
});

t.test('secret values inside files are masked', async (t) => {
  const text = [
    'HTTPS_PROXY=http://ops:hunter2@proxy:3128',
    'auth_token: s3cr3t-value',
    '  token: "abcdef"',
    '  token_name: /var/lib/teleboot/secrets/join-token',
    'license: /var/lib/teleboot/secrets/license.pem',
    '-----BEGIN RSA PRIVATE KEY-----',
    'MIIEow',
    '-----END RSA PRIVATE KEY-----',
  ].join('\n');
  const masked = maskSecrets(text);
  t.notMatch(masked, /hunter2|s3cr3t|abcdef|MIIEow/);
  t.match(masked, /token_name: \/var\/lib\/teleboot\/secrets\/join-token/, 'a path to a secret is no secret');
  t.match(masked, /license: \/var\/lib/, 'nor is the license file path');
  t.match(masked, /-----BEGIN RSA PRIVATE KEY----- \(masked\) -----END RSA PRIVATE KEY-----/);
});

t.test('the host’s own values become placeholders, so one role’s hosts share a diff', async (t) => {
  const yaml = (host: typeof HOST, sev: string) =>
    `nodename: ${host.hostname}\nadvertise_ip: ${host.privateIp}\nid: ${host.instanceId}\nseverity: ${sev}\n`;
  const other = { instanceId: 'i-0def', hostname: 'ip-10-0-0-6.ec2.internal', privateIp: '10.0.0.6' };
  const a = diffFiles([file('/y', yaml(HOST, 'INFO'))], [file('/y', yaml(HOST, 'DEBUG'))], HOST);
  const b = diffFiles([file('/y', yaml(other, 'INFO'))], [file('/y', yaml(other, 'DEBUG'))], other);
  t.same(a, b);
  t.match(a[0].diff, / nodename: \{hostname\}\n advertise_ip: \{privateIp\}\n id: \{instanceId\}/);
});

t.test('a reversed diff undoes the change', async (t) => {
  const [changed, added, removed] = diffFiles(
    [file('/a', 'one\ntwo\nthree\n'), file('/gone', 'bye\n')],
    [file('/a', 'one\n2a\n2b\nthree\n'), file('/new', 'hi\n')],
    HOST,
  );
  t.equal(reverseDiff(changed).diff, '--- a/a\n+++ b/a\n@@ -1,4 +1,3 @@\n one\n-2a\n-2b\n+two\n three\n');
  t.equal(reverseDiff(added).diff, '--- a/new\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-hi\n');
  t.equal(reverseDiff(removed).diff, '--- /dev/null\n+++ b/gone\n@@ -0,0 +1,1 @@\n+bye\n');
  t.same(reverseDiff(reverseDiff(changed)), changed, 'twice is the original');
});
