// A settings change rolled out under real systemd over 2 auth servers, 2
// proxies and 3 nodes (each host its own systemd in a private namespace, the
// stand-in Teleport started by systemd from the unit the agent wrote): the
// auth servers restart one at a time, then the proxies, then the nodes,
// each only after the host before it is ready again. Asserted twice: from
// the rollout's own record (when each host was released and became ready)
// and from the stand-ins' records of their starts and readiness.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { bootUnderSystemd, type Booted } from './support/systemd-agent';
import { canRunSystemdNamespace } from './support/systemd-ns';
import { startWorld, type World } from './support/world';

const can = canRunSystemdNamespace();
if (!can.ok) {
  t.skip(`needs systemd in a namespace: ${can.reason}`, () => {});
} else {
  let world: World;
  t.before(async () => {
    world = await startWorld('e2e-rollouts-systemd');
  });
  t.teardown(() => world?.close());

  const ROLES = ['auth', 'auth', 'proxy', 'proxy', 'node', 'node', 'node'];
  const rank: Record<string, number> = { auth: 0, proxy: 1, node: 2 };

  const events = (b: Booted, since: number): Array<{ event: string; at: number }> => {
    const file = join(b.files.root, 'var/lib/teleport', 'standin-events.jsonl');
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    return lines.map((l) => JSON.parse(l)).filter((e) => e.at >= since);
  };
  /** Whether two down-time windows overlap (one ends before the other starts: they do not). */
  const overlap = (a: { start: number; ready: number }, b: { start: number; ready: number }) => a.start < b.ready && b.start < a.ready;

  t.test('auth servers restart one at a time, then the proxies, then the nodes: never two auth servers down', async (t) => {
    // Booted side by side (each its own namespace), so that seven hosts do not take seven boots' time.
    const hosts = await Promise.all(
      ROLES.map(async (role) => {
        const imds = await world.instance();
        const id = imds.instance.instanceId;
        await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role });
        return { id, role, booted: await bootUnderSystemd(t, world, imds) };
      }),
    );
    for (const h of hosts)
      await world.control
        .waitForInstance(h.id, (i) => i.health === 'ready' && i.appliedGeneration === i.generation, 180_000)
        .catch((err) => t.fail(`${err.message}\n${h.booted.logs()}`));
    const roleOf = new Map(hosts.map((h) => [h.id, h.role]));

    const since = Date.now();
    t.equal((await world.control.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' })).status, 200);
    const { id } = (await world.control.rest('GET', '/v1/rollouts?limit=1')).body.items[0];
    const deadline = Date.now() + 300_000;
    let rollout: any;
    do {
      await new Promise((r) => setTimeout(r, 500));
      rollout = (await world.control.rest('GET', `/v1/rollouts/${id}`)).body;
    } while (rollout.state === 'running' && Date.now() < deadline);
    t.equal(rollout.state, 'completed', JSON.stringify(rollout.hostStates));
    t.same(rollout.hostStates.map((h: any) => h.instanceId).sort(), hosts.map((h) => h.id).sort(), 'every host is in the rollout');

    // The rollout's record: in the order released, auth, auth, proxy, proxy, node, node, node,
    // each released only once the one before it was ready (every group's maxUnavailable is 1 here).
    const released = [...rollout.hostStates].sort((a: any, b: any) => a.releasedAt - b.releasedAt);
    t.same(
      released.map((h: any) => roleOf.get(h.instanceId)),
      ROLES,
      'released auth first, then proxies, then nodes',
    );
    for (let i = 1; i < released.length; i++)
      t.ok(
        released[i].releasedAt >= released[i - 1].finishedAt,
        `${roleOf.get(released[i].instanceId)} ${released[i].instanceId} released after ${released[i - 1].instanceId} was ready`,
      );

    // The stand-ins' own record: when systemd restarted each Teleport and when it was ready again.
    const windows = hosts.map((h) => {
      const e = events(h.booted, since);
      const start = e.find((x) => x.event === 'start');
      const ready = e.find((x) => x.event === 'ready' && x.at >= (start?.at ?? 0));
      t.ok(start && ready, `${h.role} ${h.id}: systemd restarted Teleport and it became ready`);
      return { id: h.id, role: h.role, start: start?.at ?? 0, ready: ready?.at ?? 0 };
    });
    const byStart = [...windows].sort((a, b) => a.start - b.start);
    t.same(
      byStart.map((w) => w.role),
      ROLES,
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
    for (const h of hosts) t.equal(parse(readFileSync(h.booted.files.teleportConfig, 'utf8')).teleport.log.severity, 'DEBUG');
  });
}
