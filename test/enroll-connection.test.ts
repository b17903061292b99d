// A first boot over one connection: the agent presents a self-signed
// certificate of the key it enrolls, and the calls after Enroll go on over
// that connection as the certificate just issued. Nothing else gets an
// identity that way: not another key, not another connection, not a
// revoked certificate.
import t, { type Test } from 'tap';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ControlClient } from '../agent/control-client';
import { newEnrollmentKey, type EnrollmentKey } from '../agent/enrollment-key';
import { bootstrapProto } from '../contract/proto';
import { createLogger } from '../contract/log';
import { loadControlConfig } from '../control/config';
import type { RunningControlServer } from '../control/server';
import { startGrpcServer } from '../control/grpc/server';
import { loadTlsMaterial } from '../control/tls-material';
import { testIdentity } from './support/fixtures';
import { startInProcessControl, type InProcessControl } from './support/in-process';

let control: InProcessControl;
let server: RunningControlServer;
let token: string;

t.before(async () => {
  control = await startInProcessControl('enroll-connection');
  ({ server, joinToken: token } = control);
});
t.teardown(() => control.close());

/** A TCP relay in front of the gRPC port that counts the connections it carries and can cut them. */
async function relay(t: Test): Promise<{ port: number; accepted: () => number; cut: () => void }> {
  const open = new Set<Socket>();
  let accepted = 0;
  const front: Server = createServer((inbound) => {
    accepted++;
    const outbound = connect(server.grpcPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      open.add(s);
      s.on('error', () => {});
      s.on('close', () => (open.delete(s), inbound.destroy(), outbound.destroy()));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => (open.forEach((s) => s.destroy()), front.close(() => resolve()))));
  return { port: (front.address() as { port: number }).port, accepted: () => accepted, cut: () => open.forEach((s) => s.destroy()) };
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
  );
/** `attempt` again while it meets a dropped connection (UNAVAILABLE), up to 20 times. */
async function untilAvailable(attempt: () => Promise<string>): Promise<string> {
  let outcome = await attempt();
  for (let i = 0; i < 20 && outcome.startsWith('UNAVAILABLE'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    outcome = await attempt();
  }
  return outcome;
}

const report = (c: ControlClient, instanceId: string) =>
  c.reportStatus({
    instanceId,
    appliedGeneration: 0,
    state: 'ready',
    teleportUnitState: 'active',
    teleportReady: true,
    message: '',
    agentVersion: 't',
  });

/** The agent's client of the control server at `port`, closed with the test. */
function agentClient(t: Test, port: number): ControlClient {
  const c = new ControlClient({ endpoints: [`localhost:${port}`], caPem: server.caPem });
  t.teardown(() => c.close());
  return c;
}

/** A raw Bootstrap client whose TLS handshake presents `tlsKey`'s self-signed certificate. */
function rawClient(t: Test, tlsKey: EnrollmentKey) {
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const ssl = grpc.credentials.createSsl(Buffer.from(server.caPem), Buffer.from(tlsKey.keyPem), Buffer.from(tlsKey.selfSignedCertPem));
  const raw = new Bootstrap(`localhost:${server.grpcPort}`, ssl);
  t.teardown(() => raw.close());
  const call = <Res>(method: 'enroll' | 'getAssignment', req: object) =>
    new Promise<Res>((resolve, reject) =>
      (raw[method] as (r: object, cb: (e: grpc.ServiceError | null, r?: Res) => void) => void)(req, (e, r) =>
        e ? reject(e) : resolve(r as Res),
      ),
    );
  return {
    enroll: (id: string, publicKeyPem: string) =>
      call('enroll', { identity: testIdentity(id), proof: { joinToken: token }, publicKeyPem, agentVersion: 't' }),
    getAssignment: (id: string) => call('getAssignment', { instanceId: id }),
  };
}

t.test('an enrollment key: a fresh P-256 key and a certificate of it, self-signed, for the instance', async (t) => {
  const key = newEnrollmentKey('i-0eeeeeeeeeeeeee00');
  const cert = new X509Certificate(key.selfSignedCertPem);
  t.equal(cert.subject, 'CN=i-0eeeeeeeeeeeeee00');
  t.equal(cert.issuer, cert.subject);
  t.ok(cert.verify(createPublicKey(key.publicKeyPem)), 'signed by its own key');
  t.ok(cert.checkPrivateKey(createPrivateKey(key.keyPem)), 'of the private key kept on the host');
  t.equal(createPublicKey(key.keyPem).export({ type: 'spki', format: 'pem' }), key.publicKeyPem, 'the public key sent is that key');
  t.ok(
    new Date(cert.validFrom).getTime() <= Date.now() && new Date(cert.validTo).getTime() > Date.now() + 86_400_000,
    'valid now and for days',
  );
  t.not(newEnrollmentKey('i-0eeeeeeeeeeeeee00').publicKeyPem, key.publicKeyPem, 'each enrollment its own key');
});

t.test('a first boot makes one connection: Enroll, then every call on the connection its key was proven on', async (t) => {
  const front = await relay(t);
  const c = agentClient(t, front.port);
  const id = 'i-0eeeeeeeeeeeeee01';
  await c.enroll(testIdentity(id), token, 'test');
  t.equal(await codeOf(c.getAssignment(id)), 'OK');
  t.equal(await codeOf(report(c, id)), 'OK');
  const first = await new Promise((resolve) => {
    const cancel = c.watch(
      id,
      (s) => (cancel(), resolve(s.instanceId)),
      () => {},
    );
  });
  t.equal(first, id, 'the watch stream answers too');
  t.equal(front.accepted(), 1, 'one TCP connection, one TLS handshake');
  t.match(await server.service.getInstance(id), { status: { state: 'ready' } }, 'the status is stored');
});

t.test('a connection whose TLS key is not the key enrolled gets no identity from it', async (t) => {
  const raw = rawClient(t, newEnrollmentKey('i-0eeeeeeeeeeeeee02'));
  const other = newEnrollmentKey('i-0eeeeeeeeeeeeee02');
  t.equal(await codeOf(raw.enroll('i-0eeeeeeeeeeeeee02', other.publicKeyPem)), 'OK', 'the enrollment itself succeeds');
  t.match(await codeOf(raw.getAssignment('i-0eeeeeeeeeeeeee02')), /^UNAUTHENTICATED: .*enroll first/);

  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const anonymous = new Bootstrap(`localhost:${server.grpcPort}`, grpc.credentials.createSsl(Buffer.from(server.caPem)));
  t.teardown(() => anonymous.close());
  const call = (method: 'enroll' | 'getAssignment', req: object) =>
    codeOf(
      new Promise((resolve, reject) =>
        (anonymous[method] as (r: object, cb: (e: Error | null, r?: unknown) => void) => void)(req, (e, r) => (e ? reject(e) : resolve(r))),
      ),
    );
  const key = newEnrollmentKey('i-0eeeeeeeeeeeeee03');
  t.equal(
    await call('enroll', { identity: testIdentity('i-0eeeeeeeeeeeeee03'), proof: { joinToken: token }, publicKeyPem: key.publicKeyPem }),
    'OK',
  );
  t.match(await call('getAssignment', { instanceId: 'i-0eeeeeeeeeeeeee03' }), /^UNAUTHENTICATED/, 'nor one that presented no certificate');
});

t.test('only the enrollment connection: another one presenting the same self-signed certificate is refused', async (t) => {
  const key = newEnrollmentKey('i-0eeeeeeeeeeeeee04');
  const first = rawClient(t, key);
  t.equal(await codeOf(first.enroll('i-0eeeeeeeeeeeeee04', key.publicKeyPem)), 'OK');
  t.equal(await codeOf(first.getAssignment('i-0eeeeeeeeeeeeee04')), 'OK', 'the enrollment connection acts as the instance');
  t.match(
    await codeOf(rawClient(t, key).getAssignment('i-0eeeeeeeeeeeeee04')),
    /^UNAUTHENTICATED/,
    'a second connection needs the issued certificate',
  );
});

t.test('the instance bound to the connection is checked on every call: deregistered, its calls are refused', async (t) => {
  const key = newEnrollmentKey('i-0eeeeeeeeeeeeee05');
  const raw = rawClient(t, key);
  t.equal(await codeOf(raw.enroll('i-0eeeeeeeeeeeeee05', key.publicKeyPem)), 'OK');
  t.match(
    await codeOf(raw.getAssignment('i-0eeeeeeeeeeeeee06')),
    /^PERMISSION_DENIED: the client certificate belongs to i-0eeeeeeeeeeeeee05/,
    'nor may it act for another instance',
  );
  await server.service.deleteInstance('i-0eeeeeeeeeeeeee05', 'test');
  t.match(await codeOf(raw.getAssignment('i-0eeeeeeeeeeeeee05')), /^UNAUTHENTICATED: this client certificate was revoked/);
});

t.test('when the enrollment connection drops, the agent goes on with its issued certificate, without enrolling again', async (t) => {
  const front = await relay(t);
  const c = agentClient(t, front.port);
  const id = 'i-0eeeeeeeeeeeeee07';
  await c.enroll(testIdentity(id), token, 'test');
  front.cut();
  // As the agent does: a call that met the drop (UNAVAILABLE) is made again.
  t.equal(await untilAvailable(() => codeOf(report(c, id))), 'OK', 'a unary call after the drop');
  t.equal(front.accepted(), 2, 'over a second connection');

  const d = agentClient(t, front.port);
  const other = 'i-0eeeeeeeeeeeeee08';
  await d.enroll(testIdentity(other), token, 'test');
  front.cut();
  const firstState = () =>
    codeOf(
      new Promise<string>((resolve, reject) => {
        const cancel = d.watch(
          other,
          (s) => (cancel(), resolve(s.instanceId)),
          (err) => reject(err ?? new Error('stream ended')),
        );
      }),
    );
  t.equal(await untilAvailable(firstState), 'OK', 'the watch stream comes through on the new connection');
  t.equal(front.accepted(), 4, "this agent's enrollment connection and the one after the drop");
  for (const instance of [id, other]) {
    const enrollments = (await server.service.store.listAudit({ limit: 100, target: instance })).filter(
      (e) => e.action === 'instance.enroll',
    );
    t.equal(enrollments.length, 1, `${instance} enrolled once`);
  }
});

t.test('against a control server that takes no enrollment connection, the agent moves to its issued certificate by itself', async (t) => {
  const log = createLogger('test', 'silent');
  const tls = await loadTlsMaterial(loadControlConfig({ 'data-dir': control.dir }), log);
  const older = await startGrpcServer('127.0.0.1:0', {
    service: server.service,
    log,
    tls: { certPem: tls.certPem, keyPem: tls.keyPem, clientCaPem: tls.ca.certPem },
    enrollmentConnections: false,
  });
  t.teardown(() => older.shutdown(100));
  const c = agentClient(t, older.port);
  const id = 'i-0eeeeeeeeeeeeee09';
  await c.enroll(testIdentity(id), token, 'test');
  t.equal(await codeOf(report(c, id)), 'OK', 'a unary call, refused on the enrollment connection, is made again with the certificate');
  const d = agentClient(t, older.port);
  await d.enroll(testIdentity('i-0eeeeeeeeeeeeee10'), token, 'test');
  const first = await codeOf(
    new Promise((resolve, reject) => {
      const cancel = d.watch(
        'i-0eeeeeeeeeeeeee10',
        (s) => (cancel(), resolve(s)),
        (err) => reject(err ?? new Error('stream ended')),
      );
    }),
  );
  t.equal(first, 'OK', 'so is a watch stream');
  const enrollments = (await server.service.store.listAudit({ limit: 100, target: id })).filter((e) => e.action === 'instance.enroll');
  t.equal(enrollments.length, 1, 'without enrolling again');
});
