// Optional confirmation of an EC2 enrollment: ec2:DescribeInstances says
// whether the instance exists and runs, and gives its tags (authoritative,
// unlike the tags an agent reads from instance metadata).
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { VerifierUnavailable } from './enrollment';

export interface Ec2InstanceFacts {
  state: string;
  tags: Record<string, string>;
  ownerId?: string;
}

export interface Ec2InstanceLookup {
  /** The instance as EC2 sees it, or undefined when it does not exist. */
  describe(region: string, instanceId: string): Promise<Ec2InstanceFacts | undefined>;
}

export class AwsEc2InstanceLookup implements Ec2InstanceLookup {
  private readonly clients = new Map<string, EC2Client>();

  /** `endpoint` overrides the regional endpoint (a VPC endpoint, or an emulator in tests). */
  constructor(private readonly endpoint?: string) {}

  private client(region: string): EC2Client {
    let c = this.clients.get(region);
    if (!c) this.clients.set(region, (c = new EC2Client({ region, endpoint: this.endpoint, maxAttempts: 2 })));
    return c;
  }

  async describe(region: string, instanceId: string): Promise<Ec2InstanceFacts | undefined> {
    let out;
    try {
      out = await this.client(region).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    } catch (err) {
      const name = (err as { name?: string }).name ?? '';
      if (name === 'InvalidInstanceID.NotFound' || name === 'InvalidInstanceID.Malformed') return undefined;
      throw new VerifierUnavailable(`ec2:DescribeInstances failed: ${(err as Error).message}`);
    }
    for (const reservation of out.Reservations ?? []) {
      for (const i of reservation.Instances ?? []) {
        if (i.InstanceId !== instanceId) continue;
        const tags: Record<string, string> = {};
        for (const t of i.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
        return { state: i.State?.Name ?? 'unknown', tags, ownerId: reservation.OwnerId };
      }
    }
    return undefined;
  }

  close(): void {
    for (const c of this.clients.values()) c.destroy();
  }
}
