// What only the embedded SQLite store does: its schema versions survive a
// reopen. What every store does is in test/support/store-conformance.ts.
import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../control/store/sqlite';
import { MIGRATIONS } from '../control/store/migrations';
import { SqliteEngine } from '../control/store/sqlite-engine';
import { removeDir, scratchDir } from './support/harness';

t.test('migrations are applied once: a reopened database keeps its schema version', async (t) => {
  const dir = scratchDir('store');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.db');
  const first = new SqliteStore(path);
  t.equal(first.schemaVersion(), MIGRATIONS[MIGRATIONS.length - 1].version);
  await first.close();
  const second = new SqliteStore(path);
  t.teardown(() => second.close());
  t.equal(second.schemaVersion(), MIGRATIONS[MIGRATIONS.length - 1].version, 'migrations are not applied twice');
});

t.test('group commit: transactions asked for together commit once, and each succeeds or fails on its own', async (t) => {
  const dir = scratchDir('store');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'group.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE things (name TEXT PRIMARY KEY)');
  const engine = new SqliteEngine(db, undefined, () => undefined);
  t.teardown(() => engine.close());
  // Each commit appends the pages it changed to the write-ahead log: twenty commits of one row each
  // append the table's page twenty times, one commit of all of them once.
  // (The log has a 32-byte header, then frames of a page and a 24-byte header.)
  const frames = () => (statSync(`${path}-wal`).size - 32) / ((db.pragma('page_size', { simple: true }) as number) + 24);
  const before = frames();

  const outcomes = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) =>
      engine.transaction(async (sql) => {
        await sql.run('INSERT INTO things (name) VALUES (?)', [`thing-${i}`]);
        // The 7th writes a second row, then fails: neither of its rows may stay.
        if (i === 7) {
          await sql.run('INSERT INTO things (name) VALUES (?)', ['half-written']);
          throw new Error('refused');
        }
        // The 12th breaks a constraint (a duplicate key): only its own statements are undone.
        if (i === 12) await sql.run('INSERT INTO things (name) VALUES (?)', ['thing-0']);
        return i;
      }),
    ),
  );
  t.ok(frames() - before <= 2, `twenty transactions asked for at once: one commit (${frames() - before} pages logged)`);
  t.same(
    outcomes.map((o) => o.status),
    Array.from({ length: 20 }, (_, i) => (i === 7 || i === 12 ? 'rejected' : 'fulfilled')),
  );
  t.equal((outcomes[3] as PromiseFulfilledResult<number>).value, 3, 'each caller gets its own result');
  t.match((outcomes[7] as PromiseRejectedResult).reason, { message: 'refused' }, 'and its own error');
  t.match((outcomes[12] as PromiseRejectedResult).reason, { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
  const names = (await engine.read((sql) => sql.all<{ name: string }>('SELECT name FROM things ORDER BY name'))).map((r) => r.name);
  t.same(
    names,
    Array.from({ length: 20 }, (_, i) => `thing-${i}`)
      .filter((_, i) => i !== 7 && i !== 12)
      .sort(),
    'the failed ones wrote nothing; the others are all there',
  );

  // A read asked for between two writes sees the first and not the second, as the caller ordered them.
  const first = engine.transaction((sql) => sql.run('INSERT INTO things (name) VALUES (?)', ['first']));
  const read = engine.read((sql) => sql.all<{ name: string }>("SELECT name FROM things WHERE name IN ('first', 'second')"));
  const second = engine.transaction((sql) => sql.run('INSERT INTO things (name) VALUES (?)', ['second']));
  await Promise.all([first, second]);
  t.same(
    (await read).map((r) => r.name),
    ['first'],
  );
});
