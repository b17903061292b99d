// PostgreSQL stops under a running control server: /readyz answers 503 and
// writes are refused with 503 while it is down; the server keeps running,
// reconnects by itself when the database is back, and has lost nothing.
import t from 'tap';
import { ControlProcess, removeDir, scratchDir, until } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('a database outage under a running control server', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t);
  const db = await cluster.createDatabase();
  const dir = scratchDir('control-pg-outage');
  t.teardown(() => removeDir(dir));
  const control = new ControlProcess(dir, ['--store', db.url], { PGPASSWORD: db.password });
  t.teardown(() => control.stop());
  await control.start();
  t.equal((await control.rest('PUT', '/v1/instances/i-before/assignment', { role: 'node' })).status, 200);

  await cluster.stop();
  await until('/readyz answers 503', async () => (await control.rest('GET', '/readyz')).status === 503, 60_000);
  const refused = await control.rest('PUT', '/v1/instances/i-during/assignment', { role: 'node' });
  t.equal(refused.status, 503, 'a write is refused with 503');
  t.match(refused.body.message, /the database cannot be reached/);
  t.equal((await control.rest('GET', '/healthz')).status, 200, 'the process is alive');

  await cluster.start();
  await until('/readyz answers 200 again', async () => (await control.rest('GET', '/readyz')).status === 200, 60_000);
  const written = await until(
    'a write succeeds again',
    async () => {
      const res = await control.rest('PUT', '/v1/instances/i-after/assignment', { role: 'node' });
      return res.status === 200 && res;
    },
    60_000,
  );
  t.equal(written.status, 200);
  const ids = (await control.rest('GET', '/v1/instances?limit=100')).body.items.map((i: { instanceId: string }) => i.instanceId);
  t.same(ids, ['i-after', 'i-before'], 'nothing lost; the refused write left nothing');
  t.equal(control.proc?.exitCode, null, 'the server never exited');
});
