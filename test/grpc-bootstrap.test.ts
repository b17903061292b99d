// The agents' gRPC channel over real TLS: enrollment, the client
// certificate every later call needs, field validation, and the watch stream.
import t from 'tap';
import { testIdentity } from './support/fixtures';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
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
    /^PERMISSION_DENIED: join token not recognised/,
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
  const report = (state: string) =>
    a.reportStatus({
      instanceId: 'i-0bbbbbbbbbbbbbbb2',
      appliedGeneration: 0,
      state,
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 't',
    });
  t.match(await codeOf(report('ready')), /^PERMISSION_DENIED/, 'A cannot report for B');
  const before = await server.service.store.getInstance('i-0bbbbbbbbbbbbbbb2');
  t.equal(before?.status, null, "B's stored status is unchanged");
  const own = (state: string) =>
    a.reportStatus({
      instanceId: 'i-0bbbbbbbbbbbbbbb1',
      appliedGeneration: 0,
      state,
      teleportUnitState: 'active',
      teleportReady: true,
      message: '',
      agentVersion: 't',
    });
  t.match(await codeOf(own('sleeping')), /^INVALID_ARGUMENT: state: must be one of converging, ready, degraded, failed/);
  t.equal(await codeOf(own('ready')), 'OK');
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
