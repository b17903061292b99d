// Every connection of a replica's pool busy (a burst, or a database slow to
// answer): a call that cannot get a connection in time is refused as
// "unavailable" (REST 503, gRPC UNAVAILABLE: the caller retries), never an
// internal error; the busy call itself finishes once the database answers.
import t from 'tap';
import { StoreUnavailableError } from '../control/errors';
import { PgStore } from '../control/store/postgres';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('a pool with no free connection', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const store = await PgStore.open({ url: db.url, password: db.password, poolSize: 1 });
  t.teardown(() => store.close());
  await store.setAssignment('i-before', { roles: ['node'], labels: {} }, 'op', 1);

  // Another session holds the instances table: the store's one connection waits on it.
  const admin = cluster.connect(db.name);
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query('BEGIN');
  await admin.query('LOCK TABLE instances IN ACCESS EXCLUSIVE MODE');
  const waiting = store.setAssignment('i-waiting', { roles: ['node'], labels: {} }, 'op', 2);

  const refused = await store.setAssignment('i-refused', { roles: ['node'], labels: {} }, 'op', 3).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.type(refused, StoreUnavailableError, 'refused as unavailable, so the caller retries');
  t.match((refused as Error).message, /every connection of this replica is in use; retry/);

  await admin.query('COMMIT');
  await waiting;
  const ids = (await store.listInstances({ limit: 10 }, { now: Date.now(), offlineBefore: 0 })).items.map((i) => i.instanceId);
  t.same(ids.sort(), ['i-before', 'i-waiting'], 'the waiting write landed; the refused one left nothing');
});
