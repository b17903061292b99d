// An agent that knows several control replicas (control.endpoints) moves to
// another when the one it talks to dies, keeping its enrolled identity: two
// control servers on one store, as two replicas are, and the agent as its
// own process.
import t from 'tap';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parse, stringify } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { ControlUnavailable, InstanceUnknown } from '../agent/control-errors';
import { ControlProcess, freePort, startAgentProcess, until } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('e2e-failover');
});
t.teardown(() => world?.close());

const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;

/** The remote ports of the established TCP connections process `pid` holds (from /proc: its sockets, matched by inode). */
function connectedPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st ... inode; st 01 is ESTABLISHED.
      if (f.length > 9 && f[3] === '01' && inodes.has(f[9])) ports.add(parseInt(f[2].split(':')[1], 16));
    }
  }
  return ports;
}

const enrollments = async (control: ControlProcess, id: string): Promise<number> =>
  (await control.rest('GET', `/v1/audit?limit=1000&target=${id}`)).body.items.filter((e: any) => e.action === 'instance.enroll').length;

t.test('agents start at a random endpoint, and calls failing together move them one endpoint on', async (t) => {
  const caPem = readFileSync(world.control.caFile, 'utf8');
  const live = world.control.grpcAddr;
  const [deadA, deadB] = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
  const starts = new Set(Array.from({ length: 64 }, () => new ControlClient({ endpoints: [deadA, live, deadB], caPem }).endpoint));
  t.same([...starts].sort(), [deadA, deadB, live].sort(), 'a fleet spreads over every endpoint');

  // Five calls fail at once on the dead endpoint: the client moves to the
  // next one, once, rather than five times round the list.
  const client = new ControlClient({ endpoints: [deadA, live, deadB], caPem }, { startAt: 0 });
  t.teardown(() => client.close());
  const failures = await Promise.all(
    Array.from({ length: 5 }, () => client.getAssignment('i-0123456789abcdef0').catch((err: Error) => err)),
  );
  t.ok(
    failures.every((err) => err instanceof ControlUnavailable),
    'each call failed as unavailable',
  );
  t.equal(client.endpoint, live, 'on the next endpoint, not past it');
  // The live server answers (it refuses a caller without a certificate: not a transport failure).
  const answer = await client.getAssignment('i-0123456789abcdef0').catch((err: Error) => err);
  t.ok(answer instanceof InstanceUnknown, `the live replica answered: ${answer instanceof Error ? answer.message : 'a result'}`);
  t.equal(client.endpoint, live, 'and the client stays there');
});

t.test('an endpoint that takes connections and never answers is left once a call times out', async (t) => {
  // A black hole for TLS: the TCP connection opens, the handshake never completes.
  const held: Socket[] = [];
  const silent = createServer((socket) => void held.push(socket));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const silentAddr = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const caPem = readFileSync(world.control.caFile, 'utf8');
  const client = new ControlClient({ endpoints: [silentAddr, world.control.grpcAddr], caPem }, { startAt: 0 });
  t.teardown(() => client.close());
  const err = await client.getAssignment('i-0123456789abcdef0').catch((e: Error) => e);
  t.ok(err instanceof ControlUnavailable, `the call failed as retryable: ${err instanceof Error ? err.message : 'no error'}`);
  t.equal(client.endpoint, world.control.grpcAddr, 'the client moved to the next endpoint');
  const answer = await client.getAssignment('i-0123456789abcdef0').catch((e: Error) => e);
  t.ok(answer instanceof InstanceUnknown, 'which answers');
});

t.test('an agent moves to another control replica when its own is killed, without enrolling again', async (t) => {
  const first = world.control;
  // A second replica on the same store (and so the same CA and join token).
  const second = new ControlProcess(first.dataDir, ['--heartbeat-interval', '1s']);
  await second.start();
  t.teardown(() => second.stop());

  const imds = await world.instance();
  const id = imds.instance.instanceId;
  await first.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node' });
  const files = await world.agentConfig(imds, 'process', '1s');
  const config = parse(readFileSync(files.configFile, 'utf8'));
  config.control.endpoints = [first.grpcAddr, second.grpcAddr];
  writeFileSync(files.configFile, stringify(config));
  const { proc, logs } = startAgentProcess(t, files);
  await first.waitForInstance(id, ready);
  t.equal(await enrollments(first, id), 1, 'enrolled once');

  // Whichever replica the agent picked (it starts at a random one) is killed.
  const replicas = [first, second];
  const [victim, survivor] = await until('the agent connected to one replica', () => {
    const ports = connectedPorts(proc.pid!);
    const on = replicas.filter((r) => ports.has(r.grpcPort));
    return on.length === 1 && (on[0] === first ? [first, second] : [second, first]);
  });
  t.comment(`the agent talks to the replica on port ${victim.grpcPort}; killing it`);
  const seenBefore = Date.parse((await survivor.rest('GET', `/v1/instances/${id}`)).body.lastSeenAt);
  const killed = new Promise((r) => victim.proc!.once('exit', r));
  const killedAt = Date.now();
  victim.proc!.kill('SIGKILL');
  await killed;
  // A change made while the agent is between replicas: it catches up by generation once it reaches the survivor.
  const missed = await survivor.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { moved: 'yes' } });
  t.equal(missed.status, 200);

  await until('the agent connected to the surviving replica', () => connectedPorts(proc.pid!).has(survivor.grpcPort), 60_000);
  t.comment(`connected to the survivor ${Date.now() - killedAt} ms after the kill (a figure, not a limit)`);
  await survivor.waitForInstance(id, (i) => Date.parse(i.lastSeenAt) > seenBefore, 60_000);
  t.pass('heartbeats reach the surviving replica');
  await survivor.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === missed.body.generation, 60_000);
  t.pass('the change made while it moved was applied');

  const changed = await survivor.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' });
  t.equal(changed.status, 200);
  const after = await survivor.waitForInstance(id, (i) => ready(i) && i.appliedGeneration === changed.body.generation, 60_000);
  t.equal(after.assignment.roles.join(), 'proxy', 'an assignment made through the survivor reached the agent');

  t.equal(await enrollments(survivor, id), 1, 'no new enrollment: the client certificate is good at every replica');
  t.match(logs(), /control endpoint unavailable; moving to the next one/, 'the agent says it moved');
  t.notMatch(logs(), /"msg":"enrolling"[\s\S]*"msg":"enrolling"/, 'and enrolled only at its start');
  t.equal(proc.exitCode, null, 'the agent never exited');
});
