// The publisher end to end: two auth servers (agents as processes running the
// stand-in teleport, the stand-in tctl), the control server granting a 2 s
// publisher lease, the SSM emulator. One publishes join tokens and the CA
// pin; when it is killed the other takes over; a failing tctl is retried and
// reported; no token ever reaches a log.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startAgentProcess, TCTL_STANDIN, until, type AgentFiles } from './support/harness';
import { CLUSTER, startWorld, type World } from './support/world';

const LEASE_MS = 2000;
const ROTATE_MS = 3000;

let world: World;
let tctlDir: string;
// Agents outlive the subtest that starts them: they stop when the file's tests end.
const root = t;
t.before(async () => {
  world = await startWorld('e2e-publisher', { controlArgs: ['--heartbeat-interval', '1s', '--publisher-lease', `${LEASE_MS / 1000}s`] });
  tctlDir = join(world.dir, 'tctl');
  // Inherited by the agents, and by the tctl they run.
  process.env.TCTL_STANDIN_DIR = tctlDir;
});
t.teardown(() => world?.close());

interface Minted {
  token: string;
  roles: string[];
  ttl: string;
  config: string;
  at: number;
}
const minted = (): Minted[] => {
  const file = join(tctlDir, 'tokens.jsonl');
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Minted)
    : [];
};
const tokenParam = (role: string) => `/teleport/${CLUSTER.clusterName}/tokens/${role}`;
const pinParam = `/teleport/${CLUSTER.clusterName}/ca-pin-hash`;
/** Who minted the token SSM holds for a role (a teleport config path), if a stand-in tctl did. */
const mintedBy = (role: string) => minted().find((m) => m.token === world.ssm.get(tokenParam(role))?.value)?.config;

/** agent.yaml with the stand-in tctl and a fast rotation. */
function withPublisher(files: AgentFiles): AgentFiles {
  const config = parse(readFileSync(files.configFile, 'utf8'));
  config.teleport.tctl = TCTL_STANDIN;
  config.publisher = { roles: ['node', 'proxy'], token_ttl: '1m', rotate_every: `${ROTATE_MS / 1000}s` };
  writeFileSync(files.configFile, stringify(config));
  return files;
}

const ready = (i: any) => i.health === 'ready' && i.appliedGeneration === i.generation;

let agents: Array<{ id: string; files: AgentFiles; proc: import('node:child_process').ChildProcess; logs: () => string }> = [];

t.test('one auth server publishes; when it dies the other takes over within one lease period', async (t) => {
  for (let i = 0; i < 2; i++) {
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'auth' });
    const files = withPublisher(await world.agentConfig(imds, 'process', '500ms'));
    agents.push({ id, files, ...startAgentProcess(root, files) });
  }
  await Promise.all(agents.map((a) => world.control.waitForInstance(a.id, ready)));

  // Sampled all along: how old the published tokens ever get.
  let maxAgeMs = 0;
  const sampler = setInterval(() => {
    for (const role of ['node', 'proxy']) {
      const p = world.ssm.get(tokenParam(role));
      if (p && mintedBy(role)) maxAgeMs = Math.max(maxAgeMs, Date.now() - p.lastModified.getTime());
    }
  }, 50);
  t.teardown(() => clearInterval(sampler));

  const firstConfig = await until('tokens published by a stand-in tctl', () => mintedBy('node') && mintedBy('proxy') && mintedBy('node'));
  const holder = agents.find((a) => a.files.teleportConfig === firstConfig)!;
  const other = agents.find((a) => a !== holder)!;
  t.ok(holder, 'one of the two auth servers publishes');
  for (const role of ['node', 'proxy']) {
    const p = world.ssm.get(tokenParam(role))!;
    const m = minted()
      .filter((x) => x.config === holder.files.teleportConfig && x.roles[0] === role[0].toUpperCase() + role.slice(1))
      .pop()!;
    t.equal(p.value, m.token, `${role}: SSM holds the token tctl minted last`);
    t.equal(p.type, 'SecureString', `${role}: a SecureString`);
    t.equal(m.ttl, '1m', 'minted with the configured TTL');
  }
  const standinPin = () => existsSync(join(tctlDir, 'ca-pin')) && readFileSync(join(tctlDir, 'ca-pin'), 'utf8').trim();
  await until('the CA pin', () => standinPin() && world.ssm.get(pinParam)?.value === standinPin());
  t.equal(world.ssm.get(pinParam)!.type, 'String', 'the CA pin is a String');
  t.notOk(
    minted().some((m) => m.config === other.files.teleportConfig),
    'the other auth server mints nothing',
  );
  const status = await world.control.waitForInstance(holder.id, (i) =>
    /publisher: holds the lease \(fencing \d+\)/.test(i.status?.message ?? ''),
  );
  t.equal(status.health, 'ready');

  // Rotation: a new token well before the TTL, at the configured interval.
  const before = world.ssm.get(tokenParam('node'))!.value;
  await until('a rotation', () => world.ssm.get(tokenParam('node'))!.value !== before, ROTATE_MS + LEASE_MS + 2000);

  // The holder dies without a word (and its Teleport with it).
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(holder.proc.pid)])
    .toString()
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  const killedAt = Date.now();
  holder.proc.kill('SIGKILL');
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await until(
    'the other auth server publishing',
    () => mintedBy('node') === other.files.teleportConfig && mintedBy('proxy') === other.files.teleportConfig && world.ssm.get(pinParam),
  );
  const publishedAfterMs = Date.now() - killedAt;
  const audit = (await world.control.rest('GET', '/v1/audit?limit=1000')).body.items.filter((e: any) => e.action === 'lease.acquire');
  const takeover = audit.find((e: any) => e.details.holder === other.id);
  t.ok(takeover, 'the takeover is audited');
  const acquiredAfterMs = Date.parse(takeover.at) - killedAt;
  t.comment(
    `lease taken over ${acquiredAfterMs} ms and tokens published ${publishedAfterMs} ms after the holder was killed (lease ${LEASE_MS} ms)`,
  );
  t.ok(acquiredAfterMs <= LEASE_MS + 250, `the lease passed within one lease period (${acquiredAfterMs} ms)`);
  t.ok(publishedAfterMs <= LEASE_MS + 1500, `the new holder published right after (${publishedAfterMs} ms)`);
  const first = audit.find((e: any) => e.details.holder === holder.id);
  t.ok(
    takeover.details.fencing > first.details.fencing,
    `a higher fencing number (${first.details.fencing} -> ${takeover.details.fencing})`,
  );
  t.equal(takeover.details.previousHolder, holder.id);

  // One more rotation by the new holder, then the bound on the tokens' age.
  const after = world.ssm.get(tokenParam('node'))!.value;
  await until('a rotation by the new holder', () => world.ssm.get(tokenParam('node'))!.value !== after, ROTATE_MS + LEASE_MS + 2000);
  clearInterval(sampler);
  t.comment(`oldest token seen in SSM: ${maxAgeMs} ms`);
  // The slack is the stand-in tctl's start-up (a node process each call, on shared cores) and the SSM write.
  t.ok(
    maxAgeMs <= ROTATE_MS + LEASE_MS + 1500,
    `tokens are never older than the rotation interval plus one lease period (+1.5 s for tctl and SSM): ${maxAgeMs} ms`,
  );
  agents = [other];
});

t.test('a failing tctl is retried with backoff and reported in the status and the fleet health', async (t) => {
  const [holder] = agents;
  t.ok(holder, 'the surviving auth server holds the lease');
  t.teardown(() => writeFileSync('/tmp/e2e-publisher-holder.log', holder.logs()));
  writeFileSync(join(tctlDir, 'fail'), '');
  t.teardown(() => rmSync(join(tctlDir, 'fail'), { force: true }));
  const degraded = await world.control.waitForInstance(holder.id, (i) => i.health === 'degraded', ROTATE_MS + 10_000);
  t.match(
    degraded.status.message,
    /publisher: publishing join tokens failed \(attempt \d+\): tctl (tokens add|status) failed \(exit code 1\): ERROR: failed to connect to the auth server/,
  );
  t.equal(degraded.status.state, 'degraded');
  await until('three tries', () => (holder.logs().match(/publishing join tokens failed; retrying/g) ?? []).length >= 3, 15_000);
  const delays = [...holder.logs().matchAll(/"attempt":(\d+),"retryInMs":(\d+)[^\n]*publishing join tokens failed; retrying/g)].map((m) =>
    Number(m[2]),
  );
  t.ok(delays.length >= 3 && delays[2] > delays[0] / 2, `retried with backoff: ${delays.join(', ')} ms`);
  const fleet = await world.control.rest('GET', '/v1/instances?health=degraded&limit=100');
  t.ok(
    fleet.body.items.some((i: any) => i.instanceId === holder.id),
    'listed among the degraded instances',
  );

  const stale = world.ssm.get(tokenParam('node'))!.value;
  rmSync(join(tctlDir, 'fail'));
  await world.control.waitForInstance(holder.id, (i) => ready(i) && /publisher: holds the lease/.test(i.status.message), 15_000);
  t.not(world.ssm.get(tokenParam('node'))!.value, stale, 'published again once tctl works');
});

t.test('no token minted ever appears in a log', async (t) => {
  const tokens = minted().map((m) => m.token);
  t.ok(tokens.length >= 6, `${tokens.length} tokens minted`);
  const logs = [world.control.logs, ...agents.map((a) => a.logs())].join('\n');
  t.match(agents[0].logs(), /join token published/, 'publications are logged');
  t.notOk(
    tokens.some((tok) => logs.includes(tok)),
    'without the token',
  );
});
