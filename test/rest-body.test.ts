// Request bodies over real HTTPS: JSON only (anything else 415), read
// strictly: a repeated key, a "__proto__" or "constructor" key anywhere, or
// an integer beyond 2^53 gets 400 naming the field, and nothing is saved.
import t from 'tap';
import { checkJsonText, parseJsonBody } from '../control/rest/json-body';
import { startInProcessControl, type InProcessControl } from './support/in-process';

let control: InProcessControl;
const rest = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => control.rest(method, path, body, headers);
const id = 'i-0ddddddddddddddd1';

t.before(async () => {
  control = await startInProcessControl('rest-body');
});
t.teardown(() => control.close());

/** What the store holds that a refused write could have changed. */
const snapshot = async () =>
  JSON.stringify({
    instance: (await rest('GET', `/v1/instances/${id}`)).status,
    rules: (await rest('GET', '/v1/rules')).body,
    settings: (await rest('GET', '/v1/settings')).body,
    apiTokens: (await rest('GET', '/v1/api-tokens')).body.items.length,
    joinTokens: (await rest('GET', '/v1/join-tokens')).body.items.length,
  });

const CASES: Array<[string, string, string, RegExp]> = [
  [
    'PUT',
    `/v1/instances/${id}/assignment`,
    '{"role":"node","role":"auth"}',
    /^body\.role: appears twice; a JSON object may name a key only once/,
  ],
  ['PUT', `/v1/instances/${id}/assignment`, '{"role":"node","labels":{"env":"a","env":"b"}}', /^body\.labels\.env: appears twice/],
  ['POST', '/v1/rules', '{"name":"r","selector":{"a":"1","a":"2"},"role":"node"}', /^body\.selector\.a: appears twice/],
  [
    'PUT',
    `/v1/instances/${id}/assignment`,
    '{"__proto__":{"role":"auth"},"role":"node"}',
    /^body\.__proto__: the key "__proto__" is not allowed/,
  ],
  [
    'PUT',
    `/v1/instances/${id}/assignment`,
    '{"role":"node","labels":{"__proto__":{"x":"y"}}}',
    /^body\.labels\.__proto__: the key "__proto__"/,
  ],
  ['PUT', `/v1/instances/${id}/assignment`, '{"role":"node","labels":{"\\u005f_proto__":"x"}}', /^body\.labels\.__proto__: /],
  [
    'POST',
    '/v1/api-tokens',
    '{"name":"x","scope":"admin","constructor":{"prototype":{"y":1}}}',
    /^body\.constructor: the key "constructor"/,
  ],
  ['PATCH', '/v1/settings', '{"clusterName":"a","clusterName":"b"}', /^body\.clusterName: appears twice/],
  ['PATCH', '/v1/settings', '{"proxy":{"constructor":{}}}', /^body\.proxy\.constructor: /],
  [
    'POST',
    '/v1/join-tokens',
    '{"name":"j","ttl":"1h","uses":9007199254740993}',
    /^body\.uses: 9007199254740993 is above 2\^53 - 1 \(9007199254740991\)/,
  ],
  ['POST', '/v1/join-tokens', '{"name":"j","ttl":"1h","uses":1e400}', /^body\.uses: 1e400 is above 2\^53 - 1/],
  [
    'POST',
    '/v1/join-tokens',
    '{"name":"j","ttl":"1h","roles":["node"],"uses":-9007199254740993}',
    /^body\.uses: -9007199254740993 is above/,
  ],
];

t.test('repeated keys, prototype keys and inexact integers get 400 naming the field; nothing is saved', async (t) => {
  const before = await snapshot();
  for (const [method, path, body, message] of CASES) {
    const res = await rest(method, path, body);
    t.equal(res.status, 400, `${method} ${path} ${body}`);
    t.match(res.body.message, message);
  }
  t.equal(await snapshot(), before, 'the store is as it was');
  t.equal((await rest('GET', `/v1/instances/${id}`)).status, 404, 'no assignment, auth or node');
});

t.test('a body that is not JSON gets 415 on every route that takes one', async (t) => {
  const before = await snapshot();
  const writes: Array<[string, string]> = [
    ['POST', '/v1/rules'],
    ['PUT', `/v1/instances/${id}/assignment`],
    ['PATCH', '/v1/settings'],
    ['POST', '/v1/api-tokens'],
    ['POST', '/v1/join-tokens'],
    ['POST', '/v1/preview'],
  ];
  for (const [method, path] of writes) {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await rest(method, path, 'role=auth', { 'content-type': type });
      t.equal(res.status, 415, `${method} ${path} as ${type}`);
      t.match(res.body.message, /is not accepted: send the body as JSON with "content-type: application\/json"/);
    }
  }
  t.equal(await snapshot(), before, 'nothing saved');
  const charset = await rest('PUT', `/v1/instances/${id}/assignment`, '{"role":"node"}', {
    'content-type': 'application/json; charset=utf-8',
  });
  t.equal(charset.status, 200, 'JSON with a charset is JSON');
});

t.test('malformed JSON is 400 without quoting the body back', async (t) => {
  const res = await rest('POST', '/v1/api-tokens', '{"name": "tbk_secretish", ');
  t.equal(res.status, 400);
  t.match(res.body.message, /^body: is not valid JSON( \(at character \d+\))?$/);
  t.notMatch(res.body.message, /secretish/);
  const empty = await rest('POST', '/v1/rules', '', { 'content-type': 'application/json', 'content-length': '0' });
  t.equal(empty.status, 400);
});

t.test('query parameters above 2^53 are refused before validation rounds them', async (t) => {
  const res = await rest('GET', '/v1/audit?after=9007199254740993');
  t.equal(res.status, 400);
  t.match(res.body.message, /^querystring\.after: 9007199254740993 is above 2\^53 - 1 \(9007199254740991\)/);
  t.equal((await rest('GET', '/v1/audit?after=9007199254740991')).status, 200, '2^53 - 1 itself is fine');
});

t.test('the scan: accepted JSON passes untouched; strings that look like keys or numbers are not keys or numbers', async (t) => {
  const ok = '{"a":"\\"b\\":1,\\"a\\":2","list":[{"a":1},{"a":2}],"n":-1.5e3,"s":"99999999999999999999"}';
  t.same(parseJsonBody(ok), JSON.parse(ok));
  t.throws(() => checkJsonText('{"list":[{"a":1},{"a":1,"a":2}]}'), /^body\.list\.1\.a: appears twice/);
  t.throws(() => checkJsonText('[1, 2, 12345678901234567890]'), /^body\.2: 12345678901234567890 is above/);
  t.doesNotThrow(() => checkJsonText('{"a":{"b":1},"c":{"b":2}}'), 'equal keys in sibling objects');
});
