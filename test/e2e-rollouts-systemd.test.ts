// A settings change rolled out under real systemd (each host its own systemd
// in a private namespace, the stand-in Teleport started by systemd from the
// unit the agent wrote): the auth servers restart one at a time, then the
// nodes, each only after the host before it is ready again; from the
// stand-ins' own records of their starts and readiness.
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

  const events = (b: Booted, since: number): Array<{ event: string; at: number }> => {
    const file = join(b.files.root, 'var/lib/teleport', 'standin-events.jsonl');
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    return lines.map((l) => JSON.parse(l)).filter((e) => e.at >= since);
  };

  t.test('auth servers restart one at a time, then the nodes: never two auth servers down', async (t) => {
    const hosts: Array<{ id: string; role: string; booted: Booted }> = [];
    for (const role of ['auth', 'auth', 'node', 'node']) {
      const imds = await world.instance();
      const id = imds.instance.instanceId;
      await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role });
      hosts.push({ id, role, booted: await bootUnderSystemd(t, world, imds) });
    }
    for (const h of hosts)
      await world.control
        .waitForInstance(h.id, (i) => i.health === 'ready' && i.appliedGeneration === i.generation, 120_000)
        .catch((err) => t.fail(`${err.message}\n${h.booted.logs()}`));
    const rank: Record<string, number> = { auth: 0, node: 1 };
    hosts.sort((a, b) => rank[a.role] - rank[b.role] || (a.id < b.id ? -1 : 1));

    const since = Date.now();
    t.equal((await world.control.rest('PATCH', '/v1/settings', { logSeverity: 'DEBUG' })).status, 200);
    const { id } = (await world.control.rest('GET', '/v1/rollouts?limit=1')).body.items[0];
    const deadline = Date.now() + 180_000;
    let rollout: any;
    do {
      await new Promise((r) => setTimeout(r, 500));
      rollout = (await world.control.rest('GET', `/v1/rollouts/${id}`)).body;
    } while (rollout.state === 'running' && Date.now() < deadline);
    t.equal(rollout.state, 'completed', JSON.stringify(rollout.hostStates));
    t.same(
      rollout.hostStates.map((h: any) => h.instanceId),
      hosts.map((h) => h.id),
      'auth first, then nodes',
    );
    const windows = hosts.map((h) => {
      const e = events(h.booted, since);
      const start = e.find((x) => x.event === 'start');
      const ready = e.find((x) => x.event === 'ready' && x.at >= (start?.at ?? 0));
      t.ok(start && ready, `${h.role} ${h.id}: systemd restarted Teleport and it became ready`);
      return { start: start?.at ?? 0, ready: ready?.at ?? 0 };
    });
    for (let i = 1; i < windows.length; i++)
      t.ok(windows[i].start >= windows[i - 1].ready, `${hosts[i].role} ${hosts[i].id} restarted after ${hosts[i - 1].id} was ready`);
    for (const h of hosts) t.equal(parse(readFileSync(h.booted.files.teleportConfig, 'utf8')).teleport.log.severity, 'DEBUG');
  });
}
