// The conformance suite every Store implementation passes: what a caller of
// each Store method observes, on a fresh database per subtest.
import type { Test } from 'tap';
import { DEFAULT_CLUSTER_SETTINGS, HEALTH_STATES, type HostFacts, type InstanceIdentity } from '../../contract/model';
import { ConflictError, VersionConflictError } from '../../control/errors';
import { healthOf as derivedHealth } from '../../control/store/health';
import { rolloutConformance } from './store-conformance-rollouts';
import { EnrollRefused, type EnrollRefusal, type ProxyCertificate, type Store } from '../../control/store/store';

/** A fresh, empty database; open() opens a store on it (again after a close: a reopen). */
export interface StoreDatabase {
  open(): Promise<Store>;
}

export type StoreFactory = (t: Test) => Promise<StoreDatabase>;

export const identity = (id: string, tags: Record<string, string> = {}): InstanceIdentity => ({
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

async function refusal(p: Promise<unknown>): Promise<EnrollRefusal | 'none'> {
  try {
    await p;
    return 'none';
  } catch (err) {
    if (err instanceof EnrollRefused) return err.reason;
    throw err;
  }
}

export function storeConformance(t: Test, factory: StoreFactory): void {
  /** A store on a fresh database, closed at the end of the subtest. */
  const fresh = async (t: Test): Promise<Store> => {
    const store = await (await factory(t)).open();
    t.teardown(() => store.close());
    return store;
  };
  const actions = async (store: Store, target?: string) => (await store.listAudit({ limit: 1000, target })).map((e) => e.action);

  t.test('a reopened database keeps instances, assignments, rules, settings and audit events', async (t) => {
    const db = await factory(t);
    const first = await db.open();
    await first.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'prod' }, 'test', 1);
    await first.setAssignment('i-1', { roles: ['node'], labels: { a: 'b' } }, 'test', 2);
    await first.addRule({ name: 'r', selector: { Role: 'web' }, roles: ['node'], labels: {} }, undefined, 'test', 3);
    await first.enroll(identity('i-1'), 'agent', 4);
    await first.close();

    const second = await db.open();
    t.teardown(() => second.close());
    t.equal((await second.getSettings()).clusterName, 'prod');
    t.match(await second.getInstance('i-1'), {
      assignment: { roles: ['node'], labels: { a: 'b' } },
      generation: 1,
      identity: { hostname: 'i-1.ec2.internal' },
    });
    t.equal((await second.listRules()).length, 1);
    t.same(await actions(second), ['settings.update', 'assignment.set', 'rule.add', 'instance.enroll']);
  });

  t.test('settings: defaults until saved; a change bumps the generation of assigned instances only', async (t) => {
    const store = await fresh(t);
    t.same(await store.getSettings(), DEFAULT_CLUSTER_SETTINGS);
    await store.setAssignment('i-a', { roles: ['node'], labels: {} }, 'op', 1);
    await store.enroll(identity('i-b'), 'agent', 1);
    const { bumped } = await store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'x' }, 'op', 2);
    t.same(bumped, ['i-a']);
    t.equal((await store.getInstance('i-a'))?.generation, 2);
    t.equal((await store.getInstance('i-b'))?.generation, 0);
    t.equal((await store.getSettings()).clusterName, 'x');
    const current = (await store.getVersionedSettings()).version;
    const conflict = await store
      .updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'y' }, 'op', 3, current - 1)
      .catch((e: unknown) => e);
    t.type(conflict, VersionConflictError, 'a write based on settings changed since is refused');
    t.equal((await store.getSettings()).clusterName, 'x', 'and writes nothing');
    t.same(await store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'y' }, 'op', 3, current), {
      bumped: ['i-a'],
      version: current + 1,
    });
    const [event] = (await store.listAudit({ limit: 10, target: 'settings' })).filter((e) => e.action === 'settings.update');
    t.match(event, { actor: 'op', at: 2, details: { before: null, after: { clusterName: 'x' } } });
  });

  t.test('rules apply at enrollment, first match wins, and never override an explicit assignment', async (t) => {
    const store = await fresh(t);
    await store.addRule({ name: 'any web', selector: { Role: '*' }, roles: ['node'], labels: {} }, undefined, 'op', 1);
    await store.addRule({ name: 'edge', selector: { Role: 'edge', Env: 'prod' }, roles: ['proxy'], labels: {} }, 0, 'op', 2);

    const edge = await store.enroll(identity('i-edge', { Role: 'edge', Env: 'prod' }), 'agent', 3);
    t.equal(edge.matchedRule?.name, 'edge');
    t.same(edge.record.assignment?.roles, ['proxy']);
    t.equal(edge.record.generation, 1);
    const other = await store.enroll(identity('i-web', { Role: 'web' }), 'agent', 3);
    t.equal(other.matchedRule?.name, 'any web', '"*" matches any value of a present tag');
    const untagged = await store.enroll(identity('i-none'), 'agent', 3);
    t.equal(untagged.matchedRule, undefined);
    t.equal(untagged.record.assignment, null);

    await store.setAssignment('i-pre', { roles: ['auth'], labels: {} }, 'op', 4);
    const pre = await store.enroll(identity('i-pre', { Role: 'edge', Env: 'prod' }), 'agent', 5);
    t.equal(pre.matchedRule, undefined, 'an explicit assignment wins');
    t.same(pre.record.assignment?.roles, ['auth']);
    t.same(await actions(store, 'i-edge'), ['instance.enroll', 'assignment.set']);
  });

  t.test('rules: added at a position, listed in order, deleted', async (t) => {
    const store = await fresh(t);
    const { value: a } = await store.addRule({ name: 'a', selector: { A: '1' }, roles: ['node'], labels: { x: 'y' } }, undefined, 'op', 1);
    const { value: b } = await store.addRule({ name: 'b', selector: {}, roles: ['proxy'], labels: {} }, 0, 'op', 2);
    const { value: c } = await store.addRule({ name: 'c', selector: {}, roles: ['auth'], labels: {} }, 99, 'op', 3);
    t.same(
      (await store.listRules()).map((r) => r.name),
      ['b', 'a', 'c'],
    );
    t.match((await store.listRules())[1], { id: a.id, selector: { A: '1' }, labels: { x: 'y' }, createdAt: 1 });
    t.ok(await store.deleteRule(b.id, 'op', 4));
    t.equal(await store.deleteRule(b.id, 'op', 5), undefined, 'an unknown rule');
    const { value: d } = await store.addRule({ name: 'd', selector: {}, roles: ['node'], labels: {} }, 1, 'op', 6);
    t.same(
      (await store.listRules()).map((r) => r.id),
      [a.id, d.id, c.id],
    );
    t.same(await actions(store), ['rule.add', 'rule.add', 'rule.add', 'rule.delete', 'rule.add']);
  });

  t.test('assignments: set creates an instance that never booted, clear keeps it, delete removes it', async (t) => {
    const store = await fresh(t);
    const set = await store.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 1);
    t.match(set, { instanceId: 'i-1', identity: null, enrolledAt: null, generation: 1, createdAt: 1 });
    const cleared = await store.setAssignment('i-1', null, 'op', 2);
    t.match(cleared, { assignment: null, generation: 2 });
    t.same(await store.distinctAssignments(), []);
    await store.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 3);
    await store.setAssignment('i-2', { roles: ['node'], labels: {} }, 'op', 3);
    await store.setAssignment('i-3', { roles: ['proxy'], labels: {} }, 'op', 3);
    t.equal((await store.distinctAssignments()).length, 2, 'each distinct assignment once');
    t.equal(await store.deleteInstance('i-1', 'op', 4), true);
    t.equal(await store.deleteInstance('i-1', 'op', 5), false);
    t.equal(await store.getInstance('i-1'), undefined);
    t.same(await actions(store, 'i-1'), ['assignment.set', 'assignment.clear', 'assignment.set', 'instance.delete']);
  });

  t.test('status reports: unknown instances are not created; facts kept when a report has none', async (t) => {
    const store = await fresh(t);
    t.equal(await store.recordStatus('i-x', 0, { ...ready, reportedAt: 1 }, null), undefined);
    t.equal(await store.getInstance('i-x'), undefined);
    await store.enroll(identity('i-1'), 'agent', 1);
    const facts: HostFacts = {
      os: 'Debian 12',
      kernel: '6.1',
      arch: 'x86_64',
      cpus: 2,
      memoryTotalBytes: 4e9,
      memoryAvailableBytes: 2e9,
      loadAverage1m: 0.5,
      uptimeSeconds: 100,
      rootDiskFreeBytes: 1e10,
    };
    const first = await store.recordStatus('i-1', 0, { ...ready, reportedAt: 5 }, facts);
    t.match(first, { appliedGeneration: 0, lastSeenAt: 5, status: { state: 'ready', reportedAt: 5 }, facts });
    const second = await store.recordStatus('i-1', 0, { ...ready, message: 'again', reportedAt: 6 }, null);
    t.match(second, { lastSeenAt: 6, status: { message: 'again' }, facts });
    t.same(await store.teleportVersions(), new Map(), 'no Teleport version reported yet');
    await store.enroll(identity('i-2'), 'agent', 1);
    await store.recordStatus('i-1', 0, { ...ready, teleportVersion: '15.4.2', reportedAt: 7 }, null);
    await store.recordStatus('i-2', 0, { ...ready, teleportVersion: '16.0.1', reportedAt: 7 }, null);
    t.match(await store.getInstance('i-1'), { status: { teleportVersion: '15.4.2' } });
    t.same(
      await store.teleportVersions(),
      new Map([
        ['i-1', '15.4.2'],
        ['i-2', '16.0.1'],
      ]),
      'the versions the hosts run',
    );
    await store.recordStatus('i-2', 0, { ...ready, reportedAt: 8 }, null);
    t.same([...(await store.teleportVersions()).keys()], ['i-1'], 'a report without a version: unknown again');
  });

  t.test('fleet health follows enrollment, generations, reports and heartbeats', async (t) => {
    const store = await fresh(t);
    const clock = (now: number) => ({ now, offlineBefore: now - 90 });
    const healthOf = async (id: string, now = 100) => {
      const [item] = (await store.listInstances({ instanceId: id, limit: 1 }, clock(now))).items;
      t.equal(item.health, derivedHealth(item, clock(now)), `the store's health of ${id} is the domain's (healthOf)`);
      return item.health;
    };

    await store.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 10);
    t.equal(await healthOf('i-1'), 'expected');
    await store.enroll(identity('i-1'), 'agent', 20);
    t.equal(await healthOf('i-1'), 'converging');
    await store.recordStatus('i-1', 1, { ...ready, reportedAt: 30 }, null);
    t.equal(await healthOf('i-1'), 'ready');
    await store.setAssignment('i-1', { roles: ['proxy'], labels: {} }, 'op', 40);
    t.equal(await healthOf('i-1'), 'converging', 'a new generation not yet applied');
    // A rollout keeps it on generation 1 (not reached yet): served what it applied, it is not converging.
    await store.saveChange({ releases: [{ instanceId: 'i-1', generation: 1 }] }, 'op', 41);
    t.equal(await healthOf('i-1'), 'ready', 'a host a rollout has not reached yet is ready on the generation released to it');
    t.match((await store.getInstance('i-1'))!, { releasedGeneration: 1, generation: 2 });
    await store.saveChange({ releases: [{ instanceId: 'i-1', generation: 2 }] }, 'op', 42);
    t.equal(await healthOf('i-1'), 'converging', 'released its new generation, not applied yet');
    await store.saveChange({ releases: [{ instanceId: 'i-1', generation: null }] }, 'op', 43);
    t.equal((await store.getInstance('i-1'))!.releasedGeneration, null, 'no release: the newest');
    await store.recordStatus('i-1', 1, { ...ready, state: 'failed', teleportReady: false, reportedAt: 50 }, null);
    t.equal(await healthOf('i-1'), 'degraded');
    t.equal(await healthOf('i-1', 200), 'offline', 'no heartbeat for three intervals');

    await store.enroll(identity('i-2'), 'agent', 60);
    t.equal(await healthOf('i-2'), 'unassigned');
    await store.enroll(identity('i-3'), 'agent', 60);
    await store.recordStatus('i-3', 0, { ...ready, state: 'orphaned', teleportReady: false, reportedAt: 60 }, null);
    t.equal(await healthOf('i-3'), 'orphaned');
    // The agent's last report as it stops cleanly: offline at once, though just heard from.
    await store.setAssignment('i-4', { roles: ['node'], labels: {} }, 'op', 60);
    await store.enroll(identity('i-4'), 'agent', 60);
    await store.recordStatus('i-4', 1, { ...ready, state: 'stopped', reportedAt: 95 }, null);
    t.equal(await healthOf('i-4'), 'offline', 'stopped: offline at once');
    t.equal(await healthOf('i-4', 200), 'offline', 'and still when silent since');
    const summary = await store.healthSummary(clock(100));
    t.same(
      summary.map((r) => [r.roles, r.health, r.count]),
      [
        [null, 'orphaned', 1],
        [null, 'unassigned', 1],
        [['node'], 'offline', 1],
        [['proxy'], 'degraded', 1],
      ],
    );
    t.same(
      (await store.listInstances({ health: 'offline', limit: 10 }, clock(100))).items.map((i) => i.instanceId),
      ['i-4'],
      'the list filters it as offline',
    );
    await store.recordStatus('i-4', 1, { ...ready, reportedAt: 110 }, null);
    t.equal(await healthOf('i-4', 110), 'ready', 'reporting again, it is back');
  });

  t.test('health counts equal a count over every instance after enrollments, assignments, deletions and reports', async (t) => {
    const store = await fresh(t);
    const check = (label: string) => countsMatchRecount(t, store, label);
    const roles = (i: number) =>
      (i % 3 === 0 ? ['node'] : i % 3 === 1 ? ['auth', 'proxy'] : ['kube']) as Array<'node' | 'auth' | 'proxy' | 'kube'>;
    for (let i = 0; i < 12; i++) await store.setAssignment(`i-${i}`, { roles: roles(i), labels: {} }, 'op', 1);
    await check('assigned, none enrolled');
    for (let i = 0; i < 15; i++) await store.enroll(identity(`i-${i}`), 'agent', 10 + i * 5);
    await check('enrolled (three without an assignment)');
    for (let i = 0; i < 12; i += 2) await store.recordStatus(`i-${i}`, 1, { ...ready, reportedAt: 80 + i * 4 }, null);
    await store.recordStatus('i-1', 1, { ...ready, state: 'failed', teleportReady: false, reportedAt: 90 }, null);
    await store.recordStatus('i-13', 0, { ...ready, state: 'orphaned', teleportReady: false, reportedAt: 95 }, null);
    await store.recordStatus('i-5', 1, { ...ready, state: 'stopped', reportedAt: 96 }, null);
    await check('reported (one stopped)');
    await store.setAssignment('i-2', { roles: ['node'], labels: {} }, 'op', 120);
    await store.setAssignment('i-4', null, 'op', 120);
    await store.setAssignment('i-14', { roles: ['kube'], labels: {} }, 'op', 120);
    await check('reassigned and unassigned');
    await store.deleteInstance('i-0', 'op', 130);
    await store.deleteInstance('i-3', 'op', 130);
    await store.recordStatus('i-6', 1, { ...ready, reportedAt: 140 }, null);
    await check('deleted, heard again');
  });

  t.test('health counts equal a full recount after many random writes, some concurrent, and after a reopen', async (t) => {
    const db = await factory(t);
    let store = await db.open();
    t.teardown(() => store.close());
    let seed = 12;
    /** 0 <= random(n) < n, the same sequence every run. */
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const roleSets = [['node'], ['auth', 'proxy'], ['kube'], ['proxy']] as const;
    const states = ['ready', 'failed', 'degraded', 'orphaned', 'converging'] as const;
    let now = 1000;
    const write = async (): Promise<unknown> => {
      const id = `i-${random(40)}`;
      switch (random(6)) {
        case 0:
          return store.setAssignment(id, random(4) ? { roles: [...roleSets[random(4)]], labels: {} } : null, 'op', now);
        case 1:
          return store.enroll(identity(id), 'agent', now);
        case 2:
        case 3: {
          const state = states[random(states.length)];
          const status = { ...ready, state, teleportReady: state === 'ready' && random(4) > 0, reportedAt: now - random(200) };
          return store.recordStatus(id, random(3), status, null);
        }
        case 4:
          return store.deleteInstance(id, 'op', now);
        default:
          return random(5)
            ? store.recordStatus(id, 1, { ...ready, reportedAt: now }, null)
            : store.updateSettings(DEFAULT_CLUSTER_SETTINGS, 'op', now);
      }
    };
    for (let round = 0; round < 12; round++) {
      // Eight writers at a time: the counts' changes of concurrent transactions must all land.
      for (let batch = 0; batch < 10; batch++, now += 10) await Promise.all(Array.from({ length: 8 }, () => write()));
      await countsMatchRecount(t, store, `round ${round}`, [now, now + 150]);
    }
    // Enough changes unread for a read to fold them into the totals (while the next reads run).
    for (let batch = 0; batch < 120; batch++, now += 10) await Promise.all(Array.from({ length: 8 }, () => write()));
    await countsMatchRecount(t, store, 'after many changes', [now]);
    await countsMatchRecount(t, store, 'while they are folded in', [now]);
    await store.close();
    store = await db.open();
    await countsMatchRecount(t, store, 'reopened', [now, now + 500]);
  });

  t.test('instance lists: pages by id, filters by role and health', async (t) => {
    const store = await fresh(t);
    for (let i = 0; i < 7; i++) await store.setAssignment(`i-${i}`, { roles: i % 2 ? ['node'] : ['auth', 'proxy'], labels: {} }, 'op', 1);
    await store.enroll(identity('i-0'), 'agent', 2);
    const clock = { now: 10, offlineBefore: 0 };
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const page = await store.listInstances({ limit: 3, after }, clock);
      t.ok(page.items.length <= 3);
      seen.push(...page.items.map((r) => r.instanceId));
      after = page.next;
    } while (after);
    t.same(seen, ['i-0', 'i-1', 'i-2', 'i-3', 'i-4', 'i-5', 'i-6'], 'every instance once, in id order');
    const proxies = await store.listInstances({ limit: 10, role: 'proxy' }, clock);
    t.same(
      proxies.items.map((r) => r.instanceId),
      ['i-0', 'i-2', 'i-4', 'i-6'],
    );
    t.equal(proxies.next, undefined);
    const expected = await store.listInstances({ limit: 2, role: 'proxy', health: 'expected' }, clock);
    t.same(
      expected.items.map((r) => r.instanceId),
      ['i-2', 'i-4'],
    );
    t.equal(expected.next, 'i-4');
    t.same(
      (await store.listInstances({ limit: 10, health: 'converging' }, clock)).items.map((r) => r.instanceId),
      ['i-0'],
    );
    t.same((await store.listInstances({ limit: 10, instanceId: 'nope' }, clock)).items, []);
  });

  t.test('enrollment binds the nonce of the first enrollment; an operator can reset the binding', async (t) => {
    const store = await fresh(t);
    await store.enroll(identity('i-1'), 'agent', 1, { nonceHash: 'aa', enrolledVia: 'ec2' });
    t.equal(await refusal(store.enroll(identity('i-1'), 'agent', 2, { nonceHash: 'aa' })), 'none', 'the same nonce again');
    t.equal(await refusal(store.enroll(identity('i-1'), 'agent', 3, {})), 'nonce-required');
    t.equal(await refusal(store.enroll(identity('i-1'), 'agent', 4, { nonceHash: 'bb' })), 'nonce-mismatch');
    t.equal((await store.getInstance('i-1'))?.enrolledAt, 2, 'a refused enrollment writes nothing');
    t.equal(await store.resetBinding('i-1', 'op', 5), true);
    t.equal(await store.resetBinding('i-1', 'op', 5), false, 'nothing left to reset');
    t.equal(await refusal(store.enroll(identity('i-1'), 'agent', 6, { nonceHash: 'bb' })), 'none', 'a new nonce is bound');
    t.equal(await refusal(store.enroll(identity('i-1'), 'agent', 7, { nonceHash: 'aa' })), 'nonce-mismatch');
    t.same(await actions(store, 'i-1'), ['instance.enroll', 'instance.enroll', 'binding.reset', 'instance.enroll']);
  });

  t.test('join tokens: uses are counted at enrollment and refused when none is left, expired or revoked', async (t) => {
    const store = await fresh(t);
    const token = await store.createJoinToken(
      { id: 'jt-1', name: 'web', tokenHash: 'h1', roles: ['node'], expiresAt: 1000, maxUses: 2 },
      'op',
      1,
    );
    t.match(token, { id: 'jt-1', name: 'web', roles: ['node'], uses: 0, maxUses: 2, createdBy: 'op', createdAt: 1, revokedAt: null });
    t.match(await store.findJoinToken('h1'), { id: 'jt-1' });
    t.equal(await store.findJoinToken('nope'), undefined);
    const trust = { joinTokenId: 'jt-1', enrolledVia: 'join-token:jt-1', allowedRoles: ['node' as const] };
    const first = await store.enroll(identity('i-1'), 'agent', 2, trust);
    t.match(first.record, { enrolledVia: 'join-token:jt-1', allowedRoles: ['node'] });
    await store.enroll(identity('i-2'), 'agent', 3, trust);
    t.equal(await refusal(store.enroll(identity('i-3'), 'agent', 4, trust)), 'token-unusable', 'no uses left');
    t.equal(await store.getInstance('i-3'), undefined, 'the refused instance is not stored');
    t.match(await store.findJoinToken('h1'), { uses: 2, lastUsedAt: 3 });

    await store.createJoinToken({ id: 'jt-2', name: 'old', tokenHash: 'h2', roles: null, expiresAt: 10, maxUses: null }, 'op', 1);
    t.equal(await refusal(store.enroll(identity('i-4'), 'agent', 10, { joinTokenId: 'jt-2' })), 'token-unusable', 'expired');
    await store.createJoinToken({ id: 'jt-3', name: 'gone', tokenHash: 'h3', roles: null, expiresAt: 1000, maxUses: null }, 'op', 1);
    t.match(await store.revokeJoinToken('jt-3', 'op', 5), { id: 'jt-3', revokedAt: 5 });
    t.equal(await store.revokeJoinToken('jt-3', 'op', 6), undefined, 'revoked already');
    t.equal(await refusal(store.enroll(identity('i-5'), 'agent', 7, { joinTokenId: 'jt-3' })), 'token-unusable', 'revoked');
    t.equal(await refusal(store.enroll(identity('i-6'), 'agent', 7, { joinTokenId: 'jt-none' })), 'token-unusable', 'unknown');
    t.same(
      (await store.listJoinTokens()).map((j) => j.id),
      ['jt-1', 'jt-2', 'jt-3'],
    );
  });

  t.test('concurrent enrollments never use a join token more often than it allows', async (t) => {
    const store = await fresh(t);
    await store.createJoinToken({ id: 'jt', name: 'five', tokenHash: 'h', roles: null, expiresAt: 1e15, maxUses: 5 }, 'op', 1);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => refusal(store.enroll(identity(`i-${i}`), 'agent', 2, { joinTokenId: 'jt' }))),
    );
    t.equal(outcomes.filter((o) => o === 'none').length, 5, 'five enrollments succeed');
    t.equal(outcomes.filter((o) => o === 'token-unusable').length, 15);
    t.equal((await store.findJoinToken('h'))?.uses, 5);
    t.equal((await store.listInstances({ limit: 100 }, { now: 2, offlineBefore: 0 })).items.length, 5);
  });

  t.test('concurrent writers deciding on the same thing take turns: one lease holder, one settings write per version', async (t) => {
    const store = await fresh(t);
    const leases = await Promise.all(Array.from({ length: 10 }, (_, i) => store.acquireLease('publisher', `i-${i}`, 30_000)));
    t.equal(leases.filter((l) => l.granted).length, 1, 'one holder');
    t.equal(new Set(leases.map((l) => l.lease?.holder)).size, 1, 'everyone sees the same holder');
    const { version } = await store.getVersionedSettings();
    const writes = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: name }, 'op', 1, version).then(
          () => 'written',
          (e: unknown) => (e instanceof VersionConflictError ? 'conflict' : String(e)),
        ),
      ),
    );
    t.same([...writes].sort(), ['conflict', 'conflict', 'written']);
  });

  t.test('role allow-lists: a token that allows some roles refuses others, from an assignment or a rule', async (t) => {
    const store = await fresh(t);
    await store.setAssignment('i-auth', { roles: ['auth'], labels: {} }, 'op', 1);
    const nodeOnly = { allowedRoles: ['node' as const], enrolledVia: 'join-token:x' };
    t.equal(await refusal(store.enroll(identity('i-auth'), 'agent', 2, nodeOnly)), 'role-not-allowed');
    t.equal((await store.getInstance('i-auth'))?.enrolledAt, null, 'nothing written');

    await store.addRule({ name: 'proxies', selector: { Role: 'edge' }, roles: ['proxy'], labels: {} }, undefined, 'op', 3);
    const outcome = await store.enroll(identity('i-edge', { Role: 'edge' }), 'agent', 4, nodeOnly);
    t.equal(outcome.matchedRule, undefined, 'the rule is not applied');
    t.equal(outcome.record.assignment, null);
    t.same(await actions(store, 'i-edge'), ['instance.enroll', 'assignment.refused']);
    const allowed = await store.enroll(identity('i-edge2', { Role: 'edge' }), 'agent', 5, { allowedRoles: ['proxy', 'node'] });
    t.equal(allowed.matchedRule?.name, 'proxies');
  });

  t.test('client certificates: recorded at enrollment, revoked when the instance is deleted', async (t) => {
    const store = await fresh(t);
    await store.enroll(identity('i-1'), 'agent', 1, { certificate: { serial: 'abc', expiresAt: 100 } });
    t.same(await store.getCertificate('abc'), { serial: 'abc', instanceId: 'i-1', issuedAt: 1, expiresAt: 100, revokedAt: null });
    t.equal(await store.getCertificate('nope'), undefined);
    t.same(
      (await store.getCertificates(['nope', 'abc'])).map((c) => c.serial),
      ['abc'],
      'by serials in one read: the issued ones',
    );
    await store.deleteInstance('i-1', 'op', 5);
    t.equal((await store.getCertificate('abc'))?.revokedAt, 5);
    const [deleted] = (await store.listAudit({ limit: 10, target: 'i-1' })).filter((e) => e.action === 'instance.delete');
    t.equal(deleted.details.revokedCertificates, 1);
  });

  t.test('API tokens: one active token per name, found by hash while active, revoked by id or name', async (t) => {
    const store = await fresh(t);
    t.equal(await store.countApiTokens(), 0);
    const a = await store.createApiToken({ id: 'a', name: 'ci', scope: 'operator', tokenHash: 'ha' }, 'op', 1);
    t.same(a, { id: 'a', name: 'ci', scope: 'operator', createdAt: 1, createdBy: 'op', lastUsedAt: null, revokedAt: null });
    const taken = await store.createApiToken({ id: 'b', name: 'ci', scope: 'admin', tokenHash: 'hb' }, 'op', 2).catch((e: unknown) => e);
    t.type(taken, ConflictError, 'a second active token of the same name is a conflict');
    t.match(await store.findApiToken('ha'), { id: 'a' });
    await store.touchApiToken('a', 7);
    t.equal((await store.findApiToken('ha'))?.lastUsedAt, 7);
    t.match(await store.revokeApiToken('ci', 'op', 8), { id: 'a', revokedAt: 8 });
    t.equal(await store.revokeApiToken('a', 'op', 9), undefined, 'already revoked');
    t.equal(await store.findApiToken('ha'), undefined, 'a revoked token is not found');
    await store.createApiToken({ id: 'b', name: 'ci', scope: 'monitor', tokenHash: 'hb' }, 'op', 10);
    t.match(await store.revokeApiToken('b', 'op', 11), { id: 'b' });
    t.equal(await store.countApiTokens(), 2, 'revoked tokens count');
    t.same(
      (await store.listApiTokens()).map((x) => [x.id, x.revokedAt]),
      [
        ['a', 8],
        ['b', 11],
      ],
    );
    t.same(await actions(store), ['api_token.create', 'api_token.revoke', 'api_token.create', 'api_token.revoke']);
  });

  t.test('audit: events in order, after an id, by target; refusals counted per minute; pruned by age and rows', async (t) => {
    const store = await fresh(t);
    await store.recordAudit('op', 'a.one', 'x', { n: 1 }, 1000);
    await store.recordAudit('op', 'a.two', 'y', { n: 2 }, 2000);
    const all = await store.listAudit({ limit: 10 });
    t.match(all, [{ actor: 'op', action: 'a.one', target: 'x', details: { n: 1 }, count: 1, lastAt: null, at: 1000 }, { action: 'a.two' }]);
    t.same(
      (await store.listAudit({ limit: 10, after: all[0].id })).map((e) => e.action),
      ['a.two'],
    );
    t.same(
      (await store.listAudit({ limit: 10, target: 'x' })).map((e) => e.action),
      ['a.one'],
    );
    t.equal((await store.listAudit({ limit: 1 })).length, 1);

    for (let i = 0; i < 50; i++) await store.recordRefusal('grpc:1.2.3.4', 'enroll.refused', 'i-1', { reason: 'bad', i }, 60_000 + i);
    await store.recordRefusal('grpc:1.2.3.4', 'enroll.refused', 'i-1', { reason: 'other' }, 60_000);
    await store.recordRefusal('grpc:1.2.3.4', 'enroll.refused', 'i-1', { reason: 'bad' }, 120_000);
    const refusals = (await store.listAudit({ limit: 100, target: 'i-1' })).map((e) => [e.details.reason, e.count, e.lastAt, e.details.i]);
    t.same(refusals, [
      ['bad', 50, 60_049, 0],
      ['other', 1, null, undefined],
      ['bad', 1, null, undefined],
    ]);

    const deleted = await store.pruneAudit({ maxAgeMs: 1_000_000, maxRows: 3 }, 1_000_500);
    t.equal(deleted, 2, 'the oldest beyond three rows');
    const left = await store.listAudit({ limit: 100 });
    t.same(
      left.map((e) => e.action),
      ['enroll.refused', 'enroll.refused', 'enroll.refused', 'audit.pruned'],
    );
    t.match(left[3].details, { deleted: 2, maxRows: 3 });
    t.equal(await store.pruneAudit({ maxAgeMs: 10, maxRows: 1000 }, 1_500_000), 4, 'every event older than the age');
    t.equal(await store.pruneAudit({ maxAgeMs: 10, maxRows: 1000 }, 1_500_000), 0, 'nothing to prune: nothing recorded');
    t.same(
      (await store.listAudit({ limit: 100 })).map((e) => e.action),
      ['audit.pruned'],
    );
    t.ok((await store.storeBytes()) > 0, 'the store takes some bytes');
    await t.resolves(store.checkReadable());
  });

  t.test('versions: every change of the settings or the rules bumps its version; a change on an old one is refused', async (t) => {
    const store = await fresh(t);
    const settings0 = await store.getVersionedSettings();
    t.same(settings0.value, DEFAULT_CLUSTER_SETTINGS, 'never saved: the defaults');
    const saved = await store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'one' }, 'op', 1, settings0.version);
    t.equal(saved.version, settings0.version + 1);
    t.match(await store.getVersionedSettings(), { value: { clusterName: 'one' }, version: saved.version });
    await t.rejects(store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'two' }, 'op', 2, settings0.version), {
      name: 'VersionConflictError',
      current: saved.version,
      message: /changed since version .* If-Match: "\d+"/,
    });
    t.equal((await store.getSettings()).clusterName, 'one', 'the refused change wrote nothing');
    t.equal(
      (await store.updateSettings({ ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'three' }, 'op', 3)).version,
      saved.version + 1,
      'without a version: saved',
    );

    const rules0 = await store.listVersionedRules();
    t.same(rules0.value, []);
    const added = await store.addRule({ name: 'a', selector: {}, roles: ['node'], labels: {} }, undefined, 'op', 4, rules0.version);
    t.equal(added.version, rules0.version + 1);
    t.match(await store.listVersionedRules(), { value: [{ id: added.value.id }], version: added.version });
    await t.rejects(store.addRule({ name: 'b', selector: {}, roles: ['node'], labels: {} }, undefined, 'op', 5, rules0.version), {
      name: 'VersionConflictError',
    });
    await t.rejects(store.deleteRule(added.value.id, 'op', 6, rules0.version), { name: 'VersionConflictError' });
    t.equal((await store.listRules()).length, 1, 'the refused changes wrote nothing');
    t.equal(await store.deleteRule(added.value.id, 'op', 7, added.version), added.version + 1);
    t.equal((await store.listVersionedRules()).version, added.version + 1);
  });

  t.test('replicas: a heartbeat counts the replicas serving; a stopped or silent one is forgotten', async (t) => {
    const store = await fresh(t);
    t.equal(await store.replicaHeartbeat('control:a', 60_000), 1);
    t.equal(await store.replicaHeartbeat('control:b', 60_000), 2);
    t.equal(await store.replicaHeartbeat('control:a', 60_000), 2, 'a heartbeat again is the same replica');
    await store.removeReplica('control:b');
    t.equal(await store.replicaHeartbeat('control:a', 60_000), 1, 'a stopped replica is forgotten at once');
    await store.replicaHeartbeat('control:c', 60_000);
    await new Promise((r) => setTimeout(r, 50));
    t.equal(await store.replicaHeartbeat('control:a', 20), 1, 'one not seen within the stale period is forgotten');
  });

  t.test("leases: one holder at a time on the database's clock, fencing numbers grow at every new holding", async (t) => {
    const store = await fresh(t);
    const MINUTE = 60_000;
    t.equal(await store.getLease('publisher'), undefined);
    const before = Date.now();
    const first = await store.acquireLease('publisher', 'i-a', MINUTE);
    const after = Date.now();
    t.match(first, { granted: true, lease: { name: 'publisher', holder: 'i-a', fencing: 1 } });
    const { acquiredAt, expiresAt } = first.lease!;
    // The database runs on this machine: its clock is this one, to the millisecond or so.
    t.ok(acquiredAt >= before - 1000 && acquiredAt <= after + 1000, `acquired at the database's now (${acquiredAt}, ${before}..${after})`);
    t.equal(expiresAt - acquiredAt, MINUTE, 'for one period');
    t.match(await store.acquireLease('publisher', 'i-b', MINUTE), { granted: false, lease: { holder: 'i-a', fencing: 1 } });
    const again = await store.acquireLease('publisher', 'i-a', MINUTE);
    t.match(again, { granted: true, lease: { fencing: 1, acquiredAt } }, 'the holder asking again keeps its number');
    t.ok(again.lease!.expiresAt >= expiresAt, 'and its lease is extended');
    t.match(await store.renewLease('publisher', 'i-a', 1, MINUTE), { granted: true, lease: { holder: 'i-a', fencing: 1 } });
    t.match(await store.renewLease('publisher', 'i-a', 2, MINUTE), { granted: false }, 'a wrong fencing number');
    t.match(await store.renewLease('publisher', 'i-b', 1, MINUTE), { granted: false }, 'not the holder');

    // A short holding expires on the database's clock: another takes over with the next number.
    await store.releaseLease('publisher', 'i-a', 1);
    t.match(await store.acquireLease('publisher', 'i-a', 1), { granted: true, lease: { fencing: 2 } });
    let taken = await store.acquireLease('publisher', 'i-b', MINUTE);
    for (const deadline = Date.now() + 30_000; !taken.granted && Date.now() < deadline;)
      taken = await store.acquireLease('publisher', 'i-b', MINUTE);
    t.match(taken, { granted: true, lease: { holder: 'i-b', fencing: 3 } }, 'after expiry, a new holder');
    t.match(await store.renewLease('publisher', 'i-a', 2, MINUTE), { granted: false, lease: { holder: 'i-b' } }, 'the old holder lost it');
    t.match(await store.releaseLease('publisher', 'i-a', 2), { granted: false, lease: { holder: 'i-b' } }, 'and cannot release it');
    const released = await store.releaseLease('publisher', 'i-b', 3);
    t.equal(released.granted, false);
    t.ok(released.lease!.expiresAt < taken.lease!.expiresAt, 'released: it ends now');
    t.match(await store.acquireLease('publisher', 'i-b', MINUTE), { granted: true, lease: { fencing: 4 } }, 'even for the same holder');
    t.match(await store.getLease('publisher'), { holder: 'i-b', fencing: 4 });
    t.same(
      (await store.listAudit({ limit: 100, target: 'lease:publisher' })).map((e) => [e.actor, e.action, e.details.fencing]),
      [
        ['agent:i-a', 'lease.acquire', 1],
        ['agent:i-a', 'lease.release', 1],
        ['agent:i-a', 'lease.acquire', 2],
        ['agent:i-b', 'lease.acquire', 3],
        ['agent:i-b', 'lease.release', 3],
        ['agent:i-b', 'lease.acquire', 4],
      ],
      'every new holding and release is audited, renewals are not',
    );
  });

  t.test('leases: racing acquisitions on one database never grant two holders', async (t) => {
    const store = await fresh(t);
    const holders = ['i-a', 'i-b', 'i-c', 'i-d'];
    for (let round = 0; round < 20; round++) {
      const outcomes = await Promise.all(holders.map((h) => store.acquireLease(`race-${round}`, h, 60_000)));
      t.equal(outcomes.filter((o) => o.granted).length, 1, `round ${round}: one holder`);
    }
  });

  t.test('proxy certificates, served certificates and ACME challenges', async (t) => {
    const store = await fresh(t);
    const cert: ProxyCertificate = {
      domain: 'proxy.example.com',
      state: 'valid',
      serial: '01',
      notBefore: 1,
      notAfter: 2_000_000_000_000,
      etag: '"e"',
      issuedAt: 1,
      checkedAt: 2,
      lastAttemptAt: 1,
      failures: 0,
      lastError: null,
      nextAttemptAt: 3,
      renewRequested: false,
      updatedAt: 4,
    };
    await store.saveProxyCertificate(cert, { actor: 'control', action: 'certificate.issued', details: { serial: '01' } });
    await store.saveProxyCertificate({ ...cert, domain: 'a.example.com', state: 'failing', failures: 2, lastError: 'no' });
    t.same(await store.getProxyCertificate('proxy.example.com'), cert);
    t.same(
      (await store.listProxyCertificates()).map((c) => c.domain),
      ['a.example.com', 'proxy.example.com'],
    );
    t.equal(await store.requestRenewal('proxy.example.com', 'op', 9), true);
    t.equal(await store.requestRenewal('nope.example.com', 'op', 9), false);
    t.match(await store.getProxyCertificate('proxy.example.com'), { renewRequested: true, nextAttemptAt: null, updatedAt: 9 });
    t.same(await actions(store, 'certificate:proxy.example.com'), ['certificate.issued', 'certificate.renew_requested']);

    await store.enroll(identity('i-p'), 'agent', 1);
    await store.enroll(identity('i-n'), 'agent', 1);
    await store.recordStatus('i-p', 0, { ...ready, reportedAt: 5, certificateExpiresAt: 2_000_000_000_000 }, null);
    await store.recordStatus('i-n', 0, { ...ready, reportedAt: 5 }, null);
    t.same(await store.listServedCertificates(), [{ instanceId: 'i-p', expiresAt: 2_000_000_000_000, reportedAt: 5 }]);

    await store.putAcmeChallenge('tok', 'tok.key', 'proxy.example.com', 100);
    t.equal(await store.getAcmeChallenge('tok', 50), 'tok.key');
    t.equal(await store.getAcmeChallenge('tok', 100), undefined, 'expired');
    await store.putAcmeChallenge('tok', 'tok.key2', 'proxy.example.com', 200);
    t.equal(await store.getAcmeChallenge('tok', 150), 'tok.key2', 'replaced');
    await store.deleteAcmeChallenge('tok');
    t.equal(await store.getAcmeChallenge('tok', 150), undefined);
  });

  rolloutConformance(t, fresh);
}

/**
 * The store's health counts (healthSummary) are those of a recount over every
 * instance (the list, by id pages, and health.ts's rules), at each instant;
 * each health filter of the list finds the instances of that health.
 */
export async function countsMatchRecount(t: Test, store: Store, label: string, nows = [100, 150, 400]): Promise<void> {
  const key = (roles: readonly string[] | null | undefined, health: string) => `${roles ? [...roles].sort().join(',') : '-'} ${health}`;
  for (const now of nows) {
    const clock = { now, offlineBefore: now - 90 };
    const scanned = new Map<string, number>();
    const byHealth = new Map<string, string[]>();
    let after: string | undefined;
    do {
      const page = await store.listInstances({ limit: 7, after }, clock);
      for (const r of page.items) {
        const health = derivedHealth(r, clock);
        scanned.set(key(r.assignment?.roles, health), (scanned.get(key(r.assignment?.roles, health)) ?? 0) + 1);
        byHealth.set(health, [...(byHealth.get(health) ?? []), r.instanceId]);
      }
      after = page.next;
    } while (after);
    const counted = new Map((await store.healthSummary(clock)).map((r) => [key(r.roles, r.health), r.count]));
    t.same(Object.fromEntries(counted), Object.fromEntries(scanned), `${label}, at ${now}`);
    for (const health of HEALTH_STATES) {
      const filtered = (await store.listInstances({ limit: 1000, health }, clock)).items.map((r) => r.instanceId);
      t.same(filtered, byHealth.get(health) ?? [], `${label}, at ${now}: the list filtered by ${health}`);
    }
  }
}
