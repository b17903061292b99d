// Two teleboot-control replicas on one PostgreSQL database: an assignment
// made through replica A, and a settings change, reach an agent watching
// replica B (the change feed), without a restart or a poll.
import t from 'tap';
import { cpSync, readFileSync } from 'node:fs';
import { ControlClient } from '../agent/control-client';
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import { testIdentity } from './support/fixtures';
import { ControlProcess, removeDir, scratchDir, until } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('an agent watching replica B hears of changes made through replica A', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const env = { PGPASSWORD: db.password };
  const dirA = scratchDir('replica-a');
  const dirB = scratchDir('replica-b');
  t.teardown(() => [dirA, dirB].forEach(removeDir));
  const a = new ControlProcess(dirA, ['--store', db.url], env);
  t.teardown(() => a.stop());
  await a.start();
  // One cluster identity: B starts from A's data directory (the same CA, cluster id and join token).
  cpSync(dirA, dirB, { recursive: true });
  const b = new ControlProcess(dirB, ['--store', db.url], env);
  t.teardown(() => b.stop());
  await b.start();

  const id = 'i-replica-1';
  const agent = new ControlClient({ endpoints: [`localhost:${b.grpcPort}`], caPem: readFileSync(b.caFile, 'utf8') });
  t.teardown(() => agent.close());
  const enrolled = await agent.enroll(testIdentity(id), readFileSync(b.joinTokenFile, 'utf8').trim(), 'test', 'nonce-of-replica-agent-1');
  t.equal(enrolled.assignment?.assigned, false, 'enrolled through B, unassigned');
  agent.useCredentials(enrolled.credentials);
  const seen: AssignmentState__Output[] = [];
  const stop = agent.watch(
    id,
    (s) => seen.push(s),
    () => undefined,
  );
  t.teardown(stop);
  await until('the watch on B sends the current state', () => seen.length > 0, 30_000);

  const assigned = await a.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { via: 'a' } });
  t.equal(assigned.status, 200);
  const state = await until(
    'B sends the assignment made through A',
    () => seen.find((s) => s.assigned && Number(s.generation) === assigned.body.generation),
    60_000,
  );
  t.match(state.assignment, { roles: ['node'] });

  const patched = await a.rest('PATCH', '/v1/settings', { clusterName: 'replicated', authAddr: 'auth.internal:3025', region: 'eu-west-1' });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  await until(
    'B sends the generation a settings change through A made',
    () => seen.some((s) => Number(s.generation) > assigned.body.generation),
    60_000,
  );
});
