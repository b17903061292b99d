// YAML injection through the control plane: values an operator saves end up
// in teleport.yaml on every instance. Control characters (a newline above
// all) are refused at the REST API with 400 naming the field, and logged;
// everything else is serialised by the yaml library, so a label with a
// colon, a comment sign or a YAML tag reads back as the same string and adds
// no key. Checked through a real agent (`plan`) on the rendered file.
import t from 'tap';
import { parse } from 'yaml';
import { AGENT_BIN, AWS_ENV, runNode } from './support/harness';
import { startWorld, type World } from './support/world';

let world: World;
t.before(async () => {
  world = await startWorld('yaml-injection');
});
t.teardown(() => world?.close());

const INJECTIONS = {
  newline: 'prod\nauth_service:\n  enabled: true',
  cr: 'prod\rproxy_service: {enabled: true}',
  nul: 'a\u0000b',
  tab: 'a\tb',
};

t.test('control characters are refused in every field that reaches teleport.yaml; nothing is stored', async (t) => {
  const { control } = world;
  const id = 'i-0dddddddddddddd01';
  for (const [name, value] of Object.entries(INJECTIONS)) {
    const res = await control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels: { env: value } });
    t.equal(res.status, 400, `label with ${name}`);
    t.match(res.body.message, /^body\.labels\.env: must not contain control characters/);
    const rule = await control.rest('POST', '/v1/rules', { name: `r-${name}`, selector: { A: 'b' }, role: 'node', labels: { env: value } });
    t.equal(rule.status, 400, `rule label with ${name}`);
  }
  const nodename = await control.rest('PUT', `/v1/instances/${id}/assignment`, {
    role: 'node',
    nodename: 'web\nauth_service: {enabled: true}',
  });
  t.equal(nodename.status, 400);
  t.match(nodename.body.message, /nodename/);
  const before = (await control.rest('GET', '/v1/settings')).body;
  for (const patch of [
    { clusterName: 'x\nteleport: {}' },
    { authAddr: 'auth:3025\nproxy_service: {enabled: true}' },
    { proxyPublicAddr: 'a.example.com:443 # x' },
  ]) {
    const res = await control.rest('PATCH', '/v1/settings', patch);
    t.equal(res.status, 400, JSON.stringify(patch));
    // Control characters are refused by the schema (body.<field>), the rest by the field's own rule.
    t.match(res.body.message, new RegExp(`^(body\\.)?${Object.keys(patch)[0]}: `));
  }
  t.same((await control.rest('GET', '/v1/settings')).body, before, 'settings unchanged');
  t.equal((await control.rest('GET', `/v1/instances/${id}`)).status, 404, 'no instance stored');
  t.same((await control.rest('GET', '/v1/rules')).body.items, [], 'no rule stored');
  t.match(control.logs, /"status":400[^\n]*"msg":"request refused"/, 'the refusals are logged');
});

t.test('colons, comment signs, tags, anchors and flow syntax stay strings in teleport.yaml', async (t) => {
  const labels = {
    colon: 'key: value',
    hash: '# not a comment',
    tag: '!!python/object/apply:os.system ["id"]',
    anchor: '&a [1, 2]',
    alias: '*a',
    flow: '{enabled: true}',
    merge: '<<',
    doc: '--- ...',
    quotes: `"'`,
    bool: 'yes',
    number: '0x10',
  };
  const imds = await world.instance();
  const id = imds.instance.instanceId;
  const saved = await world.control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'node', labels });
  t.equal(saved.status, 200);
  t.same(saved.body.assignment.labels, labels, 'stored as given');
  const files = await world.agentConfig(imds, 'process');
  const plan = await runNode(AGENT_BIN, ['plan', '-c', files.configFile], AWS_ENV);
  t.equal(plan.code, 0, plan.stderr);
  const yaml = /--- teleport\.yaml\n([\s\S]*?)\n--- teleport\.service/.exec(plan.stdout)?.[1];
  t.ok(yaml, 'plan printed teleport.yaml');
  for (const version of ['1.1', '1.2'] as const) {
    const cfg = parse(yaml!, { version });
    t.same(cfg.ssh_service.labels, labels, `labels read back as the same strings (YAML ${version})`);
    t.notOk(cfg.auth_service?.enabled, 'no auth service appeared');
    t.notOk(cfg.proxy_service?.enabled, 'no proxy service appeared');
    t.same(
      Object.keys(cfg).filter((k) => !['version', 'teleport', 'auth_service', 'ssh_service', 'proxy_service'].includes(k)),
      [],
      'no key was added',
    );
  }
});
