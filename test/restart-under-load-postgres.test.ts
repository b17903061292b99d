// PostgreSQL stopped and started again (fast, then as a crash: immediate)
// under two replicas while agents enroll and report, operators write over
// REST and a rollout runs: no replica exits, /readyz says 503 while the
// database is down and 200 after, a write then gets 503 with Retry-After
// (never a 500), every write answered 2xx is in the database, and the
// rollout finishes.
import t from 'tap';
import { ControlClient } from '../agent/control-client';
import { ControlCallError } from '../agent/control-errors';
import { testIdentity } from './support/fixtures';
import { until, type ControlProcess, type RestResponse } from './support/harness';
import { postgresUnavailable } from './support/postgres';
import { fleetRoles, pollRollout, queryDb, startAgents, startReplicas, type Replicas } from './support/replicas';
import { CLUSTER } from './support/world';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Default failure thresholds: a host silent only while the database was down must not halt the rollout.
const PACE = { other: { maxUnavailable: 3 } };

/** What the load saw: each REST write's answer, each enrollment's outcome. */
interface LoadLog {
  /** Instance ids whose assignment PUT was answered 2xx. */
  written: string[];
  /** Every status other than 2xx, with whether a 503 carried Retry-After. */
  refused: Array<{ status: number; retryAfter?: string; message?: string }>;
  /** Instance ids whose Enroll succeeded. */
  enrolled: string[];
  /** gRPC status names of failed Enroll calls. */
  enrollFailures: string[];
}

/** Writes and enrollments through every replica, in turn, until `stop` is set. */
function runLoad(fleet: Replicas, stop: { now: boolean }, log: LoadLog): Promise<void> {
  let n = 0;
  const writes = async () => {
    for (; !stop.now; n++) {
      const id = `i-w-${n}`;
      const replica = fleet.replicas[n % fleet.replicas.length];
      const res: RestResponse = await replica
        .rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { n: String(n) } })
        .catch((err: Error) => ({ status: 0, headers: {}, body: { message: err.message } }));
      if (res.status >= 200 && res.status < 300) log.written.push(id);
      else log.refused.push({ status: res.status, retryAfter: res.headers['retry-after'], message: res.body?.message });
      await sleep(50);
    }
  };
  let e = 0;
  const enrollments = async () => {
    for (; !stop.now; e++) {
      const id = `i-e-${e}`;
      const client = new ControlClient({ endpoints: fleet.replicas.map((r) => r.grpcAddr), caPem: fleet.caPem });
      try {
        await client.enroll(testIdentity(id), fleet.joinToken, 'load');
        log.enrolled.push(id);
      } catch (err) {
        log.enrollFailures.push(err instanceof ControlCallError ? err.constructor.name + ' ' + err.message : String(err));
      } finally {
        client.close();
      }
      await sleep(100);
    }
  };
  return Promise.all([writes(), writes(), enrollments()]).then(() => undefined);
}

/** Polls /readyz of each replica, keeping every answer's status with when it came. */
function watchReadyz(replicas: ControlProcess[], stop: { now: boolean }, seen: Array<{ at: number; status: number }>): Promise<void> {
  return Promise.all(
    replicas.map(async (r) => {
      while (!stop.now) {
        const at = Date.now();
        const res = await r.rest('GET', '/readyz').catch(() => ({ status: 0 }));
        seen.push({ at, status: res.status });
        await sleep(200);
      }
    }),
  ).then(() => undefined);
}

/** Waits until every replica answers /readyz with `status`. */
const everyReplicaReadyz = (replicas: ControlProcess[], status: number) =>
  until(
    `every replica to answer /readyz ${status}`,
    async () => (await Promise.all(replicas.map((r) => r.rest('GET', '/readyz')))).every((res) => res.status === status),
    60_000,
  );

t.test('PostgreSQL restarted under load', { skip: postgresUnavailable() ?? false }, async (t) => {
  const fleet = await startReplicas(t, 2, { args: ['--heartbeat-interval', '2s'] });
  const [a] = fleet.replicas;
  t.equal((await a.rest('PATCH', '/v1/settings', { ...CLUSTER, rolloutPace: PACE })).status, 200);
  const agents = await startAgents(t, fleet, fleetRoles({ auth: 1, proxy: 2, node: 37 }), { applyMs: [500, 1500], heartbeatMs: 2000 });
  await until(
    'every agent applied its assignment',
    async () => (await queryDb(fleet, 'SELECT count(*)::int AS n FROM instances WHERE applied_generation = generation'))[0].n === 40,
    120_000,
  );

  const log: LoadLog = { written: [], refused: [], enrolled: [], enrollFailures: [] };
  const stop = { now: false };
  const readyz: Array<{ at: number; status: number }> = [];
  const load = runLoad(fleet, stop, log);
  const probes = watchReadyz(fleet.replicas, stop, readyz);
  try {
    for (const [round, mode] of (['fast', 'immediate'] as const).entries()) {
      // A rollout under way while the database goes away (the second supersedes the first).
      const patched = await until(
        'a settings change is saved',
        async () => {
          const res = await a.rest('PATCH', '/v1/settings', { logSeverity: round === 0 ? 'DEBUG' : 'WARN' });
          return res.status === 200 && res;
        },
        60_000,
      );
      t.equal(patched.status, 200, `round ${round + 1}: a change rolls out`);
      const id = (await a.rest('GET', '/v1/rollouts?limit=1')).body.items[0].id as string;
      await sleep(2000);

      const writtenBefore = log.written.length;
      const refusedBefore = log.refused.length;
      const stoppedAt = Date.now();
      await fleet.cluster.stop(mode);
      t.comment(`round ${round + 1}: PostgreSQL stopped (${mode})`);
      await everyReplicaReadyz(fleet.replicas, 503);
      // Writes keep coming while it is down.
      await until('writes refused while the database is down', () => log.refused.length >= refusedBefore + 5, 60_000);
      await sleep(Math.max(0, stoppedAt + 12_000 - Date.now())); // down for a while, as in a database failover
      const restartedAt = Date.now();
      await fleet.cluster.start();
      await everyReplicaReadyz(fleet.replicas, 200);
      await until('writes succeed again', () => log.written.length > writtenBefore + 5, 60_000);
      t.comment(
        `round ${round + 1}: down ${((restartedAt - stoppedAt) / 1000).toFixed(1)} s; ready again ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the start`,
      );
      // Asked from 5 s after the stop (a probe is answered from a check up to a second old, longer when it was slow) until the start.
      const whileDown = readyz.filter((r) => r.at > stoppedAt + 5000 && r.at < restartedAt).map((r) => r.status);
      t.ok(whileDown.length > 0, `round ${round + 1}: /readyz probed while the database was down`);
      t.same(
        whileDown.filter((s) => s !== 503),
        [],
        `round ${round + 1}: /readyz answered 503 while down (${whileDown.length} probes)`,
      );

      const { final } = await pollRollout(a, id, 300_000);
      // The second round's change supersedes nothing (the first completed before it was saved).
      t.equal(final.state, 'completed', `round ${round + 1}: the rollout finished${final.note ? ` (${final.note})` : ''}`);
    }
  } finally {
    stop.now = true;
    await Promise.all([load, probes]);
  }

  // Every replica ready at the end. (One probe in a CI run answered 503 with the database up, under load: the
  // readiness check opens a connection each second and gives up after 5 s; noted on issue 12.)
  await everyReplicaReadyz(fleet.replicas, 200);
  t.pass('/readyz answers 200 on every replica at the end');
  t.ok(log.refused.length > 0, `${log.refused.length} writes refused while the database was down`);
  const errors = log.refused.filter((r) => r.status !== 503 || !r.retryAfter);
  t.same(errors, [], 'every refused write got 503 with Retry-After (never a 500)');
  t.ok(
    log.refused.every((r) => /database/.test(r.message ?? '')),
    'and says the database cannot be reached',
  );

  const rows = await queryDb(fleet, "SELECT instance_id, assignment FROM instances WHERE instance_id LIKE 'i-w-%'");
  const stored = new Set(rows.map((r) => r.instance_id as string));
  t.same(
    log.written.filter((id) => !stored.has(id)),
    [],
    `every write answered 2xx is in the database (${log.written.length} of them)`,
  );
  const enrolledRows = new Set(
    (await queryDb(fleet, "SELECT instance_id FROM instances WHERE instance_id LIKE 'i-e-%' AND enrolled_at IS NOT NULL")).map(
      (r) => r.instance_id as string,
    ),
  );
  t.same(
    log.enrolled.filter((id) => !enrolledRows.has(id)),
    [],
    `every enrollment that succeeded is in the database (${log.enrolled.length}; ${log.enrollFailures.length} refused meanwhile)`,
  );
  t.same(
    log.enrollFailures.filter((f) => !/^ControlUnavailable/.test(f)),
    [],
    'an enrollment during the outage fails as unavailable (the agent retries), never otherwise',
  );

  const converged = await until(
    'every agent ready on its newest generation',
    async () => {
      const rows = await queryDb(
        fleet,
        "SELECT instance_id, generation, applied_generation FROM instances WHERE instance_id NOT LIKE 'i-w-%' AND instance_id NOT LIKE 'i-e-%'",
      );
      return rows.length === 40 && rows.every((r) => r.applied_generation === r.generation) && rows;
    },
    120_000,
  );
  t.equal(converged.length, 40, 'the 40 agents converged');
  t.ok(
    agents.every((x) => x.applied > 0),
    'each agent applied',
  );
  t.same(
    fleet.replicas.map((r) => r.proc?.exitCode),
    [null, null],
    'no replica exited',
  );
});
