// The settings and the rules carry a version (REST ETag / If-Match): two
// operators changing them at once through two replicas on one PostgreSQL
// never silently overwrite each other. With the same If-Match one wins and
// the other gets 409 with the current version and what to do; without
// If-Match both changes are kept.
import t from 'tap';
import { postgresUnavailable } from './support/postgres';
import { startReplicas } from './support/replicas';
import { runCli } from './support/cli';

const ROUNDS = 10;

t.test(
  'two replicas on one PostgreSQL: concurrent changes on one version, one wins, the other gets 409',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    const { replicas, dir } = await startReplicas(t, 2);
    const [a, b] = replicas;

    t.test('settings: PATCH with the same If-Match through each replica', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const read = await a.rest('GET', '/v1/settings');
        const etag = String(read.headers.etag);
        t.match(etag, /^"\d+"$/, 'GET answers an ETag');
        const names = [`from-a-${round}`, `from-b-${round}`];
        const answers = await Promise.all(
          [a, b].map((r, i) => r.rest('PATCH', '/v1/settings', { clusterName: names[i] }, { 'if-match': etag })),
        );
        t.same(answers.map((x) => x.status).sort(), [200, 409], `round ${round}: one 200, one 409`);
        const won = answers.findIndex((x) => x.status === 200);
        const lost = answers[1 - won];
        const next = `"${Number(etag.slice(1, -1)) + 1}"`;
        t.equal(answers[won].headers.etag, next, 'the saved change has the next version');
        t.equal(lost.headers.etag, next, 'the 409 names the current version');
        t.match(lost.body, {
          error: 'Conflict',
          currentVersion: Number(next.slice(1, -1)),
          message: /GET \/v1\/settings.*If-Match: "\d+"/,
        });
        const now = await b.rest('GET', '/v1/settings');
        t.equal(now.body.clusterName, names[won], "the winner's change is stored, the loser's is not");
        t.equal(now.headers.etag, next);
      }
    });

    t.test('settings: without If-Match, changes of different settings at once are both kept', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const answers = await Promise.all([
          a.rest('PATCH', '/v1/settings', { clusterName: `both-${round}` }),
          b.rest('PATCH', '/v1/settings', { ssmPrefix: `/teleport-${round}` }),
        ]);
        t.same(
          answers.map((x) => x.status),
          [200, 200],
        );
        t.match((await a.rest('GET', '/v1/settings')).body, { clusterName: `both-${round}`, ssmPrefix: `/teleport-${round}` });
      }
    });

    t.test('settings: a bad If-Match is refused with what to send', async (t) => {
      const bad = await a.rest('PATCH', '/v1/settings', { clusterName: 'x' }, { 'if-match': 'yesterday' });
      t.equal(bad.status, 400);
      t.match(bad.body.message, /If-Match: .*ETag header of the GET/);
      t.equal((await a.rest('PATCH', '/v1/settings', { clusterName: 'any' }, { 'if-match': '*' })).status, 200, '"*": any version');
    });

    t.test('rules: add and delete with If-Match', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const etag = String((await b.rest('GET', '/v1/rules')).headers.etag);
        const answers = await Promise.all(
          [a, b].map((r, i) =>
            r.rest('POST', '/v1/rules', { name: `r${round}-${i}`, selector: { Role: `web${i}` }, role: 'node' }, { 'if-match': etag }),
          ),
        );
        t.same(answers.map((x) => x.status).sort(), [201, 409], `round ${round}: one 201, one 409`);
      }
      const list = await a.rest('GET', '/v1/rules');
      t.equal(list.body.items.length, ROUNDS, 'one rule per round');
      const stale = `"${Number(String(list.headers.etag).slice(1, -1)) - 1}"`;
      const id = list.body.items[0].id;
      const refused = await b.rest('DELETE', `/v1/rules/${id}`, undefined, { 'if-match': stale });
      t.equal(refused.status, 409);
      t.match(refused.body.message, /rules changed since version/);
      const deleted = await b.rest('DELETE', `/v1/rules/${id}`, undefined, { 'if-match': String(list.headers.etag) });
      t.equal(deleted.status, 204);
      t.equal(deleted.headers.etag, `"${Number(String(list.headers.etag).slice(1, -1)) + 1}"`);
      t.equal((await a.rest('GET', '/v1/rules')).body.items.length, ROUNDS - 1);
    });

    t.test("the CLI's settings set sends If-Match from its read", async (t) => {
      const before = await a.rest('GET', '/v1/settings');
      const cli = await runCli(['settings', 'set', 'clusterName=from-cli'], {
        HOME: dir,
        TELEBOOT_ADDR: `https://localhost:${a.restPort}`,
        TELEBOOT_CACERT: a.caFile,
        TELEBOOT_TOKEN: a.adminToken,
      });
      t.equal(cli.code, 0, cli.stderr);
      const after = await a.rest('GET', '/v1/settings');
      t.equal(after.body.clusterName, 'from-cli');
      const audit = (await a.rest('GET', '/v1/audit?target=settings&limit=1000')).body.items;
      const last = audit[audit.length - 1];
      t.equal(last.details.version, Number(String(before.headers.etag).slice(1, -1)) + 1, 'saved as the version after the one it read');
    });
  },
);
