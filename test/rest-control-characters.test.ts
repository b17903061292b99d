// Issue 11, item 10: no string an operator gives may carry a control
// character into a host file, a unit or the audit log. The test walks every
// string field of the settings, assignment and rule schemas (read from the
// declarations, so a field added later is covered), puts a newline, a NUL
// and an ESC in each, and checks over real HTTPS that the API answers 400
// naming the field and that nothing was saved.
import t, { type Test } from 'tap';
import { startInProcessControl, type InProcessControl } from './support/in-process';
import { dotted, sampleOf, stringFields, type JsonSchema, type StringField } from './support/schema-sample';
import { assignmentBody, clusterSettings, ruleBody } from '../control/rest/schemas';

let control: InProcessControl;
t.before(async () => {
  control = await startInProcessControl('rest-control-characters');
});
t.teardown(() => control.close());

const BAD = { newline: 'a\nb', NUL: 'a\u0000b', ESC: 'a\u001b[31mb', '\\u0001': 'a\u0001b' };

const propertiesOf = (s: JsonSchema) => s.properties ?? {};
const valuesOf = (s: JsonSchema): JsonSchema => (typeof s.additionalProperties === 'object' ? s.additionalProperties : {});
const isArray = (s: JsonSchema) => (Array.isArray(s.type) ? s.type.includes('array') : s.type === 'array');

/** A value of `schema` that the schema accepts except for `bad` at `field` (required siblings filled in). */
function bodyWith(schema: JsonSchema, field: StringField, bad: string, depth = 0): unknown {
  const last = depth === field.path.length - 1;
  if (depth === field.path.length) return bad;
  const step = field.path[depth];
  if (isArray(schema)) return [bodyWith(schema.items ?? {}, field, bad, depth + 1)];
  if (schema.properties) {
    const base = sampleOf(schema, false) as Record<string, unknown>;
    return { ...base, [step]: bodyWith(propertiesOf(schema)[step], field, bad, depth + 1) };
  }
  // A map: the bad string as a key, or as the value under a good key.
  if (last && field.key) return { [bad]: sampleOf(valuesOf(schema), false) };
  return { [step]: bodyWith(valuesOf(schema), field, bad, depth + 1) };
}

/** The field an error must name: "body.apps.0.name", or for a map key the map ("body.apps.0.labels"). */
const named = (field: StringField) => `body.${dotted(field.key ? field.path.slice(0, -1) : field.path)}`;

async function refusesEveryField(
  t: Test,
  schema: JsonSchema,
  send: (body: unknown) => Promise<{ status: number; body: { message?: string } }>,
  state: () => Promise<unknown>,
) {
  const fields = stringFields(schema);
  t.ok(fields.length > 0, 'the schema has string fields');
  const before = await state();
  for (const field of fields) {
    for (const [what, bad] of Object.entries(BAD)) {
      const res = await send(bodyWith(schema, field, bad));
      const where = `${dotted(field.path)}${field.key ? ' (key)' : ''} with ${what}`;
      t.equal(res.status, 400, `${where}: refused`);
      t.ok(res.body.message?.startsWith(`${named(field)}:`), `${where}: the error names ${named(field)} (${res.body.message})`);
    }
  }
  t.same(await state(), before, 'nothing was saved');
}

t.test('settings: every string field refuses control characters', async (t) => {
  await refusesEveryField(
    t,
    clusterSettings,
    (body) => control.rest('PATCH', '/v1/settings', body),
    async () => (await control.rest('GET', '/v1/settings')).body,
  );
});

t.test('assignments: every string field refuses control characters', async (t) => {
  const id = 'i-0c0e000000000001';
  t.equal((await control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { env: 'prod' } })).status, 200);
  await refusesEveryField(
    t,
    assignmentBody,
    (body) => control.rest('PUT', `/v1/instances/${id}/assignment`, body),
    async () => (await control.rest('GET', `/v1/instances/${id}`)).body,
  );
});

t.test('rules: every string field refuses control characters', async (t) => {
  await refusesEveryField(
    t,
    ruleBody,
    (body) => control.rest('POST', '/v1/rules', body),
    async () => (await control.rest('GET', '/v1/rules')).body,
  );
});

t.test('httpsProxy with \\u0001 is refused, saying why', async (t) => {
  const res = await control.rest('PATCH', '/v1/settings', { httpsProxy: 'http://proxy.corp:3128\u0001' });
  t.equal(res.status, 400);
  t.equal(res.body.message, 'body.httpsProxy: must not contain control characters (newline, tab, NUL, ESC, ...)');
  t.notOk((await control.rest('GET', '/v1/settings')).body.httpsProxy, 'not saved');
});

t.test('printable text is still accepted', async (t) => {
  const res = await control.rest('PATCH', '/v1/settings', { httpsProxy: 'http://proxy.corp:3128', noProxy: 'localhost,169.254.169.254' });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.httpsProxy, 'http://proxy.corp:3128');
});
