// Rollouts end to end: teleboot-control and 2 auth, 2 proxy and 3 node
// agents as separate processes (process mode), each supervising the stand-in
// teleport, which records its starts and readiness in
// <data_dir>/standin-events.jsonl. A settings change restarts the auth
// servers one at a time, then the proxies, then the nodes (10 % of 3 is 1);
// a node whose Teleport never becomes ready halts the rollout and the node
// after it keeps its files; abort rolls the reached hosts back; pause and
// resume; a change during a rollout supersedes it; all-at-once is audited.
import t from 'tap';
import {
  bootFleet,
  bootProcessAgent,
  breakReadiness,
  logSeverity as severity,
  rolloutsApi,
  standinEvents,
  waitFor,
  type FleetHost,
} from './support/rollout-fleet';
import { startWorld, type World } from './support/world';

let world: World;
type Host = FleetHost<unknown>;
/** Every host in the order a rollout reaches them: auth, proxy, node; within a role by instance id (the plan's order). */
let hosts: Host[] = [];
let nodes: Host[] = [];
t.before(async () => {
  world = await startWorld('rest-rollouts');
  hosts = await bootFleet(world, (imds) => bootProcessAgent(t, world, imds));
  nodes = hosts.filter((h) => h.role === 'node');
});
t.teardown(() => world?.close());

const api = () => rolloutsApi(world.control);
const rest = (method: string, path: string, body?: unknown) => api().rest(method, path, body);
const rolloutIn = (id: string, states: string[]) => api().rolloutIn(id, states);
const newest = () => api().newest();

t.test('a settings change restarts auth servers one at a time, then proxies, then nodes', async (t) => {
  const since = Date.now();
  const patched = await rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' });
  t.equal(patched.status, 200, JSON.stringify(patched.body));
  const started = await newest();
  t.match(started, { kind: 'change', strategy: 'waves', reason: 'PATCH /v1/settings logSeverity', hosts: { total: 7 } });
  const done = await rolloutIn(started.id, ['completed']);
  t.same(
    done.hostStates.map((h: any) => [h.instanceId, h.state]),
    hosts.map((h) => [h.id, 'ready']),
  );
  t.match(done.groups, {
    auth: { maxUnavailable: 1, total: 2, ready: 2 },
    proxy: { maxUnavailable: 1, total: 2, ready: 2 },
    other: { maxUnavailable: 1, total: 3, ready: 3 },
  });
  // From the stand-ins' own records: each host started again only after the one before it was ready
  // (auth, auth, proxy, proxy, node...): never two auth servers, or two of anything, down at once.
  const windows = hosts.map((n) => {
    const events = standinEvents(n, since);
    const start = events.find((e) => e.event === 'start');
    const ready = events.find((e) => e.event === 'ready' && e.at >= (start?.at ?? 0));
    t.ok(start && ready, `${n.id} restarted and became ready`);
    return { start: start?.at ?? 0, ready: ready?.at ?? 0 };
  });
  for (let i = 1; i < windows.length; i++)
    t.ok(
      windows[i].start >= windows[i - 1].ready,
      `${hosts[i].role} ${hosts[i].id} restarted after ${hosts[i - 1].role} ${hosts[i - 1].id} was ready`,
    );
  for (const h of hosts) t.equal(severity(h), 'DEBUG');
  const health = await rest('GET', '/v1/health');
  t.notOk('rollout' in health.body, 'no rollout under way in /v1/health once completed');
});

t.test('a node whose Teleport never becomes ready halts the rollout; the node after it keeps its files; abort rolls back', async (t) => {
  const [first, broken, last] = nodes;
  const lastGeneration = (await rest('GET', `/v1/instances/${last.id}`)).body.appliedGeneration;
  const repair = breakReadiness(broken);
  t.teardown(repair);
  await rest('PATCH', '/v1/settings', { logSeverity: 'WARN' });
  const { id } = await newest();
  const halted = await rolloutIn(id, ['halted']);
  t.match(halted.note, /1 of 3 other hosts failed/);
  t.same(
    halted.hostStates.map((h: any) => h.state),
    ['ready', 'ready', 'ready', 'ready', 'ready', 'failed', 'pending'],
  );
  const failed = halted.hostStates[5];
  t.equal(failed.instanceId, broken.id);
  t.match(failed.message, /did not answer \/readyz/, "the failed host's last status message");
  t.ok(Array.isArray(failed.logTail) && failed.logTail.length > 0, "and its Teleport's last log lines");
  const metrics = await rest('GET', '/metrics');
  t.match(String(metrics.body), /teleboot_rollout_hosts\{group="other",state="failed"\} 1/);
  t.match((await rest('GET', '/v1/health')).body.rollout, { id, state: 'halted' });
  t.equal(severity(last), 'DEBUG', 'the node not reached keeps its files');
  t.equal((await rest('GET', `/v1/instances/${last.id}`)).body.appliedGeneration, lastGeneration, 'and its generation');
  t.equal(severity(first), 'WARN');

  const pausing = await rest('POST', `/v1/rollouts/${id}/pause`);
  t.equal(pausing.status, 409, 'a halted rollout cannot be paused');
  t.match(pausing.body.message, /is halted.*resume it.*or abort it/);

  repair();
  const aborted = await rest('POST', `/v1/rollouts/${id}/abort`);
  t.equal(aborted.status, 200, JSON.stringify(aborted.body));
  t.equal(aborted.body.state, 'aborted');
  const rollback = await newest();
  t.match(rollback, { kind: 'rollback', hosts: { total: 6 } });
  const back = await rolloutIn(rollback.id, ['completed']);
  t.equal(back.rollbackOf, id);
  for (const n of hosts) t.equal(severity(n), 'DEBUG', `${n.id} is back on the files before the aborted change`);
});

t.test('pause holds the next host, resume goes on; a change during a rollout supersedes it', async (t) => {
  await rest('PATCH', '/v1/settings', { logSeverity: 'INFO' });
  const { id } = await newest();
  const paused = await rest('POST', `/v1/rollouts/${id}/pause`);
  t.equal(paused.status, 200);
  t.equal(paused.body.state, 'paused');
  t.equal((await rest('POST', `/v1/rollouts/${id}/pause`)).status, 409, 'pausing twice is refused');
  // Hosts already applying finish; none after them is released while paused.
  const settled = await waitFor('the applying host to finish', async () => {
    const r = (await rest('GET', `/v1/rollouts/${id}`)).body;
    return r.hosts.applying === 0 ? r : undefined;
  });
  t.equal(settled.hosts.pending, hosts.length - 1, 'the hosts after the first wait while paused');
  t.equal((await rest('POST', `/v1/rollouts/${id}/resume`)).body.state, 'running');

  await rest('PATCH', '/v1/settings', { logSeverity: 'ERROR' });
  const successor = await newest();
  t.not(successor.id, id);
  const superseded = (await rest('GET', `/v1/rollouts/${id}`)).body;
  t.equal(superseded.state, 'superseded');
  t.equal(superseded.supersededBy, successor.id);
  await rolloutIn(successor.id, ['completed']);
  for (const n of hosts) t.equal(severity(n), 'ERROR', `${n.id} moved to the newest files`);
});

t.test('all at once: every node released in one step, audited with the actor', async (t) => {
  const res = await rest('PATCH', '/v1/settings', { logSeverity: 'INFO', rollout: { strategy: 'all-at-once' } });
  t.equal(res.status, 200, JSON.stringify(res.body));
  const r = await newest();
  t.equal(r.strategy, 'all-at-once');
  t.equal(r.hosts.pending, 0, 'nothing waits');
  await rolloutIn(r.id, ['completed']);
  const audit = (await rest('GET', `/v1/audit?target=rollout:${r.id}&limit=100`)).body.items;
  t.ok(
    audit.some((e: any) => e.action === 'rollout.all-at-once' && /admin|token/.test(e.actor)),
    JSON.stringify(audit.map((e: any) => [e.actor, e.action])),
  );
  const list = (await rest('GET', '/v1/rollouts?limit=2')).body;
  t.equal(list.items.length, 2);
  t.ok(list.next, 'paged');
  t.equal((await rest('GET', `/v1/rollouts?limit=2&before=${encodeURIComponent(list.next)}`)).status, 200);
});

t.test('a host unassigned during a rollout leaves it: the rollout completes without it and never gives it the new files', async (t) => {
  const leaving = nodes[nodes.length - 1];
  await rest('PATCH', '/v1/settings', { logSeverity: 'WARN' });
  const unassigned = await rest('DELETE', `/v1/instances/${leaving.id}/assignment`);
  t.equal(unassigned.status, 200, JSON.stringify(unassigned.body));
  const { id } = await newest();
  const done = await rolloutIn(id, ['completed']);
  t.same(
    done.hostStates.map((h: any) => h.instanceId),
    hosts.filter((h) => h !== leaving).map((h) => h.id),
    'every host but the unassigned one',
  );
  // Nothing the rollout could still release: the newest rollout is done and none is under way.
  t.notOk('rollout' in (await rest('GET', '/v1/health')).body);
  t.equal((await rest('GET', `/v1/instances/${leaving.id}`)).body.assignment, null);
  t.not(severity(leaving), 'WARN', 'its files never got the change');
});
