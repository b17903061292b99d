// Issue 11, item 3: damaged files stop `serve` with a message that names the
// file and says how to restore it (not OpenSSL's or SQLite's words alone);
// the database is checked at start (quick_check, schema version), and
// /readyz answers 503 while the store cannot be read. Real files, real
// SQLite, real server processes.
import t from 'tap';
import { closeSync, openSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../control/store/migrations';
import { ControlProcess, removeDir, until } from './support/harness';
import { copyDataDir, readText, serveExpectingRefusal, clustersFor } from './support/control-data';

const RESTORE = /restore the data directory from a backup: teleboot-control restore --from BACKUP/;

const clusters = clustersFor(t, 'damaged', 1);

/** Overwrites the database's last page with garbage, as a torn write or a bad sector would leave it. */
function garbleLastPage(path: string): void {
  const size = statSync(path).size;
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, size - 4096);
  closeSync(fd);
}

t.test('damaged files: each refused naming the file, with the way to restore', async (t) => {
  const cases: Array<[string, (dir: string) => void, (dir: string) => string]> = [
    [
      'a truncated ca-key.pem',
      (dir) => writeFileSync(join(dir, 'tls/ca-key.pem'), readText(join(dir, 'tls/ca-key.pem')).slice(0, 60)),
      (dir) => `${join(dir, 'tls/ca-key.pem')} is not a readable PEM private key`,
    ],
    [
      'a server.pem that is not PEM',
      (dir) => writeFileSync(join(dir, 'tls/server.pem'), 'not a certificate\n'),
      (dir) => `${join(dir, 'tls/server.pem')} is not a readable PEM certificate`,
    ],
    [
      'an empty server-key.pem',
      (dir) => writeFileSync(join(dir, 'tls/server-key.pem'), ''),
      (dir) => `${join(dir, 'tls/server-key.pem')} is not a readable PEM private key`,
    ],
    [
      'half a database',
      (dir) => truncateSync(join(dir, 'control.db'), Math.floor(statSync(join(dir, 'control.db')).size / 2)),
      (dir) => `${join(dir, 'control.db')}: `,
    ],
    [
      'a garbled last page',
      (dir) => garbleLastPage(join(dir, 'control.db')),
      (dir) => `${join(dir, 'control.db')}: the integrity check (PRAGMA quick_check) failed`,
    ],
    [
      'a database from a newer release',
      (dir) => {
        const db = new Database(join(dir, 'control.db'));
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(SCHEMA_VERSION + 1, 'future', 0);
        db.close();
      },
      (dir) =>
        `${join(dir, 'control.db')}: its schema version is ${SCHEMA_VERSION + 1}, newer than this teleboot-control knows (${SCHEMA_VERSION})`,
    ],
  ];
  // Each case on its own copy, all at once: they are separate processes.
  const runs = cases.map(([name, damage]) => {
    const dir = copyDataDir(clusters[0], `damaged-${name.replace(/\W+/g, '-')}`);
    t.teardown(() => removeDir(join(dir, '..')));
    damage(dir);
    return { dir, result: serveExpectingRefusal(dir) };
  });
  for (const [i, [name, , message]] of cases.entries()) {
    const { dir, result } = runs[i];
    const r = await result;
    t.equal(r.code, 1, `${name}: exits 1`);
    t.match(r.stderr, message(dir), `${name}: names the file`);
    t.match(r.stderr, RESTORE, `${name}: says how to restore`);
    t.notMatch(r.stderr, /^\s+at /m, `${name}: no stack trace`);
  }
});

t.test('/readyz answers 503 once the store cannot be read, while the process keeps serving', async (t) => {
  const dir = copyDataDir(clusters[0], 'damaged-live');
  t.teardown(() => removeDir(join(dir, '..')));
  const control = new ControlProcess(dir);
  await control.start();
  t.teardown(() => control.stop());
  t.same((await control.rest('GET', '/readyz', undefined, {}, null)).body, { status: 'ok' });
  garbleLastPage(join(dir, 'control.db'));
  // Another connection's write (as `teleboot-control tokens` makes) tells the server's
  // connection that the file changed: it reads the pages from disk again.
  const other = new Database(join(dir, 'control.db'));
  other.pragma('user_version = 7');
  other.close();
  const answer = await until('/readyz to answer 503', async () => {
    const r = await control.rest('GET', '/readyz', undefined, {}, null);
    return r.status === 503 && r;
  });
  t.match(answer.body, { status: 'store unavailable', reason: /the store cannot be read/ });
  await until('the error in the log', () => /"level":50.*the store cannot be read: not ready/.test(control.logs));
  t.pass('logged as an error');
  t.equal((await control.rest('GET', '/healthz', undefined, {}, null)).status, 200, 'the process itself is alive');
});
