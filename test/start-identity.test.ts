// Issue 11, item 1: a control server never silently starts a new control
// plane. The store and the data directory record the same cluster id; a
// missing, empty or foreign control.db beside an existing cluster stops
// `serve` with the file named and how to restore it. A new cluster takes
// --force-new-cluster. Real server processes on real files.
import t from 'tap';
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ControlProcess, removeDir } from './support/harness';
import { copyDataDir, readText, removeStore, serveExpectingRefusal, clustersFor } from './support/control-data';

const RESTORE = /teleboot-control restore --from BACKUP --data-dir/;

// Two clusters, each made by a real first start; every test damages a copy.
const clusters = clustersFor(t, 'identity', 2);

t.test('a missing control.db beside an existing CA and tokens: refused, nothing rewritten', async (t) => {
  const dir = copyDataDir(clusters[0], 'identity-missing');
  t.teardown(() => removeDir(join(dir, '..')));
  const adminToken = readText(join(dir, 'admin-token'));
  removeStore(dir);
  const r = await serveExpectingRefusal(dir);
  t.equal(r.code, 1, 'exits 1');
  t.match(r.stderr, new RegExp(`the database ${join(dir, 'control.db')} is missing or empty`));
  t.match(r.stderr, /already holds a cluster \(.*ca-key\.pem/);
  t.match(r.stderr, RESTORE, 'says how to restore');
  t.match(r.stderr, /--force-new-cluster/, 'and how to begin anew on purpose');
  t.notOk(existsSync(join(dir, 'control.db')), 'no new database was created');
  t.equal(readText(join(dir, 'admin-token')), adminToken, 'the admin token was not rewritten');
});

t.test('an empty (0-byte) control.db: refused alike', async (t) => {
  const dir = copyDataDir(clusters[0], 'identity-empty');
  t.teardown(() => removeDir(join(dir, '..')));
  removeStore(dir);
  writeFileSync(join(dir, 'control.db'), '', { mode: 0o600 });
  const r = await serveExpectingRefusal(dir);
  t.equal(r.code, 1);
  t.match(r.stderr, /control\.db is missing or empty/);
});

t.test("another cluster's control.db: refused, naming both ids and files", async (t) => {
  const mine = copyDataDir(clusters[0], 'identity-mine');
  t.teardown(() => removeDir(join(mine, '..')));
  const myId = readText(join(mine, 'cluster-id')).trim();
  const otherId = readText(join(clusters[1], 'cluster-id')).trim();
  t.not(myId, otherId, 'every first start makes its own id');
  removeStore(mine);
  copyFileSync(join(clusters[1], 'control.db'), join(mine, 'control.db'));
  const r = await serveExpectingRefusal(mine);
  t.equal(r.code, 1);
  t.match(r.stderr, `the database ${join(mine, 'control.db')} belongs to cluster ${otherId}, but ${join(mine, 'cluster-id')} says ${myId}`);
  t.match(r.stderr, RESTORE);
});

t.test('a missing cluster-id file beside a database with an identity: refused, naming the file', async (t) => {
  const dir = copyDataDir(clusters[0], 'identity-noid');
  t.teardown(() => removeDir(join(dir, '..')));
  const id = readText(join(dir, 'cluster-id')).trim();
  rmSync(join(dir, 'cluster-id'));
  const r = await serveExpectingRefusal(dir);
  t.equal(r.code, 1);
  t.match(r.stderr, `${join(dir, 'cluster-id')} is missing, while the database ${join(dir, 'control.db')} belongs to cluster ${id}`);
});

t.test('--force-new-cluster begins a new cluster on purpose and keeps the CA key', async (t) => {
  const dir = copyDataDir(clusters[0], 'identity-force');
  t.teardown(() => removeDir(join(dir, '..')));
  const before = { id: readText(join(dir, 'cluster-id')), caKey: readText(join(dir, 'tls/ca-key.pem')) };
  removeStore(dir);
  const control = new ControlProcess(dir, ['--force-new-cluster']);
  await control.start();
  t.teardown(() => control.stop());
  t.match(control.logs, /started a new cluster on purpose \(--force-new-cluster\)/);
  t.not(readText(join(dir, 'cluster-id')), before.id, 'a new cluster id');
  t.equal(readText(join(dir, 'tls/ca-key.pem')), before.caKey, 'the CA key is the same file');
  t.equal((await control.rest('GET', '/readyz')).status, 200);
  await control.stop();
  const again = new ControlProcess(dir);
  await again.start();
  t.teardown(() => again.stop());
  t.pass('and it starts again without the flag');
});

t.test('a data directory from before cluster ids: its store is adopted, the id recorded in both places', async (t) => {
  const dir = copyDataDir(clusters[0], 'identity-upgrade');
  t.teardown(() => removeDir(join(dir, '..')));
  const db = new Database(join(dir, 'control.db'));
  db.exec('DELETE FROM cluster_identity');
  db.close();
  rmSync(join(dir, 'cluster-id'));
  const control = new ControlProcess(dir);
  await control.start();
  t.teardown(() => control.stop());
  t.match(control.logs, /recorded the identity of the existing cluster/);
  const id = readText(join(dir, 'cluster-id')).trim();
  const check = new Database(join(dir, 'control.db'), { readonly: true });
  t.equal(check.prepare('SELECT cluster_id FROM cluster_identity').pluck().get(), id);
  check.close();
  t.equal((await control.rest('GET', '/v1/instances')).status, 200, 'the admin token of the old store still works');
});
