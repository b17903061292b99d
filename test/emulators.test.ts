// The emulators and the teleport stand-in, exercised through the real AWS SDK clients
// and a real child process, so other tests can rely on them behaving like AWS and Teleport.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  DeleteParameterCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
  paginateGetParametersByPath,
} from '@aws-sdk/client-ssm';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { startSsmEmulator } from './emulators/ssm';
import { fakeInstance, startImdsEmulator } from './emulators/imds';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' };

async function ssmSetup(t: tap.Test, maxAttempts?: number) {
  const ssm = await startSsmEmulator();
  t.teardown(() => ssm.close());
  const client = new SSMClient({ endpoint: ssm.endpoint, region: 'us-east-1', credentials, maxAttempts });
  t.teardown(() => client.destroy());
  return { ssm, client };
}

t.test('SSM: SecureString is clear only with WithDecryption', async (t) => {
  const { ssm, client } = await ssmSetup(t);
  const secret = 'join-token-abc123';
  const put = await client.send(new PutParameterCommand({ Name: '/teleport/c1/tokens/node', Value: secret, Type: 'SecureString' }));
  t.equal(put.Version, 1);
  t.equal(put.Tier, 'Standard');

  const clear = await client.send(new GetParameterCommand({ Name: '/teleport/c1/tokens/node', WithDecryption: true }));
  t.equal(clear.Parameter?.Value, secret);
  t.equal(clear.Parameter?.Type, 'SecureString');
  t.equal(clear.Parameter?.ARN, 'arn:aws:ssm:us-east-1:123456789012:parameter/teleport/c1/tokens/node');
  t.ok(clear.Parameter?.LastModifiedDate instanceof Date, 'LastModifiedDate is parsed into a Date');

  const sealed = await client.send(new GetParameterCommand({ Name: '/teleport/c1/tokens/node' }));
  t.not(sealed.Parameter?.Value, secret);
  t.notMatch(Buffer.from(sealed.Parameter?.Value ?? '', 'base64').toString('latin1'), secret, 'ciphertext does not contain the value');
  t.match(sealed.Parameter?.Value, /^AQICAH[A-Za-z0-9+/]+=*$/, 'looks like a KMS blob');

  ssm.put('/teleport/c1/ca-pin-hash', 'sha256:abcd');
  const plain = await client.send(new GetParameterCommand({ Name: '/teleport/c1/ca-pin-hash' }));
  t.equal(plain.Parameter?.Value, 'sha256:abcd', 'String parameters ignore WithDecryption');
  t.notMatch(JSON.stringify(ssm.requests), secret, 'the request log never holds values');
});

t.test('SSM: missing parameters surface as the SDK ParameterNotFound error', async (t) => {
  const { client } = await ssmSetup(t);
  const err = await client.send(new GetParameterCommand({ Name: '/teleport/c1/license' })).catch((e: unknown) => e);
  t.ok(err instanceof ParameterNotFound, 'instance of the modelled exception class');
  t.match(err, { name: 'ParameterNotFound', $metadata: { httpStatusCode: 400 } });
  await t.rejects(client.send(new DeleteParameterCommand({ Name: '/nope' })), { name: 'ParameterNotFound' });

  const many = await client.send(new GetParametersCommand({ Names: ['/a/x', '/a/missing'] }));
  t.same(many.Parameters, []);
  t.same(many.InvalidParameters, ['/a/x', '/a/missing']);
});

t.test('SSM: GetParameters splits found and invalid names', async (t) => {
  const { ssm, client } = await ssmSetup(t);
  ssm.put('/a/one', '1');
  ssm.put('/a/two', '2', 'SecureString');
  const out = await client.send(new GetParametersCommand({ Names: ['/a/one', '/a/two', '/a/three'], WithDecryption: true }));
  t.same(
    out.Parameters?.map((p) => [p.Name, p.Value]),
    [
      ['/a/one', '1'],
      ['/a/two', '2'],
    ],
  );
  t.same(out.InvalidParameters, ['/a/three']);
  await t.rejects(client.send(new GetParametersCommand({ Names: Array.from({ length: 11 }, (_, i) => `/p${i}`) })), {
    name: 'ValidationException',
  });
});

t.test('SSM: GetParametersByPath pages and honours Recursive', async (t) => {
  const { ssm, client } = await ssmSetup(t);
  for (let i = 0; i < 23; i++) ssm.put(`/teleport/c1/tokens/t${String(i).padStart(2, '0')}`, `v${i}`);
  ssm.put('/teleport/c1/tokens/deeper/x', 'nested');
  ssm.put('/teleport/c2/tokens/other', 'other cluster');
  ssm.put('/teleport/c1/tokens', 'the path itself is not a child');

  const collect = async (Recursive: boolean) => {
    const pages: string[][] = [];
    for await (const page of paginateGetParametersByPath({ client, pageSize: 10 }, { Path: '/teleport/c1/tokens', Recursive })) {
      pages.push((page.Parameters ?? []).map((p) => p.Name ?? ''));
    }
    return pages;
  };
  const flat = await collect(false);
  t.same(
    flat.map((p) => p.length),
    [10, 10, 3],
    'three pages of at most MaxResults',
  );
  t.equal(new Set(flat.flat()).size, 23, 'no duplicates across pages');
  t.notOk(flat.flat().includes('/teleport/c1/tokens/deeper/x'), 'non-recursive stays one level deep');

  const deep = (await collect(true)).flat();
  t.equal(deep.length, 24);
  t.ok(deep.includes('/teleport/c1/tokens/deeper/x'));
  t.notOk(deep.some((n) => n.startsWith('/teleport/c2/') || n === '/teleport/c1/tokens'));

  await t.rejects(client.send(new GetParametersByPathCommand({ Path: '/teleport', NextToken: 'bogus' })), { name: 'InvalidNextToken' });
  await t.rejects(client.send(new GetParametersByPathCommand({ Path: '/teleport', MaxResults: 11 })), { name: 'ValidationException' });
});

t.test('SSM: PutParameter overwrite rules', async (t) => {
  const { ssm, client } = await ssmSetup(t);
  const name = '/teleport/c1/tokens/proxy';
  await client.send(new PutParameterCommand({ Name: name, Value: 'one', Type: 'SecureString', KeyId: 'alias/teleboot' }));
  await t.rejects(client.send(new PutParameterCommand({ Name: name, Value: 'two', Type: 'SecureString' })), {
    name: 'ParameterAlreadyExists',
  });
  t.equal(ssm.get(name)?.value, 'one', 'a refused put changes nothing');
  t.equal(ssm.get(name)?.keyId, 'alias/teleboot', 'the KMS key it was created with');
  t.same(
    ssm.requests.filter((r) => r.target === 'PutParameter').map((r) => r.error),
    [undefined, 'ParameterAlreadyExists'],
    'the request log tells which puts succeeded',
  );

  const before = ssm.get(name)!.lastModified;
  const second = await client.send(new PutParameterCommand({ Name: name, Value: 'two', Overwrite: true }));
  t.equal(second.Version, 2, 'version increments; Type may be omitted on update');
  t.match(ssm.get(name), { value: 'two', type: 'SecureString', version: 2 });
  t.ok(ssm.get(name)!.lastModified >= before);

  await t.rejects(client.send(new PutParameterCommand({ Name: name, Value: 'x', Type: 'String', Overwrite: true })), {
    name: 'HierarchyTypeMismatchException',
  });
  await t.rejects(
    client.send(new PutParameterCommand({ Name: '/new', Value: 'x' })),
    { name: 'ValidationException' },
    'Type is required on create',
  );
  await t.rejects(client.send(new PutParameterCommand({ Name: '/k', Value: 'x', Type: 'String', KeyId: 'alias/k' })), {
    name: 'ValidationException',
  });
  await t.rejects(client.send(new PutParameterCommand({ Name: '/big', Value: 'x'.repeat(4097), Type: 'String' })), {
    name: 'ValidationException',
  });
  const adv = await client.send(new PutParameterCommand({ Name: '/big', Value: 'x'.repeat(4097), Type: 'String', Tier: 'Advanced' }));
  t.equal(adv.Tier, 'Advanced');
  await t.rejects(client.send(new PutParameterCommand({ Name: '/ssm/x', Value: 'x', Type: 'String' })), { name: 'ValidationException' });

  await client.send(new DeleteParameterCommand({ Name: name }));
  t.equal(ssm.get(name), undefined);
});

t.test('SSM: unsigned requests are refused', async (t) => {
  const { ssm } = await ssmSetup(t);
  ssm.put('/x', 'y');
  const res = await fetch(ssm.endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.GetParameter' },
    body: JSON.stringify({ Name: '/x' }),
  });
  t.equal(res.status, 400);
  t.same(await res.json(), { __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' });
});

t.test('SSM: injected failures are retried by the SDK, unreachable fails', async (t) => {
  const { ssm, client } = await ssmSetup(t);
  ssm.put('/x', 'y');
  ssm.failNext(2);
  const ok = await client.send(new GetParameterCommand({ Name: '/x' }));
  t.equal(ok.Parameter?.Value, 'y');
  t.equal(ssm.requests.filter((r) => r.target === 'GetParameter' && r.name === '/x').length, 3, 'two failures then success');

  ssm.failNext(3, 500);
  await t.rejects(client.send(new GetParameterCommand({ Name: '/x' })), {
    name: 'InternalServerError',
    $metadata: { httpStatusCode: 500, attempts: 3 },
  });

  const once = new SSMClient({ endpoint: ssm.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  t.teardown(() => once.destroy());
  ssm.setUnreachable(true);
  const before = ssm.requests.length;
  const err = await once.send(new GetParameterCommand({ Name: '/x' })).catch((e: unknown) => e);
  t.match(err, { code: 'ECONNRESET' }, 'connection reset at TCP level');
  t.equal(ssm.requests.length, before, 'nothing reached HTTP');
  ssm.setUnreachable(false);
  t.equal((await once.send(new GetParameterCommand({ Name: '/x' }))).Parameter?.Value, 'y');
});

t.test('IMDS: the real MetadataService reads identity through IMDSv2', async (t) => {
  const instance = fakeInstance({ region: 'eu-west-1', instanceType: 'm7g.large', tags: { Name: 'proxy-1', 'teleboot:role': 'proxy' } });
  t.match(instance.instanceId, /^i-0[0-9a-f]{16}$/);
  t.equal(instance.availabilityZone, 'eu-west-1a');
  t.match(instance.hostname, /^ip-10-0-\d+-\d+\.eu-west-1\.compute\.internal$/);
  const imds = await startImdsEmulator(instance);
  t.teardown(() => imds.close());
  const md = new MetadataService({ endpoint: imds.endpoint, backoff: 0 });

  t.equal(await md.request('/latest/meta-data/instance-id', {}), instance.instanceId);
  t.equal(await md.request('/latest/meta-data/placement/region', {}), 'eu-west-1');
  t.equal(await md.request('/latest/meta-data/placement/availability-zone', {}), 'eu-west-1a');
  t.equal(await md.request('/latest/meta-data/local-ipv4', {}), instance.privateIp);
  t.match(await md.request('/latest/meta-data/', {}), /^ami-id\n[\s\S]*\nplacement\/\n[\s\S]*tags\/$/);
  t.same((await md.request('/latest/meta-data/tags/instance', {})).split('\n'), ['Name', 'teleboot:role']);
  t.equal(await md.request('/latest/meta-data/tags/instance/teleboot:role', {}), 'proxy');

  const doc = JSON.parse(await md.request('/latest/dynamic/instance-identity/document', {}));
  t.match(doc, {
    accountId: instance.accountId,
    architecture: 'arm64',
    availabilityZone: 'eu-west-1a',
    imageId: instance.imageId,
    instanceId: instance.instanceId,
    instanceType: 'm7g.large',
    privateIp: instance.privateIp,
    region: 'eu-west-1',
    version: '2017-09-30',
  });
  t.match(doc.pendingTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.ok(
    imds.requests.filter((r) => r.method === 'GET').every((r) => r.token),
    'every GET carried a token',
  );

  const err = await md.request('/latest/dynamic/instance-identity/pkcs7', {}).catch((e: unknown) => e);
  t.match(err, { $metadata: { httpStatusCode: 404 } }, 'no signer: no signature');
});

t.test('IMDS: tokens are required, bounded and expire', async (t) => {
  const imds = await startImdsEmulator(fakeInstance());
  t.teardown(() => imds.close());
  const url = `${imds.endpoint}/latest/meta-data/instance-id`;
  t.equal((await fetch(url)).status, 401, 'no token');
  t.equal((await fetch(url, { headers: { 'x-aws-ec2-metadata-token': 'made-up' } })).status, 401, 'unknown token');

  const tokenFor = (ttl?: string) =>
    fetch(`${imds.endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: ttl === undefined ? {} : { 'x-aws-ec2-metadata-token-ttl-seconds': ttl },
    });
  for (const bad of [undefined, '0', '21601', 'abc']) t.equal((await tokenFor(bad)).status, 400, `ttl ${bad}`);
  const res = await tokenFor('1');
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-aws-ec2-metadata-token-ttl-seconds'), '1');
  const token = await res.text();
  const withToken = () => fetch(url, { headers: { 'x-aws-ec2-metadata-token': token } });
  const first = await withToken();
  t.equal(first.status, 200);
  t.equal(await first.text(), imds.instance.instanceId);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await withToken()).status, 401, 'expired');
});

t.test('IMDS: tags hidden, signer, failures', async (t) => {
  const signed: string[] = [];
  const imds = await startImdsEmulator(fakeInstance(), {
    signer: (doc) => {
      signed.push(doc);
      return { pkcs7: 'MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABIIB', signature: 'c2lnbmF0dXJl' };
    },
  });
  t.teardown(() => imds.close());
  const md = new MetadataService({ endpoint: imds.endpoint, backoff: 0 });

  const err = await md.request('/latest/meta-data/tags/instance', {}).catch((e: unknown) => e);
  t.match(err, { $metadata: { httpStatusCode: 404 } }, 'tags not exposed');
  t.notMatch(await md.request('/latest/meta-data/', {}), /tags/);

  const doc = await md.request('/latest/dynamic/instance-identity/document', {});
  t.equal(
    await md.request('/latest/dynamic/instance-identity/pkcs7', {}),
    'MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABIIB',
  );
  t.equal(await md.request('/latest/dynamic/instance-identity/signature', {}), 'c2lnbmF0dXJl');
  t.same([...new Set(signed)], [doc], 'the signer saw exactly the served document');

  imds.failNext(1);
  t.equal(await md.request('/latest/meta-data/instance-id', {}), imds.instance.instanceId, 'the SDK retries past one failure');
  imds.setUnreachable(true);
  await t.rejects(new MetadataService({ endpoint: imds.endpoint, retries: 0 }).request('/latest/meta-data/instance-id', {}));
  imds.setUnreachable(false);
  t.equal(await md.request('/latest/meta-data/hostname', {}), imds.instance.hostname);
});

// ---- teleport stand-in ----

const TELEPORT = path.join(__dirname, 'bin', 'teleport');

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

function run(t: tap.Test, args: string[], env: Record<string, string> = {}) {
  const child = spawn(TELEPORT, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, exited, out: () => stdout, err: () => stderr };
}

function tempDir(t: tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'teleport-standin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('teleport stand-in: version', async (t) => {
  const p = run(t, ['version']);
  t.equal(await p.exited, 0);
  t.equal(p.out(), 'Teleport v17.0.0-standin git:v17.0.0-standin-0-gstandin go1.22\n');
});

t.test('teleport stand-in: start, readiness, reload, stop', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'token'), 'secret-token\n');
  const config = path.join(dir, 'teleport.yaml');
  fs.writeFileSync(
    config,
    [
      'version: v3',
      'teleport:',
      '  nodename: node-1',
      `  diag_addr: 127.0.0.1:${port}`,
      '  proxy_server: proxy.example.com:443',
      '  join_params:',
      '    method: token',
      `    token_name: ${path.join(dir, 'token')}`,
      'auth_service: {enabled: false}',
      'proxy_service: {enabled: "no"}',
      'ssh_service:',
      '  enabled: "yes"',
      '  labels: {role: node}',
      '',
    ].join('\n'),
  );
  const p = run(t, ['start', `--config=${config}`], { TELEPORT_STANDIN_READY_DELAY_MS: '1000' });
  const diag = `http://127.0.0.1:${port}`;

  const first = await until('diag endpoint', () => fetch(`${diag}/readyz`));
  t.equal(first.status, 400, 'starting is 400, as Teleport documents');
  t.match(await first.json(), { status: /starting/ });
  const ready = await until('ready', async () => {
    const r = await fetch(`${diag}/readyz`);
    return r.status === 200 ? r : undefined;
  });
  t.same(await ready.json(), { status: 'ok' });
  const health = await fetch(`${diag}/healthz`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  t.match(await (await fetch(`${diag}/metrics`)).text(), /^process_state 0$/m);
  t.match(p.out(), /services=ssh nodename=node-1 join_method=token/, 'start line names the enabled services');

  p.child.kill('SIGHUP');
  await until('reloaded', async () => (/^reloaded$/m.test(p.out()) ? true : undefined));
  fs.rmSync(path.join(dir, 'token'));
  p.child.kill('SIGHUP');
  await until('reload failure', async () => (/reload failed/.test(p.err()) ? true : undefined));
  t.equal((await fetch(`${diag}/healthz`)).status, 200, 'a failed reload keeps the process running');

  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
});

t.test('teleport stand-in: --diag-addr overrides the config, FAIL_READY degrades', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const config = path.join(dir, 'teleport.yaml');
  fs.writeFileSync(config, 'version: v3\nteleport:\n  diag_addr: 127.0.0.1:1\n  auth_server: 127.0.0.1:3025\n');
  const p = run(t, ['start', '-c', config, '--diag-addr', `127.0.0.1:${port}`], {
    TELEPORT_STANDIN_READY_DELAY_MS: '50',
    TELEPORT_STANDIN_FAIL_READY: '1',
  });
  const degraded = await until('degraded', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    return r.status === 503 ? r : undefined;
  });
  t.match(await degraded.json(), { status: /degraded/ });
  t.match(p.out(), /services=auth,ssh,proxy /, 'auth, ssh and proxy run by default');
  p.child.kill('SIGINT');
  t.equal(await p.exited, 0);
});

t.test('teleport stand-in: runs without a diag_addr until stopped', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'teleport.yaml'), 'version: v3\nteleport: {nodename: quiet}\n');
  const p = run(t, ['start', '--config', path.join(dir, 'teleport.yaml')], { TELEPORT_STANDIN_READY_DELAY_MS: '10' });
  await until('ready line', async () => (/^Teleport is ready$/m.test(p.out()) ? true : undefined));
  await new Promise((r) => setTimeout(r, 200));
  t.equal(p.child.exitCode, null, 'still running');
  t.match(p.out(), /diag_addr=-/);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
});

t.test('teleport stand-in: refuses bad configs', async (t) => {
  const dir = tempDir(t);
  const refuse = async (name: string, yaml: string, stderr: RegExp) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, yaml);
    const p = run(t, ['start', `--config=${file}`]);
    t.equal(await p.exited, 1, `${name}: exit 1`);
    t.match(p.err(), stderr, `${name}: says why`);
  };
  await refuse('v2', 'version: v2\nteleport: {nodename: a}\n', /version: v3/);
  await refuse('token', `version: v3\nteleport:\n  join_params: {method: token, token_name: ${dir}/missing}\n`, /no such file/);
  await refuse(
    'keypair',
    `version: v3\nproxy_service:\n  enabled: true\n  https_keypairs:\n    - {key_file: ${dir}/k.pem, cert_file: ${dir}/c.pem}\n`,
    /https private key does not exist/,
  );
  await refuse('unknown', 'version: v3\nssh_servce: {enabled: true}\n', /field ssh_servce not found/);
  await refuse('auth_servers', 'version: v3\nteleport: {auth_servers: [a:3025]}\n', /auth_servers/);
  const missing = run(t, ['start', '--config', path.join(dir, 'absent.yaml')]);
  t.equal(await missing.exited, 1);
});

t.test('teleport stand-in: checks proxy certificate files', async (t) => {
  const dir = tempDir(t);
  const cert = (name: string) => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        path.join(dir, `${name}.key`),
        '-out',
        path.join(dir, `${name}.crt`),
        '-days',
        '1',
        '-subj',
        '/CN=proxy.example.com',
      ],
      { stdio: 'ignore' },
    );
  };
  cert('a');
  cert('b');
  const config = (key: string, crt: string) =>
    `version: v3\nauth_service: {enabled: no}\nssh_service: {enabled: no}\nproxy_service:\n  enabled: yes\n  https_keypairs:\n    - key_file: ${path.join(dir, key)}\n      cert_file: ${path.join(dir, crt)}\n`;

  fs.writeFileSync(path.join(dir, 'bad.yaml'), config('b.key', 'a.crt'));
  const bad = run(t, ['start', '--config', path.join(dir, 'bad.yaml')]);
  t.equal(await bad.exited, 1);
  t.match(bad.err(), /private key does not match/);

  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'good.yaml'), `${config('a.key', 'a.crt')}teleport: {diag_addr: "127.0.0.1:${port}"}\n`);
  const good = run(t, ['start', '--config', path.join(dir, 'good.yaml')], { TELEPORT_STANDIN_READY_DELAY_MS: '0' });
  await until('ready', async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined));
  t.match(good.out(), /services=proxy /);
  good.child.kill('SIGTERM');
  t.equal(await good.exited, 0);
});
