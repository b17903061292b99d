// Status reports that come together commit together on PostgreSQL (one
// transaction for the group, control/store/postgres.ts): each caller still
// gets its own result, and one report the database refuses costs the others
// nothing: the group runs again, each report alone.
import t from 'tap';
import { PgStore } from '../control/store/postgres';
import type { InstanceStatus } from '../control/store/store';
import { postgresUnavailable, testCluster } from './support/postgres';

const status = (reportedAt: number): InstanceStatus => ({
  state: 'ready',
  teleportUnitState: 'active',
  teleportReady: true,
  message: '',
  agentVersion: 'test',
  reportedAt,
});

t.test('status reports of one turn', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const store = await PgStore.open({ url: db.url, password: db.password, poolSize: 2 });
  t.teardown(() => store.close());
  const ids = ['i-1', 'i-2', 'i-3', 'i-4'];
  for (const id of ids) await store.setAssignment(id, { roles: ['node'], labels: {} }, 'op', 1);

  const together = await Promise.all(ids.map((id, k) => store.recordStatus(id, 1, status(100 + k), null)));
  t.same(
    together.map((r) => [r?.instanceId, r?.appliedGeneration, r?.status?.reportedAt]),
    ids.map((id, k) => [id, 1, 100 + k]),
    'each caller gets its own record',
  );

  // A generation out of BIGINT's range: PostgreSQL refuses that report alone.
  const outcomes = await Promise.allSettled([
    store.recordStatus('i-1', 1, status(200), null),
    store.recordStatus('i-2', 2 ** 70, status(201), null),
    store.recordStatus('i-3', 1, status(202), null),
    store.recordStatus('i-unknown', 1, status(203), null),
  ]);
  t.same(
    outcomes.map((o) => o.status),
    ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  t.equal(outcomes[3].status === 'fulfilled' && outcomes[3].value, undefined, 'an unknown instance: no record');
  const stored = new Map((await store.getInstances(ids)).map((r) => [r.instanceId, r.status?.reportedAt]));
  t.same(
    ids.map((id) => stored.get(id)),
    [200, 101, 202, 103],
    'the others saved; the refused one left the previous report',
  );
});
