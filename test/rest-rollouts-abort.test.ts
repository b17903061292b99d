// Rollouts beyond the happy path, end to end (teleboot-control and 1 auth, 2
// node agents as processes, each supervising the stand-in teleport): a host
// the rollout has not reached is healthy and shows its state in the
// rollout; an abort puts back the settings or the assignment the change
// stored (a host booting afterwards gets the old config); a host offline
// when its turn comes is skipped, not failed.
import t from 'tap';
import {
  bootFleet,
  bootProcessAgent,
  bootProcessHost,
  logSeverity as severity,
  rolloutsApi,
  waitFor,
  type ProcessHost as Host,
} from './support/rollout-fleet';
import { startWorld, type World } from './support/world';

/** The file's own test: what must outlive a subtest (an agent) is torn down with it. */
const root = t;
let world: World;
let hosts: Host[] = [];
let calls: ReturnType<typeof rolloutsApi>;
t.before(async () => {
  world = await startWorld('rest-rollouts-abort');
  calls = rolloutsApi(world.control);
  hosts = await bootFleet(world, (imds) => bootProcessAgent(t, world, imds), { roles: ['auth', 'node', 'node'] });
});
t.teardown(() => world?.close());

const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => calls.rest(method, path, body, headers);
const instance = async (id: string) => (await rest('GET', `/v1/instances/${id}`)).body;
/** Saves a settings change and pauses its rollout at once; returns it once no host applies any more. */
async function pausedChange(patch: Record<string, unknown>) {
  const patched = await rest('PATCH', '/v1/settings', patch);
  if (patched.status !== 200) throw new Error(`PATCH /v1/settings: ${patched.status} ${JSON.stringify(patched.body)}`);
  const { id } = await calls.newest();
  const pausing = await rest('POST', `/v1/rollouts/${id}/pause`);
  if (pausing.status !== 200) throw new Error(`pause: ${pausing.status} ${JSON.stringify(pausing.body)}`);
  return waitFor('the applying host to finish', async () => {
    const r = (await rest('GET', `/v1/rollouts/${id}`)).body;
    return r.hosts.applying === 0 ? r : undefined;
  });
}

t.test('a host the rollout has not reached is ready, with its state in the rollout; abort puts the settings back', async (t) => {
  const before = await rest('GET', '/v1/settings');
  const oldSeverity = hosts.map(severity)[0];
  const paused = await pausedChange({ logSeverity: 'DEBUG' });
  const pending = paused.hostStates.filter((h: any) => h.state === 'pending');
  t.ok(pending.length > 0, 'the pause caught hosts not reached yet');
  for (const h of pending) {
    const i = await instance(h.instanceId);
    t.equal(i.health, 'ready', `${h.instanceId}, not reached, is ready (not converging)`);
    t.same(i.rollout, { id: paused.id, state: 'pending' }, 'and shows its state in the rollout');
    t.ok(i.releasedGeneration < i.generation, 'it is served its old generation');
  }
  const listed = (await rest('GET', '/v1/instances?health=converging')).body.items.map((i: any) => i.instanceId);
  for (const h of pending) t.notOk(listed.includes(h.instanceId), `${h.instanceId} is not listed as converging`);
  const page = (await rest('GET', '/v1/instances?limit=100')).body.items;
  for (const h of pending) {
    const inList = page.find((i: any) => i.instanceId === h.instanceId);
    t.match(
      inList,
      { health: 'ready', rollout: { id: paused.id, state: 'pending' } },
      `${h.instanceId}: the list shows its rollout state too`,
    );
  }

  const aborted = await rest('POST', `/v1/rollouts/${paused.id}/abort`);
  t.equal(aborted.status, 200, JSON.stringify(aborted.body));
  const after = await rest('GET', '/v1/settings');
  t.equal(after.body.logSeverity, before.body.logSeverity ?? undefined, 'the settings are back as they were before the change');
  t.not(after.headers.etag, before.headers.etag, 'as a new version (the ETag changed)');
  const audit = (await rest('GET', '/v1/audit?target=settings&limit=500')).body.items;
  t.match(audit[audit.length - 1], { action: 'settings.restore', details: { abortOf: paused.id } }, 'audited');

  const rollback = await calls.newest();
  if (rollback.kind === 'rollback') await calls.rolloutIn(rollback.id, ['completed']);
  for (const h of hosts) t.equal(severity(h), oldSeverity, `${h.id} has its files from before the change`);
  for (const h of hosts)
    await world.control
      .waitForInstance(h.id, (i) => i.health === 'ready', 60_000)
      .then(
        () => t.pass(`${h.id} ready after the rollback`),
        (err: Error) => t.fail(err.message),
      );

  // An instance that boots after the abort gets the settings from before the change.
  // Its agent runs until the file ends (the later subtests roll out over it too).
  const booted = await bootProcessHost(root, world, 'node');
  await world.control.waitForInstance(booted.id, (i) => i.health === 'ready', 90_000);
  t.equal(severity(booted), oldSeverity, 'a host booting after the abort gets the old config');
  hosts.push(booted);
});

t.test('abort of an assignment change puts the previous assignment back', async (t) => {
  const node = hosts[1];
  const before = (await instance(node.id)).assignment;
  const put = await rest('PUT', `/v1/instances/${node.id}/assignment`, { role: 'node', labels: { env: 'staging' } });
  t.equal(put.status, 200, JSON.stringify(put.body));
  const started = await calls.newest();
  t.match(started, { reason: `PUT /v1/instances/${node.id}/assignment`, hosts: { total: 1 } });
  const aborted = await rest('POST', `/v1/rollouts/${started.id}/abort`);
  t.equal(aborted.status, 200, JSON.stringify(aborted.body));
  t.same((await instance(node.id)).assignment, before, 'the assignment before the change is stored again');
  const audit = (await rest('GET', `/v1/audit?target=${node.id}&limit=500`)).body.items;
  t.match(audit[audit.length - 1], { action: 'assignment.restore', details: { abortOf: started.id } });
  const rollback = await calls.newest();
  if (rollback.kind === 'rollback') await calls.rolloutIn(rollback.id, ['completed']);
  await world.control.waitForInstance(node.id, (i) => i.health === 'ready', 60_000);
});

t.test('a host offline when its turn comes is skipped, not failed; the rollout completes', async (t) => {
  const paused = await pausedChange({ logSeverity: 'WARN' });
  const gone = hosts.find((h) => paused.hostStates.some((x: any) => x.instanceId === h.id && x.state === 'pending'));
  if (!gone) return t.fail('the pause caught no host pending');
  gone.booted.proc.kill('SIGKILL');
  await world.control.waitForInstance(gone.id, (i) => i.health === 'offline', 60_000);
  t.equal((await rest('POST', `/v1/rollouts/${paused.id}/resume`)).status, 200);
  const done = await calls.rolloutIn(paused.id, ['completed', 'halted']);
  t.equal(done.state, 'completed', 'the offline host did not halt the rollout');
  const skipped = done.hostStates.find((h: any) => h.instanceId === gone.id);
  t.match(skipped, { state: 'skipped', message: /offline when its turn came/ }, 'it is recorded as skipped, with why');
  t.equal(done.hosts.failed, 0, 'and not as failed');
  t.equal(done.hosts.skipped, 1, 'only the offline host is skipped');
  const audit = (await rest('GET', `/v1/audit?target=rollout:${paused.id}&limit=100`)).body.items;
  t.ok(
    audit.some((e: any) => e.action === 'rollout.skipped' && e.details.instanceId === gone.id),
    'the skip is audited',
  );
  for (const h of hosts.filter((x) => x !== gone)) t.equal(severity(h), 'WARN', `${h.id} got the change`);
});
