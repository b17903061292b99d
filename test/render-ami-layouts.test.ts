// The layouts Teleport's AMI users run (issue 15), table-driven over the
// renderer with plain inputs: FIPS, ACM with TLS routing, PROXY protocol, the
// web port, the cache, the database region default and teleport.yaml
// fragments. Each case names the AMI behaviour or Teleport reference it
// follows, parses the rendered YAML back and checks the unit's flags.
import t from 'tap';
import { parse } from 'yaml';
import { TEST_CLUSTER as CLUSTER, TEST_PIN as PIN, TEST_RENDER_FILES as FILES } from './support/fixtures';
import type { ServiceRole } from '../contract/model';
import { renderProblems, renderTeleportYaml, renderWarnings, type RenderInput } from '../contract/render/render';
import { DEFAULT_HOST_PATHS, fetchesOf, renderHostFiles } from '../contract/render/plan';

type Cluster = Partial<RenderInput['cluster']>;
type Options = Partial<Omit<RenderInput['assignment'], 'roles'>>;

const INSTANCE = { instanceId: 'i-0123456789abcdef0', hostname: 'ip-10-0-1-23', privateIp: '10.0.1.23', region: 'eu-west-1' };

function input(roles: ServiceRole[], cluster: Cluster = {}, assignment: Options = {}): RenderInput {
  return {
    assignment: { roles, labels: {}, ...assignment },
    cluster: { ...CLUSTER, ...cluster },
    instance: INSTANCE,
    files: FILES,
    caPins: [PIN],
    diagAddr: '127.0.0.1:3000',
  };
}

/** The parsed teleport.yaml and the unit's ExecStart, as the agent writes them. */
function host(roles: ServiceRole[], cluster: Cluster = {}, assignment: Options = {}) {
  const i = input(roles, cluster, assignment);
  const fetches = fetchesOf(i.assignment, i.cluster, DEFAULT_HOST_PATHS);
  const fetched = { ssm: Object.fromEntries(fetches.ssm.map((f) => [f.name, f.purpose === 'CA pin' ? PIN : 'x'])), s3: {} };
  const files = renderHostFiles({ assignment: i.assignment, cluster: i.cluster }, i.instance, DEFAULT_HOST_PATHS, fetches, fetched);
  const execStart = /^ExecStart=(.*)$/m.exec(files.unit)?.[1] ?? '';
  return { config: parse(files.teleportYaml) as Record<string, any>, flags: execStart.split(' ').slice(1), warnings: files.warnings };
}

const LB = { behindLoadBalancer: true };
const ENTERPRISE_FIPS = { enterprise: true, fips: true };

interface Case {
  name: string;
  roles: ServiceRole[];
  cluster?: Cluster;
  assignment?: Options;
  /** Sections (or dotted paths) of the parsed file and the value each must have. */
  expect: Record<string, unknown>;
  /** Whether the unit starts Teleport with --fips. */
  fips?: boolean;
}

/** A value at a dotted path of the parsed config ("proxy_service.web_listen_addr"). */
const at = (cfg: Record<string, any>, path: string): unknown => path.split('.').reduce<any>((o, k) => o?.[k], cfg);

const CASES: Case[] = [
  {
    name: "FIPS auth server: --fips in ExecStart and local_auth false (Teleport's AMI: with FIPS, local_auth must be false or Teleport will not start)",
    roles: ['auth'],
    cluster: { ...ENTERPRISE_FIPS, authType: 'saml', secondFactor: 'webauthn' },
    fips: true,
    expect: {
      'auth_service.authentication': {
        type: 'saml',
        second_factor: 'webauthn',
        local_auth: false,
        webauthn: { rp_id: 'teleport.example.com' },
      },
      'auth_service.license_file': FILES.licenseFile,
    },
  },
  {
    name: 'FIPS auth server without an auth type: local_auth false alone, as the AMI writes it',
    roles: ['auth'],
    cluster: ENTERPRISE_FIPS,
    fips: true,
    expect: { 'auth_service.authentication': { local_auth: false } },
  },
  {
    name: 'FIPS starter cluster (auth, proxy, node on one host with TLS routing): every service of the one process in FIPS mode',
    roles: ['auth', 'proxy', 'node'],
    cluster: { ...ENTERPRISE_FIPS, authType: 'github', proxyListenerMode: 'multiplex', authAddr: 'teleport.example.com:3025' },
    fips: true,
    expect: {
      'auth_service.authentication': { type: 'github', local_auth: false },
      'proxy_service.web_listen_addr': '0.0.0.0:443',
      'ssh_service.enabled': true,
    },
  },
  {
    name: 'FIPS node: the unit runs --fips on every host of a FIPS cluster, the config has no authentication section',
    roles: ['node'],
    cluster: ENTERPRISE_FIPS,
    fips: true,
    expect: { 'auth_service.enabled': false, 'ssh_service.enabled': true },
  },
  {
    name: 'no FIPS: no flag and no local_auth',
    roles: ['auth'],
    cluster: { authType: 'github' },
    fips: false,
    expect: { 'auth_service.authentication': { type: 'github' } },
  },
  {
    name: "ACM with TLS routing: proxy behind an ALB, web on 3080, public 443, no https_keypairs, X-Forwarded-For trusted (Teleport 13+ supports TLS routing behind layer 7 balancers; the AMI's ACM proxies use 3080 and trust_x_forwarded_for)",
    roles: ['proxy'],
    cluster: { tlsSource: 'acm', proxyListenerMode: 'multiplex' },
    expect: {
      proxy_service: {
        enabled: true,
        web_listen_addr: '0.0.0.0:3080',
        public_addr: ['teleport.example.com:443'],
        trust_x_forwarded_for: true,
      },
    },
  },
  {
    name: 'ACM with TLS routing: the auth servers tell clients to route everything over the web port (proxy_listener_mode multiplex)',
    roles: ['auth'],
    cluster: { tlsSource: 'acm', proxyListenerMode: 'multiplex' },
    expect: { 'auth_service.proxy_listener_mode': 'multiplex' },
  },
  {
    name: "PROXY protocol on: auth and proxy both require the header (Teleport's PROXY protocol guide: client IPs behind an L4 balancer)",
    roles: ['auth', 'proxy'],
    cluster: { proxyProtocol: 'on', ...LB },
    expect: { 'auth_service.proxy_protocol': 'on', 'proxy_service.proxy_protocol': 'on' },
  },
  {
    name: 'PROXY protocol off: a header is refused, so a client cannot spoof its address',
    roles: ['proxy'],
    cluster: { proxyProtocol: 'off', ...LB },
    expect: { 'proxy_service.proxy_protocol': 'off' },
  },
  {
    name: "PROXY protocol unset: Teleport's default, nothing written",
    roles: ['auth', 'proxy'],
    cluster: LB,
    expect: { 'auth_service.proxy_protocol': undefined, 'proxy_service.proxy_protocol': undefined },
  },
  {
    name: 'web port 443 on a bare host with separate listeners: the public address on 443 is served',
    roles: ['auth', 'proxy', 'node'],
    cluster: { proxyWebListenPort: 443 },
    expect: { 'proxy_service.web_listen_addr': '0.0.0.0:443', 'proxy_service.listen_addr': '0.0.0.0:3023' },
  },
  {
    name: "web port 3080 behind a balancer (Teleport's AMI: web_listen_addr 0.0.0.0:3080, public_addr on 443)",
    roles: ['proxy'],
    cluster: LB,
    expect: { 'proxy_service.web_listen_addr': '0.0.0.0:3080', 'proxy_service.public_addr': ['teleport.example.com:443'] },
  },
  {
    name: "web port with TLS routing and Let's Encrypt: 443 by default, where clients arrive",
    roles: ['proxy'],
    cluster: { proxyListenerMode: 'multiplex' },
    expect: { 'proxy_service.web_listen_addr': '0.0.0.0:443' },
  },
  {
    name: 'web port chosen by the operator with TLS routing behind a balancer: 8443',
    roles: ['proxy'],
    cluster: { proxyListenerMode: 'multiplex', proxyWebListenPort: 8443, ...LB },
    expect: { 'proxy_service.web_listen_addr': '0.0.0.0:8443' },
  },
  {
    name: "cache on a proxy: teleport.cache type in-memory (Teleport's AMI writes it for proxies)",
    roles: ['proxy'],
    cluster: { cache: 'in-memory', ...LB },
    expect: { 'teleport.cache': { type: 'in-memory' } },
  },
  {
    name: 'cache on an auth server, turned off',
    roles: ['auth'],
    cluster: { cache: 'off' },
    expect: { 'teleport.cache': { enabled: false } },
  },
  {
    name: 'cache is for auth servers and proxies: a node gets none',
    roles: ['node'],
    cluster: { cache: 'in-memory' },
    expect: { 'teleport.cache': undefined },
  },
  {
    name: "database region default: an RDS database without a region takes the instance's (Teleport's AMI: TELEPORT_AGENT_DB_REGION, else EC2_REGION)",
    roles: ['db'],
    assignment: { databases: [{ name: 'orders', protocol: 'postgres', uri: 'orders.abc.eu-west-1.rds.amazonaws.com:5432' }] },
    expect: {
      'db_service.databases': [
        { name: 'orders', protocol: 'postgres', uri: 'orders.abc.eu-west-1.rds.amazonaws.com:5432', aws: { region: 'eu-west-1' } },
      ],
    },
  },
  {
    name: 'database region given: kept',
    roles: ['db'],
    assignment: {
      databases: [{ name: 'orders', protocol: 'postgres', uri: 'orders.abc.us-east-2.rds.amazonaws.com:5432', awsRegion: 'us-east-2' }],
    },
    expect: { 'db_service.databases.0.aws': { region: 'us-east-2' } },
  },
  {
    name: 'database outside AWS: no region (Teleport would take a database with an AWS region for an AWS-hosted one)',
    roles: ['db'],
    assignment: { databases: [{ name: 'legacy', protocol: 'mysql', uri: 'mysql.internal.example.com:3306' }] },
    expect: { 'db_service.databases.0.aws': undefined },
  },
  {
    name: "fragments merged: the cluster's and the assignment's, the assignment's last",
    roles: ['auth', 'node'],
    cluster: {
      configFragment: {
        auth_service: { session_recording: 'proxy', message_of_the_day: 'cluster' },
        ssh_service: { pam: { enabled: true } },
      },
    },
    assignment: { configFragment: { auth_service: { message_of_the_day: 'this host' } } },
    expect: {
      'auth_service.session_recording': 'proxy',
      'auth_service.message_of_the_day': 'this host',
      'ssh_service.pam': { enabled: true },
      'auth_service.listen_addr': '0.0.0.0:3025',
    },
  },
  {
    name: 'a cluster fragment for a service this host does not run is left out (a node takes nothing from auth_service)',
    roles: ['node'],
    cluster: { configFragment: { auth_service: { session_recording: 'proxy' } } },
    expect: { auth_service: { enabled: false } },
  },
];

t.test('every AMI layout renders the expected teleport.yaml and unit', async (t) => {
  for (const c of CASES) {
    t.same(renderProblems(input(c.roles, c.cluster, c.assignment)), [], `${c.name}: no problem`);
    const { config, flags } = host(c.roles, c.cluster, c.assignment);
    for (const [path, value] of Object.entries(c.expect)) t.same(at(config, path), value, `${c.name}: ${path}`);
    if (c.fips !== undefined) t.equal(flags.includes('--fips'), c.fips, `${c.name}: --fips ${c.fips ? 'in' : 'not in'} ExecStart`);
  }
});

t.test('layouts Teleport cannot run are refused, naming the setting and the reason', async (t) => {
  const refusals: Array<{ name: string; roles: ServiceRole[]; cluster?: Cluster; assignment?: Options; want: Record<string, unknown> }> = [
    {
      name: 'FIPS on the OSS edition: FIPS builds are Enterprise only',
      roles: ['node'],
      cluster: { fips: true },
      want: { setting: 'cluster.fips', message: /needs Teleport Enterprise/ },
    },
    {
      name: 'FIPS with local authentication (Teleport refuses to start in FIPS mode unless local_auth is false)',
      roles: ['auth'],
      cluster: { ...ENTERPRISE_FIPS, authType: 'local' },
      want: { path: 'auth_service.authentication.type', setting: 'cluster.authType', message: /local_auth false/ },
    },
    {
      name: 'FIPS with OTP, a second factor of local users',
      roles: ['auth'],
      cluster: { ...ENTERPRISE_FIPS, authType: 'github', secondFactor: 'otp' },
      want: { path: 'auth_service.authentication.second_factor', setting: 'cluster.secondFactor', message: /use webauthn/ },
    },
    {
      name: 'FIPS with second_factor on (OTP and WebAuthn)',
      roles: ['auth'],
      cluster: { ...ENTERPRISE_FIPS, authType: 'github', secondFactor: 'on' },
      want: { setting: 'cluster.secondFactor', message: /includes OTP/ },
    },
    {
      name: 'a fragment that would turn local authentication back on in FIPS mode',
      roles: ['auth'],
      cluster: { ...ENTERPRISE_FIPS, configFragment: { auth_service: { authentication: { local_auth: true } } } },
      want: { setting: 'cluster.configFragment.auth_service.authentication.local_auth', message: /cluster\.fips/ },
    },
    {
      name: 'a web port on a listener that is taken (3023 is the SSH listener)',
      roles: ['proxy'],
      cluster: { proxyWebListenPort: 3023, ...LB },
      want: { path: 'proxy_service.web_listen_addr', setting: 'cluster.proxyWebListenPort', message: /already taken/ },
    },
    {
      name: 'a web port out of range',
      roles: ['proxy'],
      cluster: { proxyWebListenPort: 70000, ...LB },
      want: { path: 'proxy_service.web_listen_addr', setting: 'cluster.proxyWebListenPort' },
    },
    {
      name: 'a fragment replacing the join token',
      roles: ['node'],
      assignment: { configFragment: { teleport: { join_params: { token_name: 'abc', method: 'token' } } } },
      want: { path: 'teleport.join_params', setting: 'assignment.configFragment.teleport.join_params', message: /cluster\.joinMethod/ },
    },
    {
      name: 'a fragment replacing the CA pin',
      roles: ['node'],
      cluster: { configFragment: { teleport: { ca_pin: ['sha256:' + 'f'.repeat(64)] } } },
      want: { setting: 'cluster.configFragment.teleport.ca_pin', message: /ca-pin-hash/ },
    },
    {
      name: 'a fragment replacing storage',
      roles: ['auth'],
      cluster: { configFragment: { teleport: { storage: { type: 'dir' } } } },
      want: { setting: 'cluster.configFragment.teleport.storage', message: /cluster\.storage/ },
    },
    {
      name: 'a fragment replacing a listener',
      roles: ['proxy'],
      cluster: { ...LB, configFragment: { proxy_service: { web_listen_addr: '0.0.0.0:8080' } } },
      want: { setting: 'cluster.configFragment.proxy_service.web_listen_addr', message: /cluster\.proxyWebListenPort/ },
    },
    {
      name: 'a fragment replacing a whole section teleboot writes',
      roles: ['node'],
      assignment: { configFragment: { ssh_service: 'off' } },
      want: { setting: 'assignment.configFragment.ssh_service', message: /is a section|teleboot manages/ },
    },
    {
      name: 'a fragment turning a service on (the roles say which run)',
      roles: ['node'],
      assignment: { configFragment: { ssh_service: { enabled: false } } },
      want: { setting: 'assignment.configFragment.ssh_service.enabled', message: /assignment\.roles/ },
    },
    {
      name: "an assignment's fragment for a service it does not run",
      roles: ['node'],
      assignment: { configFragment: { db_service: { resources: [{ labels: { env: 'prod' } }] } } },
      want: { setting: 'assignment.configFragment.db_service', message: /does not run on this instance/ },
    },
    {
      name: 'a known key with a wrong value (session_recording)',
      roles: ['auth'],
      cluster: { configFragment: { auth_service: { session_recording: 'always' } } },
      want: { setting: 'cluster.configFragment.auth_service.session_recording', message: /must be one of node/ },
    },
    {
      name: 'a null in a fragment (fragments set values, they cannot remove them)',
      roles: ['node'],
      assignment: { configFragment: { teleport: { something: null } } },
      want: { setting: 'assignment.configFragment', message: /is null/ },
    },
  ];
  for (const r of refusals) {
    const problems = renderProblems(input(r.roles, r.cluster, r.assignment));
    t.match(problems, [r.want], r.name);
    t.throws(() => renderTeleportYaml(input(r.roles, r.cluster, r.assignment)), { name: 'RenderError' }, `${r.name}: nothing is rendered`);
  }
});

t.test('a public address that no listener serves is refused, unless a load balancer is declared', async (t) => {
  // The fixtures' cluster declares a balancer; these cases take it away.
  const bare = (cluster: Cluster) => renderProblems(input(['auth', 'proxy', 'node'], { behindLoadBalancer: undefined, ...cluster }));
  t.match(
    bare({}),
    [
      {
        path: 'proxy_service.public_addr',
        setting: 'cluster.proxyPublicAddr',
        message: /port 443 is served by no listener.*proxyWebListenPort.*behindLoadBalancer/,
      },
    ],
    'a starter host with separate listeners on 3080 behind teleport.example.com:443 and no balancer',
  );
  t.same(bare({ proxyWebListenPort: 443 }), [], 'the web listener moved to 443');
  t.same(bare({ behindLoadBalancer: true }), [], 'a balancer forwards 443 to 3080');
  t.same(bare({ tlsSource: 'acm' }), [], 'ACM implies a balancer');
  t.same(bare({ proxyListenerMode: 'multiplex' }), [], 'TLS routing listens on 443 by default');
  t.match(
    bare({ proxyPublicAddr: 'teleport.example.com:3080', proxyListenerMode: 'multiplex' }),
    [{ message: /port 3080.*on 443/ }],
    'TLS routing on 443 behind a public address on 3080',
  );
  t.same(renderProblems(input(['node'], { behindLoadBalancer: undefined })), [], 'a host without a proxy is not concerned');
});

t.test('unknown keys in a fragment pass with a warning naming where they came from', async (t) => {
  const i = input(
    ['node'],
    { configFragment: { ssh_service: { x11: { enabled: true } } } },
    { configFragment: { teleport: { ca_pin_refresh: '1h' } } },
  );
  t.same(renderProblems(i), [], 'no problem');
  const warnings = renderWarnings(i);
  t.match(warnings, [
    { path: 'ssh_service.x11', setting: 'cluster.configFragment.ssh_service.x11', message: /not a key teleboot knows/ },
    { path: 'teleport.ca_pin_refresh', setting: 'assignment.configFragment.teleport.ca_pin_refresh' },
  ]);
  t.equal(warnings.length, 2, 'one warning per unknown key, not per key below it');
  const cfg = parse(renderTeleportYaml(i));
  t.same(cfg.ssh_service.x11, { enabled: true }, 'written as given');
  t.same(
    renderWarnings(input(['node'], { configFragment: { ssh_service: { pam: { enabled: true } } } })),
    [],
    'a known key draws no warning',
  );
});

t.test('fragment values are written as data, never as YAML syntax', async (t) => {
  const motd = 'line one\nenabled: false\n"quoted" # not a comment';
  // JSON.parse makes "__proto__" an own key, as a REST body would.
  const hostile = JSON.parse(
    JSON.stringify({ auth_service: { message_of_the_day: motd } }).replace(/^\{/, '{"__proto__": {"polluted": true},'),
  );
  const i = input(['auth'], { configFragment: hostile });
  const problems = renderProblems(i);
  // A message of the day is one line in teleport.yaml: line breaks are refused like anywhere else.
  t.match(problems, [{ path: 'auth_service.message_of_the_day', message: /line breaks/ }], 'a line break in a value is refused');
  const safe = input(['auth'], { configFragment: { auth_service: { message_of_the_day: '"quoted" # not a comment: yes' } } });
  const cfg = parse(renderTeleportYaml(safe));
  t.equal(cfg.auth_service.message_of_the_day, '"quoted" # not a comment: yes', 'quotes, # and : stay text');
  t.equal(cfg.auth_service.enabled, true, 'nothing else changed');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched');
  t.match(renderWarnings(i), [{ path: '__proto__' }], '"__proto__" is an unknown key like any other');
});
