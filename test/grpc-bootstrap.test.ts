// The agents' gRPC channel over real TLS: enrollment, the client
// certificate every later call needs, field validation, and the watch stream.
import t from 'tap';
import { testIdentity } from './support/fixtures';
import { readFileSync } from 'node:fs';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { bootstrapProto } from '../contract/proto';
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '../agent/control-client';
import { loadControlConfig } from '../control/config';
import { startControlServer, type RunningControlServer } from '../control/server';
import { createLogger } from '../contract/log';
import { removeDir, scratchDir } from './support/harness';

let server: RunningControlServer;
let dir: string;
let token: string;

const identity = testIdentity;
const client = () => new ControlClient({ endpoints: [`localhost:${server.grpcPort}`], caPem: server.caPem });
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
  );

t.before(async () => {
  dir = scratchDir('grpc');
  const config = loadControlConfig({ 'data-dir': dir, 'grpc-listen': '127.0.0.1:0', 'rest-listen': '127.0.0.1:0' });
  server = await startControlServer(config, createLogger('test', 'silent'));
  token = readFileSync(config.joinTokenFile, 'utf8').trim();
});
t.teardown(async () => {
  await server.close();
  removeDir(dir);
});

t.test('enrollment issues a client certificate for the instance', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  const { credentials: creds, assignment } = await c.enroll(identity('i-0aaaaaaaaaaaaaaa1'), token, 'test');
  const cert = new X509Certificate(creds.certPem);
  t.match(cert.subject, /CN=i-0aaaaaaaaaaaaaaa1/);
  t.ok(cert.verify(new X509Certificate(server.caPem).publicKey), 'signed by the control CA');
  const hours = (creds.expiresAt - Date.now()) / 3_600_000;
  t.ok(hours > 23 && hours <= 24, 'valid for 24 h by default');
  const state = await c.getAssignment('i-0aaaaaaaaaaaaaaa1');
  t.match(state, { instanceId: 'i-0aaaaaaaaaaaaaaa1', assigned: false, generation: 0 });
  t.same(assignment, state, 'the enrollment carries the same assignment state: a first boot needs no GetAssignment');
});

t.test('an instance assigned before it boots learns its role from the enrollment itself', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  await server.service.assign('i-0aaaaaaaaaaaaaab1', { role: 'proxy', labels: { env: 'test' } }, 'test');
  const { assignment } = await c.enroll(identity('i-0aaaaaaaaaaaaaab1'), token, 'test');
  t.match(assignment, {
    instanceId: 'i-0aaaaaaaaaaaaaab1',
    assigned: true,
    generation: 1,
    assignment: { roles: ['proxy'] },
    cluster: { clusterName: String },
  });
  t.same(assignment, await c.getAssignment('i-0aaaaaaaaaaaaaab1'), 'as GetAssignment answers it');
});

t.test('enrollment refuses a wrong token and malformed requests, naming the field', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  t.match(
    await codeOf(c.enroll(identity('i-0aaaaaaaaaaaaaaa2'), 'not-the-token', 'test')),
    /^UNAUTHENTICATED: join token not recognised/,
    'a proof that does not prove is UNAUTHENTICATED',
  );
  t.match(await codeOf(c.enroll(identity('bad id!'), token, 'test')), /^INVALID_ARGUMENT: identity.instance_id: /);
  t.match(
    await codeOf(c.enroll({ ...identity('i-0aaaaaaaaaaaaaaa3'), region: 'Mars' }, token, 'test')),
    /^INVALID_ARGUMENT: identity.region: /,
  );
  const tags = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
  t.match(
    await codeOf(c.enroll({ ...identity('i-0aaaaaaaaaaaaaaa4'), tags }, token, 'test')),
    /^INVALID_ARGUMENT: identity.tags: EC2 allows at most 50 tags/,
  );

  // A raw call, to send what the real client never would.
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const raw = new Bootstrap(`localhost:${server.grpcPort}`, grpc.credentials.createSsl(Buffer.from(server.caPem)));
  t.teardown(() => raw.close());
  const enroll = (req: object) =>
    new Promise((resolve, reject) => raw.enroll(req, (err: grpc.ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res))));
  t.match(await codeOf(enroll({ identity: identity('i-0aaaaaaaaaaaaaaa5'), publicKeyPem: 'x' })), /^INVALID_ARGUMENT: proof: is required/);
  t.match(
    await codeOf(enroll({ identity: identity('i-0aaaaaaaaaaaaaaa5'), proof: { joinToken: token } })),
    /^INVALID_ARGUMENT: public_key_pem: is required/,
  );
  t.match(
    await codeOf(
      enroll({
        identity: identity('i-0aaaaaaaaaaaaaaa5'),
        proof: { joinToken: token },
        publicKeyPem: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      }),
    ),
    /^INVALID_ARGUMENT: public_key_pem must be a PEM "PUBLIC KEY"/,
  );
  const audit = await server.service.store.listAudit({ limit: 100, target: 'i-0aaaaaaaaaaaaaaa5' });
  t.same(audit, [], 'a refused enrollment records no instance');
});

t.test('every call but Enroll needs the client certificate of the very instance it is about', async (t) => {
  const anonymous = client();
  t.teardown(() => anonymous.close());
  t.match(await codeOf(anonymous.getAssignment('i-0aaaaaaaaaaaaaaa1')), /^UNAUTHENTICATED: .*enroll first/);
  const watched = new Promise((resolve, reject) =>
    anonymous.watch('i-0aaaaaaaaaaaaaaa1', resolve, (err) => reject(err ?? new Error('ended without a status'))),
  );
  t.match(await codeOf(watched), /^UNAUTHENTICATED: .*enroll first/, 'a watch stream ends with the refusal too');

  const a = client();
  t.teardown(() => a.close());
  await a.enroll(identity('i-0bbbbbbbbbbbbbbb1'), token, 'test');
  await client().enroll(identity('i-0bbbbbbbbbbbbbbb2'), token, 'test');
  t.match(
    await codeOf(a.getAssignment('i-0bbbbbbbbbbbbbbb2')),
    /^PERMISSION_DENIED: the client certificate belongs to i-0bbbbbbbbbbbbbbb1, not to i-0bbbbbbbbbbbbbbb2/,
  );
  const reportFor = (instanceId: string, state: string, teleportVersion = '') =>
    a.reportStatus({
      instanceId,
      appliedGeneration: 0,
      state,
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 't',
      teleportVersion,
    });
  t.match(await codeOf(reportFor('i-0bbbbbbbbbbbbbbb2', 'ready')), /^PERMISSION_DENIED/, 'A cannot report for B');
  const before = await server.service.store.getInstance('i-0bbbbbbbbbbbbbbb2');
  t.equal(before?.status, null, "B's stored status is unchanged");
  const own = (state: string) => reportFor('i-0bbbbbbbbbbbbbbb1', state);
  t.match(await codeOf(own('sleeping')), /^INVALID_ARGUMENT: state: must be one of converging, ready, degraded, failed/);
  t.equal(await codeOf(own('ready')), 'OK');
  t.match(
    await codeOf(reportFor('i-0bbbbbbbbbbbbbbb1', 'ready', 'v15; rm -rf')),
    /^INVALID_ARGUMENT: teleport_version: must be a Teleport version such as 15\.4\.2/,
  );
  t.equal(await codeOf(reportFor('i-0bbbbbbbbbbbbbbb1', 'ready', '15.4.2')), 'OK');
  t.equal((await server.service.store.getInstance('i-0bbbbbbbbbbbbbbb1'))?.status?.teleportVersion, '15.4.2');
  t.same(await server.service.store.teleportVersions(), new Map([['i-0bbbbbbbbbbbbbbb1', '15.4.2']]), 'and in its column');
});

t.test('the watch stream sends the current state, then each change without polling', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  const id = 'i-0ccccccccccccccc1';
  await c.enroll(identity(id), token, 'test');
  const seen: Array<{ generation: number; roles: string[] }> = [];
  let notify: () => void = () => {};
  const cancel = c.watch(
    id,
    (s) => {
      seen.push({ generation: Number(s.generation), roles: s.assignment?.roles ?? [] });
      notify();
    },
    () => {},
  );
  t.teardown(cancel);
  const next = (count: number) => new Promise<void>((resolve) => (notify = () => seen.length >= count && resolve()));
  await next(1);
  await server.service.assign(id, { role: 'node' }, 'test');
  await next(2);
  await server.service.assign(id, { role: 'auth-proxy' }, 'test');
  await next(3);
  t.same(seen, [
    { generation: 0, roles: [] },
    { generation: 1, roles: ['node'] },
    { generation: 2, roles: ['auth', 'proxy'] },
  ]);
});

t.test('Enroll takes exactly one PUBLIC KEY block holding a P-256 key', async (t) => {
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const raw = new Bootstrap(`localhost:${server.grpcPort}`, grpc.credentials.createSsl(Buffer.from(server.caPem)));
  t.teardown(() => raw.close());
  const enroll = (id: string, publicKeyPem: string) =>
    codeOf(
      new Promise((resolve, reject) =>
        raw.enroll({ identity: identity(id), proof: { joinToken: token }, publicKeyPem }, (err: grpc.ServiceError | null, res?: unknown) =>
          err ? reject(err) : resolve(res),
        ),
      ),
    );
  const keyPair = (type: 'ec' | 'rsa', namedCurve?: string) =>
    type === 'ec' ? generateKeyPairSync('ec', { namedCurve: namedCurve! }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p256 = keyPair('ec', 'prime256v1');
  const publicPem = p256.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const refused: Array<[string, string, RegExp]> = [
    [
      'a PKCS#8 private key',
      p256.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      /not a "PRIVATE KEY" block \(a private key never leaves the host\)/,
    ],
    ['an EC private key', p256.privateKey.export({ type: 'sec1', format: 'pem' }).toString(), /not a "EC PRIVATE KEY" block/],
    ['the CA certificate', server.caPem, /not a "CERTIFICATE" block/],
    [
      'two keys',
      publicPem + keyPair('ec', 'prime256v1').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      /it holds 2 PEM blocks/,
    ],
    ['a key and text after it', publicPem + 'trailing words\n', /nothing before or after it/],
    ['an RSA key', keyPair('rsa').publicKey.export({ type: 'spki', format: 'pem' }).toString(), /ECDSA P-256/],
    ['a P-384 key', keyPair('ec', 'secp384r1').publicKey.export({ type: 'spki', format: 'pem' }).toString(), /ECDSA P-256/],
  ];
  for (const [what, pem, reason] of refused) {
    const outcome = await enroll('i-0aaaaaaaaaaaaaaa7', pem);
    t.match(outcome, /^INVALID_ARGUMENT: public_key_pem:? /, `${what}: INVALID_ARGUMENT naming the field`);
    t.match(outcome, reason, `${what}: says what is wrong`);
  }
  t.same(await server.service.store.listAudit({ limit: 100, target: 'i-0aaaaaaaaaaaaaaa7' }), [], 'nothing enrolled');
  t.equal(await enroll('i-0aaaaaaaaaaaaaaa7', publicPem), 'OK', 'one P-256 PUBLIC KEY block is taken');
});

t.test('ReportStatus refuses an applied generation above the desired one, and uint64 values from 2^53', async (t) => {
  const c = client();
  t.teardown(() => c.close());
  const id = 'i-0ddddddddddddddd1';
  await c.enroll(identity(id), token, 'test');
  await server.service.assign(id, { role: 'node' }, 'test');
  const report = (appliedGeneration: number | string, facts?: object) =>
    codeOf(
      c.reportStatus({
        instanceId: id,
        appliedGeneration,
        state: 'ready',
        teleportUnitState: 'active',
        teleportReady: true,
        message: '',
        agentVersion: 't',
        ...(facts ? { facts } : {}),
      }),
    );
  t.match(await report(2), /^INVALID_ARGUMENT: applied_generation: 2 is above the desired generation 1/);
  t.equal((await server.service.store.getInstance(id))?.status, null, 'nothing stored');
  t.match(await report('9007199254740993'), /^INVALID_ARGUMENT: applied_generation: must be an integer from 0 up to 2\^53-1/);
  t.match(
    await report(1, { os: 'linux', memoryTotalBytes: '18446744073709551615' }),
    /^INVALID_ARGUMENT: facts.memory_total_bytes: must be an integer from 0 up to 2\^53-1 \(9007199254740991\); larger values are refused, not rounded/,
  );
  t.equal(await report(1, { os: 'linux', memoryTotalBytes: String(2 ** 53 - 1) }), 'OK', '2^53-1 is taken');
  t.equal((await server.service.store.getInstance(id))?.appliedGeneration, 1);
});
