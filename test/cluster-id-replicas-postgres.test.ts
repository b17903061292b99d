// The cluster id lives in the PostgreSQL database: replicas started at once
// on an empty database agree on one, a replica started later with an empty
// data directory takes it (nothing to write at launch), and a data
// directory whose cluster-id file names another cluster is refused.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { postgresUnavailable } from './support/postgres';
import { queryDb, replicaSite } from './support/replicas';

const idIn = (dataDir: string) => readFileSync(join(dataDir, 'cluster-id'), 'utf8').trim();

t.test('replicas on one PostgreSQL database share one cluster id', { skip: postgresUnavailable() ?? false }, async (t) => {
  const site = await replicaSite(t);
  const dirs = ['r1', 'r2', 'r3'].map((name) => join(site.dir, name));
  const first = dirs.map((dir) => site.replica(dir));
  await Promise.all(first.map((r) => r.start()));
  t.pass('three replicas started at once on an empty database');

  const [row] = await queryDb(site, 'SELECT cluster_id FROM cluster_identity');
  const clusterId = row.cluster_id as string;
  t.match(clusterId, /^[0-9a-f-]{36}$/, 'the database holds the cluster id');
  t.same(dirs.map(idIn), [clusterId, clusterId, clusterId], "each replica's cluster-id file names the database's");
  t.equal(statSync(join(dirs[0], 'cluster-id')).mode & 0o777, 0o600, 'the file is 0600');
  t.equal(first.filter((r) => /started a new cluster/.test(r.logs)).length, 1, 'one replica started the cluster; the others joined it');

  // A replica added later, its data directory empty: no cluster-id file to write at launch.
  const lateDir = join(site.dir, 'r4');
  const late = site.replica(lateDir);
  await late.start();
  t.equal(idIn(lateDir), clusterId, 'a replica started later with an empty data directory takes the same id');
  t.match(late.logs, /joined the database's cluster as a new replica/);
  const token = readFileSync(
    first.map((r) => r.adminTokenFile).find((f) => existsSync(f))!,
    'utf8',
  ).trim();
  const settings = await late.rest('GET', '/v1/settings', undefined, {}, token);
  t.equal(settings.status, 200, 'it serves the cluster: the admin token made by the first replica works there');

  // A data directory of another cluster is refused, naming both ids.
  const otherDir = join(site.dir, 'r5');
  mkdirSync(otherDir, { mode: 0o700 });
  const otherId = '0f0f0f0f-1111-4222-8333-444455556666';
  writeFileSync(join(otherDir, 'cluster-id'), otherId + '\n', { mode: 0o600 });
  const refused = await site
    .replica(otherDir)
    .start()
    .then(
      () => undefined,
      (err: Error) => err.message,
    );
  t.ok(refused, 'a replica whose cluster-id names another cluster does not start');
  t.match(refused, clusterId, 'the refusal names the database’s cluster');
  t.match(refused, otherId, 'and the data directory’s');
});
