// The change feed between replicas on one PostgreSQL database: a change
// written through one store reaches a listener of another, not its own; one
// made while a replica's feed connection was cut reaches it after it
// reconnects (catch-up by sequence).
import t from 'tap';
import { DEFAULT_CLUSTER_SETTINGS } from '../contract/model';
import { PgStore } from '../control/store/postgres';
import { until } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('change feed', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const open = () =>
    PgStore.open({ url: db.url, password: db.password, onConnectionError: (err, what) => t.comment(`${what}: ${err.message}`) });
  const [a, b] = await Promise.all([open(), open()]);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const heardByA: string[] = [];
  const heardByB: string[] = [];
  a.watchChanges((ids) => heardByA.push(...ids));
  b.watchChanges((ids) => heardByB.push(...ids));
  const admin = cluster.connect(db.name);
  await admin.connect();
  t.teardown(() => admin.end());
  const feedConnections = async () =>
    (await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'teleboot-control-changes'")).rows.length;
  await until('both feeds listen', async () => (await feedConnections()) === 2, 30_000);

  await a.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 1);
  await until('B hears of i-1', async () => heardByB.includes('i-1'), 30_000);
  await a.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'x' }, 'op', 2);
  await until('B hears of the settings change', async () => heardByB.includes('*'), 30_000);
  await b.deleteInstance('i-1', 'op', 3);
  await until('A hears of the deletion by B', async () => heardByA.includes('i-1'), 30_000);
  t.same(heardByA, ['i-1'], "A hears only B's change, not its own");
  t.same(heardByB, ['i-1', '*'], "B hears A's changes in order, not its own");

  // Cut the feed connections; a change made meanwhile reaches B once it is back.
  await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'teleboot-control-changes'");
  await a.setAssignment('i-2', { roles: ['node'], labels: {} }, 'op', 4);
  await until('B catches up with i-2 after reconnecting', async () => heardByB.includes('i-2'), 60_000);
  t.same(heardByB, ['i-1', '*', 'i-2'], 'each change once');
});
