// Enrollment that proves identity, over real gRPC/TLS against an in-process
// control server: EC2 identity documents signed by a test "AWS" key the
// server trusts (as production trusts AWS's published certificates), the
// real @aws-sdk/client-ec2 against the EC2 emulator, nonce binding against
// replay, REST-created join tokens, and mutual TLS with revocation. Every
// refusal gets its documented status, is recorded in the audit log, and
// leaves the stored state unchanged.
import t from 'tap';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { loadAgentConfig } from '../agent/config';
import { ControlClient, type EnrollProof } from '../agent/control-client';
import { ImdsIdentitySource } from '../agent/identity';
import { loadControlConfig } from '../control/config';
import { startControlServer, type RunningControlServer } from '../control/server';
import { createLogger } from '../contract/log';
import type { InstanceIdentity } from '../contract/model';
import { bootstrapProto } from '../contract/proto';
import { startEc2Emulator, type Ec2Emulator } from './emulators/ec2';
import { createIdentitySigner } from './emulators/identity-signer';
import { fakeInstance, startImdsEmulator, type ImdsEmulator, type ImdsInstance } from './emulators/imds';
import { AWS_ENV, removeDir, restRequest, scratchDir } from './support/harness';

const ACCOUNT = '111122223333';
let server: RunningControlServer;
let ec2: Ec2Emulator;
let dir: string;
let bootstrapToken: string;
let adminToken: string;
const signer = createIdentitySigner();
const imdsServers: ImdsEmulator[] = [];

const rest = (method: string, path: string, body?: unknown, token: string | undefined = adminToken) =>
  restRequest({ port: Number(new URL(server.restUrl).port), ca: server.caPem, token }, method, path, body);
const client = () => new ControlClient({ endpoints: [`localhost:${server.grpcPort}`], caPem: server.caPem });
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
  );
const nonce = () => randomBytes(32).toString('base64url');
const refusals = async (target: string) =>
  (await server.service.store.listAudit({ limit: 1000, target })).filter((e) => e.action === 'enroll.refused').map((e) => e.details.reason);

/** An instance as IMDS shows it, signed by `by` (the trusted key unless given), known to EC2 as running. */
async function instance(
  overrides: Partial<ImdsInstance> = {},
  opts: { by?: typeof signer; ec2State?: 'running' | 'stopped' | 'absent' } = {},
) {
  const imds = await startImdsEmulator(fakeInstance({ accountId: ACCOUNT, ...overrides }), { signer: (opts.by ?? signer).signer });
  imdsServers.push(imds);
  const i = imds.instance;
  if (opts.ec2State !== 'absent')
    ec2.put({ instanceId: i.instanceId, ownerId: i.accountId, state: opts.ec2State ?? 'running', tags: i.tags });
  const source = new ImdsIdentitySource(imds.endpoint);
  const identity = await source.identity();
  const proof = await source.proof();
  return { imds, identity, proof: { ec2Identity: proof } as EnrollProof, id: i.instanceId };
}

t.before(async () => {
  Object.assign(process.env, AWS_ENV);
  dir = scratchDir('trust');
  ec2 = await startEc2Emulator();
  const certs = join(dir, 'certs');
  mkdirSync(certs);
  writeFileSync(join(certs, 'aws.pem'), signer.certificatesPem);
  const configFile = join(dir, 'control.yaml');
  writeFileSync(
    configFile,
    stringify({
      data_dir: dir,
      grpc_listen: '127.0.0.1:0',
      rest_listen: '127.0.0.1:0',
      enrollment: {
        ec2: {
          allowed_accounts: [ACCOUNT],
          allowed_regions: ['us-east-1', 'us-west-2'],
          certificates_dir: certs,
          describe_instances: true,
          ec2_endpoint: ec2.endpoint,
        },
      },
    }),
  );
  server = await startControlServer(loadControlConfig({ config: configFile }), createLogger('test', 'silent'));
  bootstrapToken = readFileSync(join(dir, 'join-token'), 'utf8').trim();
  adminToken = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
});
t.teardown(async () => {
  await server.close();
  await Promise.all([ec2.close(), ...imdsServers.map((s) => s.close())]);
  removeDir(dir);
});

t.test('an EC2 instance enrolls with its signed identity document; EC2 confirms it and supplies its tags', async (t) => {
  await rest('POST', '/v1/rules', { name: 'web', selector: { Tier: 'web' }, role: 'node' });
  const a = await instance({ tags: { Tier: 'web' } });
  // The agent may claim anything; the signed document and EC2 are what count.
  const claimed: InstanceIdentity = { ...a.identity, accountId: '999999999999', tags: { Tier: 'db' } };
  const c = client();
  t.teardown(() => c.close());
  const { credentials: creds } = await c.enroll(claimed, a.proof, 'test', nonce());
  t.match(creds.certPem, /BEGIN CERTIFICATE/);
  const stored = await server.service.store.getInstance(a.id);
  t.equal(stored?.enrolledVia, 'ec2');
  t.equal(stored?.identity?.accountId, ACCOUNT, 'the account comes from the signed document');
  t.same(stored?.identity?.tags, { Tier: 'web' }, 'tags come from ec2:DescribeInstances');
  t.same(stored?.assignment?.roles, ['node'], 'the rule matched the EC2 tags');
  t.ok(
    ec2.requests.some((r) => r.action === 'DescribeInstances' && r.instanceIds[0] === a.id && r.signed),
    'a SigV4-signed DescribeInstances',
  );

  t.match((a.proof.ec2Identity as { pkcs7Signature: string }).pkcs7Signature, /^MII/, 'the agent presents /pkcs7 (DSA) by default');
  // The RSA-2048 variant (detached, SHA-256) is accepted too.
  const b = await instance();
  const rsa = await new ImdsIdentitySource(b.imds.endpoint).proof('rsa2048');
  t.not(rsa.pkcs7Signature, (b.proof.ec2Identity as { pkcs7Signature: string }).pkcs7Signature);
  t.equal(await outcome(client().enroll(b.identity, { ec2Identity: rsa }, 'test', nonce())), 'OK');
});

t.test('forged, tampered, foreign and unconfirmed identity documents are refused, recorded, and store nothing', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  const before = (await server.service.store.listInstances({ limit: 1000 }, server.service.clock())).items.length;

  const forged = await instance({}, { by: createIdentitySigner('someone else') });
  t.match(
    await outcome(c.enroll(forged.identity, forged.proof, 'test', nonce())),
    /^UNAUTHENTICATED: instance identity document refused: the signature does not verify/,
  );
  t.same(await refusals(forged.id), ['bad-signature']);

  // A real signature over a document edited to name another account.
  const real = await instance();
  const doc = real.proof.ec2Identity as { document: string; pkcs7Signature: string };
  const edited = doc.document.replace(ACCOUNT, '444455556666');
  const tampered = { ec2Identity: { document: edited, pkcs7Signature: doc.pkcs7Signature } };
  t.match(
    await outcome(c.enroll(real.identity, tampered, 'test', nonce())),
    /^UNAUTHENTICATED: .*the document differs from the content the signature carries/,
  );
  const rsa = await new ImdsIdentitySource(real.imds.endpoint).proof('rsa2048');
  t.match(
    await outcome(c.enroll(real.identity, { ec2Identity: { ...rsa, document: edited } }, 'test', nonce())),
    /^UNAUTHENTICATED: .*signature does not verify/,
  );

  // A genuine document of one instance presented for another id.
  t.match(
    await outcome(c.enroll({ ...real.identity, instanceId: 'i-0ffffffffffffffff' }, real.proof, 'test', nonce())),
    /^UNAUTHENTICATED: the signed identity document is of i-/,
  );
  t.same(await refusals('i-0ffffffffffffffff'), ['identity-mismatch']);

  const foreign = await instance({ accountId: '444455556666' });
  t.match(
    await outcome(c.enroll(foreign.identity, foreign.proof, 'test', nonce())),
    /^PERMISSION_DENIED: account 444455556666 is not in enrollment.ec2.allowed_accounts/,
  );
  t.same(await refusals(foreign.id), ['account-not-allowed']);

  const far = await instance({ region: 'eu-west-1' });
  t.match(
    await outcome(c.enroll(far.identity, far.proof, 'test', nonce())),
    /^PERMISSION_DENIED: region eu-west-1 is not in enrollment.ec2.allowed_regions/,
  );
  t.same(await refusals(far.id), ['region-not-allowed']);

  const stopped = await instance({}, { ec2State: 'stopped' });
  t.match(
    await outcome(c.enroll(stopped.identity, stopped.proof, 'test', nonce())),
    /^PERMISSION_DENIED: instance i-\w+ is stopped, not running/,
  );
  const gone = await instance({}, { ec2State: 'absent' });
  t.match(await outcome(c.enroll(gone.identity, gone.proof, 'test', nonce())), /^PERMISSION_DENIED: ec2:DescribeInstances does not know/);
  t.same(await refusals(gone.id), ['instance-not-found']);

  t.match(await outcome(c.enroll(real.identity, real.proof, 'test')), /^INVALID_ARGUMENT: nonce: is required with ec2_identity/);
  const after = (await server.service.store.listInstances({ limit: 1000 }, server.service.clock())).items.length;
  t.equal(after, before, 'no refused enrollment stored an instance');
  const audit = JSON.stringify(await server.service.store.listAudit({ limit: 10000 }));
  t.notMatch(audit, doc.pkcs7Signature.slice(0, 40), 'signatures are not copied into the audit log');
});

t.test('a copied identity document cannot enroll a second machine: the first enrollment binds its nonce', async (t) => {
  const a = await instance();
  const mine = nonce();
  const c = client();
  t.teardown(() => c.close());
  await c.enroll(a.identity, a.proof, 'test', mine);
  const serialsBefore = (await server.service.store.getInstance(a.id))?.enrolledAt;

  const thief = client();
  t.teardown(() => thief.close());
  t.match(await outcome(thief.enroll(a.identity, a.proof, 'test', nonce())), /^UNAUTHENTICATED: instance i-\w+ is bound to another nonce/);
  t.match(
    await outcome(thief.enroll(a.identity, { joinToken: bootstrapToken }, 'test')),
    /^UNAUTHENTICATED: instance i-\w+ is bound to the nonce of its first enrollment; this request has none/,
    'not with a join token either',
  );
  t.same(await refusals(a.id), ['nonce-mismatch', 'nonce-required']);
  t.equal((await server.service.store.getInstance(a.id))?.enrolledAt, serialsBefore, 'the stored enrollment is unchanged');

  t.equal(await outcome(client().enroll(a.identity, a.proof, 'test', mine)), 'OK', 'the real instance renews with its nonce');

  // An operator resets the binding (re-imaged host): the next enrollment binds anew.
  const monitor = (await rest('POST', '/v1/api-tokens', { name: 'grafana', scope: 'monitor' })).body.token as string;
  t.equal((await rest('DELETE', `/v1/instances/${a.id}/binding`, undefined, monitor)).status, 403, 'not with a monitor token');
  t.equal((await rest('DELETE', `/v1/instances/${a.id}/binding`)).status, 204);
  t.equal((await rest('DELETE', `/v1/instances/${a.id}/binding`)).status, 404);
  const fresh = nonce();
  t.equal(await outcome(thief.enroll(a.identity, a.proof, 'test', fresh)), 'OK');
  t.match(
    await outcome(c.enroll(a.identity, a.proof, 'test', mine)),
    /^UNAUTHENTICATED: .*bound to another nonce/,
    'the old nonce no longer works',
  );
  const actions = (await server.service.store.listAudit({ limit: 1000, target: a.id })).map((e) => e.action);
  t.ok(actions.includes('binding.reset'), 'the reset is audited');
});

t.test('join tokens: created over REST, hashed, limited in time, uses and roles, revocable', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  const identity = (id: string) => ({ ...fakeInstance({ instanceId: id }), tags: {} });

  const created = await rest('POST', '/v1/join-tokens', { name: 'ci-nodes', ttl: '1h', uses: 1, roles: ['node'] });
  t.equal(created.status, 201);
  t.match(created.body, { name: 'ci-nodes', roles: ['node'], maxUses: 1, uses: 0, usable: true, token: /^tbj_/ });
  const secret = created.body.token as string;
  const listed = await rest('GET', '/v1/join-tokens');
  t.notMatch(JSON.stringify(listed.body), secret, 'lists never show the secret');
  t.notOk(readFileSync(join(dir, 'control.db')).includes(secret), 'the database holds no secret');

  t.equal(await outcome(c.enroll(identity('host-jt-1'), secret, 'test', nonce())), 'OK');
  t.equal((await server.service.store.getInstance('host-jt-1'))?.enrolledVia, `join-token:${created.body.id}`);
  t.match(
    await outcome(c.enroll(identity('host-jt-2'), secret, 'test', nonce())),
    /^UNAUTHENTICATED: join token "ci-nodes" has no uses left \(1 allowed\)/,
  );
  t.same(await refusals('host-jt-2'), ['token-unusable']);

  // The token allows nodes only: a proxy assignment is refused and recorded.
  const proxy = await rest('PUT', '/v1/instances/host-jt-1/assignment', { role: 'proxy' });
  t.equal(proxy.status, 403);
  t.match(proxy.body.message, /allows node; it may not run proxy/);
  t.equal((await rest('PUT', '/v1/instances/host-jt-1/assignment', { role: 'node' })).status, 200);
  t.ok((await server.service.store.listAudit({ limit: 100, target: 'host-jt-1' })).some((e) => e.action === 'assignment.refused'));

  // A pre-assigned role outside the token's roles refuses the enrollment itself.
  const nodesOnly = (await rest('POST', '/v1/join-tokens', { name: 'nodes', ttl: '1h', roles: ['node'] })).body;
  await rest('PUT', '/v1/instances/host-jt-3/assignment', { role: 'auth' });
  t.match(
    await outcome(c.enroll(identity('host-jt-3'), nodesOnly.token, 'test', nonce())),
    /^PERMISSION_DENIED: instance host-jt-3 is assigned auth, which its join token does not allow/,
  );
  const uses = (await rest('GET', '/v1/join-tokens')).body.items.find((x: any) => x.id === nodesOnly.id).uses;
  t.equal(uses, 0, 'a refused enrollment uses nothing up');

  const brief = (await rest('POST', '/v1/join-tokens', { name: 'brief', ttl: '1s' })).body;
  await new Promise((r) => setTimeout(r, 1100));
  t.match(await outcome(c.enroll(identity('host-jt-4'), brief.token, 'test')), /^UNAUTHENTICATED: join token "brief" expired at /);

  const revocable = (await rest('POST', '/v1/join-tokens', { name: 'revocable', ttl: '1h' })).body;
  t.equal((await rest('DELETE', `/v1/join-tokens/${revocable.id}`)).status, 200);
  t.match(await outcome(c.enroll(identity('host-jt-5'), revocable.token, 'test')), /^UNAUTHENTICATED: join token "revocable" was revoked/);
  t.match(await outcome(c.enroll(identity('host-jt-6'), 'tbj_' + 'x'.repeat(43), 'test')), /^UNAUTHENTICATED: join token not recognised/);
  t.same(await refusals('host-jt-6'), ['token-unknown']);
  for (const id of ['host-jt-2', 'host-jt-4', 'host-jt-5', 'host-jt-6'])
    t.equal(await server.service.store.getInstance(id), undefined, `${id} was not stored`);

  const bad = await rest('POST', '/v1/join-tokens', { name: 'x', ttl: '1h', roles: ['bastion'] });
  t.equal(bad.status, 400);
  t.match(bad.body.message, /^roles\[0\]: unknown role "bastion"/);
  t.match(
    (await rest('POST', '/v1/join-tokens', { name: 'x', ttl: '90d' })).body.message,
    /ttl: must match pattern|ttl: between 1s and 30 days/,
  );
  t.match((await rest('POST', '/v1/join-tokens', { name: 'x', ttl: '1000h' })).body.message, /^ttl: between 1s and 30 days/);
});

t.test('mutual TLS: a certificate acts only for its own instance, and deregistration revokes it', async (t) => {
  const a = await instance();
  const b = await instance();
  const ca = client();
  const cb = client();
  t.teardown(() => (ca.close(), cb.close()));
  const nonceA = nonce();
  await ca.enroll(a.identity, a.proof, 'test', nonceA);
  await cb.enroll(b.identity, b.proof, 'test', nonce());
  const report = (c: ControlClient, id: string) =>
    c.reportStatus({
      instanceId: id,
      appliedGeneration: 0,
      state: 'ready',
      teleportUnitState: 'active',
      teleportReady: true,
      message: 'forged',
      agentVersion: 't',
    });

  t.match(await outcome(report(ca, b.id)), new RegExp(`^PERMISSION_DENIED: the client certificate belongs to ${a.id}, not to ${b.id}`));
  t.equal((await server.service.store.getInstance(b.id))?.status, null, "B's status is unchanged");
  const refused = (await server.service.store.listAudit({ limit: 100, target: b.id })).filter((e) => e.action === 'rpc.refused');
  t.match(refused, [{ actor: `agent:${a.id}`, details: { reason: 'instance-mismatch', method: 'ReportStatus' } }]);

  // A raw channel with A's key and certificate, as a thief of both would use them.
  t.equal(await outcome(report(ca, a.id)), 'OK');
  t.equal((await rest('DELETE', `/v1/instances/${a.id}`)).status, 204);
  t.match(await outcome(ca.getAssignment(a.id)), /^UNAUTHENTICATED: this client certificate was revoked/);
  t.match(await outcome(report(ca, a.id)), /^UNAUTHENTICATED/);
  t.equal(await server.service.store.getInstance(a.id), undefined, 'no report brought the instance back');
  t.ok(
    (await server.service.store.listAudit({ limit: 100, target: a.id })).some(
      (e) => e.action === 'rpc.refused' && e.details.reason === 'certificate-revoked',
    ),
  );

  // The instance comes back only by proving its identity again.
  t.equal(await outcome(ca.enroll(a.identity, a.proof, 'test', nonceA)), 'OK');
  t.equal(await outcome(ca.getAssignment(a.id)), 'OK');

  // Anonymous calls and unknown certificates.
  const anonymous = client();
  t.teardown(() => anonymous.close());
  t.match(await outcome(anonymous.getAssignment(a.id)), /^UNAUTHENTICATED: .*enroll first/);
});

t.test('gRPC fields are validated before anything is checked', async (t) => {
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const raw = new Bootstrap(`localhost:${server.grpcPort}`, grpc.credentials.createSsl(Buffer.from(server.caPem)));
  t.teardown(() => raw.close());
  const enroll = (req: object) =>
    new Promise((resolve, reject) => raw.enroll(req, (err: grpc.ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res))));
  const a = await instance();
  const key = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n';
  const cases: Array<[object, RegExp]> = [
    [
      { identity: a.identity, proof: { ec2Identity: { document: '', pkcs7Signature: 'x' } }, publicKeyPem: key, nonce: nonce() },
      /^INVALID_ARGUMENT: proof.ec2_identity.document: is required/,
    ],
    [
      {
        identity: a.identity,
        proof: { ec2Identity: { document: 'x'.repeat(5000), pkcs7Signature: 'x' } },
        publicKeyPem: key,
        nonce: nonce(),
      },
      /^INVALID_ARGUMENT: proof.ec2_identity.document: longer than 4096/,
    ],
    [
      { identity: a.identity, proof: { joinToken: 'y'.repeat(300) }, publicKeyPem: key },
      /^INVALID_ARGUMENT: proof.join_token: longer than 256/,
    ],
    [{ identity: a.identity, proof: a.proof, publicKeyPem: key, nonce: 'short' }, /^INVALID_ARGUMENT: nonce: 16-128 characters/],
    [
      { identity: a.identity, proof: { ec2Identity: { document: '{}', pkcs7Signature: '!!!' } }, publicKeyPem: key, nonce: nonce() },
      /^INVALID_ARGUMENT: public_key_pem must be a PEM/,
    ],
  ];
  for (const [req, expected] of cases) t.match(await outcome(enroll(req)), expected);
  t.equal(await server.service.store.getInstance(a.id), undefined);
});

t.test('Enroll and REST writes are rate limited per client address', async (t) => {
  const ldir = scratchDir('trust-limits');
  const configFile = join(ldir, 'control.yaml');
  writeFileSync(
    configFile,
    stringify({
      data_dir: ldir,
      grpc_listen: '127.0.0.1:0',
      rest_listen: '127.0.0.1:0',
      rate_limits: { enroll_per_minute: 3, rest_writes_per_minute: 2, exempt_loopback: false },
    }),
  );
  const limited = await startControlServer(loadControlConfig({ config: configFile }), createLogger('test', 'silent'));
  t.teardown(async () => {
    await limited.close();
    removeDir(ldir);
  });
  const token = readFileSync(join(ldir, 'join-token'), 'utf8').trim();
  const c = new ControlClient({ endpoints: [`localhost:${limited.grpcPort}`], caPem: limited.caPem });
  t.teardown(() => c.close());
  const results: string[] = [];
  for (let i = 0; i < 4; i++) results.push(await outcome(c.enroll({ ...fakeInstance(), tags: {} }, token, 'test')));
  t.same(results.slice(0, 3), ['OK', 'OK', 'OK']);
  t.match(results[3], /^RESOURCE_EXHAUSTED: too many enrollments from this address/);

  const admin = readFileSync(join(ldir, 'admin-token'), 'utf8').trim();
  const call = (method: string, path: string, body?: unknown) =>
    restRequest({ port: Number(new URL(limited.restUrl).port), ca: limited.caPem, token: admin }, method, path, body);
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await call('PUT', `/v1/instances/rl-${i}/assignment`, { role: 'node' })).status);
  t.same(statuses, [200, 200, 429]);
  const reads = await Promise.all(Array.from({ length: 5 }, () => call('GET', '/v1/instances')));
  t.same(
    reads.map((r) => r.status),
    [200, 200, 200, 200, 200],
    'reads are not limited',
  );
});

t.test('agent.yaml: enrollment.method ec2 needs no join token file; join_token does', async (t) => {
  const ca = join(dir, 'tls/ca.pem');
  const write = (enrollment: object) => {
    const file = join(dir, `agent-${randomBytes(4).toString('hex')}.yaml`);
    writeFileSync(file, stringify({ control: { endpoints: ['control.internal:7443'], ca_file: ca }, enrollment }));
    return file;
  };
  const ec2Config = loadAgentConfig(write({ method: 'ec2' }));
  t.equal(ec2Config.enrollmentMethod, 'ec2');
  t.equal(ec2Config.ec2Signature, 'pkcs7');
  t.equal(loadAgentConfig(write({ method: 'ec2', ec2_signature: 'rsa2048' })).ec2Signature, 'rsa2048');
  t.equal(loadAgentConfig(write({ join_token_file: '/etc/teleboot/join-token' })).enrollmentMethod, 'join_token');
  t.throws(() => loadAgentConfig(write({ method: 'join_token' })), /enrollment\.join_token_file: is required/);
  t.throws(() => loadAgentConfig(write({ method: 'iam' })), /enrollment\.method: must be one of ec2, join_token/);
});
