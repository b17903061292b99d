// The instance view is written with plain JSON.stringify (no response
// serializer filters it), so it must hold exactly what the schema declares:
// a field declared but left out of the view is missing from every answer;
// a field in the view but not declared leaks into it undocumented.
import t from 'tap';
import { instanceView as viewSchema } from '../control/rest/schemas';
import { instanceView } from '../control/rest/views';
import type { InstanceRecord, InstanceStatus } from '../control/store/store';

const status: Required<InstanceStatus> = {
  state: 'ready',
  teleportUnitState: 'active',
  teleportReady: true,
  message: 'teleport is ready',
  agentVersion: '0.1.0',
  teleportVersion: '16.0.1',
  reportedAt: 1_800_000_000_000,
  certificateExpiresAt: 1_800_000_100_000,
  logTail: ['a line'],
  drift: [{ path: '/etc/teleport.yaml', diff: '-a\n+b' }],
};

/** A record with every field set (Required: a field added to the record type must be set here too). */
const record: Required<InstanceRecord> & { health: 'ready' } = {
  instanceId: 'i-0123456789abcdef0',
  identity: null,
  enrolledAt: 1_800_000_000_000,
  lastSeenAt: 1_800_000_000_000,
  assignment: { roles: ['node'], labels: {} },
  generation: 3,
  appliedGeneration: 3,
  releasedGeneration: 3,
  status,
  facts: null,
  createdAt: 1_800_000_000_000,
  updatedAt: 1_800_000_000_000,
  enrolledVia: 'ec2',
  allowedRoles: null,
  health: 'ready',
};

t.test('the instance view holds exactly the fields its schema declares', async (t) => {
  const view = instanceView(record, { id: 'r-1', state: 'ready' });
  t.same(Object.keys(view).sort(), Object.keys(viewSchema.properties).sort());
  const statusSchema = viewSchema.properties.status.properties;
  t.same(Object.keys(view.status!).sort(), Object.keys(statusSchema).sort(), 'and so does its status');
  for (const [key, value] of Object.entries(view.status!)) t.not(value, undefined, `status.${key} is carried`);
});

t.test('without a rollout under way the view has no rollout field (it is optional in the schema)', async (t) => {
  t.notOk('rollout' in instanceView(record));
});
