// The typed role options and layout settings survive the gRPC wire: what the
// control server sends (toAssignmentMessage) is serialized with the real
// protobuf contract, read back, and the agent's desiredFrom gives the very
// assignment and settings that were saved. The values are built from the
// schemas in contract/, so a setting is covered the day it is declared; the
// proto's fields are read from the loaded descriptor, so a field that no
// setting maps fails here.
import t from 'tap';
import { TEST_CLUSTER } from './support/fixtures';
import { sampleOf, type JsonSchema } from './support/schema-sample';
import * as assignmentSchemas from '../contract/assignment';
import { Assignment, type Assignment as AssignmentValue } from '../contract/assignment';
import { bootstrapProto } from '../contract/proto';
import {
  CONTROL_ONLY_SETTINGS,
  ClusterSettings,
  RoleMapping,
  StorageSettings,
  type ClusterSettings as SettingsValue,
} from '../contract/settings';
import { DERIVED_SETTINGS_FIELDS, MAPPED_MESSAGES, WireError, clusterFromMessage, clusterToMessage } from '../contract/wire';
import { TeleportRelease } from '../contract/teleport-release';
import { desiredFrom } from '../agent/agent';
import { toAssignmentMessage } from '../control/grpc/server';
import type { ClusterSettings__Output } from '../proto/gen/teleboot/v1/ClusterSettings';
const method = bootstrapProto().teleboot.v1.Bootstrap.service.GetAssignment;

function overTheWire(assignment: AssignmentValue, cluster: SettingsValue) {
  const msg = toAssignmentMessage({
    instanceId: 'i-0123456789abcdef0',
    generation: 7,
    assigned: true,
    assignment,
    cluster: { ...cluster, certDomain: 'teleport.example.com' },
  });
  const bytes = method.responseSerialize(msg);
  return desiredFrom(method.responseDeserialize(bytes));
}

const MINIMAL = TEST_CLUSTER;
const v1 = bootstrapProto().teleboot.v1;

t.test('every role option and layout setting reads back as saved', async (t) => {
  // Every property of the schemas, optional ones included, none empty.
  const assignment = sampleOf(Assignment, true) as AssignmentValue;
  const cluster = sampleOf(ClusterSettings, true) as SettingsValue;
  t.same(Object.keys(assignment).sort(), Object.keys(Assignment.properties).sort(), 'the sample sets every assignment option');
  t.same(Object.keys(cluster).sort(), Object.keys(ClusterSettings.properties).sort(), 'the sample sets every setting');
  // Control-only settings (the rollout pace) stay on the control server.
  const forAgents: Partial<SettingsValue> = { ...cluster };
  for (const key of CONTROL_ONLY_SETTINGS) delete forAgents[key];
  t.same(overTheWire(assignment, cluster), { generation: 7, assignment, cluster: forAgents });
});

t.test('each proto message has a field for every key of its schema, and no field without one', async (t) => {
  const schemas: Record<keyof typeof MAPPED_MESSAGES, JsonSchema> = {
    ClusterSettings,
    StorageSettings,
    RoleMapping,
    Assignment,
    CommandLabel: assignmentSchemas.CommandLabel,
    LabelSelector: assignmentSchemas.KubeOptions.properties.resources.items,
    KubeOptions: assignmentSchemas.KubeOptions,
    AppSpec: assignmentSchemas.AppSpec,
    DatabaseSpec: assignmentSchemas.DatabaseSpec,
    AwsMatcher: assignmentSchemas.AwsMatcher,
    DiscoveryOptions: assignmentSchemas.DiscoveryOptions,
    TeleportRelease,
  };
  for (const [name, schema] of Object.entries(schemas)) {
    const descriptor = (v1[name as keyof typeof v1] as { type: { field: Array<{ name: string }> } }).type;
    const fields = descriptor.field.map((f) => f.name).sort();
    const derived: readonly string[] = name === 'ClusterSettings' ? DERIVED_SETTINGS_FIELDS : [];
    const controlOnly: readonly string[] = name === 'ClusterSettings' ? CONTROL_ONLY_SETTINGS : [];
    const keys = Object.keys(schema.properties ?? {}).filter((key) => !controlOnly.includes(key));
    t.same(fields, [...keys, ...derived].sort(), `teleboot.v1.${name}`);
    t.same(Object.keys(MAPPED_MESSAGES[name as keyof typeof MAPPED_MESSAGES]).sort(), keys.sort(), `${name}: a codec per key`);
  }
});

t.test('an enum value the agent does not know is an error naming the field, not a cast', async (t) => {
  const wire = method.responseDeserialize(
    method.responseSerialize(
      toAssignmentMessage({
        instanceId: 'i-1',
        generation: 1,
        assigned: true,
        assignment: { roles: ['node'], labels: {} },
        cluster: { ...MINIMAL, certDomain: 'x' },
      }),
    ),
  );
  const cluster: ClusterSettings__Output = { ...wire.cluster!, joinMethod: 'carrier-pigeon' };
  t.throws(
    () => clusterFromMessage(cluster),
    new WireError(
      'cluster.joinMethod',
      'unknown value "carrier-pigeon"; this agent knows token, iam (is it older than the control server?)',
    ),
  );
  t.throws(() => desiredFrom({ ...wire, assignment: { ...wire.assignment!, roles: ['node', 'mainframe'] } }), {
    name: 'WireError',
    field: 'assignment.roles[1]',
  });
  t.throws(() => clusterFromMessage({ ...wire.cluster!, storage: { ...wire.cluster!.storage!, type: 'etcd' } }), {
    name: 'WireError',
    field: 'cluster.storage.type',
  });
  t.same(clusterFromMessage(clusterToMessage({ ...MINIMAL, certDomain: 'x' }) as ClusterSettings__Output), MINIMAL);
});

t.test('an assignment and settings from before the new fields read back unchanged', async (t) => {
  const assignment: AssignmentValue = { roles: ['node'], labels: {} };
  t.same(overTheWire(assignment, MINIMAL), { generation: 7, assignment, cluster: MINIMAL }, 'nothing appears that was not set');
});
