// The control server's certificate duties against Let's Encrypt's own test
// server (pebble): HTTP-01 answered by the control server's challenge
// listener, DNS-01 through Route 53 (the emulator writes the TXT records
// into pebble-challtestsrv, which pebble resolves through), renewal of an
// expiring certificate, one replica at a time, and a failed challenge
// recorded with the CA's reason.
import t from 'tap';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Route53Client } from '@aws-sdk/client-route-53';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { createLogger } from '../contract/log';
import { acmeConfigFrom, type AcmeConfig } from '../control/acme/config';
import { startHttp01Server, type RunningHttp01Server } from '../control/acme/http01-server';
import type { ChallengeSolver } from '../control/acme/issuer';
import { CertificateManager } from '../control/acme/manager';
import { Http01Solver, Route53Solver } from '../control/acme/solvers';
import { AccountKeyParameter, CertificateBucket } from '../control/acme/storage';
import { managedView } from '../control/rest/certificates';
import { SqliteStore } from '../control/store/sqlite';
import { startRoute53Emulator, type Route53Emulator } from './emulators/route53';
import { startSsmEmulator, type SsmEmulator } from './emulators/ssm';
import { AWS_ENV, startS3, type S3Server } from './support/harness';
import { certificateValidBetween, secretNeedle, TEST_CLUSTER } from './support/fixtures';
import { pebbleAvailable, startPebble, type Pebble } from './support/pebble';

const DOMAIN = 'teleport.example.com';
const SETTINGS = { ...TEST_CLUSTER, proxyPublicAddr: `${DOMAIN}:443`, s3Bucket: 'certs', clusterName: 'example', ssmPrefix: '/teleport' };
const DAY = 86_400_000;

if (!pebbleAvailable()) {
  t.skip('pebble and pebble-challtestsrv are not installed (apt-get install pebble; .ci/run does)', () => {});
} else {
  Object.assign(process.env, AWS_ENV);
  const dir = mkdtempSync(join(tmpdir(), 'teleboot-acme-'));
  let pebble: Pebble;
  let s3: S3Server;
  let ssm: SsmEmulator;
  let route53: Route53Emulator;
  let http01: RunningHttp01Server;
  const logLines: string[] = [];
  const log = createLogger(
    'acme-test',
    'debug',
    new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  const clients: Array<{ destroy(): void }> = [];
  let store: SqliteStore;

  t.before(async () => {
    [pebble, s3, ssm] = await Promise.all([startPebble(), startS3(['certs'], join(dir, 's3')), startSsmEmulator()]);
    route53 = await startRoute53Emulator({ zones: [{ name: 'example.com.', id: 'ZEXAMPLE123' }], challtestsrv: pebble.challtestsrvUrl });
    store = new SqliteStore(join(dir, 'control.db'));
    await store.updateSettings(SETTINGS, 'test', Date.now());
    http01 = await startHttp01Server(`127.0.0.1:${pebble.httpPort}`, store, log);
    const caFile = join(dir, 'pebble-ca.pem');
    writeFileSync(caFile, pebble.caPem);
    baseConfig = acmeConfigFrom({
      directory_url: pebble.directoryUrl,
      directory_ca_file: caFile,
      email: 'ops@example.com',
      terms_of_service_agreed: true,
      check_interval: '1s',
    })!;
  });
  t.teardown(async () => {
    clients.forEach((c) => c.destroy());
    await Promise.all([http01?.close(), route53?.close(), ssm?.close(), s3?.close(), pebble?.stop()]);
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let baseConfig: AcmeConfig;

  function manager(solver: ChallengeSolver, opts: { replicaId?: string; config?: Partial<AcmeConfig> } = {}): CertificateManager {
    const s3Client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true });
    const ssmClient = new SSMClient({ region: 'us-east-1', endpoint: ssm.endpoint });
    clients.push(s3Client, ssmClient);
    return new CertificateManager({
      store,
      log,
      config: { ...baseConfig, ...opts.config },
      bucket: new CertificateBucket({ s3: s3Client, serverSideEncryption: 'AES256' }),
      accountKeys: new AccountKeyParameter(ssmClient),
      solver,
      replicaId: opts.replicaId ?? 'control:test-a',
      retry: { initialMs: 10, maxMs: 20 },
    });
  }

  function route53Solver(endpoint = route53.endpoint): Route53Solver {
    const client = new Route53Client({ region: 'us-east-1', endpoint });
    clients.push(client);
    return new Route53Solver({ route53: client, propagationTimeoutMs: 10_000 });
  }

  async function s3Object(key: string): Promise<{ body: string; etag: string }> {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: 'certs', Key: key }));
    return { body: (await out.Body!.transformToString()) ?? '', etag: out.ETag ?? '' };
  }

  /** Verifies a chain against pebble's issuing root: what a browser trusting that root would do. */
  async function chainsToPebble(fullchain: string): Promise<boolean> {
    const blocks = fullchain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((b) => new X509Certificate(b));
    const root = new X509Certificate(await pebble.rootsPem());
    for (let i = 0; i + 1 < blocks.length; i++) if (!blocks[i].verify(blocks[i + 1].publicKey)) return false;
    return blocks[blocks.length - 1].verify(root.publicKey);
  }

  t.test('HTTP-01: the certificate is issued, stored in S3 with server-side encryption, and the account key kept in SSM', async (t) => {
    const m = manager(new Http01Solver(store));
    await m.checkOnce();
    const record = await store.getProxyCertificate(DOMAIN);
    t.equal(record?.state, 'valid', `the certificate is valid (last error: ${record?.lastError})`);
    const fullchain = await s3Object(`live/${DOMAIN}/fullchain.pem`);
    const privkey = await s3Object(`live/${DOMAIN}/privkey.pem`);
    const leaf = new X509Certificate(fullchain.body);
    t.match(leaf.subjectAltName, `DNS:${DOMAIN}`, 'issued for the proxy domain');
    t.ok(await chainsToPebble(fullchain.body), "the chain leads to the ACME server's root");
    t.ok(leaf.checkPrivateKey(createPrivateKey(privkey.body)), "privkey.pem is the certificate's key");
    t.equal(record?.serial, leaf.serialNumber, 'the store records the serial');
    t.equal(record?.etag, fullchain.etag, 'and the ETag of fullchain.pem');
    const writes = s3.writes.filter((w) => w.path.includes(`live/${DOMAIN}/`));
    t.same(
      writes.map((w) => [w.path.split('/').pop(), w.serverSideEncryption]),
      [
        ['privkey.pem', 'AES256'],
        ['fullchain.pem', 'AES256'],
      ],
      'key first, then the chain, both with SSE',
    );
    const account = ssm.get('/teleport/example/acme/account-key');
    t.equal(account?.type, 'SecureString', 'the ACME account key is an SSM SecureString');
    t.match(account?.value, /BEGIN (EC )?PRIVATE KEY/);
    const audit = await store.listAudit({ limit: 100, target: `certificate:${DOMAIN}` });
    t.ok(
      audit.some((e) => e.action === 'certificate.issue' && e.details.serial === leaf.serialNumber),
      'the issuance is audited',
    );
    t.notOk(await store.getAcmeChallenge('x', Date.now()), 'no challenge answer is left in the store');
  });

  t.test('a check with nothing due orders nothing', async (t) => {
    const before = await s3Object(`live/${DOMAIN}/fullchain.pem`);
    const writes = s3.writes.length;
    const next = await manager(new Http01Solver(store)).checkOnce();
    t.equal((await s3Object(`live/${DOMAIN}/fullchain.pem`)).etag, before.etag, 'the certificate in S3 is unchanged');
    t.equal(s3.writes.length, writes, 'nothing was written');
    t.ok(next > Date.now(), 'the next check is scheduled');
  });

  t.test('an expiring certificate is renewed when a third of its lifetime remains', async (t) => {
    const now = Date.now();
    const old = await certificateValidBetween(DOMAIN, new Date(now - 80 * DAY), new Date(now + 10 * DAY));
    await s3.put('certs', `live/${DOMAIN}/privkey.pem`, old.privkey);
    await s3.put('certs', `live/${DOMAIN}/fullchain.pem`, old.fullchain);
    const oldSerial = new X509Certificate(old.fullchain).serialNumber;
    await manager(new Http01Solver(store)).checkOnce();
    const renewed = new X509Certificate((await s3Object(`live/${DOMAIN}/fullchain.pem`)).body);
    t.not(renewed.serialNumber, oldSerial, 'a new certificate replaced the expiring one');
    t.ok(Date.parse(renewed.validTo) > now + 30 * DAY, 'with a fresh lifetime');
    const audit = await store.listAudit({ limit: 100, target: `certificate:${DOMAIN}` });
    const event = audit.reverse().find((e) => e.action === 'certificate.issue')!;
    t.equal(event.details.replaced, oldSerial, 'the audit names the certificate it replaced');
    t.match(event.details.reason, /lifetime left/, 'and why it was due');
  });

  t.test('one control replica at a time orders: the other waits for the lease', async (t) => {
    await store.requestRenewal(DOMAIN, 'test', Date.now());
    const writes = s3.writes.length;
    const other = manager(new Http01Solver(store), { replicaId: 'control:test-b' });
    await other.checkOnce();
    t.equal(s3.writes.length, writes, 'the replica without the lease wrote nothing');
    t.equal((await store.getLease('acme'))?.holder, 'control:test-a', 'replica a still holds the acme lease');
    await manager(new Http01Solver(store)).checkOnce();
    t.equal(s3.writes.length, writes + 2, 'the lease holder renewed on request');
    t.equal((await store.getProxyCertificate(DOMAIN))?.renewRequested, false, 'the request is consumed');
  });

  t.test('DNS-01 through Route 53: TXT records reach pebble through challtestsrv and are removed afterwards', async (t) => {
    await store.requestRenewal(DOMAIN, 'test', Date.now());
    const before = (await store.getProxyCertificate(DOMAIN))!.serial;
    await manager(route53Solver(), { config: { challenge: 'dns-01', additionalDomains: [`*.${DOMAIN}`] } }).checkOnce();
    const record = await store.getProxyCertificate(DOMAIN);
    t.equal(record?.state, 'valid', `issued (last error: ${record?.lastError})`);
    t.not(record?.serial, before, 'a new certificate');
    const leaf = new X509Certificate((await s3Object(`live/${DOMAIN}/fullchain.pem`)).body);
    t.match(leaf.subjectAltName, `DNS:*.${DOMAIN}`, 'the wildcard name is on it (only DNS-01 can prove one)');
    const upserts = route53.changes.flatMap((c) => c.changes).filter((c) => c.action === 'UPSERT');
    t.same(
      upserts.map((c) => [c.name, c.type, c.values.length]),
      [[`_acme-challenge.${DOMAIN}.`, 'TXT', 2]],
      'one TXT record set with both answers (apex and wildcard)',
    );
    t.notOk(
      route53.records().some((r) => r.name.startsWith('_acme-challenge.')),
      'the challenge records are deleted',
    );
  });

  t.test("a failed challenge is recorded with the CA's reason, retried, and shown as an alert while the certificate expires", async (t) => {
    // A Route 53 that accepts the records but never lets pebble see them.
    const blind = await startRoute53Emulator({ zones: [{ name: 'example.com.', id: 'ZBLIND' }] });
    t.teardown(() => blind.close());
    const now = Date.now();
    const old = await certificateValidBetween(DOMAIN, new Date(now - 85 * DAY), new Date(now + 5 * DAY));
    await s3.put('certs', `live/${DOMAIN}/privkey.pem`, old.privkey);
    await s3.put('certs', `live/${DOMAIN}/fullchain.pem`, old.fullchain);
    const m = manager(route53Solver(blind.endpoint), { config: { challenge: 'dns-01' } });
    await m.checkOnce();
    let record = (await store.getProxyCertificate(DOMAIN))!;
    t.equal(record.state, 'failing', 'the certificate is failing');
    t.equal(record.failures, 1);
    t.match(
      record.lastError,
      /dns-01 challenge for teleport\.example\.com was not accepted: .*(TXT|NXDOMAIN|SERVFAIL|dns)/i,
      "the error names the challenge and the CA's reason",
    );
    t.ok(record.nextAttemptAt! > record.lastAttemptAt!, 'a retry is scheduled');
    const view = managedView(record, Date.now(), 14 * DAY);
    t.equal(view.alert, true, 'monitoring sees an alert: under 14 days left');
    t.equal(view.daysLeft, 4.9, 'with the days left');
    t.equal(
      new X509Certificate((await s3Object(`live/${DOMAIN}/fullchain.pem`)).body).serialNumber,
      new X509Certificate(old.fullchain).serialNumber,
      'the expiring certificate stays in place',
    );
    const audit = await store.listAudit({ limit: 200, target: `certificate:${DOMAIN}` });
    t.ok(
      audit.some((e) => e.action === 'certificate.fail'),
      'the failure is audited',
    );
    t.ok(
      logLines.some((l) => l.includes('ordering the proxy certificate failed')),
      'and logged',
    );

    // The retry (after its backoff) goes through once the records are visible.
    await new Promise((r) => setTimeout(r, 30));
    await manager(route53Solver(), { config: { challenge: 'dns-01' } }).checkOnce();
    record = (await store.getProxyCertificate(DOMAIN))!;
    t.equal(record.state, 'valid', 'the retry succeeds');
    t.equal(record.failures, 0, 'and clears the failures');
    t.equal(record.lastError, null);
  });

  t.test('nothing secret in the logs or the database', async (t) => {
    const account = ssm.get('/teleport/example/acme/account-key')!.value;
    const privkey = (await s3Object(`live/${DOMAIN}/privkey.pem`)).body;
    const logs = logLines.join('');
    const db = readFileSync(join(dir, 'control.db')).toString('latin1') + readFileSync(join(dir, 'control.db-wal')).toString('latin1');
    for (const [what, pem] of [
      ['account key', account],
      ['certificate key', privkey],
    ] as const) {
      t.notOk(logs.includes(secretNeedle(pem)), `the ${what} is not logged`);
      t.notOk(db.includes(secretNeedle(pem)), `the ${what} is not in the control database`);
    }
  });
}
