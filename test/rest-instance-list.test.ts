// The instance list renders each instance once and reuses it while its
// stored row is unchanged (control/rest/views.ts InstancePages). What a user
// would check: after any writes, by any writer, every listed instance is
// exactly what GET /v1/instances/:id says, and a change made through one
// replica is in the very next list read from another.
import t from 'tap';
import { join } from 'node:path';
import type { HostFacts } from '../contract/model';
import { SqliteStore } from '../control/store/sqlite';
import { ControlProcess, removeDir, scratchDir } from './support/harness';
import { postgresUnavailable } from './support/postgres';
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

t.test('after random writes from another process, every listed instance equals its single GET', async (t) => {
  const dir = scratchDir('rest-instance-list');
  t.teardown(() => removeDir(dir));
  const control = new ControlProcess(join(dir, 'control'), ['--heartbeat-interval', '10m']);
  t.teardown(() => control.stop());
  await control.start();
  // A second writer on the same database: the control server learns of its writes only by reading them.
  const store = new SqliteStore(join(control.dataDir, 'control.db'));
  t.teardown(() => store.close());

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
});

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
