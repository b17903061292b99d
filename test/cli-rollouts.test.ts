// teleboot rollouts ls | show | pause | resume | abort against a real
// control server; agents are the real gRPC client enrolling and reporting.
// A settings change over two nodes releases one (10 % of 2 is 1): the other
// is still served its old generation until the rollout reaches it.
import t, { type Test } from 'tap';
import { EXIT } from '../cli/exit-codes';
import { testIdentity } from './support/fixtures';
import { startCliWorld, type CliWorld } from './support/cli';
import { enrolledAgent } from './support/grpc-agent';
import { CLUSTER } from './support/world';

let world: CliWorld;
t.before(async () => {
  world = await startCliWorld('cli-rollouts');
  // Settings a node's files render from (before any node is assigned: no rollout yet).
  await world.control.rest('PATCH', '/v1/settings', CLUSTER);
});
t.teardown(() => world.close());

/** A node agent (the real gRPC client), enrolled and ready on the generation it was given. */
async function readyNode(t: Test, id: string) {
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const agent = await enrolledAgent(t, world.control, testIdentity(id));
  const generation = await agent.report();
  return { ...agent, generation };
}

t.test("a change that alters no host's files makes no rollout and bumps no generation", async (t) => {
  const nodes = [await readyNode(t, 'i-0bbbbbbbbbbbbbbb1'), await readyNode(t, 'i-0bbbbbbbbbbbbbbb2')];
  t.equal(nodes.length, 2);
  const before = (await world.control.rest('GET', '/v1/rollouts?limit=500')).body.items.length;
  const generations = async () =>
    (await world.control.rest('GET', '/v1/instances')).body.items.map((i: { instanceId: string; generation: number }) => [
      i.instanceId,
      i.generation,
    ]);
  const was = await generations();
  t.ok(was.length >= 2);
  const res = await world.control.rest('PATCH', '/v1/settings', { rolloutPace: { other: { maxUnavailable: 5 } } });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal((await world.control.rest('GET', '/v1/rollouts?limit=500')).body.items.length, before, 'no rollout');
  t.same(await generations(), was, 'no generation bumped');
  // Unassigned (at once: nothing to roll out), they are no part of the next test's rollouts.
  for (const id of ['i-0bbbbbbbbbbbbbbb1', 'i-0bbbbbbbbbbbbbbb2'])
    t.equal((await world.control.rest('DELETE', `/v1/instances/${id}/assignment`)).status, 200);
  t.equal((await world.control.rest('GET', '/v1/rollouts?limit=500')).body.items.length, before, 'still none');
  t.equal((await world.control.rest('PATCH', '/v1/settings', { rolloutPace: null })).status, 200, 'the default pace again');
});

t.test('rollouts ls and show; pause, resume and abort, with 409 and what to do on a wrong state', async (t) => {
  const a = await readyNode(t, 'i-0aaaaaaaaaaaaaaa1');
  const b = await readyNode(t, 'i-0aaaaaaaaaaaaaaa2');
  t.equal((await world.control.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' })).status, 200);

  const ls = await world.run(['rollouts', 'ls']);
  t.equal(ls.code, EXIT.ok, ls.stderr);
  t.match(ls.stdout, /ID\s+STATE\s+KIND\s+WAVE\s+HOSTS/);
  t.match(ls.stdout, /running\s+change\s+other\s+0\/2/);
  const [rollout] = JSON.parse((await world.run(['rollouts', 'ls', '-o', 'json'])).stdout).items;
  t.match(rollout, { state: 'running', reason: 'PATCH /v1/settings logSeverity', hosts: { applying: 1, pending: 1, total: 2 } });

  t.equal(await a.served(), a.generation + 1, 'the first node is released its new generation');
  t.equal(await b.served(), b.generation, 'the second is still served its old one');

  const show = await world.run(['rollouts', 'show', rollout.id]);
  t.equal(show.code, EXIT.ok, show.stderr);
  t.match(show.stdout, /i-0aaaaaaaaaaaaaaa1\s+node\s+applying/);
  t.match(show.stdout, /i-0aaaaaaaaaaaaaaa2\s+node\s+pending/);
  t.match(show.stdout, /severity: DEBUG/, 'the diff');

  const paused = await world.run(['rollouts', 'pause', rollout.id]);
  t.equal(paused.code, EXIT.ok, paused.stderr);
  t.match(paused.stdout, /is paused/);
  const again = await world.run(['rollouts', 'pause', rollout.id]);
  t.equal(again.code, EXIT.failed);
  t.match(again.stderr, /is paused.*resume or abort it/);

  await a.report();
  // Paused: the first node is ready, the second waits.
  await waitFor(async () => (await rolloutOf(rollout.id)).hosts.ready === 1);
  t.equal(await b.served(), b.generation, 'nothing released while paused');

  t.equal((await world.run(['rollouts', 'resume', rollout.id])).code, EXIT.ok);
  await waitFor(async () => (await b.served()) === b.generation + 1);
  t.pass('resumed: the second node is released');

  const aborted = await world.run(['rollouts', 'abort', rollout.id, '-o', 'json']);
  t.equal(aborted.code, EXIT.ok, aborted.stderr);
  t.equal(JSON.parse(aborted.stdout).state, 'aborted');
  t.equal(await b.served(), b.generation, 'the host caught applying goes back at once');
  const [rollback] = JSON.parse((await world.run(['rollouts', 'ls', '-o', 'json'])).stdout).items;
  t.match(rollback, { kind: 'rollback', hosts: { total: 2 } });

  const missing = await world.run(['rollouts', 'abort', 'no-such-rollout']);
  t.equal(missing.code, EXIT.notFound);
  t.match(missing.stderr, /teleboot rollouts ls/);
});

const rolloutOf = async (id: string) => (await world.control.rest('GET', `/v1/rollouts/${id}`)).body;
async function waitFor(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}
