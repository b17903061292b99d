// Issue 11, item 4: `teleboot-control backup` takes a consistent copy while
// the server serves and writes; `restore` puts it into a new data directory;
// a server started there knows the fleet, and an agent's client certificate
// issued before the backup still passes a real gRPC call over mutual TLS.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { ControlClient } from '../agent/control-client';
import { bootstrapProto } from '../contract/proto';
import { readTar } from '../control/tar';
import { testIdentity } from './support/fixtures';
import { CONTROL_BIN, ControlProcess, removeDir, runNode, scratchDir } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

const INSTANCE = 'i-0bac0000000000001';

t.test('backup while serving, restore into a new directory, agents carry on', async (t) => {
  const root = scratchDir('backup');
  t.teardown(() => removeDir(root));
  const original = new ControlProcess(join(root, 'original'));
  await original.start();
  t.teardown(() => original.stop());

  // An agent enrolls before the backup: its certificate is what must keep working.
  const caPem = readFileSync(original.caFile, 'utf8');
  const agent = new ControlClient({ endpoints: [original.grpcAddr], caPem });
  const { credentials } = await agent.enroll(testIdentity(INSTANCE), readFileSync(original.joinTokenFile, 'utf8').trim(), 'test');
  agent.close();
  t.equal((await original.rest('PUT', `/v1/instances/${INSTANCE}/assignment`, { role: 'node' })).status, 200);

  // Writes keep coming while the backup runs: a copy of one moment either way.
  let writing = true;
  const writes = (async () => {
    let n = 0;
    while (writing) await original.rest('PUT', `/v1/instances/i-0bac${String(++n).padStart(13, '0')}/assignment`, { role: 'node' });
    return n;
  })();
  const file = join(root, 'control.backup.tar');
  const made = await runNode(CONTROL_BIN, ['backup', '--data-dir', original.dataDir, '--to', file]);
  writing = false;
  t.comment(`${await writes} assignments written while the backup ran`);
  t.equal(made.code, 0, made.stderr);
  t.match(made.stdout, /backed up cluster [0-9a-f-]{36} \(\d+ instances; control\.db, cluster-id, tls\/ca\.pem, tls\/ca-key\.pem/);
  t.equal(statSync(file).mode & 0o777, 0o600, 'the backup file is 0600: it holds the CA key');
  const members = readTar(readFileSync(file)).map((e) => e.name);
  t.same(members.sort(), [
    'admin-token',
    'cluster-id',
    'control.db',
    'join-token',
    'teleboot-backup.json',
    'tls/ca-key.pem',
    'tls/ca.pem',
    'tls/server-key.pem',
    'tls/server.pem',
  ]);
  t.equal(
    (await runNode(CONTROL_BIN, ['backup', '--data-dir', original.dataDir, '--to', file])).code,
    1,
    'an existing file is not overwritten',
  );
  await original.stop();

  const restored = join(root, 'restored');
  const put = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored]);
  t.equal(put.code, 0, put.stderr);
  t.match(
    put.stdout,
    new RegExp(
      `restored cluster ${readFileSync(join(original.dataDir, 'cluster-id'), 'utf8').trim()} \\(\\d+ instances\\) into ${restored}`,
    ),
  );
  t.equal(statSync(restored).mode & 0o777, 0o700, 'the data directory is 0700');
  for (const f of ['control.db', 'cluster-id', 'tls/ca-key.pem', 'tls/server-key.pem', 'join-token', 'admin-token'])
    t.equal(statSync(join(restored, f)).mode & 0o777, 0o600, `${f} is 0600`);
  const db = new Database(join(restored, 'control.db'), { readonly: true });
  t.equal(db.pragma('quick_check', { simple: true }), 'ok', 'the restored database passes the integrity check');
  db.close();

  const again = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored]);
  t.equal(again.code, 1, 'a data directory that holds files is refused');
  t.match(again.stderr, /exists and holds files; give --force to move it aside/);
  const forced = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  const aside = /moved the data directory that was there to (\S+)/.exec(forced.stdout)?.[1];
  t.ok(aside && existsSync(join(aside, 'control.db')), 'with --force the old directory is moved aside, not deleted');

  // A new server on the restored directory, on new ports.
  const server = new ControlProcess(restored);
  await server.start();
  t.teardown(() => server.stop());
  t.equal(server.adminToken, original.adminToken);
  const instance = await server.rest('GET', `/v1/instances/${INSTANCE}`);
  t.equal(instance.status, 200, 'the admin token of the original server works');
  t.match(instance.body, { instanceId: INSTANCE, assignment: { roles: ['node'] } }, 'the fleet is known');

  // The agent's certificate from before the backup, presented over mutual TLS.
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const mtls = new Bootstrap(
    server.grpcAddr,
    grpc.credentials.createSsl(Buffer.from(readFileSync(server.caFile)), Buffer.from(credentials.keyPem), Buffer.from(credentials.certPem)),
  );
  t.teardown(() => mtls.close());
  const state = await new Promise<{ instanceId: string; assigned: boolean }>((resolve, reject) =>
    mtls.getAssignment({ instanceId: INSTANCE }, { deadline: Date.now() + 20_000 }, (err, res) => (err ? reject(err) : resolve(res!))),
  );
  t.match(state, { instanceId: INSTANCE, assigned: true }, 'GetAssignment with the certificate issued before the backup');
  t.same(
    readdirSync(root).filter((f) => f.includes('.restoring-')),
    [],
    'no staging directory left behind',
  );
});

t.test('a damaged or foreign backup is refused and nothing is put in place', async (t) => {
  const root = scratchDir('backup-bad');
  t.teardown(() => removeDir(root));
  const notTar = join(root, 'garbage.tar');
  writeFileSync(notTar, Buffer.alloc(2048, 7));
  const r = await runNode(CONTROL_BIN, ['restore', '--from', notTar, '--data-dir', join(root, 'data')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /garbage\.tar is not a teleboot-control backup: damaged archive: bad header checksum/);
  t.notOk(existsSync(join(root, 'data')), 'no data directory was made');
});

t.test('backup and restore explain themselves, and refuse a call without their files', async (t) => {
  for (const command of ['backup', 'restore']) {
    const help = await runNode(CONTROL_BIN, [command, '--help']);
    t.equal(help.code, 0, `${command} --help`);
    t.match(help.stdout, new RegExp(`Usage: teleboot-control ${command}[\\s\\S]*Examples?:\\n {2}teleboot-control ${command} `));
    const bare = await runNode(CONTROL_BIN, [command]);
    t.equal(bare.code, 64, `${command} without its flags is a usage error`);
    t.match(bare.stderr, new RegExp(`error: ${command} needs --`));
  }
});

t.test(
  'on PostgreSQL: backup while serving, restore into a new database, the fleet is there',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    const cluster = await testCluster(t);
    const db = await cluster.createDatabase();
    const root = scratchDir('backup-pg');
    t.teardown(() => removeDir(root));
    // The password as serve reads it: PGPASSWORD; never on a command line.
    const env = { PGPASSWORD: db.password };
    const original = new ControlProcess(join(root, 'original'), ['--store', db.url], env);
    await original.start();
    t.teardown(() => original.stop());
    const ids = ['i-0bac0000000000101', 'i-0bac0000000000102', 'i-0bac0000000000103'];
    for (const [n, id] of ids.entries())
      t.equal(
        (await original.rest('PUT', `/v1/instances/${id}/assignment`, { role: n ? 'node' : 'proxy', labels: { n: String(n) } })).status,
        200,
      );

    const file = join(root, 'pg.backup.tar');
    const made = await runNode(CONTROL_BIN, ['backup', '--data-dir', original.dataDir, '--store', db.url, '--to', file], env);
    t.equal(made.code, 0, made.stderr);
    t.match(made.stdout, /backed up cluster [0-9a-f-]{36} \(3 instances; control\.pgdump, cluster-id, tls\/ca\.pem, tls\/ca-key\.pem/);
    t.equal(statSync(file).mode & 0o777, 0o600, 'the backup file is 0600: it holds the CA key');
    t.notMatch(readFileSync(file).toString('latin1'), db.password, 'the password is not in the backup');
    t.notOk(
      readTar(readFileSync(file)).some((e) => e.name === 'control.db'),
      'no SQLite file in it',
    );

    const restored = join(root, 'restored');
    const bare = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored]);
    t.equal(bare.code, 1, 'a PostgreSQL backup needs the database to restore into');
    t.match(bare.stderr, /holds a PostgreSQL store: give --store postgres:/);
    const occupied = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored, '--store', db.url], env);
    t.equal(occupied.code, 1);
    t.match(occupied.stderr, /already holds a teleboot-control store: restore into a new, empty database/);
    t.notOk(existsSync(restored), 'a database that holds a store is refused before the data directory is made');

    const fresh = await cluster.createDatabase('restored');
    const put = await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', restored, '--store', fresh.url], env);
    t.equal(put.code, 0, put.stderr);
    t.match(
      put.stdout,
      /\(3 instances\) into .*restored and postgres:.*start it with: teleboot-control serve --data-dir \S+ --store postgres:/,
    );
    t.notOk(existsSync(join(restored, 'control.pgdump')), 'the dump is not left in the data directory');
    await original.stop();

    // A server on the restored directory and database knows the fleet and the original admin token works.
    const server = new ControlProcess(restored, ['--store', fresh.url], env);
    await server.start();
    t.teardown(() => server.stop());
    const listed = await server.rest('GET', '/v1/instances?limit=10');
    t.equal(listed.status, 200);
    t.same(
      listed.body.items.map((i: { instanceId: string; assignment: { labels: Record<string, string> } }) => [
        i.instanceId,
        i.assignment.labels.n,
      ]),
      ids.map((id, n) => [id, String(n)]),
      'every instance is there with its own assignment',
    );
  },
);
