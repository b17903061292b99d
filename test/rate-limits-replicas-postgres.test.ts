// Rate limits hold fleet-wide: two replicas on one PostgreSQL each apply
// half of the configured rate (they count each other through the store), so
// a flood of enrollments and REST writes spread over both is let through at
// most the configured number, not twice it.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '../agent/control-client';
import { testIdentity } from './support/fixtures';
import { postgresUnavailable } from './support/postgres';
import { startReplicas } from './support/replicas';
import type { ControlProcess } from './support/harness';

const PER_MINUTE = 20;
const ATTEMPTS = 30;

/** Polls until every replica has logged that it counts `n` replicas. */
async function untilCounted(replicas: ControlProcess[], n: number): Promise<boolean> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200)))
    if (replicas.every((r) => r.logs.includes(`"replicas":${n}`))) return true;
  return false;
}

/** The configured rate plus what it refills in `ms`: the most the fleet may let through. */
const fleetAllowance = (ms: number) => PER_MINUTE + Math.ceil((PER_MINUTE * ms) / 60_000);

t.test(
  'two replicas share the Enroll and REST write limits: together they allow the configured rate',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    const { replicas, caPem } = await startReplicas(t, 2, {
      config: { rate_limits: { enroll_per_minute: PER_MINUTE, rest_writes_per_minute: PER_MINUTE, exempt_loopback: false } },
    });
    t.ok(await untilCounted(replicas, 2), 'each replica counts two serving');

    t.test('Enroll', async (t) => {
      const started = Date.now();
      const outcomes = await Promise.all(
        replicas.map(async (r, i) => {
          const client = new ControlClient({ endpoints: [r.grpcAddr], caPem });
          const codes: grpc.status[] = [];
          for (let k = 0; k < ATTEMPTS; k++)
            codes.push(
              await client.enroll(testIdentity(`i-0rate${i}${String(k).padStart(10, '0')}`), 'not-the-join-token', 'test').then(
                () => grpc.status.OK,
                (err: grpc.ServiceError) => err.code,
              ),
            );
          client.close();
          return codes;
        }),
      );
      const elapsed = Date.now() - started;
      const allowed = outcomes.map((codes) => codes.filter((c) => c !== grpc.status.RESOURCE_EXHAUSTED).length);
      t.ok(
        allowed.every((n) => n >= 1),
        `each replica let some through (${allowed.join(' + ')})`,
      );
      const total = allowed[0] + allowed[1];
      t.ok(total <= fleetAllowance(elapsed), `${total} enrollments let through in ${elapsed} ms: at most ${fleetAllowance(elapsed)}`);
      t.ok(total >= PER_MINUTE / 2, 'and the limit is not lower than configured either');
    });

    t.test('REST writes', async (t) => {
      const statuses = await Promise.all(
        replicas.map(async (r, i) => {
          const codes: number[] = [];
          for (let k = 0; k < ATTEMPTS; k++)
            codes.push(
              (await r.rest('PUT', `/v1/instances/i-0write${i}${String(k).padStart(9, '0')}/assignment`, { role: 'node' })).status,
            );
          return codes;
        }),
      );
      const saved = statuses.map((codes) => codes.filter((c) => c === 200).length);
      t.same(
        statuses.flat().filter((c) => c !== 200 && c !== 429),
        [],
        'every write was saved or refused with 429',
      );
      t.ok(
        saved.every((n) => n >= 1),
        `each replica saved some (${saved.join(' + ')})`,
      );
      t.ok(saved[0] + saved[1] <= PER_MINUTE, `${saved[0] + saved[1]} writes saved: at most ${PER_MINUTE} a minute across the replicas`);
      const refused = (await replicas[0].rest('PUT', '/v1/instances/i-0write0999999999/assignment', { role: 'node' })).body;
      t.match(refused.message, `more than ${PER_MINUTE} write requests a minute`, 'the refusal names the fleet-wide rate');
    });

    t.test('a replica that stops leaves its share to the others', async (t) => {
      await replicas[1].stop();
      t.ok(await untilCounted([replicas[0]], 1), 'the remaining replica counts one serving');
    });
  },
);
