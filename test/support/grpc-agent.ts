// An agent as the control server sees it, without Teleport: the real gRPC
// client enrolled with the bootstrap join token, reporting ready on the
// generation it is served whenever the test says so.
import type { Test } from 'tap';
import { ControlClient } from '../../agent/control-client';
import type { InstanceIdentity } from '../../contract/model';
import type { InProcessControl } from './in-process';

export interface ReportingAgent {
  /** Reports ready on `applied` (default: the generation it is served now); that generation. */
  report(applied?: number): Promise<number>;
  /** The generation it is served now. */
  served(): Promise<number>;
  /** What it is served now, as GetAssignment answers. */
  state(): ReturnType<ControlClient['getAssignment']>;
}

export async function enrolledAgent(t: Test, control: InProcessControl, identity: InstanceIdentity): Promise<ReportingAgent> {
  const id = identity.instanceId;
  const client = new ControlClient({ endpoints: [`localhost:${control.server.grpcPort}`], caPem: control.server.caPem });
  t.teardown(() => client.close());
  await client.enroll(identity, control.joinToken, 'test');
  const served = async () => Number((await client.getAssignment(id)).generation);
  const report = async (applied?: number) => {
    const generation = applied ?? (await served());
    await client.reportStatus({
      instanceId: id,
      appliedGeneration: generation,
      state: 'ready',
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 'test',
      proxyCertificateExpiresUnixMs: 0,
    });
    return generation;
  };
  return { report, served, state: () => client.getAssignment(id) };
}
