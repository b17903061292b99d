// Rollouts under real systemd over 2 auth servers, 2 proxies and 3 nodes,
// booted once and shared by every subtest (each host its own systemd in a
// private namespace, the stand-in Teleport started by systemd from the unit
// the agent wrote):
//  - a settings change restarts the auth servers one at a time, then the
//    proxies, then the nodes, each only after the host before it is ready
//    again; asserted from the rollout's record and from the stand-ins' own
//    records of their starts and readiness;
//  - a node whose Teleport never becomes ready halts the rollout, the node
//    after it keeps its files, and abort puts the old files back on the
//    hosts reached, restarting Teleport there;
//  - pause holds the next host, resume goes on to the end;
//  - a change saved during a rollout supersedes it.
// Each subtest leaves every host ready on its generation for the next.
import t from 'tap';
import { bootUnderSystemd, type Booted } from './support/systemd-agent';
import { canRunSystemdNamespace } from './support/systemd-ns';
import {
  FLEET_ROLES,
  bootFleet,
  breakReadiness,
  teleportReady,
  logSeverity,
  rolloutsApi,
  standinEvents,
  teleportYaml,
  waitFor,
  type FleetHost,
} from './support/rollout-fleet';
import { startWorld, type World } from './support/world';

const can = canRunSystemdNamespace();
if (!can.ok) {
  t.skip(`needs systemd in a namespace: ${can.reason}`, () => {});
} else {
  let world: World;
  /** In the order a rollout reaches them: auth, proxy, node. */
  let hosts: FleetHost<Booted>[] = [];
  const root = t;
  t.before(async () => {
    // The pin the auth servers publish is the one already in SSM: the files of a host compare equal before and after.
    world = await startWorld('e2e-rollouts-systemd', { caPin: 'standin' });
    // Booted side by side (each its own namespace), so that seven hosts do not take seven boots' time.
    hosts = await bootFleet(world, (imds) => bootUnderSystemd(root, world, imds), { timeoutMs: 180_000, logs: (b) => b.logs() });
  });
  t.teardown(() => world?.close());
  // The next subtest starts from a fleet whose Teleports are all ready (a rollout a failed subtest
  // left under way is superseded by the next change).
  t.afterEach(async () => {
    for (const h of hosts) await world.control.waitForInstance(h.id, teleportReady, 180_000);
  });

  // A rollout under systemd: a restart is systemctl's, a failed host waits out the agent's ready_timeout (20 s).
  const api = () => rolloutsApi(world.control, 300_000);
  const rank: Record<string, number> = { auth: 0, proxy: 1, node: 2 };
  const instance = async (id: string) => (await api().rest('GET', `/v1/instances/${id}`)).body;
  const starts = (h: FleetHost<Booted>, since: number) => standinEvents(h, since).filter((e) => e.event === 'start');
  /** Whether two down-time windows overlap (one ends before the other starts: they do not). */
  const overlap = (a: { start: number; ready: number }, b: { start: number; ready: number }) => a.start < b.ready && b.start < a.ready;

  t.test('auth servers restart one at a time, then the proxies, then the nodes: never two auth servers down', async (t) => {
    const roleOf = new Map(hosts.map((h) => [h.id, h.role]));
    const since = Date.now();
    t.equal((await api().rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' })).status, 200);
    const { id } = await api().newest();
    const rollout = await api().rolloutIn(id, ['completed', 'halted', 'aborted', 'superseded']);
    t.equal(rollout.state, 'completed', JSON.stringify(rollout.hostStates));
    t.same(rollout.hostStates.map((h: any) => h.instanceId).sort(), hosts.map((h) => h.id).sort(), 'every host is in the rollout');

    // The rollout's record: in the order released, auth, auth, proxy, proxy, node, node, node,
    // each released only once the one before it was ready (every group's maxUnavailable is 1 here).
    const released = [...rollout.hostStates].sort((a: any, b: any) => a.releasedAt - b.releasedAt);
    t.same(
      released.map((h: any) => roleOf.get(h.instanceId)),
      FLEET_ROLES,
      'released auth first, then proxies, then nodes',
    );
    for (let i = 1; i < released.length; i++)
      t.ok(
        released[i].releasedAt >= released[i - 1].finishedAt,
        `${roleOf.get(released[i].instanceId)} ${released[i].instanceId} released after ${released[i - 1].instanceId} was ready`,
      );

    // The stand-ins' own record: when systemd restarted each Teleport and when it was ready again.
    const windows = hosts.map((h) => {
      const e = standinEvents(h, since);
      const start = e.find((x) => x.event === 'start');
      const ready = e.find((x) => x.event === 'ready' && x.at >= (start?.at ?? 0));
      t.ok(start && ready, `${h.role} ${h.id}: systemd restarted Teleport and it became ready`);
      return { id: h.id, role: h.role, start: start?.at ?? 0, ready: ready?.at ?? 0 };
    });
    const byStart = [...windows].sort((a, b) => a.start - b.start);
    t.same(
      byStart.map((w) => w.role),
      FLEET_ROLES,
      'Teleport restarted on the auth servers first, then the proxies, then the nodes',
    );
    for (let i = 1; i < byStart.length; i++)
      t.ok(byStart[i].start >= byStart[i - 1].ready, `${byStart[i].role} ${byStart[i].id} restarted after ${byStart[i - 1].id} was ready`);
    const auth = windows.filter((w) => w.role === 'auth');
    t.notOk(overlap(auth[0], auth[1]), 'never two auth servers down at once');
    for (const w of windows.filter((x) => rank[x.role] > 0))
      t.ok(
        windows.filter((x) => rank[x.role] < rank[w.role]).every((x) => w.start >= x.ready),
        `${w.role} ${w.id} restarted after every ${w.role === 'proxy' ? 'auth server' : 'auth server and proxy'} was ready`,
      );
    for (const h of hosts) t.equal(logSeverity(h), 'DEBUG');
  });

  t.test(
    'a node whose Teleport never becomes ready halts the rollout; the node after it keeps its files; abort puts the old ones back',
    async (t) => {
      const nodes = hosts.filter((h) => h.role === 'node');
      const [first, broken, last] = nodes;
      const reached = hosts.filter((h) => h !== last);
      const oldFiles = new Map(hosts.map((h) => [h.id, teleportYaml(h)]));
      const lastGeneration = (await instance(last.id)).appliedGeneration;
      const repair = breakReadiness(broken);
      t.teardown(repair);

      const since = Date.now();
      t.equal((await api().rest('PATCH', '/v1/settings', { logSeverity: 'WARN' })).status, 200);
      const { id } = await api().newest();
      const halted = await api().rolloutIn(id, ['halted', 'completed']);
      t.equal(halted.state, 'halted', 'the rollout halts by itself');
      t.match(halted.note, /1 of 3 other hosts failed/);
      const stateOf = new Map<string, any>(halted.hostStates.map((h: any) => [h.instanceId, h]));
      for (const h of hosts.filter((x) => x.role !== 'node').concat(first))
        t.equal(stateOf.get(h.id)?.state, 'ready', `${h.role} ${h.id} is ready`);
      const failed = stateOf.get(broken.id);
      t.equal(failed?.state, 'failed', 'the node whose Teleport never became ready failed');
      t.match(failed?.message, /did not answer \/readyz/, "with its agent's last status message");
      t.ok(Array.isArray(failed?.logTail) && failed.logTail.length > 0, "and its Teleport's last log lines (the unit's journal)");
      t.equal(stateOf.get(last.id)?.state, 'pending', 'the node after it was not reached');
      t.equal(teleportYaml(last), oldFiles.get(last.id), 'it keeps its teleport.yaml');
      t.equal((await instance(last.id)).appliedGeneration, lastGeneration, 'and its generation');
      t.same(starts(last, since), [], 'and its Teleport was not restarted');
      t.equal(logSeverity(first), 'WARN', 'the node before the broken one has the new files');

      // The operator fixes the host and aborts: every host the rollout reached goes back.
      repair();
      const abortedAt = Date.now();
      const aborted = await api().rest('POST', `/v1/rollouts/${id}/abort`);
      t.equal(aborted.status, 200, JSON.stringify(aborted.body));
      t.equal(aborted.body.state, 'aborted');
      const rollback = await api().newest();
      t.match(rollback, { kind: 'rollback', hosts: { total: reached.length } });
      const back = await api().rolloutIn(rollback.id, ['completed', 'halted']);
      t.equal(back.state, 'completed', JSON.stringify(back.hostStates));
      t.equal(back.rollbackOf, id);
      for (const h of reached) {
        const served = back.hostStates.find((s: any) => s.instanceId === h.id);
        t.equal((await instance(h.id)).appliedGeneration, served?.toGeneration, `${h.role} ${h.id} applied the generation rolled back to`);
        t.equal(teleportYaml(h), oldFiles.get(h.id), `${h.role} ${h.id}: teleport.yaml is the old one again`);
        const e = standinEvents(h, abortedAt);
        const start = e.find((x) => x.event === 'start');
        t.ok(
          start && e.some((x) => x.event === 'ready' && x.at >= start.at),
          `${h.role} ${h.id}: systemd restarted Teleport on the old files and it is ready`,
        );
      }
      t.equal(teleportYaml(last), oldFiles.get(last.id), 'the node never reached still has its files');
      t.same(starts(last, since), [], 'and was never restarted');
    },
  );

  t.test('pause holds the next host; resume goes on to the end', async (t) => {
    const since = Date.now();
    t.equal((await api().rest('PATCH', '/v1/settings', { logSeverity: 'INFO' })).status, 200);
    const { id } = await api().newest();
    const paused = await api().rest('POST', `/v1/rollouts/${id}/pause`);
    t.equal(paused.status, 200, JSON.stringify(paused.body));
    t.equal(paused.body.state, 'paused');
    t.equal((await api().rest('POST', `/v1/rollouts/${id}/pause`)).status, 409, 'pausing twice is refused');

    // Hosts already applying finish; none after them is released while paused.
    const settled = await waitFor('the hosts applying to finish', async () => {
      const r = (await api().rest('GET', `/v1/rollouts/${id}`)).body;
      return r.hosts.applying === 0 ? r : undefined;
    });
    const waiting = settled.hostStates.filter((h: any) => h.state === 'pending').map((h: any) => h.instanceId);
    t.ok(waiting.length >= hosts.length - 1, `hosts wait while paused (${waiting.length} pending)`);
    // Watched for a while (about 15 heartbeats and engine steps): the rollout stays paused,
    // no host is released, no Teleport of a waiting host restarts.
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = (await api().rest('GET', `/v1/rollouts/${id}`)).body;
      if (r.state !== 'paused' || r.hosts.pending !== waiting.length) {
        t.fail(`released while paused: ${JSON.stringify(r.hostStates)}`);
        break;
      }
    }
    for (const h of hosts.filter((x) => waiting.includes(x.id))) {
      t.same(starts(h, since), [], `${h.role} ${h.id}: not restarted while paused`);
      t.not(logSeverity(h), 'INFO', `${h.role} ${h.id}: keeps its files while paused`);
    }

    const resumed = await api().rest('POST', `/v1/rollouts/${id}/resume`);
    t.equal(resumed.body.state, 'running');
    const done = await api().rolloutIn(id, ['completed', 'halted', 'superseded']);
    t.equal(done.state, 'completed', JSON.stringify(done.hostStates));
    for (const h of hosts) t.equal(logSeverity(h), 'INFO', `${h.role} ${h.id} has the new files`);
  });

  t.test('a change saved during a rollout supersedes it: hosts not reached move once, to the newest files', async (t) => {
    const since = Date.now();
    t.equal((await api().rest('PATCH', '/v1/settings', { logSeverity: 'ERROR' })).status, 200);
    const { id } = await api().newest();
    // Under way: its first host is ready and it goes on.
    await waitFor('a host of the first rollout to be ready', async () => {
      const r = (await api().rest('GET', `/v1/rollouts/${id}`)).body;
      return r.hosts.ready > 0 || r.state !== 'running' ? r : undefined;
    });
    t.equal((await api().rest('PATCH', '/v1/settings', { logSeverity: 'WARN' })).status, 200);
    const successor = await api().newest();
    t.not(successor.id, id, 'the second change is a rollout of its own');
    const superseded = (await api().rest('GET', `/v1/rollouts/${id}`)).body;
    t.equal(superseded.state, 'superseded');
    t.equal(superseded.supersededBy, successor.id);
    const done = await api().rolloutIn(successor.id, ['completed', 'halted', 'superseded']);
    t.equal(done.state, 'completed', JSON.stringify(done.hostStates));
    for (const h of hosts) t.equal(logSeverity(h), 'WARN', `${h.role} ${h.id} has the newest files`);
    const notReached = hosts.filter((h) => superseded.hostStates.some((s: any) => s.instanceId === h.id && s.state === 'pending'));
    t.ok(notReached.length > 0, 'some hosts were not reached by the first rollout');
    for (const h of notReached) t.equal(starts(h, since).length, 1, `${h.role} ${h.id}: not reached by the first, restarted once`);
  });
}
