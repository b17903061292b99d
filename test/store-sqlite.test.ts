// What only the embedded SQLite store does: its schema versions survive a
// reopen. What every store does is in test/support/store-conformance.ts.
import t from 'tap';
import { join } from 'node:path';
import { SqliteStore } from '../control/store/sqlite';
import { MIGRATIONS } from '../control/store/migrations';
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
