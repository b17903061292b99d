// The store conformance suite on the embedded SQLite store (a file per subtest).
import t from 'tap';
import { join } from 'node:path';
import { SqliteStore } from '../control/store/sqlite';
import { removeDir, scratchDir } from './support/harness';
import { storeConformance } from './support/store-conformance';

storeConformance(t, async (t) => {
  const dir = scratchDir('store');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.db');
  return { open: async () => new SqliteStore(path) };
});
