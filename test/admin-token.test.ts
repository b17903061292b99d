// The first admin token with several replicas starting together on one
// store: the replica that read "no token yet" just before another created
// it starts anyway, writes no file and leaves the other's token alone.
import t from 'tap';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../contract/log';
import { ADMIN_TOKEN_FILE, ensureAdminToken } from '../control/admin-token';
import type { EnrollmentVerifier } from '../control/enrollment';
import type { CertificateAuthority } from '../control/pki';
import { ControlService } from '../control/service';
import { SqliteStore } from '../control/store/sqlite';
import { removeDir, scratchDir } from './support/harness';

const dir = scratchDir('admin-token');
t.teardown(() => removeDir(dir));
const store = new SqliteStore(join(dir, 'control.db'));
t.teardown(() => store.close());
const serviceOn = (s: SqliteStore) =>
  new ControlService({
    store: s,
    ca: {} as CertificateAuthority,
    verifier: {} as EnrollmentVerifier,
    clientCertificateLifetimeMs: 3_600_000,
    heartbeatIntervalMs: 1000,
  });
const log = createLogger('test', 'silent');

t.test('the first start generates the token into its data directory, 0600', async (t) => {
  const winner = join(dir, 'winner');
  await ensureAdminToken(serviceOn(store), winner, log);
  const file = join(winner, ADMIN_TOKEN_FILE);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.match(readFileSync(file, 'utf8'), /^\S+\n$/);
  t.equal(await store.countApiTokens(), 1);
});

t.test('a replica that counted no token just before another created it starts anyway and writes nothing', async (t) => {
  // The count this replica read before the winner's token was committed.
  const staleCount = Object.create(store, { countApiTokens: { value: async () => 0 } }) as SqliteStore;
  const loser = join(dir, 'loser');
  await t.resolves(ensureAdminToken(serviceOn(staleCount), loser, log));
  t.notOk(existsSync(join(loser, ADMIN_TOKEN_FILE)), 'no token file of its own');
  t.equal(await store.countApiTokens(), 1, "the winner's token is the only one");
});
