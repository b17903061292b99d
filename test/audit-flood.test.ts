// Hostile floods cannot grow the audit log: refusals are counted per actor,
// action, reason and minute (the first recorded, the rest a count), reads
// are limited per API token and gRPC calls per instance, old events are
// pruned, and /metrics shows the store's size. Real HTTPS, real gRPC over
// TLS, real SQLite.
import t, { type Test } from 'tap';
import { Agent, request } from 'node:https';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { loadControlConfig } from '../control/config';
import type { RunningControlServer } from '../control/server';
import { SqliteStore } from '../control/store/sqlite';
import type { AuditEvent } from '../control/store/store';
import { testIdentity } from './support/fixtures';
import { removeDir, restRequest, scratchDir } from './support/harness';
import { startInProcessControl } from './support/in-process';

/** Requests in a flood: a count, not a duration, so that a loaded machine changes only how long it takes. */
const FLOOD = 1000;

interface Running {
  server: RunningControlServer;
  dir: string;
  admin: string;
  joinToken: string;
  rest: (method: string, path: string, body?: unknown, token?: string) => ReturnType<typeof restRequest>;
}

/** A control server with `file` as its control.yaml, on `dir` when given; stopped and removed when `t` ends. */
async function start(t: Test, name: string, file: Record<string, unknown> = {}, dir?: string): Promise<Running> {
  const configDir = scratchDir(`${name}-config`);
  const config = join(configDir, 'control.yaml');
  writeFileSync(config, stringify(file));
  const control = await startInProcessControl(name, { config }, dir);
  t.teardown(async () => {
    await control.close();
    removeDir(configDir);
  });
  const { server, adminToken: admin, joinToken } = control;
  const rest = (method: string, path: string, body?: unknown, token?: string) =>
    restRequest({ port: Number(new URL(server.restUrl).port), ca: server.caPem, token }, method, path, body);
  return { server, dir: control.dir, admin, joinToken, rest };
}

async function createToken(r: Running, name: string, scope: string): Promise<string> {
  const res = await r.rest('POST', '/v1/api-tokens', { name, scope }, r.admin);
  return (res.body as { token: string }).token;
}

/** GETs `path` `count` times, as fast as 8 keep-alive HTTPS connections allow; the count of each status and the time taken. */
async function flood(r: Running, path: string, token: string, count: number): Promise<{ statuses: Record<number, number>; ms: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: r.server.caPem });
  const port = Number(new URL(r.server.restUrl).port);
  const statuses: Record<number, number> = {};
  const began = Date.now();
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', servername: 'localhost', port, path, agent, headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.resume();
          res.on('end', () => {
            statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
            resolve();
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (sent++ < count) await one();
    }),
  );
  agent.destroy();
  return { statuses, ms: Date.now() - began };
}

const refusals = async (r: Running, action: string, actor: string): Promise<AuditEvent[]> =>
  (await r.server.service.store.listAudit({ limit: 1000 })).filter((e) => e.action === action && e.actor === actor);
const total = (rows: AuditEvent[]) => rows.reduce((sum, e) => sum + e.count, 0);

t.test('a monitor token flooding an admin route: every refusal counted, a row a minute', async (t) => {
  const r = await start(t, 'flood-rest');
  const monitor = await createToken(r, 'flooder', 'monitor');
  const before = (await r.server.service.store.listAudit({ limit: 1000 })).length;
  const { statuses, ms } = await flood(r, '/v1/api-tokens', monitor, FLOOD);
  t.same(statuses, { 403: FLOOD }, `${FLOOD} requests refused in ${ms} ms (loopback is not rate-limited by default)`);
  const rows = await refusals(r, 'rest.refused', 'rest:flooder');
  t.ok(rows.length >= 1 && rows.length <= 2, `${rows.length} audit rows (one per minute the flood touched)`);
  t.equal(total(rows), statuses[403], 'their counts add up to the refusals');
  t.match(rows[0], { target: '/v1/api-tokens', details: { reason: 'insufficient-scope', method: 'GET', needs: 'admin' } });
  if (statuses[403] > 1) t.ok(rows.at(-1)!.lastAt! >= rows.at(-1)!.at, 'the last refusal time is kept');
  const after = (await r.server.service.store.listAudit({ limit: 1000 })).length;
  t.ok(after - before <= 2, `the audit log grew by ${after - before} rows`);
  const listed = (await r.rest('GET', '/v1/audit?limit=1000', undefined, r.admin)).body as { items: Array<{ count: number }> };
  t.ok(
    listed.items.some((e) => e.count === rows[0].count),
    'REST /v1/audit shows the count',
  );
});

t.test('reads are limited per API token; another token is not slowed', async (t) => {
  const r = await start(t, 'flood-limit', {
    rate_limits: { rest_reads_per_minute: 60, rest_writes_per_minute: 0, exempt_loopback: false },
  });
  const monitor = await createToken(r, 'flooder', 'monitor');
  const other = await createToken(r, 'grafana', 'monitor');
  const { statuses, ms } = await flood(r, '/v1/api-tokens', monitor, 400);
  const refilled = Math.ceil((ms / 60_000) * 60);
  t.ok(statuses[403] >= 60 && statuses[403] <= 60 + refilled, `${statuses[403]} refused by scope: the burst of 60, then 1 a second`);
  t.equal(statuses[429], 400 - statuses[403], `${statuses[429]} answered 429 before reaching the scope check (${ms} ms)`);
  t.equal(total(await refusals(r, 'rest.refused', 'rest:flooder')), statuses[403], 'the audit counts only what reached the check');
  const limited = await r.rest('GET', '/v1/instances', undefined, monitor);
  t.equal(limited.status, 429);
  t.match(
    (limited.body as { message: string }).message,
    /more than 60 reads a minute with this API token; slow down \(rate_limits.rest_reads_per_minute\)/,
  );
  t.equal((await r.rest('GET', '/v1/instances', undefined, other)).status, 200, 'another token reads as usual');
  t.equal((await r.rest('GET', '/healthz')).status, 200, 'probes are not limited');
});

t.test('an enrolled host asking for other instances: refusals counted, calls limited per instance', async (t) => {
  const r = await start(t, 'flood-grpc', { rate_limits: { grpc_calls_per_minute: 100, exempt_loopback: false } });
  const joinToken = r.joinToken;
  const c = new ControlClient({ endpoints: [`localhost:${r.server.grpcPort}`], caPem: r.server.caPem });
  t.teardown(() => c.close());
  const me = 'i-0aaaaaaaaaaaaaaa1';
  await c.enroll(testIdentity(me), joinToken, 'test');
  const codes: Record<string, number> = {};
  const began = Date.now();
  for (let i = 0; i < 300; i++) {
    const other = `i-0${(0xb00000000000000 + i).toString(16)}`;
    const code = await c.getAssignment(other).then(
      () => 'OK',
      (err: grpc.ServiceError) => grpc.status[err.code],
    );
    codes[code] = (codes[code] ?? 0) + 1;
  }
  const refilled = Math.ceil(((Date.now() - began) / 60_000) * 100);
  t.equal(codes.OK, undefined, 'no other instance answered');
  t.ok(
    codes.PERMISSION_DENIED >= 100 && codes.PERMISSION_DENIED <= 100 + refilled,
    `${codes.PERMISSION_DENIED} refused: the burst of 100, then the rate`,
  );
  t.equal(codes.RESOURCE_EXHAUSTED, 300 - codes.PERMISSION_DENIED, 'the rest limited before any store lookup');
  const rows = await refusals(r, 'rpc.refused', `agent:${me}`);
  t.ok(rows.length <= 2, `${rows.length} audit rows`);
  t.equal(total(rows), codes.PERMISSION_DENIED, 'counted exactly');
  t.match(rows[0].details, { reason: 'instance-mismatch', method: 'GetAssignment' });
});

t.test('by default the control host itself (loopback) is not limited: agents and the demo on one host', async (t) => {
  const r = await start(t, 'flood-loopback');
  const c = new ControlClient({ endpoints: [`localhost:${r.server.grpcPort}`], caPem: r.server.caPem });
  t.teardown(() => c.close());
  const me = 'i-0aaaaaaaaaaaaaaa2';
  await c.enroll(testIdentity(me), r.joinToken, 'test');
  let ok = 0;
  for (let i = 0; i < 400; i++) ok += await c.getAssignment(me).then(() => 1);
  t.equal(ok, 400, 'more calls than grpc_calls_per_minute (300), all answered');
});

t.test('retention: events past the age go at start, the row cap keeps the newest', async (t) => {
  const day = 86_400_000;
  const now = Date.now();
  // A data directory as a server leaves it, with events of 100 and 10 days ago added while it is stopped.
  const dir = scratchDir('audit-retention');
  const first = await startInProcessControl('audit-retention', {}, dir);
  await first.server.close();
  const store = new SqliteStore(join(dir, 'control.db'));
  for (let i = 0; i < 30; i++) await store.recordAudit('test', 'old.event', 'x', { i }, now - 100 * day + i);
  for (let i = 0; i < 5; i++) await store.recordAudit('test', 'recent.event', 'x', { i }, now - 10 * day + i);
  await store.close();

  const r = await start(t, 'audit-retention', {}, dir);
  const events = await r.server.service.store.listAudit({ limit: 1000 });
  t.equal(events.filter((e) => e.action === 'old.event').length, 0, 'older than 90 days: removed at start');
  t.equal(events.filter((e) => e.action === 'recent.event').length, 5, 'younger: kept');
  t.match(
    events.find((e) => e.action === 'audit.pruned'),
    { actor: 'control', details: { deleted: 30, maxAgeMs: 90 * day } },
  );

  const cap = new SqliteStore(':memory:');
  t.teardown(() => cap.close());
  for (let i = 0; i < 25; i++) await cap.recordAudit('test', 'e', 'x', { i }, now);
  t.equal(await cap.pruneAudit({ maxAgeMs: 90 * day, maxRows: 10 }, now), 15);
  const kept = await cap.listAudit({ limit: 100 });
  t.same(
    kept.filter((e) => e.action === 'e').map((e) => e.details.i),
    [15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
    'the newest 10 are kept',
  );
  t.equal(await cap.pruneAudit({ maxAgeMs: 90 * day, maxRows: 100 }, now), 0, 'nothing more to remove');
});

t.test('control.yaml: audit retention and rate limits are validated', async (t) => {
  const dir = scratchDir('audit-config');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.yaml');
  writeFileSync(path, stringify({ audit: { max_age: '720h', max_rows: 5000, prune_interval: '10m' } }));
  t.match(loadControlConfig({ config: path }).audit, { maxAgeMs: 720 * 3_600_000, maxRows: 5000, pruneIntervalMs: 600_000 });
  const defaults = loadControlConfig({ 'data-dir': dir });
  t.match(defaults.audit, { maxAgeMs: 90 * 86_400_000, maxRows: 1_000_000 });
  t.match(defaults.rateLimits, { restReadsPerMinute: 1200, grpcCallsPerMinute: 300 });
  writeFileSync(path, stringify({ audit: { max_age: '90d' } }));
  t.throws(() => loadControlConfig({ config: path }), /audit\.max_age/);
});

t.test('/metrics shows the size of the store', async (t) => {
  const r = await start(t, 'store-bytes');
  const metrics = (await r.rest('GET', '/metrics')).body as string;
  const match = /^teleboot_store_bytes (\d+)$/m.exec(metrics);
  t.ok(match, 'teleboot_store_bytes is exported');
  const onDisk = statSync(join(r.dir, 'control.db')).size;
  const reported = Number(match![1]);
  t.ok(reported >= onDisk && reported > 4096, `${reported} bytes reported, the database file holds ${onDisk}`);
});
