// The operators' REST API over real HTTPS: what each route answers, and how
// it refuses bad input (400 naming the field, nothing stored).
import t from 'tap';
import { startInProcessControl, type InProcessControl } from './support/in-process';

let control: InProcessControl;
const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => control.rest(method, path, body, headers);

t.before(async () => {
  control = await startInProcessControl('rest');
});
t.teardown(() => control.close());

t.test('assigning a role before the instance ever booted', async (t) => {
  const res = await rest(
    'PUT',
    '/v1/instances/i-0123456789abcdef0/assignment',
    { role: 'auth-proxy', labels: { env: 'prod' } },
    { 'x-teleboot-actor': 'alice' },
  );
  t.equal(res.status, 200);
  t.match(res.body, {
    instanceId: 'i-0123456789abcdef0',
    health: 'expected',
    assignment: { role: 'auth-proxy', roles: ['auth', 'proxy'], labels: { env: 'prod' } },
    generation: 1,
    appliedGeneration: 0,
    identity: null,
  });
  const again = await rest('PUT', '/v1/instances/i-0123456789abcdef0/assignment', { roles: ['node'] });
  t.equal(again.body.generation, 2, 'every change bumps the generation');
  const audit = await rest('GET', '/v1/audit?target=i-0123456789abcdef0');
  t.match(audit.body.items, [
    { action: 'assignment.set', actor: 'rest:admin/alice', details: { before: null, after: { roles: ['auth', 'proxy'] } } },
    { action: 'assignment.set', actor: 'rest:admin', details: { after: { roles: ['node'] } } },
  ]);
});

t.test('unassigning, and an unknown instance', async (t) => {
  await rest('PUT', '/v1/instances/host-a/assignment', { role: 'node' });
  const res = await rest('DELETE', '/v1/instances/host-a/assignment');
  t.equal(res.status, 200);
  t.equal(res.body.assignment, null);
  t.equal((await rest('DELETE', '/v1/instances/i-0000000000000dead/assignment')).status, 404);
  const missing = await rest('GET', '/v1/instances/i-0000000000000dead');
  t.equal(missing.status, 404);
  t.match(missing.body.message, /i-0000000000000dead not found/);
});

t.test('listing filters by role and health, and pages with a cursor', async (t) => {
  for (let i = 0; i < 5; i++) await rest('PUT', `/v1/instances/page-${i}/assignment`, { role: i % 2 ? 'proxy' : 'node' });
  const proxies = await rest('GET', '/v1/instances?role=proxy&health=expected');
  t.same(
    proxies.body.items.map((i: any) => i.instanceId),
    ['page-1', 'page-3'],
  );
  const first = await rest('GET', '/v1/instances?role=node&limit=2');
  t.equal(first.body.items.length, 2);
  t.ok(first.body.next, 'a cursor to the next page');
  const second = await rest('GET', `/v1/instances?role=node&limit=2&after=${first.body.next}`);
  const seen = [...first.body.items, ...second.body.items].map((i: any) => i.instanceId);
  t.same(
    seen.filter((id: string) => id.startsWith('page-')),
    ['page-0', 'page-2', 'page-4'],
    'every node once, in order',
  );
  const bad = await rest('GET', '/v1/instances?health=sleepy');
  t.equal(bad.status, 400);
  t.match(bad.body.message, /querystring\.health: must be equal to one of the allowed values: expected, unassigned/);
});

t.test('cluster settings are validated when saved', async (t) => {
  const ok = await rest('PATCH', '/v1/settings', { clusterName: 'prod', authAddr: 'auth.internal:3025', region: 'eu-west-1' });
  t.equal(ok.status, 200);
  t.match(ok.body, { clusterName: 'prod', authAddr: 'auth.internal:3025', ssmPrefix: '/teleport', storage: { type: 'dir' } });
  const cases: Array<[unknown, RegExp]> = [
    [{ authAddr: 'auth.internal' }, /^authAddr: "auth.internal" is not host:port/],
    [{ region: 'moon-1' }, /^region: /],
    [{ storage: { type: 'dynamodb' } }, /^storage\.tableName: DynamoDB storage needs a table name/],
    [{ storage: { type: 'etcd' } }, /^body\.storage\.type: must be equal to one of the allowed values: dir, dynamodb/],
    [{ clusterName: 42 }, /^body\.clusterName: must be string/],
    [{ clusterNmae: 'typo' }, /^body: unknown field "clusterNmae"/],
    [{ ssmPrefix: 'teleport/' }, /^ssmPrefix: /],
  ];
  for (const [body, message] of cases) {
    const res = await rest('PATCH', '/v1/settings', body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.match(res.body.message, message);
  }
  const after = await rest('GET', '/v1/settings');
  t.same(after.body, ok.body, 'refused changes stored nothing');
});

t.test('malformed assignment bodies and unknown roles get 400 naming the field', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['{"role": ', undefined, /JSON/],
    ['', { role: 'bastion' }, /^role: unknown role "bastion"; known roles: auth, proxy, node, auth-proxy/],
    ['', { roles: ['node', 'dns'] }, /^roles\[1\]: unknown role "dns"/],
    ['', {}, /^role: give either "role"/],
    ['', { role: 'node', roles: ['node'] }, /^role: give either/],
    ['', { role: 'node', labels: { 'bad key!': 'x' } }, /^body\.labels: key "bad key!" is not allowed/],
    ['', { role: 'node', labels: { env: 7 } }, /^body\.labels\.env: must be string/],
    ['', { role: 'node', colour: 'blue' }, /^body: unknown field "colour"/],
    ['', { role: 'node', nodename: 'has space' }, /^nodename: /],
    ['', [], /^body: must be object/],
  ];
  for (const [raw, body, message] of cases) {
    const res = await rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaaa/assignment', raw || body);
    t.equal(res.status, 400, raw || JSON.stringify(body));
    t.match(res.body.message, message);
    t.notMatch(JSON.stringify(res.body), /at .*\.js:\d+/, 'no stack trace');
  }
  const bad = await rest('PUT', '/v1/instances/bad%20id/assignment', { role: 'node' });
  t.equal(bad.status, 400);
  t.match(bad.body.message, /^params\.id: must match pattern/);
  t.equal((await rest('GET', '/v1/instances/i-0aaaaaaaaaaaaaaaa')).status, 404, 'nothing was stored');
  const huge = await rest('PUT', '/v1/instances/i-0aaaaaaaaaaaaaaaa/assignment', { role: 'node', labels: { a: 'x'.repeat(100_000) } });
  t.equal(huge.status, 413, 'oversized bodies are refused');
});

t.test('rules: added in order, validated, deletable', async (t) => {
  const a = await rest('POST', '/v1/rules', { name: 'web', selector: { Role: 'web' }, role: 'node', labels: { tier: 'web' } });
  t.equal(a.status, 201);
  const b = await rest('POST', '/v1/rules', { name: 'edge first', selector: { Role: '*' }, role: 'proxy', position: 0 });
  t.equal(b.status, 201);
  const list = await rest('GET', '/v1/rules');
  t.same(
    list.body.items.map((r: any) => r.name),
    ['edge first', 'web'],
    'position 0 goes first',
  );
  t.equal(
    (await rest('POST', '/v1/rules', { name: 'x', selector: {}, role: 'node' })).status,
    400,
    'an empty selector would match everything',
  );
  const unknown = await rest('POST', '/v1/rules', { name: 'x', selector: { A: 'b' }, role: 'mail' });
  t.equal(unknown.status, 400);
  t.match(unknown.body.message, /unknown role "mail"/);
  t.equal((await rest('DELETE', `/v1/rules/${b.body.id}`)).status, 204);
  t.equal((await rest('DELETE', `/v1/rules/${b.body.id}`)).status, 404);
  t.same(
    (await rest('GET', '/v1/rules')).body.items.map((r: any) => r.name),
    ['web'],
  );
});

t.test('fleet health, probes, metrics and the OpenAPI document', async (t) => {
  const health = await rest('GET', '/v1/health');
  t.equal(health.status, 200);
  t.ok(health.body.total >= 1);
  t.ok(health.body.byHealth.expected >= 1);
  t.ok(health.body.byRole.node.expected >= 1);
  t.same((await rest('GET', '/healthz')).body, { status: 'ok' });
  t.same((await rest('GET', '/readyz')).body, { status: 'ok' });
  const metrics = await rest('GET', '/metrics');
  t.match(metrics.body, /teleboot_instances\{role="node",health="expected"\} \d+/);
  const openapi = await rest('GET', '/openapi.json');
  t.equal(openapi.body.openapi, '3.0.3');
  for (const path of [
    '/v1/instances',
    '/v1/instances/{id}',
    '/v1/instances/{id}/assignment',
    '/v1/settings',
    '/v1/rules',
    '/v1/health',
    '/v1/audit',
  ]) {
    t.ok(openapi.body.paths[path], `documents ${path}`);
  }
  const none = await rest('GET', '/v2/nothing');
  t.equal(none.status, 404);
  t.match(none.body.message, /see \/openapi.json/);
});
