// REST access over real HTTPS: bearer API tokens with scopes (admin >
// operator > monitor), created and revoked over REST and with the CLI on the
// same database; hostile input on every route refused with 4xx naming the
// field, never a 500; secrets never in responses.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadControlConfig } from '../control/config';
import { startControlServer, type RunningControlServer } from '../control/server';
import { createLogger } from '../contract/log';
import { CONTROL_BIN, removeDir, restRequest, runNode, scratchDir } from './support/harness';

let server: RunningControlServer;
let dir: string;
let admin: string;
const rest = (method: string, path: string, body?: unknown, token?: string, headers?: Record<string, string>) =>
  restRequest({ port: Number(new URL(server.restUrl).port), ca: server.caPem, token }, method, path, body, headers);
const audit = async (action: string) =>
  (await rest('GET', '/v1/audit?limit=1000', undefined, admin)).body.items.filter((e: any) => e.action === action);

t.before(async () => {
  dir = scratchDir('rest-auth');
  server = await startControlServer(
    loadControlConfig({ 'data-dir': dir, 'grpc-listen': '127.0.0.1:0', 'rest-listen': '127.0.0.1:0' }),
    createLogger('test', 'silent'),
  );
  admin = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
});
t.teardown(async () => {
  await server.close();
  removeDir(dir);
});

t.test('the first start generates an admin token (0600); requests without a valid token get 401', async (t) => {
  t.equal(readFileSync(join(dir, 'admin-token')).length > 40, true);
  const { statSync } = await import('node:fs');
  t.equal(statSync(join(dir, 'admin-token')).mode & 0o777, 0o600);
  const none = await rest('GET', '/v1/instances');
  t.equal(none.status, 401);
  t.match(none.body.message, /needs an API token: send "Authorization: Bearer <token>"/);
  t.equal((await rest('GET', '/v1/instances', undefined, 'tbk_not-a-real-token-at-all')).status, 401);
  t.equal((await rest('GET', '/v1/instances', undefined, undefined, { authorization: `Basic ${admin}` })).status, 401);
  t.equal(
    (await rest('PUT', '/v1/instances/i-0123456789abcdef0/assignment', { role: 'node' })).status,
    401,
    'writes too, before the body is looked at',
  );
  t.equal((await rest('GET', '/v1/instances', undefined, admin)).status, 200);
  // Probes are public by default (rest_auth.probes_public).
  t.equal((await rest('GET', '/healthz')).status, 200);
  t.equal((await rest('GET', '/readyz')).status, 200);
  t.equal((await rest('GET', '/metrics')).status, 200);
});

t.test('scopes: monitor reads, operator assigns, admin changes settings and tokens', async (t) => {
  const create = async (name: string, scope: string) => {
    const res = await rest('POST', '/v1/api-tokens', { name, scope }, admin);
    t.equal(res.status, 201, `create ${name}`);
    t.match(res.body, { name, scope, token: /^tbk_/ });
    return res.body.token as string;
  };
  const monitor = await create('grafana', 'monitor');
  const operator = await create('alice', 'operator');

  t.equal((await rest('GET', '/v1/instances', undefined, monitor)).status, 200);
  t.equal((await rest('GET', '/v1/health', undefined, monitor)).status, 200);
  const denied = await rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa7/assignment', { role: 'proxy' }, monitor);
  t.equal(denied.status, 403);
  t.match(denied.body.message, /API token "grafana" has scope monitor; PUT \/v1\/instances\/:id\/assignment needs operator/);
  t.equal((await rest('GET', '/v1/instances/i-0aaaaaaaaaaaaaaa7', undefined, admin)).status, 404, 'nothing was stored');
  t.match(await audit('rest.refused'), [
    { actor: 'rest:grafana', target: 'i-0aaaaaaaaaaaaaaa7', details: { method: 'PUT', scope: 'monitor', needs: 'operator' } },
  ]);

  const assigned = await rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaa7/assignment', { role: 'proxy' }, operator, {
    'x-teleboot-actor': 'alice-laptop',
  });
  t.equal(assigned.status, 200);
  const history = (await rest('GET', '/v1/audit?target=i-0aaaaaaaaaaaaaaa7', undefined, admin)).body.items;
  t.equal(history.at(-1).actor, 'rest:alice/alice-laptop', 'the token names the actor; the header only annotates');
  t.equal((await rest('PATCH', '/v1/settings', { clusterName: 'x' }, operator)).status, 403);
  t.equal(
    (await rest('POST', '/v1/api-tokens', { name: 'mallory', scope: 'admin' }, operator)).status,
    403,
    'an operator cannot mint an admin',
  );
  t.equal((await rest('GET', '/v1/api-tokens', undefined, operator)).status, 403);
  t.equal((await rest('POST', '/v1/join-tokens', { name: 'j', ttl: '1h' }, operator)).status, 403);
  t.equal((await rest('PATCH', '/v1/settings', { clusterName: 'prod' }, admin)).status, 200);

  t.equal(
    (await rest('POST', '/v1/api-tokens', { name: 'alice', scope: 'monitor' }, admin)).status,
    409,
    'names of active tokens are unique',
  );
  const list = await rest('GET', '/v1/api-tokens', undefined, admin);
  t.same(
    list.body.items.map((x: any) => x.name),
    ['admin', 'grafana', 'alice'],
  );
  const text = JSON.stringify(list.body);
  for (const secret of [admin, monitor, operator]) t.notOk(text.includes(secret), 'no secret in the list');
  t.notMatch(text, /hash/i, 'nor a hash');

  const revoked = await rest('DELETE', '/v1/api-tokens/alice', undefined, admin);
  t.equal(revoked.status, 200);
  t.ok(revoked.body.revokedAt);
  t.equal((await rest('GET', '/v1/instances', undefined, operator)).status, 401, 'a revoked token stops working at once');
  t.equal((await rest('DELETE', '/v1/api-tokens/alice', undefined, admin)).status, 404);
  const db = readFileSync(join(dir, 'control.db'));
  for (const secret of [admin, monitor, operator]) t.notOk(db.includes(secret), 'the database holds hashes only');
});

t.test('the tokens CLI works on the same database as the running server', async (t) => {
  const help = await runNode(CONTROL_BIN, ['tokens', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /tokens create --name NAME --scope admin\|operator\|monitor/);
  const created = await runNode(CONTROL_BIN, ['tokens', 'create', '--name', 'ci-bot', '--scope', 'operator', '--data-dir', dir]);
  t.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  t.match(token, /^tbk_[\w-]{40,}$/);
  t.match(created.stderr, /created API token "ci-bot" \(operator/);
  t.equal((await rest('PUT', '/v1/instances/host-cli/assignment', { role: 'node' }, token)).status, 200, 'the server accepts it at once');
  const list = await runNode(CONTROL_BIN, ['tokens', 'list', '--data-dir', dir]);
  t.match(list.stdout, /ci-bot\s+operator/);
  t.notOk(list.stdout.includes(token));
  const bad = await runNode(CONTROL_BIN, ['tokens', 'create', '--name', 'x', '--scope', 'root', '--data-dir', dir]);
  t.equal(bad.code, 64);
  t.match(bad.stderr, /needs --scope admin\|operator\|monitor/);
  const revoked = await runNode(CONTROL_BIN, ['tokens', 'revoke', 'ci-bot', '--data-dir', dir]);
  t.equal(revoked.code, 0, revoked.stderr);
  t.equal((await rest('GET', '/v1/instances', undefined, token)).status, 401);
  const actors = (await audit('api_token.revoke')).map((e: any) => e.actor);
  t.ok(
    actors.some((a: string) => a.startsWith('cli:')),
    'the CLI is the actor in the audit log',
  );
});

t.test('every route refuses oversized, malformed and mistyped input with 4xx, never 500', async (t) => {
  const openapi = (await rest('GET', '/openapi.json', undefined, admin)).body;
  const fill = (path: string) => path.replace(/\{id\}/g, 'i-0bbbbbbbbbbbbbbb9');
  let writes = 0;
  for (const [path, ops] of Object.entries<Record<string, any>>(openapi.paths)) {
    for (const method of Object.keys(ops)) {
      const m = method.toUpperCase();
      const url = fill(path);
      if (m === 'GET') {
        const res = await rest('GET', `${url}?bogus=${'x'.repeat(10)}`, undefined, admin);
        t.ok(res.status < 500, `${m} ${path} with an unknown query parameter: ${res.status}`);
        continue;
      }
      writes++;
      const big = await rest(m, url, { filler: 'x'.repeat(100_000) }, admin);
      t.equal(big.status, 413, `${m} ${path}: oversized body`);
      const broken = await rest(m, url, '{"role": ', admin);
      t.ok(
        [400, 404].includes(broken.status) || (broken.status === 204 && m === 'DELETE'),
        `${m} ${path}: malformed JSON gets ${broken.status}`,
      );
      const wrongType = await rest(m, url, '[1,2,3]', admin);
      t.ok(wrongType.status < 500, `${m} ${path}: an array body gets ${wrongType.status}`);
      for (const res of [big, broken, wrongType]) t.notMatch(JSON.stringify(res.body ?? ''), /at .*\.js:\d+/, 'no stack trace');
    }
  }
  t.ok(writes >= 10, `${writes} write routes tried`);
  const badId = await rest('DELETE', '/v1/instances/..%2Fetc/binding', undefined, admin);
  t.equal(badId.status, 400);
  t.match(badId.body.message, /^params\.id: must match pattern/);
  const badQuery = await rest('GET', '/v1/audit?limit=-1', undefined, admin);
  t.equal(badQuery.status, 400);
  t.match(badQuery.body.message, /querystring\.limit: must be >= 1/);
  const newline = await rest(
    'PUT',
    '/v1/instances/i-0bbbbbbbbbbbbbbb8/assignment',
    { role: 'node', labels: { env: 'prod\nauth_service: {enabled: true}' } },
    admin,
  );
  t.equal(newline.status, 400);
  t.match(newline.body.message, /^body\.labels\.env: must not contain control characters/);
  t.equal((await rest('GET', '/v1/instances/i-0bbbbbbbbbbbbbbb8', undefined, admin)).status, 404, 'nothing stored');
  const plain = await rest('POST', '/v1/rules', 'name=x', admin, { 'content-type': 'text/plain' });
  t.equal(plain.status, 415, 'JSON bodies only');
  const xml = await rest('POST', '/v1/rules', '<rule/>', admin, { 'content-type': 'application/xml' });
  t.equal(xml.status, 415);
});
