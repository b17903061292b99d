// The grpc-js internals control/grpc/grpc-internals.ts relies on, over a
// real TLS connection: a grpc-js upgrade that moves them fails here, not in
// a first boot that silently needs two connections, or a server that
// refuses its first handshakes.
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { newEnrollmentKey } from '../agent/enrollment-key';
import { bootstrapProto } from '../contract/proto';
import { serverCredentials, tlsSocketOf } from '../control/grpc/grpc-internals';
import { createCertificateAuthority, issueServerCertificate } from '../control/pki';
import type { BootstrapClient } from '../proto/gen/teleboot/v1/Bootstrap';

t.test('the TLS socket under a call shows the client certificate of the handshake, signed by the CA or not', async (t) => {
  const ca = await createCertificateAuthority('grpc-internals test CA');
  const serverPair = await issueServerCertificate(ca, ['localhost']);
  const seen: Array<ReturnType<typeof tlsSocketOf>> = [];
  const server = new grpc.Server({
    interceptors: [
      (_method, call) => {
        seen.push(tlsSocketOf(call));
        return new grpc.ServerInterceptingCall(call);
      },
    ],
  });
  server.addService(bootstrapProto().teleboot.v1.Bootstrap.service, {
    GetAssignment: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, { instanceId: 'i-0internals000001' }),
  });
  // As startGrpcServer does: credentials primed through the internal watcher, connections injected.
  const credentials = serverCredentials({ certPem: serverPair.certPem, keyPem: serverPair.keyPem, clientCaPem: ca.certPem });
  const injector = server.createConnectionInjector(credentials);
  const listener = createServer((socket) => injector.injectConnection(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    listener.close();
    server.forceShutdown();
  });

  const key = newEnrollmentKey('i-0internals000001');
  const Bootstrap = bootstrapProto().teleboot.v1.Bootstrap;
  const client: BootstrapClient = new Bootstrap(
    `localhost:${(listener.address() as AddressInfo).port}`,
    grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(key.keyPem), Buffer.from(key.selfSignedCertPem)),
  );
  t.teardown(() => client.close());
  const reply = await new Promise<{ instanceId: string }>((resolve, reject) =>
    client.getAssignment({ instanceId: 'i-0internals000001' }, { deadline: Date.now() + 10_000 }, (err, res) =>
      err ? reject(err) : resolve(res as { instanceId: string }),
    ),
  );
  t.equal(reply.instanceId, 'i-0internals000001', 'the first connection to primed credentials is served');
  t.equal(seen.length, 1, 'the interceptor saw the call');
  const socket = seen[0];
  t.ok(socket, 'grpc-js keeps the TLS socket at call.stream.session.socket');
  const presented = socket!.getPeerX509Certificate();
  t.ok(presented, 'the socket shows the certificate presented in the handshake');
  t.ok(
    presented!.publicKey
      .export({ type: 'spki', format: 'der' })
      .equals(Buffer.from(key.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64')),
    "it holds the client's own key (a self-signed certificate the CA did not sign)",
  );
  t.equal(socket!.authorized, false, 'and the TLS layer did not verify it: only the key is taken from it');
});

t.test('certificate-provider credentials still carry the watcher the server primes them with', async (t) => {
  const ca = await createCertificateAuthority('grpc-internals test CA');
  const pair = await issueServerCertificate(ca, ['localhost']);
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(
    {
      addCaCertificateListener() {},
      removeCaCertificateListener() {},
      addIdentityCertificateListener() {},
      removeIdentityCertificateListener() {},
    },
    null,
    false,
  );
  t.type(Reflect.get(credentials, '_addWatcher'), 'function', 'ServerCredentials._addWatcher exists');
  t.type(Reflect.get(credentials, '_getConstructorOptions'), 'function', 'ServerCredentials._getConstructorOptions exists');
  t.doesNotThrow(() => serverCredentials({ certPem: pair.certPem, keyPem: pair.keyPem, clientCaPem: ca.certPem }));
});

t.test('the gRPC server issues no TLS session tickets: a client offering an earlier session gets a full handshake', async (t) => {
  const ca = await createCertificateAuthority('grpc-internals test CA');
  const serverPair = await issueServerCertificate(ca, ['localhost']);
  const server = new grpc.Server();
  server.addService(bootstrapProto().teleboot.v1.Bootstrap.service, {});
  const injector = server.createConnectionInjector(
    serverCredentials({ certPem: serverPair.certPem, keyPem: serverPair.keyPem, clientCaPem: ca.certPem }),
  );
  const listener = createServer((socket) => injector.injectConnection(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    listener.close();
    server.forceShutdown();
  });
  const port = (listener.address() as AddressInfo).port;
  const key = newEnrollmentKey('i-0internals000002');
  // A TLS 1.3 client as an agent's (its own key, HTTP/2); the session it may offer later comes after the handshake.
  const handshake = (session?: Buffer) =>
    new Promise<{ reused: boolean; session?: Buffer }>((resolve, reject) => {
      const socket = connect({
        port,
        host: '127.0.0.1',
        servername: 'localhost',
        ca: ca.certPem,
        key: key.keyPem,
        cert: key.selfSignedCertPem,
        ALPNProtocols: ['h2'],
        session,
      });
      socket.on('error', reject);
      // A resumed handshake is told at once; a full one, once the session to offer later has come.
      socket.once('secureConnect', () => socket.isSessionReused() && (resolve({ reused: true }), socket.destroy()));
      socket.once('session', (s: Buffer) => (resolve({ reused: socket.isSessionReused(), session: s }), socket.destroy()));
    });
  const first = await handshake();
  t.equal(first.reused, false, 'the first connection makes a full handshake');
  t.ok(first.session, 'and the client keeps a session to offer');
  const second = await handshake(first.session);
  t.equal(second.reused, false, 'the server does not resume it (no ticket it could decrypt, no session cache)');
});
