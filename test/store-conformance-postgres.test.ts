// The store conformance suite on PostgreSQL (a throwaway cluster, a database
// per subtest), and what only PostgreSQL does: migrations under an advisory lock.
import t from 'tap';
import { PgStore } from '../control/store/postgres';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from '../control/store/postgres-migrations';
import { postgresUnavailable, testCluster, type PgCluster } from './support/postgres';
import { storeConformance } from './support/store-conformance';

const skip = postgresUnavailable() ?? false;

t.test('PostgreSQL store', { skip }, async (t) => {
  const cluster: PgCluster = await testCluster(t);

  t.test('conformance', async (t) => {
    storeConformance(t, async () => {
      const db = await cluster.createDatabase();
      return { open: () => PgStore.open({ url: db.url, password: db.password }) };
    });
  });

  t.test('three stores opened together on a fresh database migrate it once', async (t) => {
    const db = await cluster.createDatabase();
    const stores = await Promise.all([1, 2, 3].map(() => PgStore.open({ url: db.url, password: db.password })));
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    for (const store of stores) t.equal(await store.schemaVersion(), PG_SCHEMA_VERSION);
    const client = cluster.connect(db.name);
    await client.connect();
    t.teardown(() => client.end());
    const rows = (await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows;
    t.same(
      rows.map((r) => r.version),
      PG_MIGRATIONS.map((m) => m.version),
      'each migration recorded once',
    );
    await stores[0].setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 1);
    t.match(await stores[2].getInstance('i-1'), { assignment: { roles: ['node'] } }, 'the stores share one database');
  });

  t.test("a wrong password is refused with PostgreSQL's reason; nothing is created", async (t) => {
    const db = await cluster.createDatabase();
    await t.rejects(PgStore.open({ url: db.url, password: 'wrong' }), /password authentication failed/);
  });
});
