// The embedded SQLite store: migrations, what survives a reopen, rules,
// generations and fleet health.
import t from 'tap';
import { join } from 'node:path';
import { SqliteStore } from '../control/store/sqlite';
import { MIGRATIONS } from '../control/store/migrations';
import { DEFAULT_CLUSTER_SETTINGS, type InstanceIdentity } from '../contract/model';
import { removeDir, scratchDir } from './support/harness';

const identity = (id: string, tags: Record<string, string> = {}): InstanceIdentity => ({
  instanceId: id,
  region: 'us-east-1',
  availabilityZone: 'us-east-1a',
  accountId: '123456789012',
  privateIp: '10.0.0.1',
  hostname: `${id}.ec2.internal`,
  instanceType: 't3.small',
  imageId: 'ami-0123',
  tags,
});

const ready = { state: 'ready' as const, teleportUnitState: 'active', teleportReady: true, message: '', agentVersion: 'test' };

t.test('a reopened database keeps instances, assignments, rules, settings and audit events', async (t) => {
  const dir = scratchDir('store');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.db');
  const first = new SqliteStore(path);
  t.equal(first.schemaVersion(), MIGRATIONS[MIGRATIONS.length - 1].version);
  await first.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'prod' }, 'test', 1);
  await first.setAssignment('i-1', { roles: ['node'], labels: { a: 'b' } }, 'test', 2);
  await first.addRule({ name: 'r', selector: { Role: 'web' }, roles: ['node'], labels: {} }, undefined, 'test', 3);
  await first.enroll(identity('i-1'), 'agent', 4);
  await first.close();

  const second = new SqliteStore(path);
  t.teardown(() => second.close());
  t.equal(second.schemaVersion(), MIGRATIONS[MIGRATIONS.length - 1].version, 'migrations are not applied twice');
  t.equal((await second.getSettings()).clusterName, 'prod');
  t.match(await second.getInstance('i-1'), {
    assignment: { roles: ['node'], labels: { a: 'b' } },
    generation: 1,
    identity: { hostname: 'i-1.ec2.internal' },
  });
  t.equal((await second.listRules()).length, 1);
  t.same(
    (await second.listAudit({ limit: 10 })).map((e) => e.action),
    ['settings.update', 'assignment.set', 'rule.add', 'instance.enroll'],
  );
});

t.test('rules apply at enrollment, first match wins, and never override an explicit assignment', async (t) => {
  const store = new SqliteStore(':memory:');
  t.teardown(() => store.close());
  await store.addRule({ name: 'any web', selector: { Role: '*' }, roles: ['node'], labels: {} }, undefined, 'op', 1);
  await store.addRule({ name: 'edge', selector: { Role: 'edge', Env: 'prod' }, roles: ['proxy'], labels: {} }, 0, 'op', 2);

  const edge = await store.enroll(identity('i-edge', { Role: 'edge', Env: 'prod' }), 'agent', 3);
  t.equal(edge.matchedRule?.name, 'edge');
  t.same(edge.record.assignment?.roles, ['proxy']);
  const other = await store.enroll(identity('i-web', { Role: 'web' }), 'agent', 3);
  t.equal(other.matchedRule?.name, 'any web', '"*" matches any value of a present tag');
  const untagged = await store.enroll(identity('i-none'), 'agent', 3);
  t.equal(untagged.matchedRule, undefined);
  t.equal(untagged.record.assignment, null);

  await store.setAssignment('i-pre', { roles: ['auth'], labels: {} }, 'op', 4);
  const pre = await store.enroll(identity('i-pre', { Role: 'edge', Env: 'prod' }), 'agent', 5);
  t.equal(pre.matchedRule, undefined, 'an explicit assignment wins');
  t.same(pre.record.assignment?.roles, ['auth']);
});

t.test('a settings change bumps the generation of assigned instances only', async (t) => {
  const store = new SqliteStore(':memory:');
  t.teardown(() => store.close());
  await store.setAssignment('i-a', { roles: ['node'], labels: {} }, 'op', 1);
  await store.enroll(identity('i-b'), 'agent', 1);
  const bumped = await store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'x' }, 'op', 2);
  t.same(bumped, ['i-a']);
  t.equal((await store.getInstance('i-a'))?.generation, 2);
  t.equal((await store.getInstance('i-b'))?.generation, 0);
});

t.test('fleet health follows enrollment, generations, reports and heartbeats', async (t) => {
  const store = new SqliteStore(':memory:');
  t.teardown(() => store.close());
  const clock = (now: number) => ({ now, offlineBefore: now - 90 });
  const healthOf = async (id: string, now = 100) => (await store.listInstances({ instanceId: id, limit: 1 }, clock(now))).items[0].health;

  await store.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 10);
  t.equal(await healthOf('i-1'), 'expected');
  await store.enroll(identity('i-1'), 'agent', 20);
  t.equal(await healthOf('i-1'), 'converging');
  await store.recordStatus('i-1', 1, { ...ready, reportedAt: 30 }, null);
  t.equal(await healthOf('i-1'), 'ready');
  await store.setAssignment('i-1', { roles: ['proxy'], labels: {} }, 'op', 40);
  t.equal(await healthOf('i-1'), 'converging', 'a new generation not yet applied');
  await store.recordStatus('i-1', 1, { ...ready, state: 'failed', teleportReady: false, reportedAt: 50 }, null);
  t.equal(await healthOf('i-1'), 'degraded');
  t.equal(await healthOf('i-1', 200), 'offline', 'no heartbeat for three intervals');

  await store.enroll(identity('i-2'), 'agent', 60);
  t.equal(await healthOf('i-2'), 'unassigned');
  const summary = await store.healthSummary(clock(100));
  t.same(
    summary.map((r) => [r.roles, r.health, r.count]),
    [
      [null, 'unassigned', 1],
      [['proxy'], 'degraded', 1],
    ],
  );
});
