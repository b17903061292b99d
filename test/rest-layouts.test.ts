// Roles and layouts at the REST API: assignments and settings are rendered
// with the agent's renderer when they are saved, so an operator learns of a
// mistake at the call (400 naming the field), and the preview routes show
// the files an instance would get, secrets masked.
import t from 'tap';
import { parse } from 'yaml';
import { startInProcessControl, type InProcessControl } from './support/in-process';

let control: InProcessControl;
const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => control.rest(method, path, body, headers);

t.before(async () => {
  control = await startInProcessControl('rest-layouts');
});
t.teardown(() => control.close());

// Seed 004_*: EKS discovery and the Kubernetes Service on one host.
const KUBE_DISCOVERY = {
  roles: ['kube', 'discovery'],
  kube: { resources: [{ labels: { env: 'prod' } }] },
  discovery: { group: 'aws-prod', aws: [{ types: ['eks'], regions: ['*'], tags: { env: 'prod' } }] },
};

t.test('assignments with role options are rendered when saved', async (t) => {
  const ok = await rest('PUT', '/v1/instances/i-0kube000000000001/assignment', KUBE_DISCOVERY);
  t.equal(ok.status, 200, JSON.stringify(ok.body));
  t.match(ok.body.assignment, {
    role: 'discovery+kube',
    roles: ['discovery', 'kube'],
    kube: KUBE_DISCOVERY.kube,
    discovery: KUBE_DISCOVERY.discovery,
  });

  const apps = await rest('PUT', '/v1/instances/i-0app0000000000001/assignment', {
    role: 'app',
    apps: [
      {
        name: 'grafana',
        uri: 'http://localhost:3000',
        publicAddr: 'grafana.teleport.example.com',
        labels: { env: 'prod' },
        insecureSkipVerify: true,
      },
    ],
  });
  t.equal(apps.status, 200, JSON.stringify(apps.body));
  t.same(apps.body.assignment.apps[0].publicAddr, 'grafana.teleport.example.com');

  const cases: Array<[string, unknown, RegExp]> = [
    ['an app role without apps', { role: 'app' }, /^apps: must list at least one app/],
    [
      'an app name that is no DNS label',
      { role: 'app', apps: [{ name: 'Grafana', uri: 'http://localhost:3000' }] },
      /^apps\[0\]\.name: app names are lower-case DNS labels/,
    ],
    ['an app without its uri (schema)', { role: 'app', apps: [{ name: 'grafana' }] }, /^body\.apps\.0\.uri: is required/],
    [
      'an unknown database protocol (schema)',
      { role: 'db', databases: [{ name: 'x', protocol: 'db2', uri: 'x:1' }] },
      /^body\.databases\.0\.protocol: must be equal to one of the allowed values/,
    ],
    ['a proxy that joins through a proxy', { role: 'proxy', joinVia: 'proxy' }, /^joinVia: cannot be set when proxy_service is enabled/],
    [
      'an app beside a proxy',
      { roles: ['proxy', 'app'], apps: [{ name: 'grafana', uri: 'http://localhost:3000' }] },
      /^roles: app_service reaches the cluster only through a reverse tunnel/,
    ],
    [
      'options for a role not assigned',
      { role: 'node', kube: { resources: [{ labels: { '*': '*' } }] } },
      /^kube: given, but the kube role is not assigned/,
    ],
    [
      'a bad dynamic label period (schema)',
      { role: 'node', commandLabels: [{ name: 'arch', command: ['/bin/uname'], period: 'often' }] },
      /^body\.commandLabels\.0\.period: must match pattern/,
    ],
    [
      'an unknown matcher type (schema)',
      { role: 'discovery', discovery: { aws: [{ types: ['vm'], regions: ['*'] }] } },
      /^body\.discovery\.aws\.0\.types\.0: must be equal to one of the allowed values/,
    ],
  ];
  for (const [name, body, message] of cases) {
    const res = await rest('PUT', '/v1/instances/i-0bad0000000000001/assignment', body);
    t.equal(res.status, 400, name);
    t.match(res.body.message, message, name);
  }
  t.equal((await rest('GET', '/v1/instances/i-0bad0000000000001')).status, 404, 'nothing was stored');

  const rule = await rest('POST', '/v1/rules', { name: 'apps by tag', selector: { Role: 'app' }, role: 'app' });
  t.equal(rule.status, 400, 'a rule cannot give the app role: it carries no apps');
  t.match(rule.body.message, /^apps: must list at least one app/);
});

t.test('settings are checked on their own and against every stored assignment', async (t) => {
  const base = await rest('PATCH', '/v1/settings', {
    clusterName: 'prod',
    authAddr: 'auth.example.internal:3025',
    proxyPublicAddr: 'teleport.example.com:443',
    s3Bucket: 'example-teleport',
    region: 'us-east-1',
    behindLoadBalancer: true,
  });
  t.equal(base.status, 200, JSON.stringify(base.body));
  t.match(
    base.body,
    { joinMethod: 'token', joinVia: 'auth', proxyListenerMode: 'separate', tlsSource: 'letsencrypt' },
    'defaults are shown',
  );

  const refused: Array<[string, unknown, RegExp]> = [
    // Issue 15: the layout settings, refused by the renderer's own rules with the setting to change.
    ['FIPS on the OSS edition', { fips: true }, /^fips: FIPS mode needs Teleport Enterprise/],
    ['FIPS with local users', { fips: true, enterprise: true, authType: 'local' }, /^authType: local cannot log anyone in with FIPS/],
    ['FIPS with OTP', { fips: true, enterprise: true, authType: 'github', secondFactor: 'otp' }, /^secondFactor: otp includes OTP/],
    [
      'a public address no listener serves, with no load balancer declared',
      { behindLoadBalancer: null },
      /^proxyPublicAddr: port 443 is served by no listener.*proxyWebListenPort.*behindLoadBalancer/,
    ],
    ['a web port that is no port (schema)', { proxyWebListenPort: 70000 }, /^body\.proxyWebListenPort: must be <= 65535/],
    ['a web port taken by the SSH listener', { proxyWebListenPort: 3023 }, /^proxyWebListenPort: port 3023 is already taken/],
    [
      'a fragment replacing the join token',
      { configFragment: { teleport: { join_params: { method: 'token', token_name: 'x' } } } },
      /^configFragment\.teleport\.join_params: would replace teleport\.join_params, which teleboot manages; use cluster\.joinMethod/,
    ],
    [
      'a fragment replacing storage',
      { configFragment: { teleport: { storage: { type: 'dir' } } } },
      /^configFragment\.teleport\.storage: .*use cluster\.storage/,
    ],
    ['a fragment key with a newline (schema)', { configFragment: { 'auth_service\nx': {} } }, /^body\.configFragment: /],
    ['IAM joining without a token name', { joinMethod: 'iam' }, /^iamTokenName: joinMethod iam needs the name/],
    [
      'a separate-listener address with TLS routing',
      { proxyListenerMode: 'multiplex', kubePublicAddr: 'kube.example.com:3026' },
      /^kubePublicAddr: is for separate listeners/,
    ],
    ['SAML without Enterprise', { authType: 'saml' }, /^authType: saml connectors need Teleport Enterprise/],
    [
      'a proxy URL that would break /etc/default/teleport',
      { httpsProxy: 'http://proxy:3128\nLD_PRELOAD=/x.so' },
      /^body\.httpsProxy: must not contain control characters/,
    ],
    [
      'a proxy URL with a space that would break /etc/default/teleport',
      { httpsProxy: 'http://proxy:3128 LD_PRELOAD=/x.so' },
      /^httpsProxy: must not contain whitespace/,
    ],
    ['a keep-alive that is no duration', { keepAliveInterval: 'sometimes' }, /^keepAliveInterval: a duration/],
    ['an unknown enum value (schema)', { joinVia: 'carrier-pigeon' }, /^body\.joinVia: must be equal to one of the allowed values/],
    ['removing a required setting', { clusterName: null }, /^body\.clusterName: must be string/],
  ];
  for (const [name, body, message] of refused) {
    const res = await rest('PATCH', '/v1/settings', body);
    t.equal(res.status, 400, name);
    t.match(res.body.message, message, name);
  }

  // A host running the proxy and the Kubernetes Service: fine until the proxy gets its own Kubernetes listener on 3026.
  const both = await rest('PUT', '/v1/instances/i-0edge000000000001/assignment', {
    roles: ['proxy', 'kube'],
    kube: { resources: [{ labels: { '*': '*' } }] },
  });
  t.equal(both.status, 200, JSON.stringify(both.body));
  const breaks = await rest('PATCH', '/v1/settings', { kubePublicAddr: 'teleport.example.com:3026' });
  t.equal(breaks.status, 400);
  t.match(
    breaks.body.message,
    /^kubePublicAddr: would break the assignment with roles kube\+proxy \(i-0edge000000000001\): port 3026 is already taken by proxy_service\.kube_listen_addr/,
  );

  const iam = await rest('PATCH', '/v1/settings', {
    joinMethod: 'iam',
    iamTokenName: 'aws-discovery-iam-token',
    httpsProxy: 'http://proxy.corp:3128',
  });
  t.equal(iam.status, 200, 'IAM joining breaks none of the stored assignments');
  t.match(iam.body, { joinMethod: 'iam', iamTokenName: 'aws-discovery-iam-token', httpsProxy: 'http://proxy.corp:3128' });
  const back = await rest('PATCH', '/v1/settings', { joinMethod: null, iamTokenName: null, httpsProxy: null });
  t.equal(back.status, 200, 'null removes an optional setting');
  t.equal(back.body.joinMethod, 'token', 'back to the default');
  t.notOk('iamTokenName' in back.body);
  t.notOk('httpsProxy' in back.body);
});

t.test('GET /v1/instances/{id}/config previews the files, secrets masked', async (t) => {
  await rest('PATCH', '/v1/settings', { httpsProxy: 'http://bob:s3cret@proxy.corp:3128', noProxy: 'localhost,169.254.169.254' });
  t.teardown(() => rest('PATCH', '/v1/settings', { httpsProxy: null, noProxy: null }));

  const kube = await rest('GET', '/v1/instances/i-0kube000000000001/config');
  t.equal(kube.status, 200, JSON.stringify(kube.body));
  t.match(kube.body, { instanceId: 'i-0kube000000000001', valid: true, problems: [], instanceFacts: 'placeholder' });
  t.same(
    kube.body.fetches,
    { ssm: [{ name: '/teleport/prod/tokens/discovery-kube', purpose: 'join token', secret: true }], s3: [] },
    'one token for both services, no pin through the proxy',
  );
  const yaml = parse(kube.body.teleportYaml);
  t.match(yaml, {
    teleport: {
      proxy_server: 'teleport.example.com:443',
      join_params: { method: 'token', token_name: '/var/lib/teleboot/secrets/join-token' },
    },
    kubernetes_service: { enabled: true, resources: [{ labels: { env: 'prod' } }] },
    discovery_service: { enabled: true, discovery_group: 'aws-prod', aws: [{ types: ['eks'], regions: ['*'] }] },
  });
  t.same(
    kube.body.files.map((f: any) => [f.path, f.mode, f.secret, f.source]),
    [
      ['/var/lib/teleboot/secrets/join-token', '0600', true, 'ssm:/teleport/prod/tokens/discovery-kube'],
      ['/etc/default/teleport', '0600', false, 'rendered'],
      ['/etc/teleport.yaml', '0600', false, 'rendered'],
      ['/etc/systemd/system/teleport.service', '0644', false, 'rendered'],
    ],
  );
  t.match(kube.body.unit, /^EnvironmentFile=-\/etc\/default\/teleport$/m);
  t.match(kube.body.environmentFile, { path: '/etc/default/teleport', content: /HTTPS_PROXY=http:\/\/bob:\*\*\*@proxy\.corp:3128/ });
  t.notMatch(JSON.stringify(kube.body), /s3cret/, 'the proxy password is masked');

  await rest('PUT', '/v1/instances/i-0node000000000001/assignment', { role: 'node', labels: { env: 'prod' } });
  const node = await rest('GET', '/v1/instances/i-0node000000000001/config');
  t.equal(node.status, 200);
  t.same(parse(node.body.teleportYaml).teleport.ca_pin, ['{from SSM /teleport/prod/ca-pin-hash}'], 'the CA pin is named, not shown');
  t.same(
    node.body.fetches.ssm.map((f: any) => f.name),
    ['/teleport/prod/tokens/node', '/teleport/prod/ca-pin-hash'],
  );

  await rest('PUT', '/v1/instances/i-0prxy000000000001/assignment', { role: 'proxy' });
  const proxy = await rest('GET', '/v1/instances/i-0prxy000000000001/config');
  t.same(proxy.body.fetches.s3, [
    { bucket: 'example-teleport', key: 'live/teleport.example.com/fullchain.pem', purpose: 'proxy certificate', secret: false },
    { bucket: 'example-teleport', key: 'live/teleport.example.com/privkey.pem', purpose: 'proxy private key', secret: true },
  ]);

  await rest('PUT', '/v1/instances/i-0idle000000000001/assignment', { role: 'node' });
  await rest('DELETE', '/v1/instances/i-0idle000000000001/assignment');
  t.equal((await rest('GET', '/v1/instances/i-0idle000000000001/config')).status, 409, 'no assignment, nothing to preview');
  t.equal((await rest('GET', '/v1/instances/i-0none000000000001/config')).status, 404);
});

t.test('the preview reports what is missing, naming the setting', async (t) => {
  const saved = (await rest('GET', '/v1/settings')).body;
  await rest('PATCH', '/v1/settings', { proxyPublicAddr: '' });
  t.teardown(() => rest('PATCH', '/v1/settings', { proxyPublicAddr: saved.proxyPublicAddr }));
  const res = await rest('GET', '/v1/instances/i-0prxy000000000001/config');
  t.equal(res.status, 200);
  t.equal(res.body.valid, false);
  t.match(res.body.problems, [
    { path: 'proxy_service.public_addr[0]', setting: 'cluster.proxyPublicAddr', field: 'proxyPublicAddr', message: /host:port/ },
  ]);
});

t.test('POST /v1/preview shows an assignment and a settings change before either is saved', async (t) => {
  const res = await rest('POST', '/v1/preview', {
    instanceId: 'i-0node000000000001',
    assignment: {
      role: 'db',
      databases: [
        {
          name: 'warehouse',
          protocol: 'postgres',
          uri: 'wh.abc.us-east-1.redshift.amazonaws.com:5439',
          awsRegion: 'us-east-1',
          redshiftClusterId: 'wh-1',
        },
      ],
    },
    settings: { joinMethod: 'iam', iamTokenName: 'db-iam-token' },
  });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.valid, true);
  t.match(parse(res.body.teleportYaml), {
    teleport: { join_params: { token_name: 'db-iam-token', method: 'iam' }, proxy_server: 'teleport.example.com:443' },
    db_service: { databases: [{ name: 'warehouse', aws: { region: 'us-east-1', redshift: { cluster_id: 'wh-1' } } }] },
  });
  t.same(res.body.fetches, { ssm: [], s3: [] }, 'IAM joining through the proxy fetches nothing');
  t.equal((await rest('GET', '/v1/settings')).body.joinMethod, 'token', 'the settings were not changed');
  t.equal((await rest('GET', '/v1/instances/i-0node000000000001')).body.assignment.role, 'node', 'the assignment was not changed');
  const bad = await rest('POST', '/v1/preview', { assignment: { role: 'proxy' }, settings: { fips: true } });
  t.equal(bad.status, 400);
  t.match(bad.body.message, /^fips: FIPS mode needs Teleport Enterprise/);

  // ACM with TLS routing behind a layer 7 balancer (Teleport 13+), refused before issue 15.
  const acm = await rest('POST', '/v1/preview', {
    assignment: { role: 'proxy' },
    settings: { tlsSource: 'acm', proxyListenerMode: 'multiplex' },
  });
  t.equal(acm.status, 200, JSON.stringify(acm.body));
  t.equal(acm.body.valid, true);
  t.match(parse(acm.body.teleportYaml).proxy_service, { web_listen_addr: '0.0.0.0:3080', trust_x_forwarded_for: true });
  t.notOk(parse(acm.body.teleportYaml).proxy_service.https_keypairs, 'no key pair: the certificate is on the balancer');

  // A fragment key teleboot does not know: written, and a warning names it.
  const unknown = await rest('POST', '/v1/preview', {
    assignment: { role: 'node', configFragment: { ssh_service: { x11: { enabled: true } } } },
  });
  t.equal(unknown.status, 200, JSON.stringify(unknown.body));
  t.equal(unknown.body.valid, true);
  t.match(unknown.body.warnings, [
    {
      path: 'ssh_service.x11',
      setting: 'assignment.configFragment.ssh_service.x11',
      field: 'configFragment.ssh_service.x11',
      message: /not a key teleboot knows/,
    },
  ]);
  t.same(parse(unknown.body.teleportYaml).ssh_service.x11, { enabled: true });
  const managed = await rest('POST', '/v1/preview', {
    assignment: { role: 'node', configFragment: { teleport: { ca_pin: ['sha256:x'] } } },
  });
  t.equal(managed.status, 200);
  t.equal(managed.body.valid, false, 'a fragment replacing the CA pin makes the preview invalid');
  t.match(managed.body.problems, [{ setting: 'assignment.configFragment.teleport.ca_pin', message: /ca-pin-hash/ }]);
});

t.test('the preview routes are in the OpenAPI document', async (t) => {
  const doc = (await rest('GET', '/openapi.json')).body;
  t.match(doc.paths['/v1/instances/{id}/config'].get, { summary: /Preview/, tags: ['instances'] });
  t.match(doc.paths['/v1/preview'].post, { summary: /Preview/, tags: ['instances'] });
});
