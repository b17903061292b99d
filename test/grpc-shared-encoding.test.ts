// The watch stream's messages share their settings' encoding across
// watchers (control/grpc/shared-encoding.ts): each agent still reads its own
// instance, generation and assignment, and settings equal to those encoded
// whole; settings are encoded once per distinct content. Then over the real
// server: hosts of different roles and labels watching through a settings
// change each get their own message, the same GetAssignment answers.
import t from 'tap';
import { desiredFrom } from '../agent/agent';
import { ControlClient } from '../agent/control-client';
import { bootstrapProto } from '../contract/proto';
import type { Assignment } from '../contract/assignment';
import { toAssignmentMessage } from '../control/grpc/messages';
import { SharedAssignmentEncoding } from '../control/grpc/shared-encoding';
import type { AssignmentStateView } from '../control/service';
import type { AssignmentState, AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';
import { TEST_CLUSTER, testIdentity } from './support/fixtures';
import { until } from './support/harness';
import { startInProcessControl } from './support/in-process';

const method = bootstrapProto().teleboot.v1.Bootstrap.service.WatchAssignment;

function view(instanceId: string, generation: number, assignment: Assignment | null, logSeverity: 'INFO' | 'DEBUG'): AssignmentStateView {
  return {
    instanceId,
    generation,
    assigned: assignment !== null,
    assignment,
    cluster: { ...TEST_CLUSTER, logSeverity, certDomain: 'teleport.example.com' },
  };
}

t.test('each watcher reads its own message; settings are encoded once per content', async (t) => {
  let encoded = 0;
  const encoding = new SharedAssignmentEncoding((message: AssignmentState) => (encoded++, method.responseSerialize(message)));
  const views = [
    view('i-0aaaaaaaaaaaaaaa1', 3, { roles: ['proxy'], labels: { env: 'a' } }, 'INFO'),
    view('i-0aaaaaaaaaaaaaaa2', 5, { roles: ['node'], labels: { env: 'b', rack: '7' } }, 'INFO'),
    view('i-0aaaaaaaaaaaaaaa3', 1, null, 'INFO'),
    view('i-0aaaaaaaaaaaaaaa4', 6, { roles: ['node'], labels: { env: 'b' } }, 'DEBUG'),
  ];
  for (const v of views) {
    const whole = method.responseDeserialize(method.responseSerialize(toAssignmentMessage(v)));
    const shared = method.responseDeserialize(encoding.serializer(encoding.message(v)));
    t.same(shared, whole, `${v.instanceId}: the same message as encoded whole`);
    t.same(desiredFrom(shared), desiredFrom(whole), `${v.instanceId}: the agent reads the same assignment and settings`);
  }
  const before = encoded;
  for (let i = 0; i < 1000; i++) encoding.message(view(`i-0b${String(i).padStart(15, '0')}`, 9, { roles: ['node'], labels: {} }, 'DEBUG'));
  t.equal(encoded - before, 1000, 'a thousand watchers on known settings: their own fields encoded, the settings not again');
  encoding.message(view('i-0aaaaaaaaaaaaaaa5', 2, null, 'DEBUG'));
  const changed = { ...view('i-0aaaaaaaaaaaaaaa5', 2, null, 'DEBUG'), cluster: { ...views[0].cluster, clusterName: 'other' } };
  encoded = 0;
  const other = method.responseDeserialize(encoding.serializer(encoding.message(changed)));
  t.equal(encoded, 2, 'new settings are encoded');
  t.equal(other.cluster?.clusterName, 'other');
});

t.test('watchers of different roles and labels through a settings change', async (t) => {
  const control = await startInProcessControl('shared-encoding');
  t.teardown(() => control.close());
  t.equal((await control.rest('PATCH', '/v1/settings', TEST_CLUSTER)).status, 200);
  const hosts = [
    { id: 'i-0ddddddddddddddd1', assignment: { role: 'proxy', labels: { env: 'a' } } },
    { id: 'i-0ddddddddddddddd2', assignment: { role: 'node', labels: { env: 'b', rack: '7' } } },
    { id: 'i-0ddddddddddddddd3', assignment: { role: 'node', labels: { env: 'c' } } },
    { id: 'i-0ddddddddddddddd4' },
  ];
  const latest = new Map<string, AssignmentState__Output>();
  const clients: ControlClient[] = [];
  for (const host of hosts) {
    if (host.assignment) t.equal((await control.rest('PUT', `/v1/instances/${host.id}/assignment`, host.assignment)).status, 200);
    const client = new ControlClient({ endpoints: [`localhost:${control.server.grpcPort}`], caPem: control.server.caPem });
    clients.push(client);
    t.teardown(() => client.close());
    await client.enroll(testIdentity(host.id), control.joinToken, 'test');
    t.teardown(
      client.watch(
        host.id,
        (s) => latest.set(host.id, s),
        () => undefined,
      ),
    );
  }
  await until('every host watching', () => latest.size === hosts.length, 60_000);
  const patched = await control.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG', rollout: { strategy: 'all-at-once' } });
  t.equal(patched.status, 200);
  await until(
    'every assigned host told of the change',
    () => hosts.every((h) => !h.assignment || latest.get(h.id)?.cluster?.logSeverity === 'DEBUG'),
    60_000,
  );
  for (const [i, host] of hosts.entries()) {
    const watched = latest.get(host.id)!;
    t.equal(watched.instanceId, host.id);
    // An unassigned host is not told of settings changes (it runs nothing they shape).
    if (!host.assignment) {
      t.equal(watched.assigned, false, `${host.id}: still unassigned`);
      continue;
    }
    t.same(watched, await clients[i].getAssignment(host.id), `${host.id}: the watch gave what GetAssignment answers`);
    t.same(watched.assignment?.labels, host.assignment.labels, `${host.id}: its own labels`);
  }
});
