// End to end, with real parts: teleboot-control and teleboot-agent as
// separate processes over gRPC with TLS, s3rver, the SSM and IMDSv2
// emulators, and a real systemd in a private namespace that starts the
// stand-in teleport from the unit the agent wrote.
import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { statSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { parse } from 'yaml';
import { AGENT_BIN } from './support/harness';
import { agentEnv, bootUnderSystemd } from './support/systemd-agent';
import { canRunSystemdNamespace } from './support/systemd-ns';
import { CLUSTER, proxyCertificate, startWorld, type World } from './support/world';
import type { ImdsEmulator } from './emulators/imds';
import type { AgentFiles } from './support/harness';

const can = canRunSystemdNamespace();
if (!can.ok) {
  // A tap skip with its reason (a comment alone reads as "no tests found", which CI cannot tell from a pass).
  t.skip(`needs systemd in a namespace: ${can.reason}`, () => {});
} else {
  let world: World;
  t.before(async () => {
    world = await startWorld('e2e-boot');
  });
  t.teardown(() => world?.close());

  /** A fresh machine: its own systemd, then `teleboot-agent run` inside it. */
  const boot = (tt: Test, imds: ImdsEmulator, extraConfig: Record<string, unknown> = {}) => bootUnderSystemd(tt, world, imds, extraConfig);

  const teleportYaml = (files: AgentFiles) => parse(readFileSync(files.teleportConfig, 'utf8'));
  const mode = (path: string) => statSync(path).mode & 0o777;
  const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;

  t.test('an instance pre-assigned as node boots and ends with Teleport active and its status reported', async (tt) => {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    const assigned = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, {
      role: 'node',
      labels: { env: 'prod', team: 'platform' },
    });
    tt.equal(assigned.status, 200);
    tt.equal(assigned.body.health, 'expected', 'known before it ever booted');

    const { ns, files, agent, logs } = await boot(tt, imds);
    const instance = await world.control.waitForInstance(id, ready).catch((err) => tt.fail(`${err.message}\nagent log:\n${logs()}`));
    tt.match(instance, {
      identity: { instanceId: id, privateIp: imds.instance.privateIp, region: 'us-east-1' },
      assignment: { role: 'node' },
      status: { state: 'ready', teleportReady: true, teleportUnitState: 'active' },
    });
    // Host facts are collected after the boot (it does not wait for them) and follow in a report of their own.
    const withFacts = await world.control
      .waitForInstance(id, (i) => ready(i) && Boolean(i.facts))
      .catch((err) => tt.fail(`no host facts reported after ready: ${err.message}\nagent log:\n${logs()}`));
    tt.match(withFacts, { facts: { cpus: Number, memoryTotalBytes: Number, kernel: String } });

    const unit = await ns.show('teleport.service', ['ActiveState', 'MainPID', 'UnitFileState']);
    tt.equal(unit.ActiveState, 'active', 'systemd runs teleport.service');
    tt.equal(unit.UnitFileState, 'enabled', 'enabled, so it starts at the next boot too');
    tt.ok(Number(unit.MainPID) > 0);

    const config = teleportYaml(files);
    tt.match(config, {
      version: 'v3',
      teleport: {
        nodename: imds.instance.hostname,
        auth_server: CLUSTER.authAddr,
        ca_pin: [world.caPin],
        join_params: { method: 'token', token_name: `${files.secretsDir}/join-token` },
        diag_addr: files.diagAddr,
      },
      ssh_service: { enabled: true, labels: { env: 'prod', team: 'platform' } },
      auth_service: { enabled: false },
      proxy_service: { enabled: false },
    });
    tt.equal(readFileSync(`${files.secretsDir}/join-token`, 'utf8').trim(), world.tokens.node, 'the node token from SSM');
    tt.equal(mode(`${files.secretsDir}/join-token`), 0o600, 'token readable by its owner only');
    tt.equal(mode(files.teleportConfig), 0o600);
    tt.equal(mode(files.stateDir), 0o700, "the agent's state directory is private");
    tt.notOk(logs().includes(world.tokens.node), 'the join token never appears in the agent log');

    // A second run with nothing changed rewrites nothing and restarts nothing.
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
    const before = { mtime: statSync(files.teleportConfig).mtimeMs, token: statSync(`${files.secretsDir}/join-token`).mtimeMs };
    const again = await ns.exec([process.execPath, AGENT_BIN, 'once', '-c', files.configFile], { env: agentEnv, timeoutMs: 60_000 });
    tt.equal(again.code, 0, `once exits 0 when Teleport is ready\n${again.stderr}`);
    tt.match(again.stdout, /config unchanged/);
    tt.same(
      { mtime: statSync(files.teleportConfig).mtimeMs, token: statSync(`${files.secretsDir}/join-token`).mtimeMs },
      before,
      'files not rewritten',
    );
    const after = await ns.show('teleport.service', ['MainPID', 'NRestarts']);
    tt.equal(after.MainPID, unit.MainPID, 'teleport not restarted');
  });

  t.test('an instance that boots unassigned waits, then converges once assigned over REST, without an agent restart', async (tt) => {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    const { ns, files, agent, logs } = await boot(tt, imds);
    await world.control.waitForInstance(id, (i) => i.health === 'unassigned' && i.status !== null);
    tt.equal((await ns.systemctl('is-active', 'teleport.service')).stdout.trim(), 'inactive', 'nothing started without a role');
    tt.throws(() => statSync(files.teleportConfig), 'no teleport.yaml written yet');
    tt.match(logs(), /no assignment yet; waiting/);

    const res = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
    tt.equal(res.status, 200);
    await world.control.waitForInstance(id, ready);
    tt.equal((await ns.systemctl('is-active', 'teleport.service')).stdout.trim(), 'active');
    tt.equal(agent.exitCode, null, 'the same agent process converged');
    tt.equal(teleportYaml(files).ssh_service.enabled, true);
  });

  t.test('a rule assigns a role by EC2 tag at enrollment', async (tt) => {
    const rule = await world.control.rest('POST', '/v1/rules', {
      name: 'proxies by tag',
      selector: { TeleportRole: 'proxy' },
      role: 'proxy',
    });
    tt.equal(rule.status, 201);
    const imds = await world.instance({ tags: { TeleportRole: 'proxy', Name: 'edge-1' } });
    const id = imds.instance.instanceId;
    const { files } = await boot(tt, imds);
    const instance = await world.control.waitForInstance(id, ready);
    tt.equal(instance.assignment.role, 'proxy');
    const config = teleportYaml(files);
    tt.match(config, {
      proxy_service: {
        enabled: true,
        public_addr: [CLUSTER.proxyPublicAddr],
        https_keypairs: [{ cert_file: `${files.secretsDir}/proxy-fullchain.pem`, key_file: `${files.secretsDir}/proxy-privkey.pem` }],
      },
      ssh_service: { enabled: false },
      teleport: { join_params: { token_name: `${files.secretsDir}/join-token` } },
    });
    tt.equal(readFileSync(`${files.secretsDir}/join-token`, 'utf8').trim(), world.tokens.proxy, 'the proxy token from SSM');
    tt.equal(mode(`${files.secretsDir}/proxy-privkey.pem`), 0o600, 'private key readable by its owner only');
    tt.match(
      readFileSync(`${files.secretsDir}/proxy-fullchain.pem`, 'utf8'),
      /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/,
      'the full chain from S3',
    );
    const audit = await world.control.rest('GET', `/v1/audit?target=${id}`);
    tt.match(
      audit.body.items,
      [{ action: 'instance.enroll' }, { action: 'assignment.set', actor: `rule:${rule.body.id}` }],
      'the rule is named in the audit log',
    );
    await world.control.rest('DELETE', `/v1/rules/${rule.body.id}`);
  });

  t.test('a role change over REST reaches a running agent through the watch stream', async (tt) => {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
    const { ns, files, agent } = await boot(tt, imds);
    const first = await world.control.waitForInstance(id, ready);
    const before = await ns.show('teleport.service', ['MainPID']);

    const changed = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' });
    tt.equal(changed.body.generation, first.generation + 1, 'a new generation');
    const after = await world.control.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === first.generation + 1);
    tt.equal(after.status.state, 'ready');
    tt.equal(teleportYaml(files).proxy_service.enabled, true, 'now a proxy');
    tt.equal(teleportYaml(files).ssh_service.enabled, false);
    const restarted = await ns.show('teleport.service', ['MainPID', 'ActiveState']);
    tt.equal(restarted.ActiveState, 'active');
    tt.not(restarted.MainPID, before.MainPID, 'teleport restarted with the new config');
    tt.equal(agent.exitCode, null, 'the agent kept running');

    const removed = await world.control.rest('DELETE', `/v1/instances/${id}/assignment`);
    tt.equal(removed.status, 200);
    await world.control.waitForInstance(id, (i) => i.health === 'unassigned' && i.appliedGeneration === removed.body.generation);
    await ns.waitForUnitState('teleport.service', 'inactive');
    tt.equal(
      (await ns.show('teleport.service', ['UnitFileState'])).UnitFileState,
      'disabled',
      'an unassigned instance stops and disables Teleport',
    );
  });

  t.test('a renewed certificate in S3 reaches a proxy with systemctl reload (SIGHUP), not a restart', async (tt) => {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' });
    const { ns, files, logs } = await boot(tt, imds, { certificate_check_interval: '300ms' });
    await world.control.waitForInstance(id, ready);
    const before = await ns.show('teleport.service', ['MainPID']);

    const renewed = await proxyCertificate('teleport.example.com');
    await world.s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/privkey.pem', renewed.privkey);
    await world.s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/fullchain.pem', renewed.fullchain);
    const expires = new Date(new X509Certificate(renewed.fullchain).validTo).toISOString();
    const after = await world.control.waitForInstance(id, (i) => ready(i) && i.status.certificateExpiresAt === expires);
    tt.equal(after.status.certificateExpiresAt, expires, "the proxy reports the new certificate's expiry");
    tt.equal(readFileSync(`${files.secretsDir}/proxy-fullchain.pem`, 'utf8'), renewed.fullchain, 'the new chain is in place');
    tt.equal(mode(`${files.secretsDir}/proxy-privkey.pem`), 0o600, 'the new key is written 0600');
    tt.equal(
      (await ns.show('teleport.service', ['MainPID'])).MainPID,
      before.MainPID,
      'the same Teleport process: reloaded, not restarted',
    );
    tt.match(logs(), /"reloaded":true/, 'the agent reloaded Teleport');
    const standin = await new Promise<any>((resolve, reject) => {
      get(`http://${files.diagAddr}/standin/https`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(JSON.parse(body)));
      }).on('error', reject);
    });
    tt.equal(standin.certificates[0].serial, new X509Certificate(renewed.fullchain).serialNumber, 'Teleport serves the new certificate');
    tt.ok(standin.reloads >= 1, 'after a SIGHUP from ExecReload');
  });
}
