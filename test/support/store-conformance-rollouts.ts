// Conformance cases for the rollout records (control/store/rollouts.ts), run
// by store-conformance.ts on every store.
import type { Test } from 'tap';
import { DEFAULT_CLUSTER_SETTINGS } from '../../contract/model';
import { ConflictError } from '../../control/errors';
import type { Rollout } from '../../control/rollout/model';
import type { Store } from '../../control/store/store';

export const rolloutRecord = (id: string, createdAt: number, state: Rollout['state'] = 'running'): Rollout => ({
  id,
  kind: 'change',
  strategy: 'waves',
  state,
  startedBy: 'op',
  reason: 'PATCH /v1/settings logSeverity',
  createdAt,
  updatedAt: createdAt,
  pace: {
    auth: { maxUnavailable: 1, failureThreshold: 1 },
    proxy: { maxUnavailable: 1, failureThreshold: 1 },
    other: { maxUnavailable: 1, failureThreshold: 1 },
  },
  hosts: [{ instanceId: 'i-1', role: 'node', group: 'other', fromGeneration: 1, toGeneration: 2, state: 'pending' }],
  diffs: [],
});

/** The error `p` rejects with (undefined when it resolves). */
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

export function rolloutConformance(t: Test, fresh: (t: Test) => Promise<Store>): void {
  t.test('rollouts: saved whole, listed newest first by pages, the newest under way found, revisions guard concurrent steps', async (t) => {
    const store = await fresh(t);
    t.equal(await store.activeRollout(), undefined);
    await store.saveChange({ rollouts: [{ rollout: rolloutRecord('r-1', 10, 'completed'), revision: null }] }, 'op', 10);
    await store.saveChange({ rollouts: [{ rollout: rolloutRecord('r-2', 20), revision: null }] }, 'op', 20);
    await store.saveChange({ rollouts: [{ rollout: rolloutRecord('r-3', 30, 'superseded'), revision: null }] }, 'op', 30);
    t.same(await store.getRollout('r-2'), { rollout: rolloutRecord('r-2', 20), revision: 1 });
    t.equal(await store.getRollout('nope'), undefined);
    t.equal((await store.activeRollout())?.rollout.id, 'r-2', 'the newest running, paused or halted');

    const first = await store.listRollouts({ limit: 2 });
    t.same(
      first.items.map((r) => r.id),
      ['r-3', 'r-2'],
    );
    t.ok(first.next);
    const second = await store.listRollouts({ limit: 2, before: first.next });
    t.same(
      second.items.map((r) => r.id),
      ['r-1'],
    );
    t.equal(second.next, undefined);

    const halted = { ...rolloutRecord('r-2', 20, 'halted'), updatedAt: 25 };
    await store.saveChange({ rollouts: [{ rollout: halted, revision: 1 }] }, 'op', 25);
    t.same(await store.getRollout('r-2'), { rollout: halted, revision: 2 });
    t.type(
      await failure(store.saveChange({ rollouts: [{ rollout: rolloutRecord('r-2', 20), revision: 1 }] }, 'op', 26)),
      ConflictError,
      'a step from an old revision is refused',
    );
    t.type(
      await failure(store.saveChange({ rollouts: [{ rollout: rolloutRecord('r-2', 20), revision: null }] }, 'op', 26)),
      ConflictError,
      'a second rollout with the same id is refused',
    );
    t.equal((await store.getRollout('r-2'))?.rollout.state, 'halted', 'nothing written by a refused step');
  });

  t.test(
    'releases: an instance is served the generation released to it with that config; a change commits whole or not at all',
    async (t) => {
      const store = await fresh(t);
      await store.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 1);
      await store.setAssignment('i-2', { roles: ['proxy'], labels: {} }, 'op', 1);
      t.same(
        (await store.assignedInstances()).map((i) => [i.instanceId, i.generation]),
        [
          ['i-1', 1],
          ['i-2', 1],
        ],
      );
      t.equal(await store.releasedConfig('i-1'), undefined, 'no release: the newest');
      const before = { ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'a' };
      const after = { ...DEFAULT_CLUSTER_SETTINGS, clusterName: 'b' };
      await store.saveChange(
        {
          settings: after,
          generations: [{ instanceId: 'i-1', generation: 2 }],
          configs: [
            { instanceId: 'i-1', generation: 1, assignment: { roles: ['node'], labels: {} }, settings: before },
            { instanceId: 'i-1', generation: 2, assignment: { roles: ['node'], labels: {} }, settings: after },
          ],
          rollouts: [{ rollout: rolloutRecord('r-1', 2), revision: null }],
          releases: [{ instanceId: 'i-1', generation: 1 }],
          audit: [{ action: 'settings.update', target: 'settings', details: {} }],
        },
        'op',
        2,
      );
      t.equal((await store.getSettings()).clusterName, 'b');
      t.equal((await store.getInstance('i-1'))?.generation, 2);
      t.equal((await store.getInstance('i-2'))?.generation, 1, 'a host the change does not alter keeps its generation');
      t.same(await store.releasedConfig('i-1'), {
        instanceId: 'i-1',
        generation: 1,
        assignment: { roles: ['node'], labels: {} },
        settings: before,
      });
      t.same(
        (await store.releasedConfigs()).map((c) => c.instanceId),
        ['i-1'],
      );
      t.same(
        (await store.releasedConfigs(['i-2', 'i-1', 'i-9'])).map((c) => [c.instanceId, c.generation]),
        [['i-1', 1]],
        'by ids: the pinned among them, unknown and unpinned ids left out',
      );
      t.same(await store.releasedConfigs([]), [], 'no ids: none');
      t.same(
        (await store.getInstances(['i-2', 'i-9', 'i-1'])).map((i) => [i.instanceId, i.generation]).sort(),
        [
          ['i-1', 2],
          ['i-2', 1],
        ],
        'instances by ids in one read: the known ones, as stored',
      );
      t.same(await store.getInstances([]), []);
      // More ids than one statement binds: read in several, every one found.
      const many = ['i-1', ...Array.from({ length: 1200 }, (_, k) => `i-x${k}`), 'i-2'];
      t.same((await store.getInstances(many)).map((i) => i.instanceId).sort(), ['i-1', 'i-2'], 'ids over several statements');
      t.same(
        (await store.releasedConfigs(many.reverse())).map((c) => c.instanceId),
        ['i-1'],
      );
      t.same(
        (await store.listAudit({ limit: 100, target: 'settings' })).map((e) => [e.actor, e.action]),
        [['op', 'settings.update']],
      );

      // A change that raises a generation someone else raised meanwhile writes nothing.
      t.type(
        await failure(
          store.saveChange(
            { settings: before, generations: [{ instanceId: 'i-1', generation: 2 }], releases: [{ instanceId: 'i-1', generation: null }] },
            'op',
            3,
          ),
        ),
        ConflictError,
      );
      t.equal((await store.getSettings()).clusterName, 'b');
      t.equal((await store.releasedConfig('i-1'))?.generation, 1);

      await store.saveChange({ releases: [{ instanceId: 'i-1', generation: 2 }] }, 'op', 4);
      t.equal((await store.releasedConfig('i-1'))?.settings.clusterName, 'b');
      await store.saveChange({ releases: [{ instanceId: 'i-1', generation: null }] }, 'op', 5);
      t.equal(await store.releasedConfig('i-1'), undefined);
      await store.saveChange({ releases: [{ instanceId: 'i-1', generation: 1 }] }, 'op', 6);
      await store.deleteInstance('i-1', 'op', 7);
      t.same(await store.releasedConfigs(), [], 'a deleted instance leaves no release behind');
    },
  );

  t.test(
    'configs: pruned when a rollout ends, keeping the newest, the released, the applied and those of rollouts under way',
    async (t) => {
      const store = await fresh(t);
      const node = { roles: ['node' as const], labels: {} };
      await store.setAssignment('i-1', node, 'op', 1);
      await store.setAssignment('i-2', node, 'op', 1);
      const config = (instanceId: string, generation: number) => ({
        instanceId,
        generation,
        assignment: node,
        settings: { ...DEFAULT_CLUSTER_SETTINGS, clusterName: `g${generation}` },
      });
      // i-1: applied 3, released 4, newest 6; the rollout under way holds its generations 1 and 2.
      const under = rolloutRecord('r-1', 2);
      await store.recordStatus(
        'i-1',
        3,
        { state: 'ready', teleportUnitState: 'active', teleportReady: true, message: '', agentVersion: 'test', reportedAt: 2 },
        null,
      );
      await store.saveChange(
        {
          configs: [1, 2, 3, 4, 5, 6].map((g) => config('i-1', g)),
          rollouts: [{ rollout: under, revision: null }],
          releases: [{ instanceId: 'i-1', generation: 4 }],
        },
        'op',
        3,
      );
      await store.saveChange({ configs: [1, 2, 3].map((g) => config('i-2', g)) }, 'op', 4);
      t.same(await store.configGenerations('i-1'), [1, 2, 3, 4, 6], 'generation 5: nothing serves, applied or holds it');
      t.same(await store.configGenerations('i-2'), [3], 'outside any rollout, nothing released or applied: the newest only');

      await store.saveChange({ rollouts: [{ rollout: { ...under, state: 'completed', updatedAt: 5 }, revision: 1 }] }, 'op', 5);
      t.same(await store.configGenerations('i-1'), [3, 4, 6], 'the rollout ended: its old generations go');
      t.equal((await store.releasedConfig('i-1'))?.settings.clusterName, 'g4', 'the released config is still served');

      await store.saveChange({ releases: [{ instanceId: 'i-1', generation: null }], configs: [config('i-1', 7)] }, 'op', 6);
      t.same(await store.configGenerations('i-1'), [3, 7], 'no release any more: the applied one and the newest');
    },
  );
}
