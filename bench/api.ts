// The REST API over a large fleet: 10,000 instances stored (through the store
// API, beside a running control server), then GET /v1/instances?limit=100 and
// GET /v1/health over HTTPS from concurrent clients on keep-alive connections,
// with the control server's peak RSS; on SQLite and on PostgreSQL.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PgStore } from '../control/store/postgres';
import type { RecordStore } from '../control/store/record-store';
import { SqliteStore } from '../control/store/sqlite';
import { ControlProcess, removeDir, scratchDir } from '../test/support/harness';
import { PgCluster, postgresUnavailable } from '../test/support/postgres';
import { identity } from '../test/support/store-conformance';
import { procCpuSeconds, procMemory } from './fleet';
import { postgresCpuSeconds } from './pg-world';
import { fmtBytes, fmtMs, percentile, summary } from './stats';

export interface ApiOptions {
  instances: number;
  clients: number;
  /** Requests per endpoint, spread over the clients. */
  requests: number;
  /** Which stores to measure: "sqlite", "postgres" (SQLite first when both). */
  stores: readonly string[];
  progress: (line: string) => void;
}

export interface ApiRun {
  store: 'sqlite' | 'postgres';
  seedMs: number;
  listMs: number[];
  healthMs: number[];
  /** Control server CPU per request (ms): what the latency would be made of on a machine of its own. */
  listCpuMs: number;
  healthCpuMs: number;
  /** PostgreSQL's CPU per request (ms), its backends included; NaN on SQLite (in the control server's CPU). */
  listDatabaseCpuMs: number;
  healthDatabaseCpuMs: number;
  /** Bytes of one list response's body. */
  listBodyBytes: number;
  controlPeakRssBytes: number;
  /** The machine's 1-minute load average when each was measured: shared cores make p99 swing with it. */
  listLoad: number;
  healthLoad: number;
  /** The control server's own CPU (ms per second) just before each was measured: background work the figures include. */
  listIdleCpuMsPerS: number;
  healthIdleCpuMsPerS: number;
}

/**
 * Waits (at most 30 s) for the control server to finish what the seeding
 * left it (change feed, counts): a second in which it used under 20 ms of
 * CPU. Its CPU in the last second (ms), so that background work is not
 * counted as the cost of requests unnoticed.
 */
async function settle(pid: number): Promise<number> {
  let ms = NaN;
  for (let i = 0; i < 30 && !(ms < 20); i++) {
    const before = procCpuSeconds(pid);
    await new Promise((done) => setTimeout(done, 1000));
    ms = (procCpuSeconds(pid) - before) * 1000;
  }
  return ms;
}

/** Stores `count` instances: 1 in 20 a proxy, the rest nodes; 9 in 10 enrolled, of those 9 in 10 reported ready. */
async function seed(store: RecordStore, count: number): Promise<void> {
  const one = async (i: number) => {
    const id = `i-${String(i).padStart(17, '0')}`;
    await store.setAssignment(id, { roles: i % 20 ? ['node'] : ['proxy'], labels: { bench: 'api' } }, 'bench', Date.now());
    if (i % 10 === 0) return;
    await store.enroll(identity(id, { Name: `host-${i}` }), 'bench', Date.now());
    if (i % 10 === 1) return;
    const status = { state: 'ready' as const, teleportUnitState: 'active', teleportReady: true, message: '', agentVersion: 'bench' };
    await store.recordStatus(id, 1, { ...status, reportedAt: Date.now() }, null);
  };
  const CONCURRENCY = 32;
  for (let i = 0; i < count; i += CONCURRENCY)
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, (_, k) => one(i + k)));
}

/** `requests` GETs of `path` from `clients` concurrent clients; each request's milliseconds, and the bytes of the last body. */
async function load(
  control: ControlProcess,
  path: string,
  clients: number,
  requests: number,
): Promise<{ times: number[]; bodyBytes: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients, ca: readFileSync(control.caFile, 'utf8') });
  const port = control.restPort;
  const token = control.adminToken;
  let bodyBytes = 0;
  const get = () =>
    new Promise<void>((done, fail) => {
      const req = request(
        { host: '127.0.0.1', servername: 'localhost', port, path, agent, headers: { authorization: `Bearer ${token}` } },
        (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => (bytes += chunk.length));
          res.on('end', () => (bodyBytes = bytes));
          res.on('end', () => (res.statusCode === 200 ? done() : fail(new Error(`GET ${path}: ${res.statusCode}`))));
        },
      );
      req.on('error', fail);
      req.end();
    });
  const times: number[] = [];
  let left = requests;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (left-- > 0) {
        const start = performance.now();
        await get();
        times.push(performance.now() - start);
      }
    }),
  );
  agent.destroy();
  return { times, bodyBytes };
}

export async function apiBench(kind: ApiRun['store'], opts: ApiOptions): Promise<ApiRun> {
  const dir = scratchDir(`bench-api-${kind}`);
  let cluster: PgCluster | undefined;
  let control: ControlProcess | undefined;
  let store: RecordStore | undefined;
  try {
    // Agents that report every 10 minutes: the stored fleet stays online for the whole run, as a live one would.
    let args = ['--heartbeat-interval', '10m'];
    let env: Record<string, string> = {};
    if (kind === 'postgres') {
      cluster = await PgCluster.create();
      const db = await cluster.createDatabase();
      args = [...args, '--store', db.url];
      env = { PGPASSWORD: db.password };
      control = new ControlProcess(join(dir, 'control'), args, env);
      await control.start();
      store = await PgStore.open({ url: db.url, password: db.password });
    } else {
      control = new ControlProcess(join(dir, 'control'), args, env);
      await control.start();
      store = new SqliteStore(join(control.dataDir, 'control.db'));
    }
    const pid = control.proc!.pid!;
    let peak = procMemory(pid).rss;
    opts.progress(`api ${kind}: control started, RSS ${fmtBytes(peak)}`);
    const sampler = setInterval(() => (peak = Math.max(peak, procMemory(pid).rss)), 100);
    try {
      const start = performance.now();
      await seed(store, opts.instances);
      const seedMs = performance.now() - start;
      // As autovacuum would within a minute of so many changes (a stored fleet has been analyzed): the planner's
      // statistics, without which it scans the instances for the few that serve a certificate.
      if (store instanceof PgStore) await store.analyze();
      const rss = () => `control RSS ${fmtBytes(procMemory(pid).rss)} (peak ${fmtBytes(peak)})`;
      opts.progress(`api ${kind}: ${opts.instances} instances stored in ${Math.round(seedMs)} ms; ${rss()}`);
      // One warm-up round each, so that the figures are of a running server.
      await load(control, '/v1/instances?limit=100', opts.clients, opts.clients);
      await load(control, '/v1/health', opts.clients, opts.clients);
      const databaseCpu = () => (cluster ? postgresCpuSeconds(cluster) : NaN);
      const measure = async (path: string) => {
        const idle = await settle(pid);
        const cpu = procCpuSeconds(pid);
        const db = databaseCpu();
        const { times, bodyBytes } = await load(control!, path, opts.clients, opts.requests);
        const perRequest = (seconds: number) => (seconds * 1000) / opts.requests;
        return { times, bodyBytes, cpuMs: perRequest(procCpuSeconds(pid) - cpu), dbCpuMs: perRequest(databaseCpu() - db), idle };
      };
      const list = await measure('/v1/instances?limit=100');
      const listLoad = loadavg()[0];
      opts.progress(`api ${kind}: list measured; ${rss()}`);
      const health = await measure('/v1/health');
      const healthLoad = loadavg()[0];
      opts.progress(`api ${kind}: health measured; ${rss()}`);
      return {
        store: kind,
        seedMs,
        listMs: list.times,
        healthMs: health.times,
        listCpuMs: list.cpuMs,
        healthCpuMs: health.cpuMs,
        listDatabaseCpuMs: list.dbCpuMs,
        healthDatabaseCpuMs: health.dbCpuMs,
        listBodyBytes: list.bodyBytes,
        controlPeakRssBytes: Math.max(peak, procMemory(pid).rss),
        listLoad,
        healthLoad,
        listIdleCpuMsPerS: list.idle,
        healthIdleCpuMsPerS: health.idle,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await store?.close().catch(() => undefined);
    await control?.stop();
    await cluster?.destroy();
    removeDir(dir);
  }
}

const TARGET = { p99Ms: 50, rssBytes: 300 * 1024 * 1024 };

/** The stores of opts.stores one after the other (PostgreSQL skipped with its reason when it cannot run here); figures to `out`. */
export async function benchApi(opts: ApiOptions, out: (line?: string) => void): Promise<void> {
  const unknown = opts.stores.filter((s) => s !== 'sqlite' && s !== 'postgres');
  if (unknown.length)
    throw new Error(`BENCH_API_STORES: unknown store ${unknown.join(', ')}; give sqlite, postgres or both (comma-separated)`);
  const runs: ApiRun[] = [];
  if (opts.stores.includes('sqlite')) runs.push(await apiBench('sqlite', opts));
  const pgMissing = opts.stores.includes('postgres') ? postgresUnavailable() : undefined;
  if (pgMissing) opts.progress(`api postgres: skipped: ${pgMissing}`);
  else if (opts.stores.includes('postgres')) runs.push(await apiBench('postgres', opts));
  const verdict = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  out();
  out(
    `REST API over ${opts.instances} stored instances, ${opts.clients} concurrent HTTPS clients (load average ${loadavg()[0].toFixed(2)})`,
  );
  for (const r of runs) {
    const p99 = (v: number[]) => percentile(v, 99);
    const db = (ms: number) => (Number.isNaN(ms) ? '' : `, database CPU ${ms.toFixed(2)} ms/request`);
    out(`  ${r.store}: stored in ${fmtMs(r.seedMs)}; a list page is ${(r.listBodyBytes / 1024).toFixed(0)} KiB`);
    out(
      `    GET /v1/instances?limit=100: ${summary(r.listMs)}  target p99 <= 50 ms: ${verdict(p99(r.listMs) <= TARGET.p99Ms)}; control CPU ${r.listCpuMs.toFixed(2)} ms/request${db(r.listDatabaseCpuMs)} (idle before: ${Math.round(r.listIdleCpuMsPerS)} ms/s); load ${r.listLoad.toFixed(1)}`,
    );
    out(
      `    GET /v1/health:              ${summary(r.healthMs)}  target p99 <= 50 ms: ${verdict(p99(r.healthMs) <= TARGET.p99Ms)}; control CPU ${r.healthCpuMs.toFixed(2)} ms/request${db(r.healthDatabaseCpuMs)} (idle before: ${Math.round(r.healthIdleCpuMsPerS)} ms/s); load ${r.healthLoad.toFixed(1)}`,
    );
    out(`    control peak RSS ${fmtBytes(r.controlPeakRssBytes)}  target <= 300 MiB: ${verdict(r.controlPeakRssBytes <= TARGET.rssBytes)}`);
  }
}
