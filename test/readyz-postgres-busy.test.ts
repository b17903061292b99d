// /readyz on PostgreSQL says whether the database answers, nothing else:
// 200 while every connection of the pool waits on long queries and the
// database takes no new connection (its slots all taken), 503 when the
// database is stopped or stops answering (its processes frozen), 200 again
// once it answers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Client } from 'pg';
import { ControlProcess, removeDir, scratchDir, until } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

const ROLE = 'teleboot_app';
const READINESS = 'teleboot-control readiness';

/** The readiness connection's backend: its process id and when its latest statement started. */
async function readinessBackend(admin: Client): Promise<{ pid: number; queryStart: Date } | undefined> {
  const rows = (
    await admin.query<{ pid: number; query_start: Date }>('SELECT pid, query_start FROM pg_stat_activity WHERE application_name = $1', [
      READINESS,
    ])
  ).rows;
  return rows.length === 1 ? { pid: rows[0].pid, queryStart: rows[0].query_start } : undefined;
}

/** Waits until /readyz answers `status`; returns that answer. */
const readyzAnswers = (control: ControlProcess, status: number, when: string) =>
  until(
    `/readyz answers ${status} ${when}`,
    async () => {
      const res = await control.rest('GET', '/readyz');
      return res.status === status && res;
    },
    120_000,
  );

t.test('/readyz on PostgreSQL under a busy pool, a full server and an outage', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  // Connection limits bind ordinary roles only (a superuser may always connect).
  const admin = cluster.connect(db.name);
  await admin.connect();
  t.teardown(() => admin.end().catch(() => undefined));
  await admin.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${db.password}'`);
  await admin.query(`ALTER DATABASE ${db.name} OWNER TO ${ROLE}`);
  const url = db.url.replace('postgres@', `${ROLE}@`);

  const dir = scratchDir('readyz-pg-busy');
  t.teardown(() => removeDir(dir));
  const control = new ControlProcess(dir, ['--store', url], { PGPASSWORD: db.password });
  t.teardown(() => control.stop());
  await control.start();
  t.equal((await control.rest('PUT', '/v1/instances/i-1/assignment', { role: 'node' })).status, 200);
  await readyzAnswers(control, 200, 'at the start');
  const first = await until('the readiness connection is open', () => readinessBackend(admin), 60_000);

  // Every query on the instances waits for this lock: the pool's connections are all taken by requests that wait.
  const locker = cluster.connect(db.name);
  await locker.connect();
  t.teardown(() => locker.end().catch(() => undefined));
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE instances IN ACCESS EXCLUSIVE MODE');
  // Distinct requests (no two can share a read), more than the pool's 10 connections.
  const waiting = Array.from({ length: 30 }, (_, i) => control.rest('GET', `/v1/instances?limit=${i + 1}`));
  const poolWaits = async () =>
    Number(
      (
        await admin.query<{ n: number }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock' AND application_name = 'teleboot-control'",
          [ROLE],
        )
      ).rows[0].n,
    );
  await until('every connection of the pool waits on the lock', async () => (await poolWaits()) >= 10, 120_000);
  // The server's slots for this database are all taken: a new connection is refused.
  const open = Number(
    (await admin.query<{ n: number }>('SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND datname = $2', [ROLE, db.name]))
      .rows[0].n,
  );
  await admin.query(`ALTER DATABASE ${db.name} CONNECTION LIMIT ${open}`);
  const newcomer = new Client({ host: '127.0.0.1', port: cluster.port, user: ROLE, password: db.password, database: db.name });
  await t.rejects(newcomer.connect(), /too many connections/, 'the database takes no new connection');

  // Readiness keeps probing on its own connection meanwhile, and says ready at each request.
  const since = (await admin.query<{ now: Date }>('SELECT now() AS now')).rows[0].now;
  const statuses: number[] = [];
  await until(
    'three more probes of the readiness connection',
    async () => {
      statuses.push((await control.rest('GET', '/readyz')).status);
      const backend = await readinessBackend(admin);
      return backend && backend.queryStart.getTime() > since.getTime() + 3_000;
    },
    120_000,
  );
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    `/readyz answered 200 while the pool was busy and the server full (${statuses.length} requests)`,
  );
  t.equal((await readinessBackend(admin))?.pid, first.pid, 'on the connection it opened first');

  await locker.query('COMMIT');
  await locker.end();
  await admin.query(`ALTER DATABASE ${db.name} CONNECTION LIMIT -1`);
  // Those that waited longer for a connection than the pool allows were refused as busy (503), never failed otherwise.
  t.same(
    (await Promise.all(waiting)).map((r) => r.status).filter((s) => s !== 200 && s !== 503),
    [],
    'the waiting requests are answered once the lock is released',
  );

  // Frozen: the server takes connections no further and the readiness connection's backend answers nothing.
  const postmaster = Number(readFileSync(join(cluster.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const frozen = [postmaster, first.pid];
  for (const pid of frozen) process.kill(pid, 'SIGSTOP');
  try {
    const notReady = await readyzAnswers(control, 503, 'while the database does not answer');
    t.match(notReady.body.reason, /PostgreSQL: no answer within 5 s/, 'it says the database did not answer');
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
  }
  await readyzAnswers(control, 200, 'once the database answers again');

  await admin.end();
  await cluster.stop();
  const down = await readyzAnswers(control, 503, 'with the database stopped');
  t.match(down.body.reason, /PostgreSQL/);
  await cluster.start();
  await readyzAnswers(control, 200, 'with the database started');
  t.equal(control.proc?.exitCode, null, 'the server never exited');
});
