#!/usr/bin/env node
// The newcomer's demo (`npm run demo`): a control server, S3, SSM and IMDS
// emulators and a handful of teleboot-agent processes on this machine, each
// agent starting a stand-in Teleport as its own child. It shows the three ways
// an instance gets its role, the fleet once it is ready, and then keeps the
// REST API up until Ctrl-C. Needs no root, no systemd, no AWS account.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLUSTER, startWorld, type World } from '../support/world';
import type { ImdsEmulator } from '../emulators/imds';
import { isRunning, logTail, startAgent, stopAgent, type AgentProcess, type Leftover } from './agents';
import { bold, dim, excerpt, green, heading, healthSummary, red, say, short, step, table, type FleetHealth } from './output';

const USAGE = `Usage: npm run demo -- [flags]        (after a build: node dist/test/demo/run.js [flags])

Runs teleboot on this machine: teleboot-control (SQLite), S3 (s3rver), SSM and
EC2 instance-metadata emulators, and one teleboot-agent process per instance,
each starting a stand-in Teleport. Shows how instances get their roles, prints
the fleet, then keeps running so you can try the REST API. Ctrl-C cleans up.

Flags:
  --agents N   instances to boot (default 4, at most 50)
  --exit       exit after printing the fleet (the default when CI is set)
  --keep       keep the working directory: logs, configs, the database
  -h, --help   show this help
`;

interface Options {
  agents: number;
  exit: boolean;
  keep: boolean;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { agents: { type: 'string' }, exit: { type: 'boolean' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const agents = Number(values.agents ?? 4);
  if (!Number.isInteger(agents) || agents < 1 || agents > 50)
    throw new UsageError(`--agents wants a whole number from 1 to 50, not "${values.agents}"`);
  const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI);
  return { agents, exit: values.exit === true || ci, keep: values.keep === true };
}

// ---------------------------------------------------------------- the fleet

/** How an instance gets its role. */
type Via = 'rest' | 'rule' | 'late';

interface Instance {
  name: string;
  role: string;
  via: Via;
  imds: ImdsEmulator;
  id: string;
  agent?: AgentProcess;
}

const RULE = { name: 'nodes by tag', selector: { TeleportRole: 'node' }, role: 'node', labels: { env: 'demo', assigned: 'by-rule' } };

/** auth-1 and node-1 pre-assigned, node-2 by tag, node-3 assigned while waiting; more nodes by tag. */
function fleetPlan(n: number): Array<Pick<Instance, 'name' | 'role' | 'via'>> {
  const plan: Array<Pick<Instance, 'name' | 'role' | 'via'>> = [
    { name: 'auth-1', role: 'auth-proxy', via: 'rest' },
    { name: 'node-1', role: 'node', via: 'rest' },
    { name: 'node-2', role: 'node', via: 'rule' },
    { name: 'node-3', role: 'node', via: 'late' },
  ];
  for (let i = 4; i < n; i++) plan.push({ name: `node-${i}`, role: 'node', via: 'rule' });
  return plan.slice(0, n);
}

async function createInstances(world: World, n: number): Promise<Instance[]> {
  return Promise.all(
    fleetPlan(n).map(async (p) => {
      const tags: Record<string, string> = { Name: p.name, ...(p.via === 'rule' ? RULE.selector : {}) };
      const imds = await world.instance({ tags });
      return { ...p, imds, id: imds.instance.instanceId };
    }),
  );
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const label = (i: Instance) => `${i.id} ${dim(`(${i.name})`)}`;

// ---------------------------------------------------------------- REST

async function rest<T>(world: World, method: string, path: string, body?: unknown): Promise<T> {
  // The actor header names the demo in the audit log ("rest:demo").
  const res = await world.control.rest<T>(method, path, body, { 'x-teleboot-actor': 'demo' });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The fields of an instance (GET /v1/instances) that the demo reads. */
interface InstanceView {
  instanceId: string;
  health: string;
  assignment: { role: string } | null;
  generation: number;
  appliedGeneration: number | null;
  status: { teleportReady: boolean } | null;
}

const listInstances = async (world: World) => (await rest<{ items: InstanceView[] }>(world, 'GET', '/v1/instances?limit=1000')).items;

const restUrl = (world: World) => `https://127.0.0.1:${world.control.restPort}`;

// ---------------------------------------------------------------- steps

async function setUpWorld(): Promise<World> {
  heading('world');
  const world = await startWorld('demo');
  step(
    `teleboot-control  REST ${restUrl(world)}  gRPC ${world.control.grpcAddr}  SQLite ${short(join(world.control.dataDir, 'control.db'))}`,
  );
  step(`S3 (s3rver)       ${world.s3.endpoint}  s3://${CLUSTER.s3Bucket}/live/teleport.example.com/{fullchain,privkey}.pem`);
  step(`SSM emulator      ${world.ssm.endpoint}  /teleport/${CLUSTER.clusterName}/tokens/{node,proxy}, ca-pin-hash`);
  step(`cluster settings  ${CLUSTER.clusterName}: auth ${CLUSTER.authAddr}, proxy ${CLUSTER.proxyPublicAddr}`);
  return world;
}

async function preassign(world: World, instances: Instance[]): Promise<void> {
  for (const i of instances.filter((x) => x.via === 'rest')) {
    const labels = i.role === 'node' ? { env: 'demo', team: 'platform' } : undefined;
    await rest(world, 'PUT', `/v1/instances/${i.id}/assignment`, { role: i.role, ...(labels ? { labels } : {}) });
    step(`assign ${label(i)} as ${bold(i.role)} before it boots  ${dim('PUT /v1/instances/{id}/assignment')}`);
  }
}

async function addRule(world: World, instances: Instance[]): Promise<string | undefined> {
  if (!instances.some((i) => i.via === 'rule')) return undefined;
  const rule = await rest<{ id: string }>(world, 'POST', '/v1/rules', RULE);
  step(`rule "${RULE.name}": EC2 tag TeleportRole=node → ${bold(RULE.role)}  ${dim('POST /v1/rules')}`);
  return rule.id;
}

async function bootAgents(world: World, instances: Instance[]): Promise<void> {
  for (const i of instances) {
    const files = await world.agentConfig(i.imds, 'process');
    i.agent = startAgent(i.id, i.name, files);
    const tags = i.via === 'rule' ? `tag TeleportRole=node, ` : '';
    step(`boot ${label(i)}  ${dim(`${tags}log ${short(i.agent.logFile)}`)}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class StoppedError extends Error {}

/** Polls GET /v1/instances until every instance satisfies `check`; `onMatch` hears of each once. */
async function waitForAll(
  world: World,
  instances: Instance[],
  what: string,
  check: (v: InstanceView) => boolean,
  signal: AbortSignal,
  onMatch: (i: Instance, v: InstanceView) => void,
): Promise<void> {
  const pending = new Map(instances.map((i) => [i.id, i]));
  const deadline = Date.now() + 60_000;
  while (pending.size > 0) {
    if (signal.aborted) throw new StoppedError();
    for (const v of await listInstances(world)) {
      const i = pending.get(v.instanceId);
      if (i && check(v)) {
        pending.delete(i.id);
        onMatch(i, v);
      }
    }
    for (const i of pending.values()) {
      if (i.agent && !isRunning(i.agent))
        throw new Error(
          `the agent of ${i.id} exited (${i.agent.proc.exitCode ?? i.agent.proc.signalCode}); its log ends:\n${logTail(i.agent, 25)}`,
        );
    }
    if (pending.size > 0 && Date.now() > deadline) {
      const i = pending.values().next().value as Instance;
      throw new Error(`${i.id} is not ${what} after 60 s; its agent log ends:\n${i.agent ? logTail(i.agent) : '(not started)'}`);
    }
    await sleep(200);
  }
}

async function assignLate(world: World, instances: Instance[], signal: AbortSignal): Promise<void> {
  const late = instances.filter((i) => i.via === 'late');
  if (late.length === 0) return;
  const waiting = (v: InstanceView) => v.health === 'unassigned' && v.status !== null;
  await waitForAll(world, late, 'enrolled', waiting, signal, (i) => step(`${label(i)} enrolled with no role; its agent waits`));
  for (const i of late) {
    await rest(world, 'PUT', `/v1/instances/${i.id}/assignment`, { role: i.role });
    step(`assign ${label(i)} as ${bold(i.role)} while its agent waits  ${dim('PUT /v1/instances/{id}/assignment')}`);
  }
}

const isReady = (v: InstanceView) => v.health === 'ready' && v.appliedGeneration === v.generation && v.status?.teleportReady === true;

async function waitUntilReady(world: World, instances: Instance[], signal: AbortSignal): Promise<void> {
  await waitForAll(world, instances, 'ready', isReady, signal, (i, v) =>
    step(`${green('ready')} ${label(i)} ${v.assignment?.role}, generation ${v.appliedGeneration}, teleport answers /readyz`),
  );
}

/** The late assignment and everyone's readiness, side by side so each line shows when it happens. */
async function converge(world: World, instances: Instance[], signal: AbortSignal): Promise<void> {
  const started = Date.now();
  const local = new AbortController();
  const stop = () => local.abort();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await Promise.all([assignLate(world, instances, local.signal), waitUntilReady(world, instances, local.signal)]);
  } finally {
    local.abort(); // when one fails, the other stops polling
    signal.removeEventListener('abort', stop);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const all = instances.length === 1 ? 'the instance is' : `all ${instances.length} instances`;
  step(`${all} ready ${dim(`(${seconds} s after the agents started)`)}`);
}

// ---------------------------------------------------------------- the report

/** Who set the current assignment, from the audit log. */
async function assignedBy(world: World, id: string, ruleId: string | undefined): Promise<string> {
  const { items } = await rest<{ items: Array<{ actor: string; action: string }> }>(world, 'GET', `/v1/audit?target=${id}&limit=1000`);
  const actor = items.filter((e) => e.action === 'assignment.set').pop()?.actor ?? '-';
  if (ruleId && actor === `rule:${ruleId}`) return `rule "${RULE.name}"`;
  // "rest:<API token name>/<X-Teleboot-Actor>": the demo calls with the admin token as "demo".
  return actor.startsWith('rest:') ? 'REST' : actor;
}

async function showTable(world: World, instances: Instance[], ruleId: string | undefined): Promise<void> {
  heading(`fleet  ${dim('GET /v1/instances')}`);
  const byId = new Map((await listInstances(world)).map((v) => [v.instanceId, v]));
  const rows: string[][] = [];
  for (const i of instances) {
    const v = byId.get(i.id);
    const teleport = v?.status?.teleportReady ? green('ready') : red('not ready');
    const health = v?.health === 'ready' ? green(v.health) : String(v?.health ?? '?');
    rows.push([
      i.id,
      i.name,
      v?.assignment?.role ?? '-',
      await assignedBy(world, i.id, ruleId),
      health,
      `${v?.appliedGeneration ?? '-'}/${v?.generation ?? '-'}`,
      teleport,
    ]);
  }
  table(['INSTANCE', 'NAME', 'ROLE', 'ASSIGNED BY', 'HEALTH', 'GEN', 'TELEPORT'], rows);
  say(dim('  GEN is applied/desired generation; TELEPORT is what the agent last saw on /readyz'));
}

const YAML_LINES = 40;
const YAML_SHOWN = 4;

function showConfigs(instances: Instance[]): void {
  for (const i of instances.slice(0, YAML_SHOWN)) {
    if (!i.agent) continue;
    heading(`teleport.yaml of ${i.name} (${i.role})  ${dim(short(i.agent.files.teleportConfig))}`);
    excerpt(readFileSync(i.agent.files.teleportConfig, 'utf8'), YAML_LINES);
  }
  const more = instances.length - YAML_SHOWN;
  if (more > 0) say(dim(`\n  (${more} more nodes configured like node-2: <work dir>/<instance id>/etc/teleport.yaml)`));
}

async function showHealth(world: World): Promise<void> {
  heading(`fleet health  ${dim('GET /v1/health')}`);
  healthSummary(await rest<FleetHealth>(world, 'GET', '/v1/health'));
}

function banner(world: World, instances: Instance[], opts: Options): void {
  const url = restUrl(world);
  const curl = `curl --cacert ${world.control.caFile} -H "Authorization: Bearer $(cat ${world.control.adminTokenFile})"`;
  const node = instances.find((i) => i.role === 'node') ?? instances[0];
  heading('try the REST API');
  say(`  ${curl} ${url}/v1/instances`);
  say(`  ${curl} ${url}/v1/health`);
  say(`  ${curl} ${url}/openapi.json`);
  say(dim(`  change a role live, then watch GET /v1/instances/${node.id}:`));
  say(`  ${curl} -X PUT -H 'content-type: application/json' \\`);
  say(`       -d '{"role":"proxy"}' ${url}/v1/instances/${node.id}/assignment`);
  say(dim(`  work dir ${world.dir}${opts.keep ? ' (kept after exit)' : ' (removed on exit; --keep keeps it)'}`));
  if (!opts.exit) say(`\n${bold('Running.')} Press Ctrl-C to stop and clean up.`);
}

// ---------------------------------------------------------------- shutdown

/** Aborts on the first Ctrl-C / SIGTERM; a second one exits at once. */
function stopSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      say(red(`${sig} again: exiting now; processes may be left behind`));
      process.exit(130);
    }
    say();
    step(`${sig}: stopping`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

const stopped = (signal: AbortSignal) =>
  new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

function describeLeftovers(leftovers: Leftover[]): void {
  if (leftovers.length === 0) {
    step('no teleport process outlived its agent');
    return;
  }
  const n = leftovers.length;
  step(red(n === 1 ? '1 process outlived its agent; stopped it:' : `${n} processes outlived their agents; stopped them:`));
  for (const l of leftovers)
    say(dim(`         pid ${l.pid}  ${l.command.replace(/(^|[\s=])(\/\S+)/g, (_, pre: string, path: string) => pre + short(path))}`));
}

async function shutdown(world: World | undefined, instances: Instance[], keep: boolean): Promise<void> {
  heading('shutdown');
  const agents = instances.flatMap((i) => (i.agent ? [i.agent] : []));
  const leftovers = (await Promise.all(agents.map(stopAgent))).flat();
  if (agents.length > 0) {
    step(`stopped ${plural(agents.length, 'agent')} (SIGTERM)`);
    describeLeftovers(leftovers);
  }
  if (!world) return;
  if (keep) {
    writeFileSync(join(world.dir, 'control', 'control.log'), world.control.logs);
    process.env.TELEBOOT_KEEP_TEST_FILES = '1';
  }
  await world.close();
  step(`stopped teleboot-control, S3, SSM and IMDS emulators; ${keep ? `kept ${world.dir}` : 'removed the work dir'}`);
}

// ---------------------------------------------------------------- main

async function demo(opts: Options, signal: AbortSignal, state: { world?: World; instances: Instance[] }): Promise<void> {
  say(bold(`teleboot demo: ${plural(opts.agents, 'instance')}, stand-in Teleport, nothing leaves this machine`));
  const world = (state.world = await setUpWorld());
  const instances = (state.instances = await createInstances(world, opts.agents));

  heading('roles');
  await preassign(world, instances);
  const ruleId = await addRule(world, instances);

  heading(`agents  ${dim('teleboot-agent run, service_manager: process')}`);
  await bootAgents(world, instances);
  await converge(world, instances, signal);

  await showTable(world, instances, ruleId);
  showConfigs(instances);
  await showHealth(world);
  banner(world, instances, opts);
  if (!opts.exit) await stopped(signal);
}

async function main(): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 64;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  // The SDK's notice about Node 20 support (from the in-process S3 client) is not what the demo shows.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const signal = stopSignal();
  const state: { world?: World; instances: Instance[] } = { instances: [] };
  let code = 0;
  try {
    await demo(opts, signal, state);
  } catch (err) {
    // After Ctrl-C the control server (same terminal) stops too: failures then are expected.
    if (!signal.aborted && !(err instanceof StoppedError)) {
      say(red(`\nerror: ${(err as Error).message}`));
      code = 1;
    }
  } finally {
    await shutdown(state.world, state.instances, opts.keep || code !== 0);
  }
  return code;
}

// Exit explicitly: the in-process emulators and s3rver hold sockets open.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
