// The PostgreSQL store over TLS (store.tls): verify-full checks the server's
// certificate against the given CA and refuses another; require encrypts
// without checking. pg_stat_ssl shows what the server saw.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificateAuthority } from '../control/pki';
import { PgStore } from '../control/store/postgres';
import { removeDir, scratchDir } from './support/harness';
import { postgresUnavailable, testCluster } from './support/postgres';

t.test('PostgreSQL store over TLS', { skip: postgresUnavailable() ?? false }, async (t) => {
  const cluster = await testCluster(t, { tls: true });
  const db = await cluster.createDatabase();
  const dir = scratchDir('pg-tls');
  t.teardown(() => removeDir(dir));
  const admin = cluster.connect();
  await admin.connect();
  t.teardown(() => admin.end());
  const encrypted = async () =>
    (
      await admin.query<{ ssl: boolean }>(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'teleboot-control'",
      )
    ).rows.map((r) => r.ssl);

  const verified = await PgStore.open({ url: db.url, password: db.password, tls: { mode: 'verify-full', caFile: cluster.caFile } });
  await verified.setAssignment('i-1', { roles: ['node'], labels: {} }, 'op', 1);
  t.ok((await encrypted()).length > 0, 'the store is connected');
  t.same([...new Set(await encrypted())], [true], 'every connection of the store is encrypted');
  await verified.close();

  const required = await PgStore.open({ url: db.url, password: db.password, tls: { mode: 'require' } });
  t.match(await required.getInstance('i-1'), { assignment: { roles: ['node'] } });
  await required.close();

  const otherCa = join(dir, 'other-ca.pem');
  writeFileSync(otherCa, (await createCertificateAuthority('not the database CA')).certPem);
  await t.rejects(
    PgStore.open({ url: db.url, password: db.password, tls: { mode: 'verify-full', caFile: otherCa } }),
    /certificate/,
    'verify-full refuses a server whose certificate another CA issued',
  );
});
