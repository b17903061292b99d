// The agent roles end to end: teleboot-control and teleboot-agent as
// separate processes, SSM and IMDS emulators, s3rver, and the stand-in
// teleport (strict about every key, like Teleport's parser) supervised by the
// agent. A kube + discovery host (seed 004_*) and an app + db host (Teleport's
// AMI agent mode) converge through the proxy with one join token each, and a
// cluster-wide HTTP CONNECT proxy reaches /etc/default/teleport (seed 003_*).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { AGENT_BIN, AWS_ENV, TELEPORT_STANDIN, runNode, startAgentProcess, startSubtestAgent, type AgentFiles } from './support/harness';
import { CLUSTER, startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-roles');
});
t.teardown(() => world?.close());

const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;
const mode = (path: string) => statSync(path).mode & 0o777;
/** `teleport configure --test` on the file the agent wrote: the services the (strict) stand-in would start. */
const checkConfig = (files: AgentFiles) =>
  execFileSync(process.execPath, [TELEPORT_STANDIN, 'configure', '--test', files.teleportConfig], { encoding: 'utf8' });

const startAgent = (t: Parameters<typeof startAgentProcess>[0], files: AgentFiles, id: string) =>
  startSubtestAgent(t, files, world.control, id);

t.test('a kube + discovery host converges through the proxy with one token for both (seed 004_*)', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const assigned = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, {
    roles: ['kube', 'discovery'],
    kube: { resources: [{ labels: { env: 'prod' } }] },
    discovery: { group: 'aws-prod', aws: [{ types: ['eks'], regions: ['*'], tags: { env: 'prod' } }] },
  });
  t.equal(assigned.status, 200, JSON.stringify(assigned.body));
  const files = await world.agentConfig(imds, 'process');
  const { logs } = startAgent(t, files, id);
  const instance = await world.control.waitForInstance(id, ready).catch((err) => t.fail(`${err.message}\n${logs()}`));
  t.match(instance, { status: { state: 'ready', teleportReady: true }, assignment: { role: 'discovery+kube' } });

  const config = parse(readFileSync(files.teleportConfig, 'utf8'));
  t.same(config.teleport.join_params, { token_name: `${files.secretsDir}/join-token`, method: 'token' });
  t.equal(config.teleport.proxy_server, CLUSTER.proxyPublicAddr, 'joins through the proxy');
  t.notOk('ca_pin' in config.teleport, 'no CA pin through the proxy');
  t.same(config.kubernetes_service, { enabled: true, resources: [{ labels: { env: 'prod' } }] });
  t.same(config.discovery_service, {
    enabled: true,
    discovery_group: 'aws-prod',
    aws: [{ types: ['eks'], regions: ['*'], tags: { env: 'prod' } }],
  });
  t.equal(
    readFileSync(`${files.secretsDir}/join-token`, 'utf8').trim(),
    world.tokens['discovery-kube'],
    'the token published as tokens/discovery-kube',
  );
  t.match(checkConfig(files), /services=kubernetes,discovery$/m, 'teleport runs both services from this file');
  t.notOk(logs().includes(world.tokens['discovery-kube']), 'the token is not logged');
});

t.test('an app + db host converges through the proxy (Teleport AMI agent mode)', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const assigned = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, {
    roles: ['app', 'db'],
    apps: [{ name: 'grafana', uri: 'http://localhost:3000', publicAddr: 'grafana.teleport.example.com', labels: { env: 'prod' } }],
    databases: [
      {
        name: 'warehouse',
        protocol: 'postgres',
        uri: 'wh.abc.us-east-1.redshift.amazonaws.com:5439',
        awsRegion: 'us-east-1',
        redshiftClusterId: 'wh-1',
      },
    ],
  });
  t.equal(assigned.status, 200, JSON.stringify(assigned.body));
  const files = await world.agentConfig(imds, 'process');
  const { logs } = startAgent(t, files, id);
  await world.control.waitForInstance(id, ready).catch((err) => t.fail(`${err.message}\n${logs()}`));
  const config = parse(readFileSync(files.teleportConfig, 'utf8'));
  t.match(config, {
    teleport: { proxy_server: CLUSTER.proxyPublicAddr },
    app_service: { enabled: true, apps: [{ name: 'grafana', public_addr: 'grafana.teleport.example.com' }] },
    db_service: { enabled: true, databases: [{ name: 'warehouse', aws: { redshift: { cluster_id: 'wh-1' } } }] },
  });
  t.equal(readFileSync(`${files.secretsDir}/join-token`, 'utf8').trim(), world.tokens['app-db']);
  t.match(checkConfig(files), /services=app,db$/m);

  // The preview shows the same teleport.yaml, with the pin and token masked.
  const preview = await world.control.rest('GET', `/v1/instances/${id}/config`);
  t.equal(preview.status, 200);
  t.equal(preview.body.instanceFacts, 'enrolled');
  t.same(parse(preview.body.teleportYaml).app_service, config.app_service, 'the preview renders what the agent wrote');
});

t.test('a cluster-wide HTTP CONNECT proxy reaches /etc/default/teleport of a running host (seed 003_*)', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const files = await world.agentConfig(imds, 'process');
  const { logs } = startAgent(t, files, id);
  const before = await world.control.waitForInstance(id, ready).catch((err) => t.fail(`${err.message}\n${logs()}`));
  t.throws(() => statSync(files.environmentFile), 'no proxy, no environment file');

  const patched = await world.control.rest('PATCH', '/v1/settings', {
    httpsProxy: 'http://proxy.corp:3128',
    noProxy: `localhost,169.254.169.254,${CLUSTER.authAddr}`,
  });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  t.teardown(() => world.control.rest('PATCH', '/v1/settings', { httpsProxy: null, noProxy: null }));
  await world.control.waitForInstance(id, (i) => ready(i) && i.appliedGeneration > before.appliedGeneration);
  const env = readFileSync(files.environmentFile, 'utf8');
  t.match(env, /^HTTPS_PROXY=http:\/\/proxy\.corp:3128$/m);
  t.match(env, /^NO_PROXY=localhost,169\.254\.169\.254,auth\.example\.internal:3025$/m);
  t.equal(mode(files.environmentFile), 0o644);
  const proxyEnv = async () => (await fetch(`http://${files.diagAddr}/standin/proxy-env`)).json();
  t.same(
    await proxyEnv(),
    { HTTPS_PROXY: 'http://proxy.corp:3128', HTTP_PROXY: null, NO_PROXY: `localhost,169.254.169.254,${CLUSTER.authAddr}` },
    'Teleport runs with the proxy variables (read as systemd reads EnvironmentFile)',
  );

  // Removing the proxy settings removes the file teleboot wrote (an operator's own file would stay).
  const cleared = await world.control.rest('PATCH', '/v1/settings', { httpsProxy: null, noProxy: null });
  t.equal(cleared.status, 200, JSON.stringify(cleared.body));
  await world.control.waitForInstance(id, (i) => ready(i) && !existsSync(files.environmentFile));
  t.notOk(existsSync(files.environmentFile), 'no stale environment file once the proxy settings are gone');
  t.same(await proxyEnv(), { HTTPS_PROXY: null, HTTP_PROXY: null, NO_PROXY: null }, 'and Teleport restarted without them');
  t.match(logs(), /"removed":\[[^\]]*etc\/default\/teleport/, 'the agent says it removed it');
});

t.test('teleboot-agent plan lists what it fetches and masks the proxy password', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, {
    roles: ['kube', 'discovery'],
    kube: { resources: [{ labels: { '*': '*' } }] },
    discovery: {
      aws: [
        {
          types: ['ec2'],
          regions: ['us-east-1'],
          ssmDocumentName: 'TeleportDiscoveryInstaller',
          installTokenName: 'aws-discovery-iam-token',
        },
      ],
    },
  });
  const patched = await world.control.rest('PATCH', '/v1/settings', { httpsProxy: 'http://bob:s3cret@proxy.corp:3128' });
  t.equal(patched.status, 200);
  t.teardown(() => world.control.rest('PATCH', '/v1/settings', { httpsProxy: null }));
  const files = await world.agentConfig(imds, 'process');
  const r = await runNode(AGENT_BIN, ['plan', '-c', files.configFile], AWS_ENV);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /fetched:\n\s+ssm\s+\/teleport\/example\/tokens\/discovery-kube \(join token\)\n/);
  t.match(r.stdout, /--- environment file\n[\s\S]*HTTPS_PROXY=http:\/\/bob:\*\*\*@proxy\.corp:3128/);
  t.match(r.stdout, /create\s+\S+\/etc\/default\/teleport \(mode 600\)/, 'a proxy password keeps the file private');
  t.match(r.stdout, /EnvironmentFile=-\S+\/etc\/default\/teleport/);
  t.notMatch(r.stdout + r.stderr, /s3cret/);
  t.notMatch(r.stdout + r.stderr, new RegExp(world.tokens['discovery-kube']));
});
