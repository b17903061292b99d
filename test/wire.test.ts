// The typed role options and layout settings survive the gRPC wire: what the
// control server sends (toAssignmentMessage) is serialized with the real
// protobuf contract, read back, and the agent's desiredFrom gives the very
// assignment and settings that were saved.
import t from 'tap';
import { TEST_CLUSTER } from './support/fixtures';
import type { Assignment, ClusterSettings } from '../contract/model';
import { bootstrapProto } from '../contract/proto';
import { desiredFrom } from '../agent/agent';
import { toAssignmentMessage } from '../control/grpc/server';
import type { AssignmentState__Output } from '../proto/gen/teleboot/v1/AssignmentState';

const method = bootstrapProto().teleboot.v1.Bootstrap.service.GetAssignment;

function overTheWire(assignment: Assignment, cluster: ClusterSettings) {
  const msg = toAssignmentMessage({
    instanceId: 'i-0123456789abcdef0',
    generation: 7,
    assigned: true,
    assignment,
    cluster: { ...cluster, certDomain: 'teleport.example.com' },
  });
  const bytes = method.responseSerialize(msg as never);
  return desiredFrom(method.responseDeserialize(bytes) as AssignmentState__Output);
}

const MINIMAL = TEST_CLUSTER;

t.test('every role option and layout setting reads back as saved', async (t) => {
  const assignment: Assignment = {
    roles: ['app', 'db', 'discovery', 'kube', 'node'],
    labels: { env: 'prod' },
    nodename: 'edge-1',
    commandLabels: [{ name: 'arch', command: ['/bin/uname', '-p'], period: '1h0m0s' }],
    advertiseIp: 'private-ip',
    joinVia: 'proxy',
    kube: { resources: [{ labels: { env: 'prod' } }, { labels: { '*': '*' } }], labels: { team: 'platform' } },
    apps: [
      {
        name: 'grafana',
        uri: 'http://localhost:3000',
        publicAddr: 'grafana.example.com',
        description: 'dashboards',
        labels: { env: 'prod' },
        insecureSkipVerify: true,
      },
      { name: 'jenkins', uri: 'https://jenkins.internal' },
    ],
    databases: [
      {
        name: 'warehouse',
        protocol: 'postgres',
        uri: 'wh.example.com:5439',
        description: 'dw',
        awsRegion: 'us-east-1',
        redshiftClusterId: 'wh-1',
        staticLabels: { env: 'prod' },
      },
      { name: 'orders', protocol: 'mysql', uri: 'orders.example.com:3306' },
    ],
    discovery: {
      group: 'aws-prod',
      aws: [
        {
          types: ['ec2'],
          regions: ['us-east-1'],
          tags: { '*': '*' },
          ssmDocumentName: 'TeleportDiscoveryInstaller',
          installTokenName: 'aws-discovery-iam-token',
          assumeRoleArn: 'arn:aws:iam::123456789012:role/discovery',
        },
        { types: ['eks'], regions: ['*'] },
      ],
    },
  };
  const cluster: ClusterSettings = {
    ...MINIMAL,
    storage: {
      type: 'dynamodb',
      tableName: 'main-state',
      region: 'us-west-2',
      auditEventsUri: ['dynamodb://events', 'stdout://'],
      auditSessionsUri: 's3://recordings/sessions',
    },
    joinMethod: 'iam',
    iamTokenName: 'aws-discovery-iam-token',
    joinVia: 'proxy',
    proxyListenerMode: 'separate',
    tlsSource: 'acm',
    sshPublicAddr: 'nlb.example.com:3023',
    tunnelPublicAddr: 'nlb.example.com:3024',
    kubePublicAddr: 'nlb.example.com:3026',
    mysqlPublicAddr: 'nlb.example.com:3036',
    postgresPublicAddr: 'nlb.example.com:5432',
    mongoPublicAddr: 'nlb.example.com:27017',
    maxConnections: 65000,
    maxUsers: 10000,
    logSeverity: 'WARN',
    logFormat: 'json',
    authType: 'saml',
    secondFactor: 'webauthn',
    keepAliveInterval: '1m',
    keepAliveCountMax: 3,
    enterprise: true,
    httpsProxy: 'http://proxy.corp:3128',
    httpProxy: 'http://proxy.corp:3128',
    noProxy: 'localhost,169.254.169.254',
    trustRole: 'leaf',
    rootClusterName: 'root.example.com',
    rootWebProxyAddr: 'root.example.com:443',
    rootTunnelAddr: 'root.example.com:3024',
    rootRoleMap: [
      { remote: 'access', local: ['access'] },
      { remote: '^admin-(.*)$', local: ['leaf-admin-$1', 'auditor'] },
    ],
  };
  t.same(overTheWire(assignment, cluster), { generation: 7, assignment, cluster });
});

t.test('an assignment and settings from before the new fields read back unchanged', async (t) => {
  const assignment: Assignment = { roles: ['node'], labels: {} };
  t.same(overTheWire(assignment, MINIMAL), { generation: 7, assignment, cluster: MINIMAL }, 'nothing appears that was not set');
});
