// Replica B is SIGKILLed in the middle of a rollout over 200 agents split
// between two replicas on one PostgreSQL database: B's agents move to A
// (control.endpoints), every agent converges on the new generation, the
// rollout completes at its pace, and nothing B or A wrote is lost.
import t from 'tap';
import { RolloutAgent } from './support/rollout-agent';
import { until } from './support/harness';
import { postgresUnavailable } from './support/postgres';
import { fleetRoles, instanceIdOf, maxApplyingFromHosts, pollRollout, queryDb, startAgents, startReplicas } from './support/replicas';
import { CLUSTER } from './support/world';

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const HOSTS = { auth: 2, proxy: 8, node: 190 };
const PACE = { auth: { maxUnavailable: 1 }, proxy: { maxUnavailable: 2 }, other: { maxUnavailable: 20, failureThreshold: '50%' } };

t.test('SIGKILL of replica B during a rollout of 200 agents', { skip: postgresUnavailable() ?? false }, async (t) => {
  const started = Date.now();
  const fleet = await startReplicas(t, 2, { args: ['--heartbeat-interval', '2s'] });
  const [a, b] = fleet.replicas;
  t.equal((await a.rest('PATCH', '/v1/settings', { ...CLUSTER, rolloutPace: PACE })).status, 200);

  const roles = fleetRoles(HOSTS);
  const agents: RolloutAgent[] = await startAgents(t, fleet, roles, { applyMs: [300, 1200], heartbeatMs: 2000 });
  const onB = agents.filter((x) => x.endpoint === b.grpcAddr);
  t.ok(onB.length > 50 && onB.length < 150, `${onB.length} agents talk to B, the others to A`);
  await until(
    'every agent applied its assignment',
    async () => (await queryDb(fleet, 'SELECT count(*)::int AS n FROM instances WHERE applied_generation = generation'))[0].n === 200,
    120_000,
  );
  t.comment(`200 agents enrolled and ready ${((Date.now() - started) / 1000).toFixed(0)} s after the start`);

  const before = new Map(
    (await queryDb(fleet, 'SELECT instance_id, generation FROM instances')).map((r) => [r.instance_id, Number(r.generation)]),
  );
  const patched = await a.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' });
  t.equal(patched.status, 200, patched.status === 200 ? 'a settings change rolls out' : JSON.stringify(patched.body));
  const id = (await a.rest('GET', '/v1/rollouts?limit=1')).body.items[0].id as string;
  const rolloutStarted = Date.now();

  let killedAt = 0;
  const { final, maxApplying, pace } = await pollRollout(a, id, 300_000, async (r) => {
    // Mid-rollout: in the wave of the nodes, some ready and most still to go.
    if (!killedAt && r.groups.other.ready >= 40) {
      killedAt = Date.now();
      t.comment(`killing B with ${r.hosts.ready} of 200 ready, ${r.groups.other.applying} nodes applying`);
      const exited = new Promise((res) => b.proc!.once('exit', res));
      b.proc!.kill('SIGKILL');
      await exited;
    }
  });
  t.ok(killedAt, 'B was killed while the rollout ran');
  const movedAfter = onB.map((x) => (x.reportedAt.find((at) => at > killedAt) ?? Infinity) - killedAt);
  t.ok(
    movedAfter.every((ms) => Number.isFinite(ms)),
    `every agent of B reported to A after the kill: half within ${(median(movedAfter) / 1000).toFixed(1)} s, the last ${(Math.max(...movedAfter) / 1000).toFixed(1)} s (figures)`,
  );
  t.equal(final.state, 'completed', `the rollout completed${final.note ? ` (${final.note})` : ''}`);
  t.comment(
    `rollout done ${((Date.now() - rolloutStarted) / 1000).toFixed(0)} s after the change, ${((Date.now() - killedAt) / 1000).toFixed(0)} s after the kill`,
  );

  for (const group of ['auth', 'proxy', 'other'])
    t.ok(maxApplying[group] <= pace[group], `${group}: at most ${pace[group]} applying at once when polled (saw ${maxApplying[group]})`);
  // Hosts that failed on the way and recovered are left out: the time they failed (and stopped counting) is not kept.
  const recovered = new Set(
    (await queryDb(fleet, "SELECT details FROM audit_events WHERE action = 'rollout.failed' AND target = $1", [`rollout:${id}`])).map(
      (r) => JSON.parse(r.details).instanceId as string,
    ),
  );
  const fromHosts = maxApplyingFromHosts(final.hostStates.filter((h: { instanceId: string }) => !recovered.has(h.instanceId)));
  for (const group of ['auth', 'proxy', 'other'])
    t.ok(fromHosts[group] <= pace[group], `${group}: release and ready times overlap at most ${pace[group]} deep (${fromHosts[group]})`);

  t.ok(
    onB.every((x) => x.endpoint === a.grpcAddr),
    "B's agents moved to A",
  );
  const converged = await until(
    'every agent reports ready on its new generation',
    async () => {
      const rows = await queryDb(fleet, 'SELECT instance_id, generation, applied_generation FROM instances');
      return rows.every((r) => r.applied_generation === r.generation && Number(r.generation) > before.get(r.instance_id)!) && rows;
    },
    120_000,
  );
  const generationOf = new Map(converged.map((r) => [r.instance_id, Number(r.generation)]));
  t.same(
    agents.filter((x) => x.applied !== generationOf.get(x.instanceId)).map((x) => x.instanceId),
    [],
    'every agent applied its new generation',
  );

  // Nothing lost: what B wrote before it died is in the database with what A wrote.
  const [{ n: instances }] = await queryDb(fleet, 'SELECT count(*)::int AS n FROM instances');
  t.equal(instances, 200, '200 instances');
  const enrolled = await queryDb(fleet, "SELECT DISTINCT target FROM audit_events WHERE action = 'instance.enroll'");
  t.same(enrolled.map((r) => r.target).sort(), roles.map((_, i) => instanceIdOf(i)).sort(), 'an enrollment audit row for each host');
  const [{ n: settingsRows }] = await queryDb(fleet, "SELECT count(*)::int AS n FROM audit_events WHERE action = 'settings.update'");
  t.equal(settingsRows, 2, 'both settings changes audited');
  const rolloutRows = await queryDb(fleet, 'SELECT action FROM audit_events WHERE target = $1 ORDER BY id', [`rollout:${id}`]);
  const failed = rolloutRows.filter((r) => r.action === 'rollout.failed').length;
  t.comment(`${failed} hosts counted failed on the way (silent while moving), all ready in the end`);
  t.same(
    rolloutRows.map((r) => r.action).filter((x) => x === 'rollout.start' || x === 'rollout.completed'),
    ['rollout.start', 'rollout.completed'],
    'the rollout started and completed, once each',
  );
  t.equal(final.hostStates.length, 200, 'every host is in the rollout');
  t.same(
    final.hostStates.filter((h: { state: string }) => h.state !== 'ready'),
    [],
    'every host ready in it',
  );
  t.equal(a.proc?.exitCode, null, 'A never exited');
});
