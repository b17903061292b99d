// teleboot-control serve on PostgreSQL (--store, store.url): what an agent
// and an operator wrote survives a restart; the password comes from the
// environment or store.password_file, never the command line or the logs.
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { testIdentity } from './support/fixtures';
import { ControlProcess, CONTROL_BIN, removeDir, runNode, scratchDir } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('serve on PostgreSQL', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const dir = scratchDir('control-pg');
  t.teardown(() => removeDir(dir));

  // First start: the URL on the command line, the password in PGPASSWORD.
  const first = new ControlProcess(dir, ['--store', db.url], { PGPASSWORD: db.password });
  t.teardown(() => first.stop());
  await first.start();
  t.match(first.logs, /"store":"postgres"/);
  t.equal((await first.rest('PUT', '/v1/instances/i-pg-1/assignment', { role: 'node', labels: { env: 'pg' } })).status, 200);
  const client = new ControlClient({ endpoints: [`localhost:${first.grpcPort}`], caPem: readFileSync(first.caFile, 'utf8') });
  t.teardown(() => client.close());
  const enrolled = await client.enroll(
    testIdentity('i-pg-1'),
    readFileSync(first.joinTokenFile, 'utf8').trim(),
    'test',
    'nonce-of-agent-pg-1',
  );
  t.equal(enrolled.assignment?.assigned, true, 'the enrolled agent gets the assignment written over REST');
  await first.stop();

  // Restart: the URL and the password file in control.yaml; no PGPASSWORD.
  const passwordFile = join(dir, 'db-password');
  writeFileSync(passwordFile, db.password + '\n', { mode: 0o600 });
  const configFile = join(dir, 'control.yaml');
  writeFileSync(configFile, stringify({ store: { type: 'postgres', url: db.url, password_file: passwordFile } }));
  const second = new ControlProcess(dir, ['--config', configFile], { PGPASSWORD: '' });
  t.teardown(() => second.stop());
  await second.start();
  const instance = (await second.rest('GET', '/v1/instances/i-pg-1')).body;
  t.match(instance, { assignment: { roles: ['node'], labels: { env: 'pg' } }, enrolledVia: 'bootstrap-token' }, 'kept across the restart');
  t.ok(instance.enrolledAt, 'the enrollment is kept');
  const audit = (await second.rest('GET', '/v1/audit?target=i-pg-1')).body.items.map((e: { action: string }) => e.action);
  t.same(audit, ['assignment.set', 'instance.enroll']);
  await second.stop();
  t.notOk(first.logs.includes(db.password) || second.logs.includes(db.password), 'the password is in no log');

  // A password file others may read is refused, naming the file and the fix.
  chmodSync(passwordFile, 0o644);
  const loose = await runNode(CONTROL_BIN, ['serve', '--config', configFile, '--data-dir', dir], { PGPASSWORD: '' });
  t.not(loose.code, 0);
  t.match(loose.stderr, `chmod 600 ${passwordFile}`);
});

t.test('a password in the --store URL is refused before anything starts, and not echoed', async (t) => {
  const dir = scratchDir('control-pg-refused');
  t.teardown(() => removeDir(dir));
  const result = await runNode(CONTROL_BIN, [
    'serve',
    '--data-dir',
    dir,
    '--store',
    'postgres://teleboot:s3cret-pw@127.0.0.1:5432/teleboot',
  ]);
  t.not(result.code, 0);
  t.match(result.stderr, /--store: the URL holds a password/);
  t.match(result.stderr, /store\.password_file/);
  t.match(result.stderr, /PGPASSWORD/);
  t.notOk(result.stderr.includes('s3cret-pw'), 'the password is not echoed');
});
