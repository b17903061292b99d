// The rollout pace: the cluster setting `rolloutPace` as PATCH /v1/settings
// accepts it (the same ajv options as the REST layer), resolved to host
// counts per group (control/rollout/policy.ts), and the group of a host.
import t from 'tap';
import Ajv from 'ajv';
import { ClusterSettingsPatch, RolloutRequest } from '../contract/settings';
import { DEFAULT_PACE, groupOf, resolvePace, resolveShare } from '../control/rollout/policy';

const check = new Ajv({ coerceTypes: false, useDefaults: true, strict: false }).compile(ClusterSettingsPatch);

t.test('PATCH /v1/settings takes a count or a percentage per group, and null to go back to the defaults', async (t) => {
  for (const rolloutPace of [
    { auth: { maxUnavailable: 1, failureThreshold: 1 } },
    { other: { maxUnavailable: '25%', failureThreshold: '100%' } },
    { proxy: { maxUnavailable: 2 } },
    {},
    null,
  ])
    t.ok(check({ rolloutPace }), JSON.stringify(rolloutPace));
  for (const rolloutPace of [
    { other: { maxUnavailable: 0 } },
    { other: { maxUnavailable: '0%' } },
    { other: { maxUnavailable: '150%' } },
    { other: { maxUnavailable: '10 %' } },
    { other: { maxUnavailable: 1.5 } },
    { nodes: { maxUnavailable: 1 } },
    { other: { maxUnavailable: 1, pace: 'fast' } },
  ])
    t.notOk(check({ rolloutPace }), `refused: ${JSON.stringify(rolloutPace)}`);
});

t.test('a request names its strategy under "rollout", apart from the rolloutPace setting', async (t) => {
  const request = new Ajv({ strict: false }).compile(RolloutRequest);
  t.ok(request({ strategy: 'all-at-once' }));
  t.ok(request({ strategy: 'waves' }));
  t.notOk(request({ strategy: 'fast' }));
  t.notOk(request({ strategy: 'all-at-once', other: { maxUnavailable: 1 } }), 'the pace is not a request option');
  t.notOk(check({ rollout: { strategy: 'all-at-once' } }), 'nor is the strategy a setting');
});

t.test('shares: a count stays a count, a percentage of the group rounds up, never below 1', async (t) => {
  t.equal(resolveShare(3, 948), 3);
  t.equal(resolveShare('10%', 948), 95);
  t.equal(resolveShare('5%', 948), 48);
  t.equal(resolveShare('5%', 3), 1, '5 % of 3 hosts is one host');
  t.equal(resolveShare('10%', 0), 1, 'an empty group still resolves');
  t.equal(resolveShare('100%', 7), 7);
  t.throws(() => resolveShare('ten', 5), /neither a count nor a percentage/);
});

t.test('defaults: one at a time and halt at the first failure for auth and proxy; 10 % and 5 % for the rest', async (t) => {
  t.same(DEFAULT_PACE.other, { maxUnavailable: '10%', failureThreshold: '5%' });
  t.same(resolvePace(undefined, { auth: 2, proxy: 50, other: 948 }), {
    auth: { maxUnavailable: 1, failureThreshold: 1 },
    proxy: { maxUnavailable: 1, failureThreshold: 1 },
    other: { maxUnavailable: 95, failureThreshold: 48 },
  });
  t.same(
    resolvePace({ proxy: { maxUnavailable: '10%' } }, { auth: 2, proxy: 50, other: 948 }).proxy,
    { maxUnavailable: 5, failureThreshold: 1 },
    'a group sets what it names; the rest of it keeps the default',
  );
});

t.test('a host with several services goes with its earliest group', async (t) => {
  t.equal(groupOf(['auth']), 'auth');
  t.equal(groupOf(['auth', 'proxy']), 'auth', 'auth-proxy');
  t.equal(groupOf(['auth', 'proxy', 'node']), 'auth', 'all');
  t.equal(groupOf(['proxy', 'node']), 'proxy');
  t.equal(groupOf(['node']), 'other');
  t.equal(groupOf(['kube', 'discovery']), 'other');
});
