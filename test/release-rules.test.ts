// Teleport's version rule, judged when settings or an assignment are saved:
// auth servers first, nothing newer than them, nothing more than one major
// version behind, no major version skipped. The refusal names the hosts.
import t from 'tap';
import { DEFAULT_CLUSTER_SETTINGS, type ClusterSettings } from '../contract/settings';
import type { Assignment } from '../contract/model';
import { versionProblems } from '../contract/teleport-release';
import { checkAssignmentRelease, checkSettingsRelease } from '../control/release-rules';
import { validateClusterSettings, validateAssignment } from '../control/validation';
import { InputError } from '../control/errors';

const settings = (version?: string, extra: Partial<ClusterSettings> = {}): ClusterSettings => ({
  ...DEFAULT_CLUSTER_SETTINGS,
  s3Bucket: 'releases',
  ...(version ? { teleport: { version } } : {}),
  ...extra,
});
const auth: Assignment = { roles: ['auth'], labels: {} };
const proxy: Assignment = { roles: ['proxy'], labels: {} };
const node: Assignment = { roles: ['node'], labels: {} };
const pinned = (a: Assignment, version: string): Assignment => ({ ...a, teleport: { version } });

/** The fleet: two auth servers, a proxy and two nodes on the cluster's release. */
const FLEET = [
  { assignment: auth, holders: ['i-auth1', 'i-auth2'] },
  { assignment: proxy, holders: ['i-proxy1'] },
  { assignment: node, holders: ['i-node1', 'i-node2'] },
];

const refusal = (fn: () => unknown): InputError | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  return undefined;
};
const refusalOf = async (p: Promise<unknown>): Promise<InputError | undefined> =>
  p.then(
    () => undefined,
    (err: unknown) => {
      if (err instanceof InputError) return err;
      throw err;
    },
  );

t.test('the rule over a plan', async (t) => {
  const host = (holder: string, isAuth: boolean, version: string, before?: string) => ({ holder, auth: isAuth, version, before });
  t.same(
    versionProblems([host('a', true, '16.0.0'), host('p', false, '16.1.0'), host('n', false, '15.4.2')]),
    [],
    'same major or one behind',
  );
  t.match(versionProblems([host('a', true, '15.4.2'), host('n', false, '16.0.0')]), [
    {
      rule: 'newer-than-auth',
      holders: ['n'],
      reason: /newer major version \(16\.0\.0\) than the auth servers \(v15\); upgrade the auth servers first/,
    },
  ]);
  t.match(versionProblems([host('a', true, '17.0.0'), host('n', false, '15.4.2')]), [
    { rule: 'behind-auth', holders: ['n'], reason: /more than one major version behind the auth servers \(v17\)/ },
  ]);
  t.match(versionProblems([host('a', true, '17.0.0', '15.4.2')]), [
    { rule: 'skips-major', holders: ['a'], reason: /15\.4\.2 to 17\.0\.0/ },
  ]);
  t.same(versionProblems([host('n', false, '17.0.0'), host('m', false, '14.0.0')]), [], 'no auth server known: nothing to compare with');
});

t.test('a cluster-wide upgrade by one major version is allowed; by two is refused naming the hosts', async (t) => {
  t.equal(
    refusal(() => checkSettingsRelease(settings('15.4.2'), settings('16.0.1'), FLEET, ['teleport'])),
    undefined,
  );
  const err = refusal(() => checkSettingsRelease(settings('15.4.2'), settings('17.0.0'), FLEET, ['teleport']));
  t.equal(err?.field, 'teleport');
  t.match(err?.reason, /^i-auth1, i-auth2, i-proxy1, i-node1, i-node2: would skip a major version \(15\.4\.2 to 17\.0\.0\)/);
  t.equal(
    refusal(() => checkSettingsRelease(settings(), settings('17.0.0'), FLEET, ['teleport'])),
    undefined,
    'a first release: nothing skipped',
  );
});

t.test('a settings change leaves nodes pinned two majors behind: refused, naming them', async (t) => {
  const fleet = [...FLEET, { assignment: pinned(node, '15.4.2'), holders: ['i-old1', 'i-old2'] }];
  const err = refusal(() => checkSettingsRelease(settings('16.0.0'), settings('17.0.0'), fleet, ['teleport']));
  t.match(err?.reason, /^i-old1, i-old2: would be more than one major version behind the auth servers \(v17\): 15\.4\.2/);
  t.equal(
    refusal(() => checkSettingsRelease(settings('16.0.0'), settings('16.0.0', { logSeverity: 'DEBUG' }), fleet, ['logSeverity'])),
    undefined,
    'a change of another setting is not judged by the version rule',
  );
});

t.test('an assignment may not run a newer major version than the auth servers', async (t) => {
  const s = settings('15.4.2');
  const stored = async () => FLEET;
  const err = await refusalOf(checkAssignmentRelease('i-node1', pinned(node, '16.0.0'), node, s, stored));
  t.equal(err?.field, 'teleport');
  t.match(
    err?.reason,
    /^i-node1: would run a newer major version \(16\.0\.0\) than the auth servers \(v15\); upgrade the auth servers first/,
  );
  t.equal(await refusalOf(checkAssignmentRelease('i-node1', pinned(node, '15.5.0'), node, s, stored)), undefined, 'a newer minor is fine');
});

t.test('auth servers first: upgrading one auth server leaves the fleet one major behind, which is allowed', async (t) => {
  const s = settings('15.4.2');
  t.equal(await refusalOf(checkAssignmentRelease('i-auth1', pinned(auth, '16.0.0'), auth, s, async () => FLEET)), undefined);
  const err = await refusalOf(checkAssignmentRelease('i-auth1', pinned(auth, '17.0.0'), auth, s, async () => FLEET));
  t.match(err?.reason, /would skip a major version \(15\.4\.2 to 17\.0\.0\)/);
});

t.test('hosts are judged on the version they report running, the planned one when they report none', async (t) => {
  // Both auth servers should run 16, but their upgrade failed: they still run 15.
  const fleet = [
    { assignment: pinned(auth, '16.0.0'), holders: ['i-auth1', 'i-auth2'] },
    { assignment: node, holders: ['i-node1', 'i-node2'] },
  ];
  const s = settings('15.4.2');
  const running = new Map([
    ['i-auth1', '15.4.2'],
    ['i-auth2', '15.4.2'],
  ]);
  const ahead = () =>
    checkAssignmentRelease(
      'i-node1',
      pinned(node, '16.0.0'),
      node,
      s,
      async () => fleet,
      async () => running,
    );
  t.match((await refusalOf(ahead()))?.reason, /^i-node1: would run a newer major version \(16\.0\.0\) than the auth servers \(v15\)/);
  t.equal(
    await refusalOf(checkAssignmentRelease('i-node1', pinned(node, '16.0.0'), node, s, async () => fleet)),
    undefined,
    'on the planned versions alone, the auth servers would already run 16',
  );
  running.set('i-auth1', '16.0.0').set('i-auth2', '16.0.0');
  t.equal(await refusalOf(ahead()), undefined, 'once they run 16, a node may follow');

  // A rollout to 16 under way: the nodes still run 15, so 17 would skip a major version on them.
  const midway = new Map([
    ['i-auth1', '16.0.0'],
    ['i-auth2', '16.0.0'],
    ['i-proxy1', '16.0.0'],
    ['i-node1', '15.4.2'],
  ]);
  const err = refusal(() => checkSettingsRelease(settings('16.0.0'), settings('17.0.0'), FLEET, ['teleport'], midway));
  t.match(
    err?.reason,
    /^i-node1: would skip a major version \(15\.4\.2 to 17\.0\.0\)/,
    'i-node2 reported nothing: judged on its planned 16',
  );
  t.equal(
    refusal(() => checkSettingsRelease(settings('16.0.0'), settings('17.0.0'), FLEET, ['teleport'])),
    undefined,
  );

  // A host no release is named for is judged on what it runs too.
  const unmanaged = [
    { assignment: auth, holders: ['i-auth1'] },
    { assignment: node, holders: ['i-node1'] },
  ];
  const behind = await refusalOf(
    checkAssignmentRelease(
      'i-node1',
      pinned(node, '15.4.2'),
      node,
      settings(),
      async () => unmanaged,
      async () => new Map([['i-auth1', '17.0.0']]),
    ),
  );
  t.match(behind?.reason, /^i-node1: would be more than one major version behind the auth servers \(v17\)/);
});

t.test('no release named: the fleet is not read at all', async (t) => {
  let read = false;
  const stored = async () => {
    read = true;
    return FLEET;
  };
  await checkAssignmentRelease('i-node1', node, undefined, settings(), stored);
  t.notOk(read);
});

t.test('the release fields', async (t) => {
  t.match(
    refusal(() => validateClusterSettings(settings(undefined, { enterprise: true, teleport: { version: '15.4.2', edition: 'oss' } }))),
    { field: 'teleport.edition', reason: /cluster is Teleport Enterprise/ },
  );
  t.match(
    refusal(() => validateClusterSettings(settings(undefined, { teleport: { version: '15.4.2', bucket: 'Bad_Bucket' } }))),
    {
      field: 'teleport.bucket',
    },
  );
  t.match(
    refusal(() => validateAssignment({ ...node, teleport: { version: '15.4.2', source: 'package', bucket: 'abc' } })),
    {
      field: 'teleport.bucket',
      reason: /is for source s3/,
    },
  );
  t.equal(
    refusal(() => validateClusterSettings(settings(undefined, { teleport: { version: '15.4.2', edition: 'enterprise', source: 's3' } }))),
    undefined,
  );
});
