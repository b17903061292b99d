// Restart only when needed, why a host failed, and drift (issue 13), end to
// end under a real systemd in a private namespace: the control server and the
// agent as their own processes, s3rver and the SSM emulator, the stand-in
// Teleport started by systemd from the unit the agent wrote. The stand-in
// records each start, reload and stop in its data directory, which tells a
// reload (same process) from a restart (a new one).
import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { removeDir, scratchDir, until } from './support/harness';
import { runCli } from './support/cli';
import { bootUnderSystemd, type Booted } from './support/systemd-agent';
import { canRunSystemdNamespace } from './support/systemd-ns';
import { CLUSTER, proxyCertificate, startWorld, type World } from './support/world';

const can = canRunSystemdNamespace();
if (!can.ok) {
  t.skip(`needs systemd in a namespace: ${can.reason}`, () => {});
} else {
  let world: World;
  const root = t;
  t.before(async () => {
    world = await startWorld('e2e-observe');
  });
  t.teardown(() => world?.close());

  const applied = (generation: number) => (i: any) => i.health === 'ready' && i.appliedGeneration === generation;
  const dataDir = (b: Booted) => join(b.files.root, 'var/lib/teleport');

  /** The stand-in's record of its starts and reloads. */
  function events(b: Booted): { starts: number; reloads: number } {
    const file = join(dataDir(b), 'standin-events.jsonl');
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    const kinds = lines.map((l) => JSON.parse(l).event as string);
    return { starts: kinds.filter((k) => k === 'start').length, reloads: kinds.filter((k) => k === 'reload').length };
  }

  /** What the running stand-in says of itself: its pid and reload count. */
  const standin = (b: Booted) =>
    new Promise<{ pid: number; reloads: number }>((resolve, reject) => {
      get(`http://${b.files.diagAddr}/standin/process`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(JSON.parse(body)));
      }).on('error', reject);
    });

  const mainPid = async (b: Booted) => (await b.ns.show('teleport.service', ['MainPID'])).MainPID;

  async function patchSettings(patch: Record<string, unknown>): Promise<void> {
    const res = await world.control.rest('PATCH', '/v1/settings', patch);
    if (res.status !== 200) throw new Error(`PATCH /v1/settings: ${res.status} ${JSON.stringify(res.body)}`);
  }

  async function generationOf(id: string): Promise<number> {
    return (await world.control.rest('GET', `/v1/instances/${id}`)).body.generation;
  }

  // One proxy host for the restart and drift tests: each test starts from where the last left it.
  let proxy: Booted;
  let proxyId: string;

  t.test('a certificate renewal reloads Teleport (SIGHUP), never restarts it', async (t) => {
    const imds = await world.instance();
    proxyId = imds.instance.instanceId;
    await world.control.rest('PUT', `/v1/instances/${proxyId}/assignment`, { role: 'proxy' });
    // The agent outlives this subtest: the proxy serves the tests after it.
    proxy = await bootUnderSystemd(root, world, imds, { certificate_check_interval: '300ms' });
    await world.control.waitForInstance(proxyId, applied(await generationOf(proxyId)), 60_000);
    const unit = await proxy.ns.show('teleport.service', ['ExecReload']);
    t.match(unit.ExecReload, /kill.*-HUP.*MAINPID/, "the unit reloads with SIGHUP to the main process, like Teleport's own unit");
    const pid = await mainPid(proxy);
    t.same(events(proxy), { starts: 1, reloads: 0 }, 'Teleport started once');

    const renewed = await proxyCertificate('teleport.example.com');
    await world.s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/privkey.pem', renewed.privkey);
    await world.s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/fullchain.pem', renewed.fullchain);
    const expires = new Date(new X509Certificate(renewed.fullchain).validTo).toISOString();
    await world.control.waitForInstance(proxyId, (i) => i.health === 'ready' && i.status.certificateExpiresAt === expires, 60_000);
    await until('the reload recorded by the stand-in', () => events(proxy).reloads >= 1);
    t.same(events(proxy), { starts: 1, reloads: 1 }, 'one reload, no second start');
    t.equal(await mainPid(proxy), pid, 'systemd still runs the same Teleport process');
    t.match(await standin(proxy), { pid: Number(pid), reloads: 1, startedAt: Number }, 'the running Teleport reloaded once');
  });

  t.test('a settings change that alters none of the host files leaves Teleport alone', async (t) => {
    const before = { pid: await mainPid(proxy), events: events(proxy), yaml: readFileSync(proxy.files.teleportConfig, 'utf8') };
    const generation = await generationOf(proxyId);
    // Auth servers' settings: nothing in a proxy's teleport.yaml changes.
    await patchSettings({ keepAliveInterval: '2m' });
    t.equal(await generationOf(proxyId), generation + 1, 'the proxy has a new generation');
    await world.control.waitForInstance(proxyId, applied(generation + 1));
    t.equal(readFileSync(proxy.files.teleportConfig, 'utf8'), before.yaml, 'teleport.yaml is the same');
    t.equal(await mainPid(proxy), before.pid, 'the same Teleport process');
    t.same(events(proxy), before.events, 'neither restarted nor reloaded');
    t.match(proxy.logs(), /"msg":"config unchanged"/, 'the agent says it changed nothing');
  });

  t.test('a teleport.yaml change restarts Teleport', async (t) => {
    const before = { pid: await mainPid(proxy), events: events(proxy) };
    const generation = await generationOf(proxyId);
    await patchSettings({ logSeverity: 'DEBUG' });
    await world.control.waitForInstance(proxyId, applied(generation + 1));
    t.equal(parse(readFileSync(proxy.files.teleportConfig, 'utf8')).teleport.log.severity, 'DEBUG', 'the new teleport.yaml');
    t.not(await mainPid(proxy), before.pid, 'a new Teleport process');
    t.same(events(proxy), { starts: before.events.starts + 1, reloads: before.events.reloads }, 'one more start');
  });

  t.test('teleport.yaml edited by hand shows as drifted with a masked diff, and is put back at the next change', async (t) => {
    const pid = await mainPid(proxy);
    const generation = await generationOf(proxyId);
    const written = readFileSync(proxy.files.teleportConfig, 'utf8');
    // An operator "fixes" something on the host, pasting a token while at it.
    writeFileSync(proxy.files.teleportConfig, `${written}# debugging, token: ${world.tokens.proxy}\n`);
    const drifted = await world.control.waitForInstance(proxyId, (i) => i.drifted === true);
    t.equal(drifted.health, 'ready', 'Teleport itself is fine');
    t.equal(drifted.status.drift.length, 1, 'one file changed by hand');
    t.equal(drifted.status.drift[0].path, proxy.files.teleportConfig);
    t.match(drifted.status.drift[0].diff, /^--- .*teleport\.yaml \(as teleboot wrote it\)\n\+\+\+ .*teleport\.yaml \(now\)\n@@ /);
    t.match(drifted.status.drift[0].diff, /\n\+# debugging, token: \*\*\*\n/, 'the added line, its secret masked');
    t.notOk(JSON.stringify(drifted).includes(world.tokens.proxy), 'the token is nowhere in the instance view');
    t.equal(await mainPid(proxy), pid, 'with driftRepair next-change (the default) nothing is touched at once');
    t.match(readFileSync(proxy.files.teleportConfig, 'utf8'), /# debugging/, 'the hand edit is still there');

    const cli = await showInstance(t, proxyId);
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, /Health:\s+ready, drifted/, 'teleboot instances show says drifted');
    t.match(cli.stdout, /Changed by hand: .*teleport\.yaml\n[\s\S]*\+# debugging, token: \*\*\*/, 'and shows the diff');

    // The next change that reaches the host puts the agent's file back (and restarts Teleport for it).
    await patchSettings({ logSeverity: 'INFO' });
    const repaired = await world.control.waitForInstance(proxyId, (i) => applied(generation + 1)(i) && i.drifted === false);
    t.notOk(repaired.status.drift, 'no drift reported');
    t.notMatch(readFileSync(proxy.files.teleportConfig, 'utf8'), /# debugging/, 'the hand edit is gone');
    t.not(await mainPid(proxy), pid, 'Teleport restarted with the config teleboot wrote');
  });

  t.test('with driftRepair immediate, a hand edit is put back at once', async (t) => {
    await patchSettings({ driftRepair: 'immediate' });
    const generation = await generationOf(proxyId);
    await world.control.waitForInstance(proxyId, applied(generation));
    const written = readFileSync(proxy.files.teleportConfig, 'utf8');
    const edited = written.replace('severity: INFO', 'severity: ERROR');
    t.not(edited, written, 'the edit changes the file');
    writeFileSync(proxy.files.teleportConfig, edited);
    await until('teleport.yaml put back', () => readFileSync(proxy.files.teleportConfig, 'utf8') === written, 30_000);
    t.match(proxy.logs(), /driftRepair is immediate: putting the files back/);
    const after = await world.control.waitForInstance(proxyId, (i) => applied(generation)(i) && i.drifted === false);
    t.equal(after.generation, generation, 'without a new generation');

    // The unit too (it lives in the machine's own /etc/systemd/system).
    const unitFile = '/etc/systemd/system/teleport.service';
    const unit = await proxy.ns.readFile(unitFile);
    const logged = proxy.logs().length;
    await proxy.ns.writeFile(unitFile, unit.replace('LimitNOFILE=524288', 'LimitNOFILE=1024'));
    await until('the unit put back', async () => (await proxy.ns.readFile(unitFile)) === unit, 30_000);
    await until('the repair logged', () => /"unitChanged":true,"restarted":true/.test(proxy.logs().slice(logged)));
    t.pass('the unit was installed again (daemon-reload) and Teleport restarted with it');
    await patchSettings({ driftRepair: null });
  });

  t.test('a Teleport that does not become ready: the last lines of its journal reach the instance view, secrets masked', async (t) => {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
    const host = await bootUnderSystemd(t, world, imds, {}, (files) => {
      const config = parse(readFileSync(files.configFile, 'utf8'));
      config.teleport.ready_timeout = '3s';
      writeFileSync(files.configFile, stringify(config));
      // The stand-in's knob: its join fails, logging the token as it goes.
      mkdirSync(join(files.root, 'var/lib/teleport'), { recursive: true });
      writeFileSync(join(files.root, 'var/lib/teleport/standin.env'), 'TELEPORT_STANDIN_FAIL_JOIN=1\n');
    });
    const failed = await world.control.waitForInstance(
      id,
      (i) => i.health === 'degraded' && (i.status?.logTail ?? []).some((l: string) => /Failed to register/.test(l)),
      60_000,
    );
    const tail: string[] = failed.status.logTail;
    t.ok(tail.length <= 40, `at most 40 lines (${tail.length})`);
    t.match(
      tail.find((l) => /Failed to register/.test(l)),
      /Failed to register through auth server: "\*\*\*": token not found/,
    );
    t.notOk(JSON.stringify(failed).includes(world.tokens.node), 'the join token is masked');
    t.match(failed.status.message, /did not answer \/readyz|not ready/);
    t.notOk(host.logs().includes(world.tokens.node), 'nor in the agent log');
    const cli = await showInstance(t, id);
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, /Health:\s+degraded/);
    t.match(
      cli.stdout,
      /Teleport log \(last \d+ lines, secrets masked\):\n[\s\S]* {2}ERROR: \[PROC:1\] Failed to register through auth server: "\*\*\*"/,
      'teleboot instances show prints the tail',
    );
    t.notOk(cli.stdout.includes(world.tokens.node));
  });

  /** `teleboot instances show ID` as an operator runs it, with a home directory of its own. */
  function showInstance(t: Test, id: string) {
    const home = scratchDir('e2e-observe-home');
    t.teardown(() => removeDir(home));
    return runCli(['instances', 'show', id], {
      HOME: home,
      TELEBOOT_ADDR: `https://localhost:${world.control.restPort}`,
      TELEBOOT_CACERT: world.control.caFile,
      TELEBOOT_TOKEN: world.control.adminToken,
    });
  }
}
