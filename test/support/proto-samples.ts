// Messages of every kind an agent sends and reads, and the check that a
// Bootstrap client's functions treat them as proto-loader's definitions (the
// control server's) do: the same bytes and the same objects, both ways.
import type { Test } from 'tap';
import type { BootstrapClientConstructor } from '../../contract/proto-client';
import { bootstrapProto } from '../../contract/proto';
import { toAssignmentMessage } from '../../control/grpc/server';
import { TEST_CLUSTER } from './fixtures';

export const MESSAGE_SAMPLES: Record<string, { request: object; response: object }> = {
  Enroll: {
    request: {
      identity: { instanceId: 'i-0123456789abcdef0', region: 'us-east-1', tags: { Name: 'edge-1' } },
      proof: { joinToken: 'secret' },
      publicKeyPem: '-----BEGIN PUBLIC KEY-----',
      nonce: 'n'.repeat(43),
    },
    response: { clientCertificatePem: 'cert', certificateExpiresUnixMs: 1_795_966_920_294, heartbeatIntervalSeconds: 30 },
  },
  GetAssignment: {
    request: { instanceId: 'i-0123456789abcdef0' },
    response: toAssignmentMessage({
      instanceId: 'i-0123456789abcdef0',
      generation: 7,
      assigned: true,
      assignment: { roles: ['node'], labels: { env: 'prod' } },
      cluster: { ...TEST_CLUSTER, certDomain: 'teleport.example.com' },
    }),
  },
  ReportStatus: {
    request: {
      instanceId: 'i-0123456789abcdef0',
      appliedGeneration: 7,
      state: 'ready',
      teleportReady: true,
      facts: { os: 'Ubuntu 24.04', cpus: 2, memoryTotalBytes: 2 ** 40, uptimeSeconds: 12 },
    },
    response: { desiredGeneration: 7, heartbeatIntervalSeconds: 30 },
  },
  AcquireLease: { request: { instanceId: 'i-1', name: 'publisher', fencing: 3 }, response: { granted: true, fencing: 3 } },
};

/** Each sample through `light`'s (de)serializers and proto-loader's: same bytes, same objects. */
export function sameAsProtoLoader(t: Test, light: BootstrapClientConstructor['service']): void {
  const full = bootstrapProto().teleboot.v1.Bootstrap.service;
  for (const [name, { request, response }] of Object.entries(MESSAGE_SAMPLES)) {
    const l = light[name as keyof typeof light];
    const f = full[name as keyof typeof full];
    for (const [what, value, serialize, deserialize] of [
      ['request', request, [l.requestSerialize, f.requestSerialize], [l.requestDeserialize, f.requestDeserialize]],
      ['response', response, [l.responseSerialize, f.responseSerialize], [l.responseDeserialize, f.responseDeserialize]],
    ] as const) {
      const bytes = (serialize[1] as (v: object) => Buffer)(value);
      t.ok(bytes.length > 0, `${name} ${what}: a non-empty sample`);
      t.same((serialize[0] as (v: object) => Buffer)(value), bytes, `${name} ${what}: same bytes`);
      t.same(
        (deserialize[0] as (b: Buffer) => object)(bytes),
        (deserialize[1] as (b: Buffer) => object)(bytes),
        `${name} ${what}: same object`,
      );
    }
  }
}
