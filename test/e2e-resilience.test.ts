// What happens when parts of the world are away: the control server
// restarts, SSM or the control server is unreachable at boot. Agents run as
// separate processes supervising the stand-in teleport directly.
import t from 'tap';
import { existsSync } from 'node:fs';
import { startAgentProcess } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-resilience');
});
t.teardown(() => world?.close());

const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;

const startAgent = startAgentProcess;

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
  const { proc } = startAgent(t, await world.agentConfig(imds, 'process', '500ms'));
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
  const { logs } = startAgent(t, files);
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
  const { logs } = startAgent(t, files);
  await until('two enrollment retries', () => (logs().match(/waiting for enrollment at/g) ?? []).length >= 2);
  await world.control.start();
  restarted = true;
  await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  await world.control.waitForInstance(id, ready, 60_000);
  t.pass('enrolled and converged after the control server came up');
});
