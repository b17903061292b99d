// One cluster identity for several control replicas (ca.source ssm:/PREFIX):
// the CA and the join token live in the SSM emulator as SecureStrings, which
// the real @aws-sdk/client-ssm talks to. Replicas run as their own processes
// on one store, as they would on one database.
import t from 'tap';
import { randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { SSMClient } from '@aws-sdk/client-ssm';
import { stringify } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { caParameterName, joinTokenParameterName } from '../control/cluster-ca-ssm';
import { loadControlConfig } from '../control/config';
import { createCertificateAuthority } from '../control/pki';
import { createOrReadSecureParameter } from '../control/ssm-secure-parameter';
import { SqliteStore } from '../control/store/sqlite';
import { startSsmEmulator, type SsmEmulator } from './emulators/ssm';
import { testIdentity } from './support/fixtures';
import { AWS_ENV, CONTROL_BIN, ControlProcess, removeDir, runNode, scratchDir } from './support/harness';

let ssm: SsmEmulator;
let dir: string;
t.before(async () => {
  ssm = await startSsmEmulator();
  dir = scratchDir('cluster-ca');
});
t.teardown(async () => {
  await ssm.close();
  removeDir(dir);
});

/** control.yaml pointing at the SSM emulator, with the KMS key for the SecureStrings. */
function controlYaml(name: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ aws: { region: 'us-east-1', ssm_endpoint: ssm.endpoint }, ca: { kms_key_id: 'alias/teleboot-ca' } }));
  return path;
}

const replica = (dataDir: string, prefix: string, config: string) =>
  new ControlProcess(dataDir, ['--heartbeat-interval', '1s', '--config', config, '--ca-source', `ssm:${prefix}`], AWS_ENV);

/** The certificate a TLS server presents on `port`. */
function presented(port: number, caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem, ALPNProtocols: ['h2'] }, () => {
      const cert = new X509Certificate(socket.getPeerCertificate().raw);
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

const succeededPuts = (name: string) => ssm.requests.filter((r) => r.target === 'PutParameter' && r.name === name && !r.error);

t.test('three replicas started at once on a fresh parameter path share one CA and one join token', async (t) => {
  const prefix = `/teleboot/${randomUUID().slice(0, 8)}`;
  const dataDir = join(dir, 'shared');
  // The store as a first start (or, with PostgreSQL, the first migration) leaves it: a cluster id, nothing issued.
  const clusterId = randomUUID();
  const store = new SqliteStore(join(dataDir, 'control.db'));
  store.recordClusterId(clusterId, Date.now());
  await store.close();
  writeFileSync(join(dataDir, 'cluster-id'), clusterId + '\n', { mode: 0o600 });

  const config = controlYaml('three');
  const replicas = [replica(dataDir, prefix, config), replica(dataDir, prefix, config), replica(dataDir, prefix, config)];
  t.teardown(() => Promise.all(replicas.map((r) => r.stop())));
  await Promise.all(replicas.map((r) => r.start()));

  const caName = caParameterName(prefix);
  t.equal(succeededPuts(caName).length, 1, 'exactly one PutParameter of the CA succeeded');
  t.equal(succeededPuts(joinTokenParameterName(prefix)).length, 1, 'and one of the join token');
  const stored = ssm.get(caName)!;
  t.match(
    stored,
    { type: 'SecureString', version: 1, keyId: 'alias/teleboot-ca' },
    'a SecureString under the KMS key given, never overwritten',
  );
  const created = replicas.filter((r) => /stored the cluster CA in SSM/.test(r.logs));
  t.equal(created.length, 1, 'one replica says it created the CA');
  t.equal(replicas.filter((r) => /using the cluster CA from SSM/.test(r.logs)).length, 2, 'the others use it');

  const caPem = readFileSync(replicas[0].caFile, 'utf8');
  const ca = new X509Certificate(caPem);
  t.ok(stored.value.startsWith(caPem), '<data_dir>/tls/ca.pem is the CA in SSM');
  const serverCerts = await Promise.all(replicas.map((r) => presented(r.grpcPort, caPem)));
  for (const [i, cert] of serverCerts.entries()) {
    t.ok(cert.verify(ca.publicKey), `replica ${i + 1} presents a certificate the CA signed`);
    t.equal(cert.issuer, ca.subject);
  }
  t.equal(new Set(serverCerts.map((c) => c.serialNumber)).size, 3, 'each replica issued its own server certificate');

  // An agent enrolled through replica 1 passes mutual TLS on replicas 2 and 3.
  const token = readFileSync(replicas[0].joinTokenFile, 'utf8').trim();
  t.equal(token, ssm.get(joinTokenParameterName(prefix))!.value, 'the join token file is the one in SSM');
  const id = 'i-0c1a0000000000001';
  const first = new ControlClient({ endpoints: [replicas[0].grpcAddr], caPem }, { startAt: 0 });
  t.teardown(() => first.close());
  const { credentials } = await first.enroll(testIdentity(id), token, 'test');
  for (const other of replicas.slice(1)) {
    const client = new ControlClient({ endpoints: [other.grpcAddr], caPem }, { startAt: 0 });
    client.useCredentials(credentials);
    const state = await client.getAssignment(id);
    client.close();
    t.equal(state.instanceId, id, `replica on port ${other.grpcPort} accepts the client certificate from replica 1`);
  }
  // A second agent enrolls through replica 3 with the same token: every replica accepts it.
  const third = new ControlClient({ endpoints: [replicas[2].grpcAddr], caPem }, { startAt: 0 });
  t.teardown(() => third.close());
  await third.enroll(testIdentity('i-0c1a0000000000002'), token, 'test');
  t.pass('replica 3 accepts the join token replica 1 created (or read)');

  for (const [i, r] of replicas.entries()) {
    t.notMatch(r.logs, /PRIVATE KEY/, `replica ${i + 1} never logs a private key`);
    t.notOk(r.logs.includes(token), `nor the join token`);
  }

  // The store has issued certificates now: a replica pointed at an empty path must not make a new CA.
  const other = `${prefix}-other`;
  const refused = await runNode(
    CONTROL_BIN,
    [
      'serve',
      '--data-dir',
      dataDir,
      '--grpc-listen',
      '127.0.0.1:0',
      '--rest-listen',
      '127.0.0.1:0',
      '--config',
      config,
      '--ca-source',
      `ssm:${other}`,
    ],
    AWS_ENV,
  );
  t.equal(refused.code, 1, 'a replica on an empty parameter path beside a used store does not start');
  t.match(refused.stderr, new RegExp(`SSM parameter ${other}/ca does not exist, but the database .* already issued certificates`));
  t.equal(succeededPuts(caParameterName(other)).length, 0, 'and creates nothing there');
});

t.test('replicas creating a parameter together: exactly one put wins, every one reads the winner', async (t) => {
  const client = new SSMClient({ region: 'us-east-1', endpoint: ssm.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  t.teardown(() => client.destroy());
  const name = `/teleboot/race-${randomUUID().slice(0, 8)}/ca`;
  // Each creator waits until all five found the parameter missing, so that all five put.
  const n = 5;
  let missing = 0;
  let allMissing: () => void;
  const barrier = new Promise<void>((r) => (allMissing = r));
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      createOrReadSecureParameter(client, {
        name,
        description: 'test',
        async create() {
          if (++missing === n) allMissing();
          await barrier;
          return `value ${i}`;
        },
      }),
    ),
  );
  t.equal(results.filter((r) => r.created).length, 1, 'one creator');
  t.equal(new Set(results.map((r) => r.value)).size, 1, 'all have the same value');
  t.equal(results[0].value, ssm.get(name)!.value, 'the one stored');
  const puts = ssm.requests.filter((r) => r.target === 'PutParameter' && r.name === name);
  t.same(puts.map((r) => r.error ?? 'ok').sort(), [
    'ParameterAlreadyExists',
    'ParameterAlreadyExists',
    'ParameterAlreadyExists',
    'ParameterAlreadyExists',
    'ok',
  ]);
});

t.test('a damaged CA parameter stops a replica, naming the parameter', async (t) => {
  const other = await createCertificateAuthority('another CA');
  const mine = await createCertificateAuthority('teleboot-control CA');
  const cases: Array<[string, string, RegExp]> = [
    ['not PEM', 'garbage', /no PEM certificate in it/],
    ['certificate only', mine.certPem, /no PEM private key \(PKCS#8\) in it/],
    ['a key of another CA', mine.certPem + other.keyPem, /the private key is not the certificate’s/],
  ];
  const config = controlYaml('damaged');
  for (const [what, value, reason] of cases) {
    const prefix = `/teleboot/damaged-${randomUUID().slice(0, 8)}`;
    ssm.put(caParameterName(prefix), value, 'SecureString');
    const r = await runNode(
      CONTROL_BIN,
      [
        'serve',
        '--data-dir',
        join(dir, `damaged-${prefix.slice(-8)}`),
        '--grpc-listen',
        '127.0.0.1:0',
        '--rest-listen',
        '127.0.0.1:0',
      ].concat(['--config', config, '--ca-source', `ssm:${prefix}`]),
      AWS_ENV,
    );
    t.equal(r.code, 1, `${what}: the replica does not start`);
    t.match(r.stderr, new RegExp(`SSM parameter ${prefix}/ca does not hold the cluster CA: `), `${what}: the parameter is named`);
    t.match(r.stderr, reason, `${what}: and what is wrong`);
    t.match(r.stderr, /get-parameter-history/, `${what}: and how to put it right`);
    t.notMatch(r.stderr, /PRIVATE KEY/, `${what}: without showing the key`);
    t.equal(ssm.get(caParameterName(prefix))!.version, 1, `${what}: the parameter is left as it was`);
  }
});

t.test('a single host becoming several: its data-directory CA and join token go to SSM, and its agents carry on', async (t) => {
  const dataDir = join(dir, 'single');
  const single = new ControlProcess(dataDir, ['--heartbeat-interval', '1s']);
  await single.start();
  t.teardown(() => single.stop());
  const caPem = readFileSync(single.caFile, 'utf8');
  const token = readFileSync(single.joinTokenFile, 'utf8').trim();
  const id = 'i-0c1a0000000000003';
  const before = new ControlClient({ endpoints: [single.grpcAddr], caPem }, { startAt: 0 });
  const { credentials } = await before.enroll(testIdentity(id), token, 'test');
  before.close();
  await single.stop();

  const prefix = `/teleboot/moved-${randomUUID().slice(0, 8)}`;
  const moved = replica(dataDir, prefix, controlYaml('moved'));
  t.teardown(() => moved.stop());
  await moved.start();
  t.match(moved.logs, /stored the cluster CA in SSM/);
  t.ok(ssm.get(caParameterName(prefix))!.value.startsWith(caPem), 'the CA in SSM is the data directory’s');
  t.equal(ssm.get(joinTokenParameterName(prefix))!.value, token, 'and so is the join token');
  const after = new ControlClient({ endpoints: [moved.grpcAddr], caPem }, { startAt: 0 });
  after.useCredentials(credentials);
  t.teardown(() => after.close());
  t.equal((await after.getAssignment(id)).instanceId, id, 'an agent enrolled before keeps its certificate');
});

t.test('ca.source and ca.kms_key_id are checked at start, naming the flag or the setting', async (t) => {
  const file = join(dir, 'ca-source.yaml');
  const load = (doc: unknown, flag?: string) => {
    writeFileSync(file, stringify(doc));
    return () => loadControlConfig({ config: file, ...(flag ? { 'ca-source': flag } : {}) });
  };
  t.throws(load({ ca: { source: 'ssm' } }), {
    message: `${file}: ca.source: must be data_dir, or ssm:/<parameter prefix> such as ssm:/teleboot/prod, got "ssm"`,
  });
  t.throws(load({ ca: { source: 'ssm:/teleboot//prod' } }), {
    message: new RegExp(`^${file}: ca\\.source: "/teleboot//prod" is not an SSM parameter path`),
  });
  t.throws(load({}, 'ssm:/aws/teleboot'), {
    message: '--ca-source: SSM reserves names beginning with /aws and /ssm; choose another prefix',
  });
  t.throws(load({ ca: { kms_key_id: 'alias/x' } }), {
    message: `${file}: ca.kms_key_id is only used with ca.source ssm:/<parameter prefix>`,
  });
  t.same(load({ ca: { source: 'data_dir' } })().ca, { source: { kind: 'data_dir' } });
  t.same(
    load({ ca: { source: 'data_dir', kms_key_id: 'alias/x' } }, 'ssm:/teleboot/prod')().ca,
    {
      source: { kind: 'ssm', prefix: '/teleboot/prod' },
      kmsKeyId: 'alias/x',
    },
    'the flag overrides the file',
  );
});
