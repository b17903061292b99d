// teleboot-control import (issue 15): sample AMI conf files and Ansible
// variables written for the test, each read into a plan and checked through
// the preview the REST API answers (the teleport.yaml the host would get);
// the variables that cannot be mapped are named with why; and --apply, run
// as the real command against a real control server, saves through REST.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { planFromFile, previewPlan } from '../control/import/command';
import { CONTROL_BIN, ControlProcess, removeDir, runNode, scratchDir } from './support/harness';

const dir = scratchDir('import');
t.teardown(() => removeDir(dir));
let n = 0;
function sample(text: string, ext = 'conf'): string {
  const file = join(dir, `sample-${++n}.${ext}`);
  writeFileSync(file, text);
  return file;
}

/** The plan and the teleport.yaml (parsed) and unit the preview shows for a sample. */
function imported(kind: 'ami' | 'ansible', text: string, instanceId?: string) {
  const plan = planFromFile(kind, sample(text, kind === 'ami' ? 'conf' : 'yaml'), instanceId);
  const preview = previewPlan(plan);
  return { plan, preview, config: preview.teleportYaml ? parse(preview.teleportYaml) : undefined };
}

const unmappedNames = (plan: { unmapped: Array<{ variable: string }> }) => plan.unmapped.map((u) => u.variable).sort();

t.test("AMI: an HA proxy with Let's Encrypt behind the load balancer (teleport-generate-config, TELEPORT_ROLE=proxy)", async (t) => {
  const { plan, preview, config } = imported(
    'ami',
    `# written by the AMI's user-data
TELEPORT_ROLE=proxy
EC2_REGION=eu-west-1
TELEPORT_CLUSTER_NAME=prod
TELEPORT_DOMAIN_NAME=teleport.example.com
TELEPORT_AUTH_SERVER_LB="auth-nlb.example.internal"
TELEPORT_S3_BUCKET='example-teleport'
TELEPORT_DYNAMO_TABLE_NAME=prod-state
TELEPORT_DYNAMO_EVENTS_TABLE_NAME=prod-state-events
TELEPORT_DOMAIN_ADMIN_EMAIL=ops@example.com
USE_LETSENCRYPT=true
TELEPORT_INFLUXDB_ADDRESS=http://monitor.example.internal:8086
TELEPORT_ENABLE_MYSQL=true
SOMETHING_ELSE=1
`,
  );
  t.match(plan.settings, {
    clusterName: 'prod',
    region: 'eu-west-1',
    authAddr: 'auth-nlb.example.internal:3025',
    proxyPublicAddr: 'teleport.example.com:443',
    behindLoadBalancer: true,
    s3Bucket: 'example-teleport',
    storage: { type: 'dynamodb', tableName: 'prod-state' },
    tlsSource: 'letsencrypt',
    cache: 'in-memory',
    maxConnections: 65000,
    mysqlPublicAddr: 'teleport.example.com:3036',
  });
  t.same(plan.rules, [{ name: 'ami proxy', selector: { TeleportRole: 'proxy' }, role: 'proxy' }], 'a rule by tag');
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  // What the AMI writes for a proxy: web on 3080 behind the balancer, public on 443, in-memory cache, limits.
  t.match(config.proxy_service, { web_listen_addr: '0.0.0.0:3080', public_addr: ['teleport.example.com:443'], https_keypairs: [{}] });
  t.same(config.teleport.cache, { type: 'in-memory' });
  t.same(config.teleport.connection_limits, { max_connections: 65000, max_users: 10000 });
  t.equal(config.teleport.auth_server, 'auth-nlb.example.internal:3025');
  t.same(unmappedNames(plan), ['SOMETHING_ELSE', 'TELEPORT_DOMAIN_ADMIN_EMAIL', 'TELEPORT_INFLUXDB_ADDRESS']);
  t.match(plan.unmapped.find((u) => u.variable === 'TELEPORT_DOMAIN_ADMIN_EMAIL')?.why, /acme\.email in control\.yaml/);
  t.match(plan.unmapped.find((u) => u.variable === 'SOMETHING_ELSE')?.why, /not a variable of the AMI/);
});

t.test('AMI: a FIPS auth server (TELEPORT_ENABLE_FIPS): Enterprise, --fips, local_auth false, no OTP', async (t) => {
  const { plan, preview, config } = imported(
    'ami',
    `TELEPORT_ROLE=auth
EC2_REGION=us-east-1
TELEPORT_CLUSTER_NAME=gov
TELEPORT_AUTH_SERVER_LB=auth.gov.internal
TELEPORT_DOMAIN_NAME=teleport.gov.example
TELEPORT_S3_BUCKET=gov-teleport
TELEPORT_DYNAMO_TABLE_NAME=gov-state
TELEPORT_DYNAMO_EVENTS_TABLE_NAME=gov-audit
TELEPORT_LICENSE_PATH=/var/lib/teleport/license.pem
TELEPORT_AUTH_TYPE=saml
TELEPORT_ENABLE_FIPS=true
`,
  );
  t.match(plan.settings, { enterprise: true, fips: true, authType: 'saml', keepAliveInterval: '1m', keepAliveCountMax: 3 });
  t.notOk('secondFactor' in plan.settings, 'no OTP with FIPS (the AMI writes local_auth false instead)');
  t.same(plan.settings.storage, { type: 'dynamodb', tableName: 'gov-state', auditEventsUri: ['dynamodb://gov-audit'] });
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  t.same(config.auth_service.authentication, { type: 'saml', local_auth: false });
  t.match(preview.unit, /^ExecStart=\S+ start .* --fips$/m);
  t.same(config.teleport.storage.audit_events_uri, ['dynamodb://gov-audit']);
});

t.test('AMI: a starter cluster with ACM (USE_ACM): TLS ends on the balancer, SSH and tunnel through the NLB', async (t) => {
  const { plan, preview, config } = imported(
    'ami',
    `TELEPORT_ROLE=auth,node,proxy
EC2_REGION=us-east-1
TELEPORT_CLUSTER_NAME=starter
TELEPORT_EXTERNAL_HOSTNAME=teleport.example.com
TELEPORT_EXTERNAL_PORT=443
TELEPORT_DOMAIN_NAME=teleport.example.com
TELEPORT_PROXY_SERVER_LB=teleport-alb.example.com
TELEPORT_PROXY_SERVER_NLB_ALIAS=teleport-nlb.example.com
USE_ACM=true
`,
  );
  t.match(plan.settings, { tlsSource: 'acm', proxyPublicAddr: 'teleport.example.com:443', sshPublicAddr: 'teleport-nlb.example.com:3023' });
  t.same(plan.rules[0], { name: 'ami all', selector: { TeleportRole: 'all' }, role: 'all' });
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  t.match(config.proxy_service, {
    web_listen_addr: '0.0.0.0:3080',
    trust_x_forwarded_for: true,
    tunnel_public_addr: 'teleport-nlb.example.com:3024',
  });
  t.notOk(config.proxy_service.https_keypairs, 'no key pair with ACM');
  t.equal(config.ssh_service.enabled, true);
});

t.test('AMI: a starter host with no balancer and an external port of 443: the web listener moves to 443', async (t) => {
  const { plan, config } = imported(
    'ami',
    `TELEPORT_CLUSTER_NAME=solo
EC2_REGION=us-east-1
TELEPORT_EXTERNAL_HOSTNAME=solo.example.com
TELEPORT_EXTERNAL_PORT=443
TELEPORT_DOMAIN_NAME=solo.example.com
USE_LETSENCRYPT=true
`,
  );
  t.match(plan.settings, { proxyPublicAddr: 'solo.example.com:443', proxyWebListenPort: 443 });
  t.equal(config.proxy_service.web_listen_addr, '0.0.0.0:443', 'reachable at its public address');
});

t.test('AMI: the agent role with a database needs an instance (role options go into assignments, not rules)', async (t) => {
  const conf = `TELEPORT_ROLE=agent
EC2_REGION=eu-central-1
TELEPORT_PROXY_SERVER_LB=teleport.example.com:443
TELEPORT_JOIN_TOKEN=abc123
TELEPORT_AGENT_DB_ENABLED=true
TELEPORT_AGENT_DB_NAME=orders
TELEPORT_AGENT_DB_PROTOCOL=postgres
TELEPORT_AGENT_DB_URI=orders.abc.eu-central-1.rds.amazonaws.com:5432
TELEPORT_AGENT_DB_LABELS="env: prod|team: payments"
`;
  const withoutId = planFromFile('ami', sample(conf));
  t.same(withoutId.rules, [], 'no rule');
  t.match(withoutId.unmapped, [
    { variable: 'TELEPORT_JOIN_TOKEN', why: /publishes them to SSM/ },
    { variable: '(assignment)', why: /--instance-id/ },
  ]);
  const { plan, preview, config } = imported('ami', conf, 'i-0db0000000000001');
  t.same(plan.assignments, [
    {
      instanceId: 'i-0db0000000000001',
      assignment: {
        role: 'db',
        databases: [
          {
            name: 'orders',
            protocol: 'postgres',
            uri: 'orders.abc.eu-central-1.rds.amazonaws.com:5432',
            staticLabels: { env: 'prod', team: 'payments' },
          },
        ],
      },
    },
  ]);
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  t.equal(config.teleport.proxy_server, 'teleport.example.com:443', 'agents join through the proxy, as the AMI writes proxy_server');
  // The AMI: region: ${TELEPORT_AGENT_DB_REGION:-$EC2_REGION}; teleboot takes the instance's region the same way.
  // For an instance that has not enrolled, the preview takes the cluster's region (EC2_REGION here).
  t.same(config.db_service.databases[0].aws, { region: 'eu-central-1' }, "the instance's region");
});

t.test('AMI: files the import refuses to guess at, naming the line', async (t) => {
  t.throws(
    () => planFromFile('ami', sample('TELEPORT_ROLE=proxy\nTELEPORT_CLUSTER_NAME=$(hostname)\n')),
    /sample-\d+\.conf:2: .*needs a shell/,
  );
  t.throws(() => planFromFile('ami', sample('TELEPORT_ROLE="proxy\n')), /sample-\d+\.conf:1: unterminated double quote/);
  t.throws(() => planFromFile('ami', sample('just words\n')), /sample-\d+\.conf:1: expected NAME=value/);
  t.match(planFromFile('ami', sample('TELEPORT_ROLE=monitor\n')).unmapped, [{ variable: 'TELEPORT_ROLE', why: /GET \/metrics/ }]);
});

t.test('Ansible: vars/main.yaml of an auth-proxy host (seed 000_*), storage from its default template', async (t) => {
  const { plan, preview, config } = imported(
    'ansible',
    `teleport_type: "auth-proxy"
teleport_version: "3.0.1"
teleport_edition: enterprise
teleport_license: license.pem
teleport_proxy_domain: "develop.teleport.example.co.jp"
teleport_cluster_name: "develop.teleport"
teleport_region: ap-northeast-1
teleport_bucket: "develop.teleport.example.co.jp-audit-session"
teleport_email: "info@example.co.jp"
teleport_dynamodb_table: "develop.teleport.example.co.jp"
teleport_auth_server_addr: develop.teleport.example.co.jp
teleport_storage:
  type: dynamodb
  region: "{{ teleport_region }}"
  table_name: "{{ teleport_dynamodb_table }}"
  audit_events_uri: "dynamodb://{{ teleport_dynamodb_table }}-events"
  audit_sessions_uri: "s3://{{ teleport_bucket }}/records"
`,
  );
  t.match(plan.settings, {
    clusterName: 'develop.teleport',
    region: 'ap-northeast-1',
    enterprise: true,
    proxyPublicAddr: 'develop.teleport.example.co.jp:3080',
    authAddr: 'develop.teleport.example.co.jp:3025',
    storage: { type: 'dynamodb', tableName: 'develop.teleport.example.co.jp', region: 'ap-northeast-1' },
    teleport: { version: '3.0.1' },
  });
  t.notOk(plan.settings.storage?.auditEventsUri, "the roles' default events table is teleboot's default too");
  t.same(plan.rules, [{ name: 'ansible auth-proxy', selector: { TeleportRole: 'auth-proxy' }, role: 'auth-proxy' }]);
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  t.match(config.proxy_service, { web_listen_addr: '0.0.0.0:3080', public_addr: ['develop.teleport.example.co.jp:3080'] });
  t.match(config.teleport.storage, {
    type: 'dynamodb',
    table_name: 'develop.teleport.example.co.jp',
    audit_events_uri: ['dynamodb://develop.teleport.example.co.jp-events'],
    audit_sessions_uri: 's3://develop.teleport.example.co.jp-audit-session/records',
  });
  t.equal(config.auth_service.license_file, '/var/lib/teleboot/secrets/license.pem', 'the license comes from SSM');
  t.same(unmappedNames(plan), ['teleport_email', 'teleport_license']);
});

t.test('Ansible: --extra-vars JSON of a node with ports teleboot does not move', async (t) => {
  const { plan, preview, config } = imported(
    'ansible',
    JSON.stringify({
      host_name: 'node-server',
      teleport_type: 'node',
      teleport_cluster_name: 'develop.teleport',
      teleport_auth_server_addr: '10.0.1.10',
      teleport_proxy_domain: 'develop.teleport.example.co.jp',
      teleport_proxy_web_listen_port: 443,
      teleport_node_ssh_service_port: 2022,
      teleport_proxy_ssh_listen_port: 3023,
      teleport_colour: 'blue',
    }),
  );
  t.match(plan.settings, { authAddr: '10.0.1.10:3025', proxyPublicAddr: 'develop.teleport.example.co.jp:443', proxyWebListenPort: 443 });
  t.equal(preview.valid, true, JSON.stringify(preview.problems));
  t.equal(config.ssh_service.listen_addr, '0.0.0.0:3022');
  t.same(unmappedNames(plan), ['host_name', 'teleport_colour', 'teleport_node_ssh_service_port']);
  t.match(plan.unmapped.find((u) => u.variable === 'teleport_node_ssh_service_port')?.why, /binds nodes' SSH listener on 3022; 2022/);
});

t.test('import --apply saves through the REST API of a real control server, validated and audited there', async (t) => {
  const control = new ControlProcess(join(dir, 'control'));
  await control.start();
  t.teardown(() => control.stop());
  const ansible = sample(
    'teleport_type: proxy\nteleport_cluster_name: imported\nteleport_region: us-east-1\nteleport_bucket: imported-certs\n' +
      'teleport_proxy_domain: teleport.imported.example\nteleport_proxy_web_listen_port: 443\nteleport_auth_server_addr: auth.imported.internal\n',
    'yaml',
  );
  const dry = await runNode(CONTROL_BIN, ['import', 'ansible', ansible]);
  t.equal(dry.code, 0, dry.stderr);
  t.match(
    dry.stdout,
    /## The host's teleport\.yaml \(valid; secrets masked\)[\s\S]*web_listen_addr: 0\.0\.0\.0:443[\s\S]*Nothing was saved/,
  );
  t.same((await control.rest('GET', '/v1/rules')).body.items, [], 'a dry run saves nothing');

  const args = ['import', 'ansible', ansible, '--apply', '--addr', `127.0.0.1:${control.restPort}`, '--ca-cert', control.caFile];
  const r = await runNode(CONTROL_BIN, [...args, '--token-file', control.adminTokenFile]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /saved: cluster settings[\s\S]*saved: rule "ansible proxy"/);
  t.match((await control.rest('GET', '/v1/settings')).body, {
    clusterName: 'imported',
    proxyPublicAddr: 'teleport.imported.example:443',
    proxyWebListenPort: 443,
  });
  t.match((await control.rest('GET', '/v1/rules')).body.items, [{ name: 'ansible proxy', selector: { TeleportRole: 'proxy' } }]);
  const audit = (await control.rest('GET', '/v1/audit')).body;
  t.match(JSON.stringify(audit), /"rest:[\w.@-]+\/import"/, 'the changes are audited under the token, noted as the import');

  // A plan the server refuses: the message names the setting, and nothing of it is kept.
  const bad = sample('TELEPORT_ROLE=auth\nTELEPORT_CLUSTER_NAME=imported\nTELEPORT_ENABLE_FIPS=true\nTELEPORT_AUTH_TYPE=local\n');
  const refused = await runNode(CONTROL_BIN, ['import', 'ami', bad, ...args.slice(3), '--token-file', control.adminTokenFile]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /PATCH \/v1\/settings refused \(400\): authType: local cannot log anyone in with FIPS/);
  t.notOk((await control.rest('GET', '/v1/settings')).body.fips, 'nothing was saved');
});
