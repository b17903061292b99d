// Issue 11, item 5: the data directory is 0700 and the database files (with
// the WAL and shared memory), keys and tokens 0600, on a first start and on
// a directory an earlier release left 0755 / 0644, which is put right and
// logged. Real server processes.
import t from 'tap';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ControlProcess, removeDir, scratchDir } from './support/harness';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');
const PRIVATE = [
  'control.db',
  'control.db-wal',
  'control.db-shm',
  'tls/ca-key.pem',
  'tls/server-key.pem',
  'join-token',
  'admin-token',
  'cluster-id',
];

t.test('first start: 0700 directories, 0600 database files, keys and tokens', async (t) => {
  const dir = join(scratchDir('modes-first'), 'data');
  t.teardown(() => removeDir(join(dir, '..')));
  const control = new ControlProcess(dir);
  await control.start();
  t.teardown(() => control.stop());
  t.equal(mode(dir), '0700', 'the data directory');
  t.equal(mode(join(dir, 'tls')), '0700', 'tls/');
  for (const f of PRIVATE) t.equal(mode(join(dir, f)), '0600', f);

  await control.stop();
  // As an earlier release left it, with a umask of 022.
  for (const d of [dir, join(dir, 'tls')]) chmodSync(d, 0o755);
  for (const f of ['control.db', 'tls/ca-key.pem', 'admin-token']) chmodSync(join(dir, f), 0o644);
  t.notOk(existsSync(join(dir, 'control.db-wal')), 'a clean stop leaves no WAL');
  await control.start();
  t.equal(mode(dir), '0700', 'the data directory is put right at start');
  t.equal(mode(join(dir, 'tls')), '0700');
  for (const f of PRIVATE) t.equal(mode(join(dir, f)), '0600', `${f} after the restart`);
  const fixes = control.logs.split('\n').filter((l) => l.includes('took group and other access away'));
  t.equal(fixes.length, 5, 'each change logged');
  t.match(fixes.join('\n'), new RegExp(`"level":40.*"path":"${dir}","was":"0755","now":"0700"`));
  t.match(fixes.join('\n'), /"path":"[^"]*control\.db","was":"0644","now":"0600"/);
});
