// Every role and network layout teleboot renders (issue 3), table-driven:
// each case names the seed document or Teleport AMI behaviour it follows,
// renders teleport.yaml, parses it back and compares the structure. Then what
// the agent fetches for each, the impossible layouts refused with the setting
// to blame, a YAML round trip of hostile values, and the stand-in teleport's
// strict parser accepting every layout.
import t from 'tap';
import { TEST_CLUSTER as CLUSTER, TEST_PIN as PIN, TEST_RENDER_FILES as FILES } from './support/fixtures';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Assignment, ClusterSettings, ServiceRole } from '../contract/model';
import {
  RenderError,
  renderProblems,
  renderTeleportConfig,
  renderTeleportYaml,
  teleportConfigToYaml,
  type RenderInput,
} from '../contract/render/render';
import { DEFAULT_HOST_PATHS, fetchesOf, maskProxyCredentials, renderHostFiles, type HostPaths } from '../contract/render/plan';
import { proxyCertificate } from './support/world';
import { TELEPORT_STANDIN } from './support/harness';

type Options = Partial<Omit<Assignment, 'roles'>>;

interface Case {
  name: string;
  roles: ServiceRole[];
  assignment?: Options;
  cluster?: Partial<ClusterSettings>;
  /** The whole parsed file, or the sections named (the rest unchecked). */
  expect: Record<string, unknown>;
  whole?: boolean;
}

function input(roles: ServiceRole[], assignment: Options = {}, cluster: Partial<ClusterSettings> = {}, files = FILES): RenderInput {
  return {
    assignment: { roles, labels: {}, ...assignment },
    cluster: { ...CLUSTER, ...cluster },
    instance: { instanceId: 'i-0123456789abcdef0', hostname: 'ip-10-0-1-23', privateIp: '10.0.1.23', region: 'us-east-1' },
    files: { ...files },
    caPins: [PIN],
    diagAddr: '127.0.0.1:3000',
  };
}

const LOG = { output: 'stderr', severity: 'INFO', format: { output: 'text' } };
const BASE = { nodename: 'ip-10-0-1-23', data_dir: '/var/lib/teleport', diag_addr: '127.0.0.1:3000', log: LOG };
const VIA_AUTH = {
  ...BASE,
  join_params: { token_name: FILES.joinTokenFile, method: 'token' },
  auth_server: CLUSTER.authAddr,
  ca_pin: [PIN],
};
const VIA_PROXY = { ...BASE, join_params: { token_name: FILES.joinTokenFile, method: 'token' }, proxy_server: CLUSTER.proxyPublicAddr };
const OFF = { enabled: false };
const KEYPAIRS = [{ key_file: FILES.keyFile, cert_file: FILES.certFile }];
const SEPARATE_PROXY = {
  enabled: true,
  listen_addr: '0.0.0.0:3023',
  tunnel_listen_addr: '0.0.0.0:3024',
  web_listen_addr: '0.0.0.0:3080',
  public_addr: ['teleport.example.com:443'],
  ssh_public_addr: 'teleport.example.com:3023',
  tunnel_public_addr: 'teleport.example.com:3024',
  https_keypairs: KEYPAIRS,
};
const AUTH = { enabled: true, listen_addr: '0.0.0.0:3025', cluster_name: 'main', public_addr: [CLUSTER.authAddr] };

const CASES: Case[] = [
  {
    name: "auth: DynamoDB state and events, recordings in S3 (seed 001_*), Enterprise license from SSM, WebAuthn and keep-alives as Teleport's AMI writes them",
    roles: ['auth'],
    cluster: {
      storage: { type: 'dynamodb', tableName: 'main-state' },
      enterprise: true,
      authType: 'local',
      secondFactor: 'on',
      keepAliveInterval: '1m',
      keepAliveCountMax: 3,
    },
    whole: true,
    expect: {
      version: 'v3',
      teleport: {
        ...BASE,
        storage: {
          type: 'dynamodb',
          region: 'us-east-1',
          table_name: 'main-state',
          audit_events_uri: ['dynamodb://main-state-events'],
          audit_sessions_uri: 's3://example-teleport/records',
        },
      },
      auth_service: {
        ...AUTH,
        authentication: { type: 'local', second_factor: 'on', webauthn: { rp_id: 'teleport.example.com' } },
        keep_alive_interval: '1m',
        keep_alive_count_max: 3,
        license_file: FILES.licenseFile,
      },
      ssh_service: OFF,
      proxy_service: OFF,
    },
  },
  {
    name: 'auth: local dir storage, GitHub SSO with OTP, the TLS routing hint for clients (seed 003_*: proxy_listener_mode multiplex)',
    roles: ['auth'],
    cluster: { authType: 'github', secondFactor: 'otp', proxyListenerMode: 'multiplex' },
    expect: {
      teleport: { ...BASE, storage: { type: 'dir' } },
      auth_service: { ...AUTH, proxy_listener_mode: 'multiplex', authentication: { type: 'github', second_factor: 'otp' } },
    },
  },
  {
    name: "proxy: separate listeners 3023/3024/3080 with the Let's Encrypt certificate from S3 (seeds 000_*, 003_*)",
    roles: ['proxy'],
    whole: true,
    expect: { version: 'v3', teleport: VIA_AUTH, auth_service: OFF, ssh_service: OFF, proxy_service: SEPARATE_PROXY },
  },
  {
    name: 'proxy: TLS routing, every protocol on 443, no SSH or tunnel listener (seed 003_*)',
    roles: ['proxy'],
    cluster: { proxyListenerMode: 'multiplex' },
    expect: {
      teleport: VIA_AUTH,
      proxy_service: { enabled: true, web_listen_addr: '0.0.0.0:443', public_addr: ['teleport.example.com:443'], https_keypairs: KEYPAIRS },
    },
  },
  {
    name: "proxy: TLS ends on a load balancer with ACM, no key pair on the host, the tunnel on its own listener behind an NLB (Teleport's AMI)",
    roles: ['proxy'],
    cluster: { tlsSource: 'acm', sshPublicAddr: 'teleport-nlb.example.com:3023', tunnelPublicAddr: 'teleport-nlb.example.com:3024' },
    expect: {
      proxy_service: {
        enabled: true,
        listen_addr: '0.0.0.0:3023',
        tunnel_listen_addr: '0.0.0.0:3024',
        web_listen_addr: '0.0.0.0:3080',
        public_addr: ['teleport.example.com:443'],
        ssh_public_addr: 'teleport-nlb.example.com:3023',
        tunnel_public_addr: 'teleport-nlb.example.com:3024',
        trust_x_forwarded_for: true,
      },
    },
  },
  {
    name: "proxy: Kubernetes (3026) and database (3036, 5432, 27017) listeners with their public addresses (Teleport's AMI without TLS routing)",
    roles: ['proxy'],
    cluster: {
      kubePublicAddr: 'teleport.example.com:3026',
      mysqlPublicAddr: 'teleport.example.com:3036',
      postgresPublicAddr: 'teleport.example.com:5432',
      mongoPublicAddr: 'teleport.example.com:27017',
    },
    expect: {
      proxy_service: {
        ...SEPARATE_PROXY,
        kube_listen_addr: '0.0.0.0:3026',
        kube_public_addr: ['teleport.example.com:3026'],
        mysql_listen_addr: '0.0.0.0:3036',
        mysql_public_addr: ['teleport.example.com:3036'],
        postgres_listen_addr: '0.0.0.0:5432',
        postgres_public_addr: ['teleport.example.com:5432'],
        mongo_listen_addr: '0.0.0.0:27017',
        mongo_public_addr: ['teleport.example.com:27017'],
      },
    },
  },
  {
    name: "proxy: connection limits and JSON logs (Teleport's AMI proxy: 65000 connections, 10000 users)",
    roles: ['proxy'],
    cluster: { maxConnections: 65000, maxUsers: 10000, logSeverity: 'DEBUG', logFormat: 'json' },
    expect: {
      teleport: {
        ...VIA_AUTH,
        connection_limits: { max_connections: 65000, max_users: 10000 },
        log: { output: 'stderr', severity: 'DEBUG', format: { output: 'json' } },
      },
    },
  },
  {
    name: 'node: static labels, dynamic labels hostname and arch with their periods, nodename, advertise_ip (seed 001_*; advertise_ip as the AMI sets it)',
    roles: ['node'],
    assignment: {
      nodename: 'node-1',
      labels: { env: 'prod' },
      commandLabels: [
        { name: 'hostname', command: ['/bin/hostname'], period: '1m0s' },
        { name: 'arch', command: ['/bin/uname', '-p'], period: '1h0m0s' },
      ],
      advertiseIp: 'private-ip',
    },
    whole: true,
    expect: {
      version: 'v3',
      teleport: { ...VIA_AUTH, nodename: 'node-1', advertise_ip: '10.0.1.23' },
      auth_service: OFF,
      ssh_service: {
        enabled: true,
        listen_addr: '0.0.0.0:3022',
        labels: { env: 'prod' },
        commands: [
          { name: 'hostname', command: ['/bin/hostname'], period: '1m0s' },
          { name: 'arch', command: ['/bin/uname', '-p'], period: '1h0m0s' },
        ],
      },
      proxy_service: OFF,
    },
  },
  {
    name: 'node: joins through the proxy (proxy_server, reverse tunnel) when the cluster says so; no CA pin (seed 003_*)',
    roles: ['node'],
    cluster: { joinVia: 'proxy' },
    expect: { teleport: VIA_PROXY, ssh_service: { enabled: true, listen_addr: '0.0.0.0:3022' } },
  },
  {
    name: 'node: joins behind NAT through the proxy by its own assignment, the cluster still joining auth directly (seed 003_*)',
    roles: ['node'],
    assignment: { joinVia: 'proxy' },
    expect: { teleport: VIA_PROXY },
  },
  {
    name: 'node: IAM joining, the token name is no secret (seed 002_*)',
    roles: ['node'],
    cluster: { joinMethod: 'iam', iamTokenName: 'aws-discovery-iam-token' },
    expect: { teleport: { ...VIA_AUTH, join_params: { token_name: 'aws-discovery-iam-token', method: 'iam' } } },
  },
  {
    name: "all: auth, proxy and node on one host, the starter cluster (Teleport's AMI without a role)",
    roles: ['auth', 'node', 'proxy'],
    whole: true,
    expect: {
      version: 'v3',
      teleport: { ...BASE, storage: { type: 'dir' } },
      auth_service: AUTH,
      ssh_service: { enabled: true, listen_addr: '0.0.0.0:3022' },
      proxy_service: SEPARATE_PROXY,
    },
  },
  {
    name: 'proxy and node on one host, joining auth with one token for both',
    roles: ['node', 'proxy'],
    expect: { teleport: VIA_AUTH, ssh_service: { enabled: true, listen_addr: '0.0.0.0:3022' }, proxy_service: SEPARATE_PROXY },
  },
  {
    name: 'kube + discovery: EKS auto-discovery with the Kubernetes Service serving what it finds, through the proxy (seed 004_*)',
    roles: ['discovery', 'kube'],
    assignment: {
      kube: { resources: [{ labels: { env: 'prod' } }] },
      discovery: { group: 'aws-prod', aws: [{ types: ['eks'], regions: ['*'], tags: { env: 'prod' } }] },
    },
    whole: true,
    expect: {
      version: 'v3',
      teleport: VIA_PROXY,
      auth_service: OFF,
      ssh_service: OFF,
      proxy_service: OFF,
      kubernetes_service: { enabled: true, resources: [{ labels: { env: 'prod' } }] },
      discovery_service: { enabled: true, discovery_group: 'aws-prod', aws: [{ types: ['eks'], regions: ['*'], tags: { env: 'prod' } }] },
    },
  },
  {
    name: 'discovery: EC2 instances installed over SSM with a custom document, joining with the IAM token (seed 002_*)',
    roles: ['discovery'],
    assignment: {
      discovery: {
        aws: [
          {
            types: ['ec2'],
            regions: ['us-east-1', 'us-west-1'],
            tags: { '*': '*' },
            ssmDocumentName: 'TeleportDiscoveryInstaller',
            installTokenName: 'aws-discovery-iam-token',
          },
        ],
      },
    },
    expect: {
      teleport: VIA_PROXY,
      discovery_service: {
        enabled: true,
        aws: [
          {
            types: ['ec2'],
            regions: ['us-east-1', 'us-west-1'],
            tags: { '*': '*' },
            install: { join_params: { token_name: 'aws-discovery-iam-token', method: 'iam' } },
            ssm: { document_name: 'TeleportDiscoveryInstaller' },
          },
        ],
      },
    },
  },
  {
    name: 'kube joining the auth service directly: the proxy dials its listener on 3026 (seed 003_*)',
    roles: ['kube'],
    assignment: { kube: { resources: [{ labels: { '*': '*' } }], labels: { team: 'platform' } } },
    expect: {
      teleport: VIA_AUTH,
      kubernetes_service: {
        enabled: true,
        listen_addr: '0.0.0.0:3026',
        resources: [{ labels: { '*': '*' } }],
        labels: { team: 'platform' },
      },
    },
  },
  {
    name: "app: apps with public_addr, labels and insecure_skip_verify, through the proxy (Teleport's AMI agent mode)",
    roles: ['app'],
    assignment: {
      apps: [
        {
          name: 'grafana',
          description: 'Grafana',
          uri: 'http://localhost:3000',
          publicAddr: 'grafana.teleport.example.com',
          labels: { env: 'prod' },
          insecureSkipVerify: true,
        },
        { name: 'jenkins', uri: 'https://jenkins.internal:8443' },
      ],
    },
    whole: true,
    expect: {
      version: 'v3',
      teleport: VIA_PROXY,
      auth_service: OFF,
      ssh_service: OFF,
      proxy_service: OFF,
      app_service: {
        enabled: true,
        apps: [
          {
            name: 'grafana',
            description: 'Grafana',
            uri: 'http://localhost:3000',
            public_addr: 'grafana.teleport.example.com',
            insecure_skip_verify: true,
            labels: { env: 'prod' },
          },
          { name: 'jenkins', uri: 'https://jenkins.internal:8443' },
        ],
      },
    },
  },
  {
    name: "db: a Redshift cluster with its AWS region and static labels, an RDS database in the instance's region (Teleport's AMI agent mode)",
    roles: ['db'],
    assignment: {
      databases: [
        {
          name: 'warehouse',
          protocol: 'postgres',
          uri: 'redshift-cluster-1.abc123.us-east-1.redshift.amazonaws.com:5439',
          awsRegion: 'us-east-1',
          redshiftClusterId: 'redshift-cluster-1',
          staticLabels: { env: 'prod' },
        },
        { name: 'orders', protocol: 'mysql', uri: 'orders.cluster-abc.us-east-1.rds.amazonaws.com:3306' },
      ],
    },
    expect: {
      teleport: VIA_PROXY,
      db_service: {
        enabled: true,
        databases: [
          {
            name: 'warehouse',
            protocol: 'postgres',
            uri: 'redshift-cluster-1.abc123.us-east-1.redshift.amazonaws.com:5439',
            aws: { region: 'us-east-1', redshift: { cluster_id: 'redshift-cluster-1' } },
            static_labels: { env: 'prod' },
          },
          // No region given: the instance's, as Teleport's AMI writes it (issue 15).
          { name: 'orders', protocol: 'mysql', uri: 'orders.cluster-abc.us-east-1.rds.amazonaws.com:3306', aws: { region: 'us-east-1' } },
        ],
      },
    },
  },
  {
    name: 'app + db on one host, one proxy join',
    roles: ['app', 'db'],
    assignment: {
      apps: [{ name: 'grafana', uri: 'http://localhost:3000' }],
      databases: [{ name: 'pg', protocol: 'postgres', uri: 'localhost:5432' }],
    },
    expect: { teleport: VIA_PROXY, app_service: { enabled: true, apps: [{ name: 'grafana', uri: 'http://localhost:3000' }] } },
  },
  {
    name: "all + app: an app beside auth and proxy in one process (Teleport's single process mode)",
    roles: ['app', 'auth', 'node', 'proxy'],
    assignment: { apps: [{ name: 'dashboard', uri: 'http://127.0.0.1:8080' }] },
    expect: {
      teleport: { ...BASE, storage: { type: 'dir' } },
      app_service: { enabled: true, apps: [{ name: 'dashboard', uri: 'http://127.0.0.1:8080' }] },
    },
  },
];

const rendered = (c: Case, files = FILES) => parse(renderTeleportYaml(input(c.roles, c.assignment, c.cluster, files)));

t.test('every role and layout renders the expected teleport.yaml', async (t) => {
  for (const c of CASES) {
    const cfg = rendered(c);
    if (c.whole) t.same(cfg, c.expect, c.name);
    else for (const [section, value] of Object.entries(c.expect)) t.same(cfg[section], value, `${c.name}: ${section}`);
  }
});

t.test('what the agent fetches for each layout', async (t) => {
  const paths = { secretsDir: '/var/lib/teleboot/secrets' };
  const fetched = (roles: ServiceRole[], cluster: Partial<ClusterSettings> = {}, assignment: Options = {}) => {
    const f = fetchesOf({ roles, labels: {}, ...assignment }, { ...CLUSTER, ...cluster }, paths);
    return { ssm: f.ssm.map((x) => x.name), s3: f.s3.map((x) => x.key) };
  };
  const CERT = ['live/teleport.example.com/fullchain.pem', 'live/teleport.example.com/privkey.pem'];
  const table: Array<[string, ReturnType<typeof fetched>, { ssm: string[]; s3: string[] }]> = [
    [
      'node: its token and the CA pin (seed 000_* get-token)',
      fetched(['node']),
      { ssm: ['/teleport/main/tokens/node', '/teleport/main/ca-pin-hash'], s3: [] },
    ],
    [
      'proxy: its token, the pin, the certificate from S3 (seed 000_* push-cert)',
      fetched(['proxy']),
      { ssm: ['/teleport/main/tokens/proxy', '/teleport/main/ca-pin-hash'], s3: CERT },
    ],
    [
      'proxy with ACM: no certificate',
      fetched(['proxy'], { tlsSource: 'acm' }),
      { ssm: ['/teleport/main/tokens/proxy', '/teleport/main/ca-pin-hash'], s3: [] },
    ],
    ['auth: nothing', fetched(['auth']), { ssm: [], s3: [] }],
    [
      "Enterprise auth: the license (Teleport's AMI: /teleport/{cluster}/license)",
      fetched(['auth'], { enterprise: true }),
      { ssm: ['/teleport/main/license'], s3: [] },
    ],
    [
      'all, Enterprise: license and certificate',
      fetched(['auth', 'node', 'proxy'], { enterprise: true }),
      { ssm: ['/teleport/main/license'], s3: CERT },
    ],
    [
      'kube + discovery: one token for both, no pin through the proxy (seed 004_*)',
      fetched(['discovery', 'kube']),
      { ssm: ['/teleport/main/tokens/discovery-kube'], s3: [] },
    ],
    [
      'proxy + node: one token for both',
      fetched(['node', 'proxy']),
      { ssm: ['/teleport/main/tokens/node-proxy', '/teleport/main/ca-pin-hash'], s3: CERT },
    ],
    [
      'IAM join to auth: only the pin (seed 002_*)',
      fetched(['node'], { joinMethod: 'iam', iamTokenName: 'iam-token' }),
      { ssm: ['/teleport/main/ca-pin-hash'], s3: [] },
    ],
    ['IAM join through the proxy: nothing at all', fetched(['app'], { joinMethod: 'iam', iamTokenName: 'iam-token' }), { ssm: [], s3: [] }],
    ['a custom SSM prefix', fetched(['db'], { ssmPrefix: '/infra/teleport' }), { ssm: ['/infra/teleport/main/tokens/db'], s3: [] }],
  ];
  for (const [name, got, want] of table) t.same(got, want, name);
});

t.test('impossible layouts are refused, naming the setting and the reason', async (t) => {
  const grafana = [{ name: 'grafana', uri: 'http://localhost:3000' }];
  const refusals: Array<{
    name: string;
    roles: ServiceRole[];
    assignment?: Options;
    cluster?: Partial<ClusterSettings>;
    want: { path: string; setting: string; message: RegExp };
  }> = [
    {
      name: 'a proxy cannot join through a proxy (Teleport: proxy_server can not be specified when proxy service is enabled)',
      roles: ['proxy'],
      assignment: { joinVia: 'proxy' },
      want: { path: 'teleport.proxy_server', setting: 'assignment.joinVia', message: /proxy_service is enabled/ },
    },
    {
      name: 'an app service cannot join the auth service directly (config reference; seed 003_*)',
      roles: ['app'],
      assignment: { joinVia: 'auth', apps: grafana },
      want: { path: 'app_service.enabled', setting: 'assignment.joinVia', message: /reverse tunnel: join through proxy_server/ },
    },
    {
      name: 'a database service cannot join the auth service directly',
      roles: ['db'],
      assignment: { joinVia: 'auth', databases: [{ name: 'pg', protocol: 'postgres', uri: 'localhost:5432' }] },
      want: { path: 'db_service.enabled', setting: 'assignment.joinVia', message: /reverse tunnel/ },
    },
    {
      name: 'app beside a proxy without auth: no proxy_server allowed, no single process mode',
      roles: ['app', 'proxy'],
      assignment: { apps: grafana },
      want: { path: 'app_service.enabled', setting: 'assignment.roles', message: /forbids while proxy_service runs/ },
    },
    {
      name: 'app beside auth without proxy',
      roles: ['app', 'auth'],
      assignment: { apps: grafana },
      want: { path: 'app_service.enabled', setting: 'assignment.roles', message: /needs proxy_service in the same process/ },
    },
    {
      name: 'discovery beside a proxy (discovery does not join auth directly, seed 003_*)',
      roles: ['discovery', 'proxy'],
      assignment: { discovery: { aws: [{ types: ['ec2'], regions: ['us-east-1'] }] } },
      want: {
        path: 'discovery_service.enabled',
        setting: 'assignment.roles',
        message: /does not support joining the auth service directly/,
      },
    },
    {
      name: 'a Kubernetes listener address with TLS routing',
      roles: ['proxy'],
      cluster: { proxyListenerMode: 'multiplex', kubePublicAddr: 'kube.example.com:3026' },
      want: { path: 'proxy_service', setting: 'cluster.kubePublicAddr', message: /separate listeners/ },
    },
    {
      name: "the proxy's Kubernetes listener and a Kubernetes service on one host both want 3026",
      roles: ['kube', 'proxy'],
      assignment: { kube: { resources: [{ labels: { '*': '*' } }] } },
      cluster: { kubePublicAddr: 'teleport.example.com:3026' },
      want: {
        path: 'kubernetes_service.listen_addr',
        setting: 'assignment.roles',
        message: /port 3026 is already taken by proxy_service.kube_listen_addr/,
      },
    },
    {
      name: 'IAM joining without the token name',
      roles: ['node'],
      cluster: { joinMethod: 'iam' },
      want: { path: 'teleport.join_params.token_name', setting: 'cluster.iamTokenName', message: /iam join token/ },
    },
    {
      name: 'an app role without apps',
      roles: ['app'],
      want: { path: 'app_service.apps', setting: 'assignment.apps', message: /at least one app/ },
    },
    {
      name: 'an app name that is no DNS label (Teleport: application name must be a lower case valid DNS subdomain)',
      roles: ['app'],
      assignment: { apps: [{ name: 'Grafana_1', uri: 'http://localhost:3000' }] },
      want: { path: 'app_service.apps[0].name', setting: 'assignment.apps[0].name', message: /lower-case DNS labels/ },
    },
    {
      name: "an app public_addr with a port (Teleport: apps share the proxy's web port)",
      roles: ['app'],
      assignment: { apps: [{ name: 'grafana', uri: 'http://localhost:3000', publicAddr: 'grafana.example.com:443' }] },
      want: { path: 'app_service.apps[0].public_addr', setting: 'assignment.apps[0].publicAddr', message: /port/ },
    },
    {
      name: 'a Redshift cluster on a protocol other than postgres',
      roles: ['db'],
      assignment: { databases: [{ name: 'wh', protocol: 'mysql', uri: 'wh.example.com:5439', redshiftClusterId: 'wh-1' }] },
      want: { path: 'db_service.databases[0].protocol', setting: 'assignment.databases[0].protocol', message: /postgres for a Redshift/ },
    },
    {
      name: 'a Kubernetes service with no selector serves nothing',
      roles: ['kube'],
      assignment: { kube: { resources: [] } },
      want: { path: 'kubernetes_service.resources', setting: 'assignment.kube.resources', message: /label selector/ },
    },
    {
      name: 'an SSM document on a matcher that does not discover EC2',
      roles: ['discovery'],
      assignment: { discovery: { aws: [{ types: ['eks'], regions: ['us-east-1'], ssmDocumentName: 'Installer' }] } },
      want: { path: 'discovery_service.aws[0].ssm', setting: 'assignment.discovery.aws[0].ssmDocumentName', message: /only EC2/ },
    },
    {
      name: '"*" beside named regions',
      roles: ['discovery'],
      assignment: { discovery: { aws: [{ types: ['eks'], regions: ['*', 'us-east-1'] }] } },
      want: { path: 'discovery_service.aws[0].regions[0]', setting: 'assignment.discovery.aws[0].regions', message: /list it alone/ },
    },
    {
      name: 'role options for a role that is not assigned',
      roles: ['node'],
      assignment: { apps: grafana },
      want: { path: 'assignment.apps', setting: 'assignment.apps', message: /app role is not assigned/ },
    },
    {
      name: 'SAML without Enterprise',
      roles: ['auth'],
      cluster: { authType: 'saml' },
      want: { path: 'auth_service.authentication.type', setting: 'cluster.authType', message: /Enterprise/ },
    },
    {
      name: 'WebAuthn without the proxy domain to bind it to',
      roles: ['auth'],
      cluster: { secondFactor: 'webauthn', proxyPublicAddr: '' },
      want: { path: 'auth_service.authentication.webauthn.rp_id', setting: 'cluster.proxyPublicAddr', message: /proxy's domain/ },
    },
    {
      name: 'a dynamic label with the name of a static one',
      roles: ['node'],
      assignment: { labels: { arch: 'x86_64' }, commandLabels: [{ name: 'arch', command: ['/bin/uname', '-p'], period: '1h' }] },
      want: { path: 'ssh_service.labels.arch', setting: 'assignment.labels', message: /command label/ },
    },
    {
      name: 'a dynamic label period that is no duration',
      roles: ['node'],
      assignment: { commandLabels: [{ name: 'arch', command: ['/bin/uname', '-p'], period: 'hourly' }] },
      want: { path: 'ssh_service.commands[0].period', setting: 'assignment.commandLabels[0].period', message: /duration/ },
    },
  ];
  for (const r of refusals) {
    const problems = renderProblems(input(r.roles, r.assignment, r.cluster));
    t.match(problems, [r.want], r.name);
    t.throws(() => renderTeleportYaml(input(r.roles, r.assignment, r.cluster)), RenderError, `${r.name}: nothing is rendered`);
  }
});

t.test('free-form values come back as the same strings after Teleport would parse them', async (t) => {
  const hostile = [
    'line one\nline two',
    'x\nproxy_service:\n  enabled: true',
    'key: value',
    `say "hi" and 'bye'`,
    '# not a comment',
    '!!python/object/apply:os.system ["id"]',
    '!tag value',
    '&anchor *alias',
    'yes',
    '0x1F',
    '~',
    '',
    ' padded ',
  ];
  const labels = Object.fromEntries(hostile.map((v, i) => [`k${i}`, v]));
  const i = input(['app', 'db', 'discovery', 'kube', 'node'], {
    labels,
    commandLabels: [{ name: 'motd', command: ['/bin/sh', '-c', 'echo "a: b" # !tag\n- item'], period: '1m' }],
    joinVia: 'proxy',
    kube: { resources: [{ labels: { env: 'prod: yes' } }], labels },
    apps: [{ name: 'grafana', uri: 'http://localhost:3000/?q=a:b#frag', description: 'x: y\n"quoted" !tag', labels }],
    databases: [{ name: 'pg', protocol: 'postgres', uri: 'localhost:5432', description: '- not a list', staticLabels: labels }],
    discovery: { aws: [{ types: ['ec2'], regions: ['us-east-1'], tags: { 'team:name': 'a: b', Name: '!ref x' } }] },
  });
  const cfg = renderTeleportConfig(i);
  const text = renderTeleportYaml(i);
  for (const version of ['1.1', '1.2'] as const) {
    const back = parse(text, { version });
    t.same(back, JSON.parse(JSON.stringify(cfg)), `the whole config reads back with YAML ${version}`);
    t.same(back.ssh_service.labels, labels, `node labels, YAML ${version}`);
    t.same(back.app_service.apps[0].labels, labels, `app labels, YAML ${version}`);
    t.same(back.db_service.databases[0].static_labels, labels, `database labels, YAML ${version}`);
    t.equal(back.ssh_service.commands[0].command[2], 'echo "a: b" # !tag\n- item', `command words, YAML ${version}`);
    t.equal(back.app_service.apps[0].description, 'x: y\n"quoted" !tag');
    t.same(back.discovery_service.aws[0].tags, { 'team:name': 'a: b', Name: '!ref x' });
    t.same(
      Object.keys(back),
      [
        'version',
        'teleport',
        'auth_service',
        'ssh_service',
        'proxy_service',
        'kubernetes_service',
        'app_service',
        'db_service',
        'discovery_service',
      ],
      'no key added',
    );
  }
  t.equal(teleportConfigToYaml(cfg), text, 'the same text every time');
});

t.test('the files of a host: token, license, certificate, environment file and unit', async (t) => {
  const paths: HostPaths = DEFAULT_HOST_PATHS;
  const host = (roles: ServiceRole[], cluster: Partial<ClusterSettings>, assignment: Options = {}) => {
    const desired = { assignment: { roles, labels: {}, ...assignment }, cluster: { ...CLUSTER, ...cluster } };
    const fetches = fetchesOf(desired.assignment, desired.cluster, paths);
    const values = {
      ssm: Object.fromEntries(fetches.ssm.map((f) => [f.name, f.purpose === 'CA pin' ? PIN : `value of ${f.name}`])),
      s3: Object.fromEntries(fetches.s3.map((f) => [f.key, `body of ${f.key}`])),
    };
    return renderHostFiles(desired, input(roles).instance, paths, fetches, values);
  };
  const files = (h: ReturnType<typeof host>) => h.files.map((f) => [f.path, f.mode.toString(8), f.secret]);

  const proxy = host(['proxy'], { httpsProxy: 'http://proxy.corp:3128', noProxy: 'localhost,169.254.169.254,teleport.example.com:3024' });
  t.same(files(proxy), [
    ['/var/lib/teleboot/secrets/join-token', '600', true],
    ['/var/lib/teleboot/secrets/proxy-fullchain.pem', '644', false],
    ['/var/lib/teleboot/secrets/proxy-privkey.pem', '600', true],
    ['/etc/default/teleport', '644', false],
    ['/etc/teleport.yaml', '600', false],
  ]);
  t.equal(proxy.files[0].content, 'value of /teleport/main/tokens/proxy\n');
  t.match(proxy.environment, /^HTTPS_PROXY=http:\/\/proxy\.corp:3128$/m, 'HTTP CONNECT proxy in /etc/default/teleport (seed 003_*)');
  t.match(proxy.environment, /^NO_PROXY=localhost,169\.254\.169\.254,teleport\.example\.com:3024$/m);
  t.match(proxy.unit, /^EnvironmentFile=-\/etc\/default\/teleport$/m, "the unit reads it, as the unit of Teleport's packages does");

  const node = host(['node'], {});
  t.notOk(node.environment, 'no proxy, no environment file');
  t.notMatch(node.unit, /EnvironmentFile/);

  const withPassword = host(['node'], { httpsProxy: 'http://bob:s3cret@proxy.corp:3128' });
  t.equal(withPassword.files.find((f) => f.path === '/etc/default/teleport')!.mode, 0o600, 'a proxy password keeps the file private');
  t.notMatch(maskProxyCredentials(withPassword.environment!), /s3cret/);

  const auth = host(['auth'], { enterprise: true });
  t.same(files(auth), [
    ['/var/lib/teleboot/secrets/license.pem', '600', true],
    ['/etc/teleport.yaml', '600', false],
  ]);
  t.equal(parse(auth.teleportYaml).auth_service.license_file, '/var/lib/teleboot/secrets/license.pem');

  t.throws(() => host(['node'], { httpsProxy: 'http://proxy:8080\nLD_PRELOAD=/tmp/x.so' }), {
    name: 'RenderError',
    problems: [{ setting: 'cluster.httpsProxy' }],
  });
});

t.test("the stand-in teleport, strict like Teleport's parser, accepts every layout", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'teleboot-layouts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets);
  const cert = await proxyCertificate('teleport.example.com');
  const files = {
    dataDir: join(dir, 'data'),
    joinTokenFile: join(secrets, 'join-token'),
    certFile: join(secrets, 'fullchain.pem'),
    keyFile: join(secrets, 'privkey.pem'),
    licenseFile: join(secrets, 'license.pem'),
  };
  writeFileSync(files.joinTokenFile, 'token\n');
  writeFileSync(files.certFile, cert.fullchain);
  writeFileSync(files.keyFile, cert.privkey);
  writeFileSync(files.licenseFile, 'license\n');
  const check = (file: string) => spawnSync(process.execPath, [TELEPORT_STANDIN, 'configure', '--test', file], { encoding: 'utf8' });
  CASES.forEach((c, i) => {
    const file = join(dir, `case-${i}.yaml`);
    writeFileSync(file, renderTeleportYaml(input(c.roles, c.assignment, c.cluster, files)));
    const r = check(file);
    t.equal(r.status, 0, `${c.name}\n${r.stderr}`);
  });

  // And it refuses what Teleport refuses.
  const bad = (name: string, mutate: (cfg: any) => void, message: RegExp) => {
    const cfg = parse(
      renderTeleportYaml(
        input(['discovery', 'kube'], CASES.find((c) => c.roles.includes('kube') && c.roles.includes('discovery'))!.assignment, {}, files),
      ),
    );
    mutate(cfg);
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, JSON.stringify(cfg));
    const r = check(file);
    t.equal(r.status, 1, name);
    t.match(r.stderr, message, name);
  };
  bad(
    'unknown key',
    (cfg) => (cfg.kubernetes_service.resource = cfg.kubernetes_service.resources),
    /field resource not found in kubernetes_service/,
  );
  bad(
    'proxy_server beside a proxy',
    (cfg) => (cfg.proxy_service = { enabled: true, web_listen_addr: '0.0.0.0:443', public_addr: ['teleport.example.com:443'] }),
    /proxy_server can not be specified when proxy service is enabled/,
  );
  bad(
    'app without a tunnel',
    (cfg) => {
      delete cfg.teleport.proxy_server;
      cfg.teleport.auth_server = 'auth.example.internal:3025';
      cfg.app_service = { enabled: true, apps: [{ name: 'x', uri: 'http://localhost' }] };
    },
    /failed to find reverse tunnel address/,
  );
  t.equal(execFileSync(process.execPath, [TELEPORT_STANDIN, 'version'], { encoding: 'utf8' }).startsWith('Teleport'), true);
});
