// The health counting triggers follow health.ts: a store opened on a database whose installed triggers are not
// those of its rules (another release's, or none) installs its own and recounts, so the counts stay right.
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../control/store/sqlite';
import { removeDir, scratchDir } from './support/harness';
import { countsMatchRecount, identity } from './support/store-conformance';

t.test('triggers of other rules are replaced and the counts recounted at open', async (t) => {
  const dir = scratchDir('health-counting');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.db');
  let store = new SqliteStore(path);
  for (let i = 0; i < 6; i++) await store.setAssignment(`i-${i}`, { roles: i % 2 ? ['node'] : ['proxy'], labels: {} }, 'op', 1);
  for (let i = 0; i < 4; i++) await store.enroll(identity(`i-${i}`), 'agent', 100);
  await countsMatchRecount(t, store, 'as installed', [100]);
  await store.close();

  // What an older release would have left: other triggers (here none), counts that no longer hold.
  const db = new Database(path);
  for (const trigger of ['instances_health_insert', 'instances_health_update', 'instances_health_delete'])
    db.exec(`DROP TRIGGER ${trigger}`);
  db.exec("UPDATE health_counting SET definition = 'rules of another release'; UPDATE health_totals SET count = count + 7");
  db.close();

  store = new SqliteStore(path);
  t.teardown(() => store.close());
  await countsMatchRecount(t, store, 'reopened: recounted', [100]);
  await store.enroll(identity('i-5'), 'agent', 110);
  await store.deleteInstance('i-0', 'op', 110);
  await countsMatchRecount(t, store, 'and kept by the triggers installed again', [110]);
});
