// The instance list renders each instance once and reuses it while its
// stored row is unchanged (control/rest/views.ts InstancePages). What a user
// would check: after any writes, by any writer, every listed instance is
// exactly what GET /v1/instances/:id says, on SQLite and on PostgreSQL (where
// the list reads row versions, and the columns of changed rows only), a page
// filtered by health holds only instances of that health while they change,
// and a change made through one replica is in the very next list read from another.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import type { HostFacts } from '../contract/model';
import { PgStore } from '../control/store/postgres';
import type { RecordStore } from '../control/store/record-store';
import { SqliteStore } from '../control/store/sqlite';
import { ControlProcess, removeDir, scratchDir } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';
import { startReplicas } from './support/replicas';
import { identity } from './support/store-conformance';

const ROLES = ['node', 'proxy', 'auth', null] as const;
const STATES = ['ready', 'failed', 'converging', 'degraded', 'orphaned', 'stopped'] as const;

/** A repeatable pseudo-random sequence (mulberry32), so that a failure can be replayed. */
function randomOf(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const facts = (i: number): HostFacts => ({
  os: 'debian',
  kernel: `6.1.${i}`,
  arch: 'x86_64',
  cpus: 2,
  memoryTotalBytes: 4e9,
  memoryAvailableBytes: 1e9 + i,
  loadAverage1m: i / 10,
  uptimeSeconds: 60 * i,
  rootDiskFreeBytes: 1e10,
});

/** Every page of the list, `limit` at a time. */
async function listAll(control: ControlProcess, limit: number): Promise<any[]> {
  const items: any[] = [];
  let after: string | undefined;
  do {
    const page = await control.rest('GET', `/v1/instances?limit=${limit}${after ? `&after=${after}` : ''}`);
    if (page.status !== 200) throw new Error(`list: ${page.status} ${JSON.stringify(page.body)}`);
    items.push(...page.body.items);
    after = page.body.next;
  } while (after);
  return items;
}

/** Random writes by `store` (not the server's), then every page of the list compared with the stored ids and each single GET. */
async function randomWritesThenList(t: Test, control: ControlProcess, store: RecordStore): Promise<void> {
  const random = randomOf(12);
  const ids = Array.from({ length: 24 }, (_, i) => `i-list${String(i).padStart(4, '0')}`);
  for (let round = 0; round < 6; round++) {
    for (let w = 0; w < 30; w++) {
      const id = ids[random(ids.length)];
      const now = Date.now();
      const kind = random(5);
      if (kind === 0) {
        const role = ROLES[random(ROLES.length)];
        await store.setAssignment(id, role ? { roles: [role], labels: { round: String(round) } } : null, 'test', now);
      } else if (kind === 1) await store.enroll(identity(id, { Name: `host-${w}` }), 'test', now);
      else if (kind === 2) await store.deleteInstance(id, 'test', now);
      else {
        const state = STATES[random(STATES.length)];
        await store.recordStatus(
          id,
          random(3),
          { state, teleportUnitState: 'active', teleportReady: random(2) === 1, message: `w${w}`, agentVersion: 'test', reportedAt: now },
          random(2) ? facts(w) : null,
        );
      }
    }
    // A small page size: several pages, each rendered from entries the earlier rounds left.
    const listed = await listAll(control, 5);
    const stored = (await store.listInstances({ limit: 1000 }, { now: Date.now(), offlineBefore: 0 })).items.map((r) => r.instanceId);
    t.same(
      listed.map((i) => i.instanceId),
      stored,
      `round ${round}: the list holds exactly the stored instances`,
    );
    for (const item of listed) {
      const one = await control.rest('GET', `/v1/instances/${item.instanceId}`);
      t.same(item, one.body, `round ${round}: ${item.instanceId} in the list equals its GET`);
    }
  }
}

t.test('after random writes from another process, every listed instance equals its single GET', async (t) => {
  const dir = scratchDir('rest-instance-list');
  t.teardown(() => removeDir(dir));
  const control = new ControlProcess(join(dir, 'control'), ['--heartbeat-interval', '10m']);
  t.teardown(() => control.stop());
  await control.start();
  // A second writer on the same database: the control server learns of its writes only by reading them.
  const store = new SqliteStore(join(control.dataDir, 'control.db'));
  t.teardown(() => store.close());
  await randomWritesThenList(t, control, store);
});

/** A control server on a fresh PostgreSQL database, and a store of its own on that database (another writer). */
async function onPostgres(t: Test): Promise<{ control: ControlProcess; store: PgStore }> {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const dir = scratchDir('rest-instance-list-pg');
  t.teardown(() => removeDir(dir));
  const control = new ControlProcess(join(dir, 'control'), ['--heartbeat-interval', '10m', '--store', db.url], { PGPASSWORD: db.password });
  t.teardown(() => control.stop());
  await control.start();
  const store = await PgStore.open({ url: db.url, password: db.password });
  t.teardown(() => store.close());
  return { control, store };
}

t.test(
  'PostgreSQL: after random writes from another process (deletions and enrollments again included), every listed instance equals its single GET',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    // The list reads row versions and renders an instance again only when its version changed (control/store/records.ts).
    const { control, store } = await onPostgres(t);
    await randomWritesThenList(t, control, store);
  },
);

t.test(
  'PostgreSQL: a list filtered by health, read while another process changes the health, shows only instances of that health',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    const { control, store } = await onPostgres(t);
    const READS = 100;
    const ids = Array.from({ length: 12 }, (_, i) => `i-filter${String(i).padStart(4, '0')}`);
    const report = (id: string, state: 'ready' | 'failed') =>
      store.recordStatus(
        id,
        1,
        { state, teleportUnitState: 'active', teleportReady: true, message: state, agentVersion: 'test', reportedAt: Date.now() },
        null,
      );
    for (const id of ids) {
      await store.setAssignment(id, { roles: ['node'], labels: {} }, 'test', Date.now());
      await store.enroll(identity(id), 'test', Date.now());
      await report(id, 'ready');
    }
    // Rendered once, so that the reads below mostly find views of versions that have changed since.
    await listAll(control, 5);
    // Writers on every instance at once, so that rows change between the list's statements (a page with a changed
    // row is read again as a whole: it never mixes rows of two moments).
    let writing = true;
    const writers = Promise.all(
      ids.map(async (id, k) => {
        for (let w = k; writing; w++) await report(id, w % 2 ? 'ready' : 'failed');
      }),
    );
    let pages = 0;
    try {
      for (let read = 0; read < READS; read++) {
        const page = await control.rest('GET', '/v1/instances?health=ready&limit=5');
        t.equal(page.status, 200);
        pages++;
        const wrong = page.body.items.filter((i: any) => i.health !== 'ready' || i.status.state !== 'ready');
        if (wrong.length)
          t.fail(`read ${read}: listed under health=ready: ${JSON.stringify(wrong.map((i: any) => [i.instanceId, i.health]))}`);
      }
    } finally {
      writing = false;
      await writers;
    }
    t.equal(pages, READS, 'every page had only ready instances');
  },
);

t.test('a change through replica A is in the next list read from replica B', { skip: postgresUnavailable() ?? false }, async (t) => {
  const {
    replicas: [a, b],
  } = await startReplicas(t, 2);

  const id = 'i-list-replicas';
  const roles = ['node', 'proxy', 'auth', 'node'];
  for (const [k, role] of roles.entries()) {
    const put = await a.rest('PUT', `/v1/instances/${id}/assignment`, { role, labels: { step: String(k) } });
    t.equal(put.status, 200, JSON.stringify(put.body));
    // Read right after A answered, no waiting: B rendered the instance before, and must not show that.
    const listed = (await b.rest('GET', '/v1/instances?limit=10')).body.items.find((i: any) => i.instanceId === id);
    t.same(listed, put.body, `step ${k}: B lists what A answered (${role})`);
  }
  const cleared = await a.rest('DELETE', `/v1/instances/${id}/assignment`);
  t.equal(cleared.status, 200);
  t.same((await b.rest('GET', '/v1/instances?limit=10')).body.items, [cleared.body], 'B lists the assignment cleared through A');
  t.equal((await a.rest('DELETE', `/v1/instances/${id}`)).status, 204);
  t.same((await b.rest('GET', '/v1/instances?limit=10')).body.items, [], 'B no longer lists the instance A deleted');
});
