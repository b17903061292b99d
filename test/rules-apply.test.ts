// A rule applied to the instances already enrolled (POST /v1/rules/{id}/apply
// and `teleboot rules apply`) against a real control server; the agents are
// the real gRPC client enrolling with EC2 tags and reporting ready on the
// generation they are served. Hosts whose assignment an operator set are
// left alone unless asked, and the plan says why; applied, the changes are
// one rollout.
import t, { type Test } from 'tap';
import { EXIT } from '../cli/exit-codes';
import { testIdentity } from './support/fixtures';
import { startCliWorld, type CliWorld } from './support/cli';
import { enrolledAgent } from './support/grpc-agent';
import { CLUSTER } from './support/world';

let world: CliWorld;
const TAGS = { Group: 'web' };
const [byRule1, byRule2, explicit] = ['i-0ccccccccccccccc1', 'i-0ccccccccccccccc2', 'i-0ccccccccccccccc3'];
const agents = new Map<string, () => Promise<unknown>>();
let nodesRule: string;

/** An agent enrolled with the web tags, reporting ready on what it is served. */
async function enrolled(t: Test, id: string) {
  const agent = await enrolledAgent(t, world.control, { ...testIdentity(id), tags: TAGS });
  await agent.report();
  agents.set(id, () => agent.report());
}

const rest = (method: string, path: string, body?: unknown) => world.control.rest(method, path, body);
const roleOf = async (id: string) => (await rest('GET', `/v1/instances/${id}`)).body.assignment?.role ?? null;
const rolloutCount = async () => (await rest('GET', '/v1/rollouts?limit=500')).body.items.length;

/** Every agent reports ready on what it is served until the rollout completes. */
async function completes(id: string): Promise<any> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    for (const report of agents.values()) await report();
    const r = (await rest('GET', `/v1/rollouts/${id}`)).body;
    if (r.state === 'completed') return r;
    if (Date.now() > deadline) throw new Error(`rollout ${id} did not complete: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

t.before(async () => {
  world = await startCliWorld('rules-apply');
  await rest('PATCH', '/v1/settings', CLUSTER);
  nodesRule = (await rest('POST', '/v1/rules', { name: 'nodes', selector: TAGS, role: 'node' })).body.id;
  // Two hosts take their role from the rule at enrollment; an operator assigned the third before it booted.
  await rest('PUT', `/v1/instances/${explicit}/assignment`, { role: 'node' });
  for (const id of [byRule1, byRule2, explicit]) await enrolled(t, id);
});
t.teardown(() => world.close());

t.test('a dry run lists each host with its role change and the hosts left alone, and saves nothing', async (t) => {
  for (const id of [byRule1, byRule2, explicit]) t.equal(await roleOf(id), 'node');
  const added = await rest('POST', '/v1/rules', { name: 'edges', selector: TAGS, role: 'proxy', position: 0 });
  t.equal(added.status, 201, JSON.stringify(added.body));
  const rollouts = await rolloutCount();
  const plan = await rest('POST', `/v1/rules/${added.body.id}/apply`, { dryRun: true });
  t.equal(plan.status, 200, JSON.stringify(plan.body));
  t.match(plan.body, { dryRun: true, rule: { name: 'edges', role: 'proxy' }, unchanged: 0 });
  t.same(
    plan.body.changes.map((c: any) => [c.instanceId, c.from, c.to]),
    [
      [byRule1, 'node', 'proxy'],
      [byRule2, 'node', 'proxy'],
    ],
  );
  t.same(
    plan.body.skipped.map((s: any) => [s.instanceId, s.reason]),
    [[explicit, 'explicit-assignment']],
  );
  t.match(plan.body.skipped[0].detail, /set its assignment.*overrideExplicit/);
  t.notOk('rollout' in plan.body);
  t.equal(await rolloutCount(), rollouts, 'no rollout');
  t.equal(await roleOf(byRule1), 'node', 'no assignment changed');

  const cli = await world.run(['rules', 'apply', 'edges', '--dry-run']);
  t.equal(cli.code, EXIT.ok, cli.stderr);
  t.match(cli.stdout, /rule edges \(proxy\) would change 2 hosts; 1 left alone, 0 unchanged/);
  t.match(cli.stdout, new RegExp(`${byRule1}.*- node.*\\+ proxy`));
  t.match(cli.stdout, new RegExp(`${explicit}.*explicit-assignment`));
  t.match(cli.stdout, /without --dry-run/);
  t.equal(await rolloutCount(), rollouts, 'still no rollout');

  const help = await world.run(['rules', 'apply', '--help']);
  t.match(help.stdout, /\$ teleboot rules apply edges --dry-run/, '--help has an example');
});

t.test('applied: one rollout over the changed hosts; the operator-assigned host keeps its role unless asked', async (t) => {
  const cli = await world.run(['rules', 'apply', 'edges', '-o', 'json']);
  t.equal(cli.code, EXIT.ok, cli.stderr);
  const applied = JSON.parse(cli.stdout);
  t.match(applied, { dryRun: false, rollout: { kind: 'change', reason: /POST \/v1\/rules\/.*\/apply \(edges\)/, hosts: { total: 2 } } });
  t.equal(await roleOf(byRule1), 'proxy', 'the assignment is stored');
  const done = await completes(applied.rollout.id);
  t.same(done.hostStates.map((h: any) => [h.instanceId, h.role, h.state]).sort(), [
    [byRule1, 'proxy', 'ready'],
    [byRule2, 'proxy', 'ready'],
  ]);
  t.equal(await roleOf(explicit), 'node', 'the host an operator assigned is left alone');
  const audit = (await rest('GET', `/v1/audit?target=rule:${applied.rule.id}&limit=100`)).body.items;
  t.ok(
    audit.some((e: any) => e.action === 'rule.apply' && e.details.hosts === 2 && e.details.skipped === 1),
    'audited with the counts',
  );

  const again = await rest('POST', `/v1/rules/${applied.rule.id}/apply`, {});
  t.match(again.body, { unchanged: 2, changes: [] }, 'applied again: nothing to change');
  t.notOk('rollout' in again.body);

  const forced = await rest('POST', `/v1/rules/${applied.rule.id}/apply`, { overrideExplicit: true });
  t.equal(forced.status, 200, JSON.stringify(forced.body));
  t.same(
    forced.body.changes.map((c: any) => c.instanceId),
    [explicit],
  );
  await completes(forced.body.rollout.id);
  t.equal(await roleOf(explicit), 'proxy', 'asked: the operator-assigned host too');
});

t.test('a rule that comes after another matching rule changes nothing; an unknown rule is 404', async (t) => {
  const plan = await rest('POST', `/v1/rules/${nodesRule}/apply`, { dryRun: true });
  t.equal(plan.status, 200, JSON.stringify(plan.body));
  t.same(plan.body.changes, []);
  t.same(
    plan.body.skipped.map((s: any) => s.reason),
    ['earlier-rule', 'earlier-rule', 'earlier-rule'],
  );
  t.match(plan.body.skipped[0].detail, /rule edges .* comes first/);
  const missing = await rest('POST', '/v1/rules/3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c/apply', {});
  t.equal(missing.status, 404);
  t.match(missing.body.message, /GET \/v1\/rules/);
  const cli = await world.run(['rules', 'apply', 'no-such-rule']);
  t.equal(cli.code, EXIT.notFound);
});

t.test('abort of a rule applied puts every host it changed back on its assignment before', async (t) => {
  const rule = (await rest('POST', '/v1/rules', { name: 'back-to-nodes', selector: TAGS, role: 'node', position: 0 })).body;
  const applied = await rest('POST', `/v1/rules/${rule.id}/apply`, { overrideExplicit: true });
  t.equal(applied.status, 200, JSON.stringify(applied.body));
  t.equal(applied.body.changes.length, 3);
  for (const id of [byRule1, byRule2, explicit]) t.equal(await roleOf(id), 'node');
  const aborted = await rest('POST', `/v1/rollouts/${applied.body.rollout.id}/abort`);
  t.equal(aborted.status, 200, JSON.stringify(aborted.body));
  for (const id of [byRule1, byRule2, explicit]) t.equal(await roleOf(id), 'proxy', `${id} has its assignment from before the rule again`);
  const audit = (await rest('GET', `/v1/audit?target=${explicit}&limit=500`)).body.items;
  t.match(audit[audit.length - 1], { action: 'assignment.restore', details: { abortOf: applied.body.rollout.id } });
  const [rollback] = (await rest('GET', '/v1/rollouts?limit=1')).body.items;
  t.equal(rollback.kind, 'rollback');
  await completes(rollback.id);
});
