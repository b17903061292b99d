// Values several tests share: one instance's identity, one cluster's
// settings, one CA pin. Plain data; nothing here starts anything.
import type { ClusterSettings, InstanceIdentity } from '../../common/model';

export const TEST_PIN = `sha256:${'ab'.repeat(32)}`;

export const TEST_CLUSTER: ClusterSettings = {
  clusterName: 'main',
  authAddr: 'auth.example.internal:3025',
  proxyPublicAddr: 'teleport.example.com:443',
  s3Bucket: 'example-teleport',
  ssmPrefix: '/teleport',
  region: 'us-east-1',
  storage: { type: 'dir' },
};

/** An EC2 instance as IMDS would describe it, with the given id. */
export const testIdentity = (id: string): InstanceIdentity => ({
  instanceId: id,
  region: 'us-east-1',
  availabilityZone: 'us-east-1b',
  accountId: '123456789012',
  privateIp: '10.1.2.3',
  hostname: 'ip-10-1-2-3.ec2.internal',
  instanceType: 'm6i.large',
  imageId: 'ami-0abc',
  tags: {},
});
