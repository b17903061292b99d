// What happens when parts of the world are away: the control server
// restarts, SSM or the control server is unreachable at boot. Agents run as
// separate processes supervising the stand-in teleport directly.
import t from 'tap';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { ControlProcess, startAgentProcess, startSubtestAgent, type AgentFiles } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-resilience');
});
t.teardown(() => world?.close());

const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;

const startAgent = (t: Parameters<typeof startAgentProcess>[0], files: AgentFiles, id: string) =>
  startSubtestAgent(t, files, world.control, id);

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('a control server restart loses no instance, assignment or audit event, and agents carry on', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { env: 'prod' } });
  await world.control.rest('PUT', '/v1/instances/i-0future000000001/assignment', { role: 'proxy' });
  await world.control.rest('POST', '/v1/rules', { name: 'db hosts', selector: { Role: 'db' }, role: 'node' });
  const { proc } = startAgent(t, await world.agentConfig(imds, 'process', '500ms'), imds.instance.instanceId);
  await world.control.waitForInstance(id, ready);

  const snapshot = async () => ({
    instances: (await world.control.rest('GET', '/v1/instances?limit=1000')).body.items.map((i: any) => ({
      id: i.instanceId,
      assignment: i.assignment,
      generation: i.generation,
      identity: i.identity,
    })),
    rules: (await world.control.rest('GET', '/v1/rules')).body.items,
    settings: (await world.control.rest('GET', '/v1/settings')).body,
    audit: (await world.control.rest('GET', '/v1/audit?limit=1000')).body.items,
  });
  const before = await snapshot();
  t.ok(before.audit.length >= 4, 'there is history to keep');
  const caBefore = world.control.caFile;

  await world.control.restart();
  t.same(await snapshot(), before, 'everything stored before the restart is there after it');
  t.equal(world.control.caFile, caBefore);

  // The running agent reconnects: its heartbeats continue and a change reaches it.
  const seenBefore = Date.parse((await world.control.rest('GET', `/v1/instances/${id}`)).body.lastSeenAt);
  await world.control.waitForInstance(id, (i) => Date.parse(i.lastSeenAt) > seenBefore);
  const changed = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' });
  await world.control.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === changed.body.generation);
  t.equal(proc.exitCode, null, 'the agent never exited');
});

t.test('an agent waits for an unreachable SSM with backoff and writes nothing until it can', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const files = await world.agentConfig(imds, 'process', '1s');
  world.ssm.setUnreachable(true);
  t.teardown(() => world.ssm.setUnreachable(false));
  const { logs } = startAgent(t, files, imds.instance.instanceId);
  await until('three SSM retries', () => (logs().match(/waiting for the join token, CA pin and certificate/g) ?? []).length >= 3);
  const delays = [...logs().matchAll(/"retryInMs":(\d+),"err":"[^"]*","msg":"waiting for the join token/g)].map((m) => Number(m[1]));
  t.ok(delays[2] > delays[0], `the waits grow: ${delays.join(', ')} ms`);
  t.notOk(existsSync(files.teleportConfig), 'no teleport.yaml while the join token is unknown');
  t.notOk(existsSync(`${files.secretsDir}/join-token`), 'no partial set of files either');
  // A convergence that outlasts a heartbeat reports at each one what it waits for (and stays online).
  const waiting = await world.control.waitForInstance(id, (i) => /waiting for the join token/.test(i.status?.message ?? ''));
  t.equal(waiting.status.state, 'converging', 'the control server sees it waiting');
  t.match(waiting.status.message, /generation \d+: waiting for the join token, CA pin and certificate \(SSM, S3\): /, 'and what for');
  t.equal(waiting.health, 'converging');

  world.ssm.setUnreachable(false);
  await world.control.waitForInstance(id, ready);
  t.ok(existsSync(files.teleportConfig));
});

t.test('an agent that boots before the control server is reachable enrolls once it is', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const files = await world.agentConfig(imds, 'process', '1s');
  await world.control.stop();
  let restarted = false;
  t.teardown(async () => {
    if (!restarted) await world.control.start();
  });
  const { logs } = startAgent(t, files, imds.instance.instanceId);
  await until('two enrollment retries', () => (logs().match(/waiting for enrollment at/g) ?? []).length >= 2);
  await world.control.start();
  restarted = true;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  await world.control.waitForInstance(id, ready, 60_000);
  t.pass('enrolled and converged after the control server came up');
});

/** The pids of the stand-in Teleports running with `config`. */
function teleportPids(config: string): string[] {
  return readdirSync('/proc').filter((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(`--config=${config}`);
    } catch {
      return false;
    }
  });
}

/** Teleport's /readyz (the stand-in answers it while it runs). */
const readyz = (diagAddr: string) =>
  new Promise<number>((resolve) =>
    get(`http://${diagAddr}/readyz`, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0)),
  );

t.test('agents fail static: a control server that forgot an instance never stops its Teleport; it shows as orphaned', async (t) => {
  // A backup of the store taken before this instance existed, restored later:
  // the control server keeps its CA and tokens but has no record of it.
  const store = join(world.control.dataDir, 'control.db');
  const backup = join(world.dir, 'control-before.db');
  await world.control.stop();
  copyFileSync(store, backup);
  await world.control.start();

  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const files = await world.agentConfig(imds, 'process', '500ms');
  const { proc, logs } = startAgent(t, files, imds.instance.instanceId);
  await world.control.waitForInstance(id, ready);
  const [pid] = teleportPids(files.teleportConfig);
  t.ok(pid, `teleport runs (pid ${pid})`);

  await world.control.stop();
  for (const suffix of ['', '-wal', '-shm']) rmSync(store + suffix, { force: true });
  copyFileSync(backup, store);
  await world.control.start();

  const orphaned = await world.control.waitForInstance(id, (i) => i.health === 'orphaned');
  t.equal(orphaned.status.state, 'orphaned', 'the agent enrolled again and reports itself orphaned');
  t.match(orphaned.status.message, /keeps running what was applied last until an operator assigns or unassigns/);
  t.equal(orphaned.assignment, null, 'not assigned: the control server does not make up a role');
  const health = (await world.control.rest('GET', '/v1/health')).body;
  t.ok(health.byHealth.orphaned >= 1, `/v1/health counts it: ${JSON.stringify(health.byHealth)}`);
  t.equal(await readyz(files.diagAddr), 200, 'teleport still runs and answers /readyz');
  t.same(teleportPids(files.teleportConfig), [pid], 'the same process: never stopped nor restarted');
  t.notMatch(logs(), /stopping teleport/);
  t.match(logs(), /the control server does not know this instance; enrolling again/);

  // An operator decides: assigning takes it over without a restart of anything unchanged...
  const assigned = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  await world.control.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === assigned.body.generation);
  t.same(teleportPids(files.teleportConfig), [pid], 'the same config: the same teleport process');
  // ...and an explicit unassignment is what stops Teleport.
  const removed = await world.control.rest('DELETE', `/v1/instances/${id}/assignment`);
  await world.control.waitForInstance(id, (i) => i.health === 'unassigned' && i.appliedGeneration === removed.body.generation);
  for (let i = 0; i < 100 && (await readyz(files.diagAddr)) !== 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await readyz(files.diagAddr), 0, 'teleport stopped');
  t.equal(proc.exitCode, null, 'the agent never exited');
});

t.test('agents catch up from state: a change whose watch event never came lands at the next heartbeat', async (t) => {
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const { logs } = startAgent(t, await world.agentConfig(imds, 'process', '500ms'), imds.instance.instanceId);
  const first = await world.control.waitForInstance(id, ready);
  // A second control server on the same store, as another replica would be:
  // a change made through it sends no event to the watch stream the agent
  // holds on the first one.
  const other = new ControlProcess(world.control.dataDir);
  await other.start();
  t.teardown(() => other.stop());
  const changed = await other.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' });
  t.equal(changed.body.generation, first.generation + 1);
  const after = await world.control.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === changed.body.generation, 10_000);
  t.equal(after.assignment.roles.join(), 'proxy', 'converged to the change');
  t.match(logs(), /the control server holds a generation this agent was not told of; fetching it/, 'through its heartbeat');
});
