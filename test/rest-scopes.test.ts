// REST scopes live on the routes: every route × method (the HEAD fastify adds
// for a GET, and OPTIONS, included) × caller (no token, monitor, operator,
// admin), taken from /openapi.json of a real server over HTTPS. Below the
// route's scope a caller gets 403, without a token 401, at or above it
// anything but those two. A route that declares no scope stops the server
// from starting.
import t from 'tap';
import Fastify from 'fastify';
import { effectiveScope, installAuth, SCOPE_EXTENSION } from '../control/rest/auth';
import type { ControlService } from '../control/service';
import { restRequest } from './support/harness';
import { startInProcessControl, type InProcessControl } from './support/in-process';

const CALLERS = ['none', 'monitor', 'operator', 'admin'] as const;
type Caller = (typeof CALLERS)[number];
const RANK: Record<string, number> = { public: 0, monitor: 1, operator: 2, admin: 3 };

let control: InProcessControl;
const tokens: Partial<Record<Caller, string>> = {};
const rest = (method: string, path: string, body?: unknown, token?: string) =>
  restRequest({ port: Number(new URL(control.server.restUrl).port), ca: control.server.caPem, token }, method, path, body);

t.before(async () => {
  control = await startInProcessControl('rest-scopes');
  tokens.admin = control.adminToken;
  for (const scope of ['monitor', 'operator'] as const) {
    const res = await rest('POST', '/v1/api-tokens', { name: `walk-${scope}`, scope }, tokens.admin);
    tokens[scope] = res.body.token as string;
  }
});
t.teardown(() => control.close());

/** Ids that name nothing: an admin's DELETE must not remove the tokens this test uses. */
const fill = (path: string) =>
  path
    .replace('/v1/instances/{id}', '/v1/instances/i-0ccccccccccccccc1')
    .replace('{domain}', 'nothing.example')
    .replace('{id}', 'no-such-thing');

t.test('every route × method × caller gets the answer its declared scope says', async (t) => {
  const openapi = (await rest('GET', '/openapi.json', undefined, tokens.admin)).body;
  let tried = 0;
  for (const [path, ops] of Object.entries<Record<string, Record<string, unknown>>>(openapi.paths)) {
    const declared = new Map<string, string>();
    for (const [method, op] of Object.entries(ops)) {
      const scope = op[SCOPE_EXTENSION] as string;
      t.ok(scope in RANK, `${method.toUpperCase()} ${path} documents its scope (${scope})`);
      declared.set(method.toUpperCase(), scope);
      if (method === 'get') declared.set('HEAD', scope);
    }
    // OPTIONS lists the methods: the loosest scope of the path's methods.
    declared.set('OPTIONS', [...declared.values()].sort((a, b) => RANK[a] - RANK[b])[0]);
    for (const [method, need] of declared) {
      for (const caller of CALLERS) {
        const body = ['POST', 'PUT', 'PATCH'].includes(method) ? {} : undefined;
        const res = await rest(method, fill(path), body, caller === 'none' ? undefined : tokens[caller]);
        tried++;
        const what = `${method} ${path} as ${caller} (needs ${need}): ${res.status}`;
        if (need === 'public') t.ok(res.status !== 401 && res.status !== 403, what);
        else if (caller === 'none') t.equal(res.status, 401, what);
        else if (RANK[caller] < RANK[need]) t.equal(res.status, 403, what);
        else t.ok(res.status !== 401 && res.status !== 403 && res.status < 500, what);
        if (method === 'OPTIONS' && caller === 'admin') t.equal(res.status, 204, `${path}: OPTIONS answers with Allow`);
      }
    }
  }
  t.ok(tried >= 4 * 40, `${tried} requests`);
  const apiTokens = openapi.paths['/v1/api-tokens'];
  t.equal(apiTokens.get[SCOPE_EXTENSION], 'admin', 'listing API tokens is admin-only');
  t.same(openapi.paths['/healthz'].get.security, [], 'probes are documented as needing no token');
  // The finding: HEAD on an admin route with a monitor token answered 200 with the body's length.
  const head = await rest('HEAD', '/v1/api-tokens', undefined, tokens.monitor);
  t.equal(head.status, 403);
  // Both tokens are still there: nothing above revoked them.
  t.equal((await rest('GET', '/v1/instances', undefined, tokens.monitor)).status, 200);
  t.equal((await rest('GET', '/v1/instances', undefined, tokens.operator)).status, 200);
});

t.test('every write route needs operator or admin; tokens, settings and bindings need admin', async (t) => {
  const openapi = (await rest('GET', '/openapi.json', undefined, tokens.admin)).body;
  for (const [path, ops] of Object.entries<Record<string, Record<string, unknown>>>(openapi.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (method !== 'get') t.ok(RANK[op[SCOPE_EXTENSION] as string] >= RANK.operator, `${method.toUpperCase()} ${path}`);
      if (/tokens|binding|settings/.test(path) && method !== 'get' && path !== '/v1/settings')
        t.equal(op[SCOPE_EXTENSION], 'admin', `${method.toUpperCase()} ${path}`);
    }
  }
  t.equal(openapi.paths['/v1/settings'].patch[SCOPE_EXTENSION], 'admin');
  t.equal(openapi.paths['/v1/join-tokens'].get[SCOPE_EXTENSION], 'admin');
  t.equal(openapi.paths['/v1/rollouts'].get[SCOPE_EXTENSION], 'monitor', 'rollouts are read with monitor');
  t.equal(openapi.paths['/v1/rollouts/{id}'].get[SCOPE_EXTENSION], 'monitor');
  for (const op of ['pause', 'resume', 'abort'])
    t.equal(openapi.paths[`/v1/rollouts/{id}/${op}`].post[SCOPE_EXTENSION], 'operator', `${op} needs operator`);
});

t.test('a route without a declared scope is refused when it is registered', async (t) => {
  const app = Fastify();
  installAuth(app, {} as ControlService, { probesPublic: true });
  await t.rejects(async () => {
    await app.register(async (child) => {
      child.get('/v1/forgotten', async () => ({ secret: true }));
    });
    await app.ready();
  }, /route GET \/v1\/forgotten declares no scope: add config: \{ scope: /);
  const ok = Fastify();
  installAuth(ok, {} as ControlService, { probesPublic: true });
  ok.get('/v1/declared', { config: { scope: 'admin' } }, async () => ({}));
  await ok.ready();
  await ok.close();
});

t.test('probes are public unless rest_auth.probes_public is off', async (t) => {
  t.equal(effectiveScope('probe', { probesPublic: true }), 'public');
  t.equal(effectiveScope('probe', { probesPublic: false }), 'monitor');
  t.equal(effectiveScope('operator', { probesPublic: true }), 'operator');
});
