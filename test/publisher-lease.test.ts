// The publisher lease: one auth server at a time, with a fencing number that
// grows at every new holder; in the store (surviving a reopen), in the
// service (auth servers only), and over gRPC with mutual TLS.
import t from 'tap';
import { testIdentity } from './support/fixtures';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { SqliteStore } from '../control/store/sqlite';
import { ControlService } from '../control/service';
import type { CertificateAuthority } from '../control/pki';
import type { EnrollmentVerifier } from '../control/enrollment';
import { ControlClient } from '../agent/control-client';
import { loadControlConfig } from '../control/config';
import { startControlServer } from '../control/server';
import { createLogger } from '../contract/log';
import { removeDir, scratchDir, TCTL_STANDIN } from './support/harness';
import { Publisher, tokenTypesOf } from '../agent/publisher';
import { parse } from 'yaml';
import { leafTrustOf, renderTrustedCluster, trustedClusterResource } from '../agent/trusted-cluster';

const identity = testIdentity;

t.test('store: grant, renew, expiry, takeover with a higher fencing number, release; kept across a reopen', async (t) => {
  const dir = scratchDir('lease-store');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'control.db');
  let store = new SqliteStore(path);
  const A = 'i-0aaaaaaaaaaaaaaa1';
  const B = 'i-0bbbbbbbbbbbbbbb2';

  const MINUTE = 60_000;
  const a1 = await store.acquireLease('publisher', A, MINUTE);
  t.match(a1, { granted: true, lease: { holder: A, fencing: 1 } });
  t.match(await store.acquireLease('publisher', B, MINUTE), { granted: false, lease: { holder: A, fencing: 1 } }, 'another instance waits');
  t.match(await store.renewLease('publisher', A, 1, MINUTE), { granted: true, lease: { holder: A, fencing: 1 } });
  t.match(await store.renewLease('publisher', B, 1, MINUTE), { granted: false }, 'only the holder renews');
  t.match(await store.renewLease('publisher', A, 0, MINUTE), { granted: false }, 'a stale fencing number renews nothing');
  const kept = await store.acquireLease('publisher', A, MINUTE);
  t.match(kept, { granted: true, lease: { fencing: 1 } }, 'the holder asking again keeps its number');

  await store.close();
  store = new SqliteStore(path);
  t.match(await store.getLease('publisher'), { holder: A, fencing: 1, expiresAt: kept.lease!.expiresAt }, 'the lease survives a restart');
  t.match(await store.acquireLease('publisher', B, MINUTE), { granted: false });

  // A renews for a moment and stops: once expired, B takes over with a higher number, and A can no longer renew.
  t.match(await store.renewLease('publisher', A, 1, 1), { granted: true });
  let taken = await store.acquireLease('publisher', B, MINUTE);
  for (const deadline = Date.now() + 30_000; !taken.granted && Date.now() < deadline;)
    taken = await store.acquireLease('publisher', B, MINUTE);
  t.match(taken, { granted: true, lease: { holder: B, fencing: 2 } });
  t.match(await store.renewLease('publisher', A, 1, MINUTE), { granted: false, lease: { holder: B, fencing: 2 } });
  t.match(await store.releaseLease('publisher', A, 1), { granted: false, lease: { holder: B } }, 'the old holder cannot release it');
  await store.releaseLease('publisher', B, 2);
  t.match(
    await store.acquireLease('publisher', A, MINUTE),
    { granted: true, lease: { holder: A, fencing: 3 } },
    'released: free at once, numbers keep growing',
  );

  const audit = (await store.listAudit({ limit: 100, target: 'lease:publisher' })).map((e) => [
    e.action,
    e.details.holder,
    e.details.fencing,
  ]);
  t.same(
    audit,
    [
      ['lease.acquire', A, 1],
      ['lease.acquire', B, 2],
      ['lease.release', B, 2],
      ['lease.acquire', A, 3],
    ],
    'every change of holder is audited, renewals are not',
  );
  await store.close();
});

/** A control service on a scratch SQLite store (removed when the test ends); no enrollment, no certificates. */
function scratchService(
  t: { teardown(fn: () => Promise<void>): void },
  name: string,
  opts: { publisherLeaseMs?: number; now?: () => number } = {},
) {
  const dir = scratchDir(name);
  const store = new SqliteStore(join(dir, 'control.db'));
  t.teardown(async () => {
    await store.close();
    removeDir(dir);
  });
  const service = new ControlService({
    store,
    ca: {} as CertificateAuthority,
    verifier: {} as EnrollmentVerifier,
    clientCertificateLifetimeMs: 3_600_000,
    heartbeatIntervalMs: 1000,
    ...opts,
  });
  return { store, service };
}

t.test('service: only auth servers may hold the lease; its period is the configured one', async (t) => {
  const { store, service } = scratchService(t, 'lease-service', { publisherLeaseMs: 2000 });
  for (const id of ['i-0aaaaaaaaaaaaaaa1', 'i-0bbbbbbbbbbbbbbb2', 'i-0ccccccccccccccc3'])
    await store.enroll(identity(id), 'test', Date.now());
  await service.assign('i-0aaaaaaaaaaaaaaa1', { role: 'auth' }, 'test');
  await service.assign('i-0bbbbbbbbbbbbbbb2', { roles: ['auth', 'proxy'] }, 'test');
  await service.assign('i-0ccccccccccccccc3', { role: 'node' }, 'test');

  await t.rejects(service.acquireLease('i-0ccccccccccccccc3', 'publisher'), /not assigned the auth role/);
  await t.rejects(service.acquireLease('i-0ddddddddddddddd4', ''), /not enrolled/);
  await t.rejects(service.acquireLease('i-0aaaaaaaaaaaaaaa1', 'other'), /unknown lease/);
  const granted = await service.acquireLease('i-0aaaaaaaaaaaaaaa1', '');
  t.match(granted, { granted: true, lease: { fencing: 1 } });
  t.equal(granted.lease!.expiresAt - granted.lease!.acquiredAt, 2000, 'for the configured period');
  t.match(await service.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher'), { granted: false });
  t.match(await service.renewLease('i-0aaaaaaaaaaaaaaa1', 'publisher', 1), { granted: true, lease: { fencing: 1 } });
  // A stops renewing: B takes over once the period has passed on the database's clock.
  let taken = await service.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher');
  for (const deadline = Date.now() + 30_000; !taken.granted && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 100));
    taken = await service.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher');
  }
  t.match(taken, { granted: true, lease: { holder: 'i-0bbbbbbbbbbbbbbb2', fencing: 2 } }, 'taken over after one period');
  t.ok(taken.lease!.acquiredAt >= granted.lease!.expiresAt - 1, 'not before the old holding expired');
  t.match(await service.renewLease('i-0aaaaaaaaaaaaaaa1', 'publisher', 1), { granted: false });
  // An auth server that loses the role loses the right to renew.
  await service.assign('i-0bbbbbbbbbbbbbbb2', { role: 'proxy' }, 'test');
  await t.rejects(service.renewLease('i-0bbbbbbbbbbbbbbb2', 'publisher', 2), /not assigned the auth role/);
});

t.test("gRPC: lease calls need the caller's own certificate and the auth role (PERMISSION_DENIED otherwise)", async (t) => {
  const dir = scratchDir('lease-grpc');
  const config = loadControlConfig({
    'data-dir': dir,
    'grpc-listen': '127.0.0.1:0',
    'rest-listen': '127.0.0.1:0',
    'publisher-lease': '3s',
  });
  const server = await startControlServer(config, createLogger('test', 'silent'));
  t.teardown(async () => {
    await server.close();
    removeDir(dir);
  });
  const token = readFileSync(config.joinTokenFile, 'utf8').trim();
  const client = () => new ControlClient({ endpoints: [`localhost:${server.grpcPort}`], caPem: server.caPem });
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'OK',
      (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
    );
  const [a, b, n] = [client(), client(), client()];
  t.teardown(() => [a, b, n].forEach((c) => c.close()));
  await a.enroll(identity('i-0aaaaaaaaaaaaaaa1'), token, 'test');
  await b.enroll(identity('i-0bbbbbbbbbbbbbbb2'), token, 'test');
  await n.enroll(identity('i-0ccccccccccccccc3'), token, 'test');
  await server.service.assign('i-0aaaaaaaaaaaaaaa1', { role: 'auth' }, 'test');
  await server.service.assign('i-0bbbbbbbbbbbbbbb2', { role: 'auth' }, 'test');
  await server.service.assign('i-0ccccccccccccccc3', { role: 'node' }, 'test');

  t.match(await codeOf(n.acquireLease('i-0ccccccccccccccc3', 'publisher')), /^PERMISSION_DENIED: .*not assigned the auth role/);
  t.match(
    await codeOf(n.acquireLease('i-0aaaaaaaaaaaaaaa1', 'publisher')),
    /^PERMISSION_DENIED: the client certificate belongs to/,
    "nobody asks in another instance's name",
  );
  const granted = await a.acquireLease('i-0aaaaaaaaaaaaaaa1', 'publisher');
  t.match(granted, { granted: true, holder: 'i-0aaaaaaaaaaaaaaa1', fencing: 1, periodMs: 3000 });
  t.same(granted.joinTokenNames, ['node'], 'the holder is told the join tokens the fleet needs');
  t.ok(Number(granted.expiresUnixMs) > Date.now() + 2000);
  t.match(await b.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher'), {
    granted: false,
    holder: 'i-0aaaaaaaaaaaaaaa1',
    fencing: 1,
    joinTokenNames: [],
  });
  t.match(await a.renewLease('i-0aaaaaaaaaaaaaaa1', 'publisher', 1), { granted: true });
  t.match(await a.releaseLease('i-0aaaaaaaaaaaaaaa1', 'publisher', 1), { granted: false });
  t.match(await b.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher'), { granted: true, holder: 'i-0bbbbbbbbbbbbbbb2', fencing: 2 });
});

/** A publisher's configuration with the stand-in tctl, everything in `dir`, an hourly rotation. */
function publisherConfig(dir: string, teleportConfig: string, roles: string[]) {
  return {
    publisher: { roles, tokenTtl: '4h', tokenTtlMs: 4 * 3_600_000, rotateEveryMs: 3_600_000 },
    teleport: { tctl: TCTL_STANDIN, binary: '', diagAddr: '', readyTimeoutMs: 0, user: 'root', group: 'root' },
    paths: { teleportConfig, stateDir: dir, teleportDataDir: dir, secretsDir: dir, unitDir: dir, environmentFile: dir },
    retry: { initialMs: 50, maxMs: 200 },
  };
}

/** The stand-in tctl keeps its state in `dir` until the test ends. */
function useStandinDir(t: { teardown(fn: () => void): void }, dir: string): void {
  const env = process.env.TCTL_STANDIN_DIR;
  process.env.TCTL_STANDIN_DIR = dir;
  t.teardown(() => void (env === undefined ? delete process.env.TCTL_STANDIN_DIR : (process.env.TCTL_STANDIN_DIR = env)));
}

t.test('publisher: renews right before every write and writes nothing once the lease is lost', async (t) => {
  const dir = scratchDir('publisher-unit');
  t.teardown(() => removeDir(dir));
  const teleportConfig = join(dir, 'teleport.yaml');
  writeFileSync(teleportConfig, 'teleport:\n  cluster_name: example\n');
  const calls: string[] = [];
  let renewals = 0;
  const loseAfter = 2;
  const lease = (granted: boolean, fencing = 7) => ({
    name: 'publisher',
    holder: granted ? 'i-0aaaaaaaaaaaaaaa1' : 'i-0bbbbbbbbbbbbbbb2',
    fencing,
    expiresUnixMs: Date.now() + 2000,
    granted,
    periodMs: 2000,
    joinTokenNames: [],
  });
  const controller = new AbortController();
  const publisher = new Publisher({
    config: publisherConfig(dir, teleportConfig, ['node', 'proxy']),
    log: createLogger('test', 'silent'),
    instanceId: 'i-0aaaaaaaaaaaaaaa1',
    control: {
      acquireLease: async () => (calls.push('acquire'), lease(true)),
      renewLease: async (_id, _name, fencing) => {
        calls.push(`renew ${fencing}`);
        // Lost to another holder after a few renewals.
        return ++renewals > loseAfter ? lease(false, 8) : lease(true);
      },
      releaseLease: async () => (calls.push('release'), lease(false)),
    },
    writer: { put: async (name) => (calls.push(`put ${name}`), 1) },
    target: () => ({ clusterName: 'example', ssmPrefix: '/teleport' }),
    onChange: () => {
      if (publisher.state.fencing === null && calls.includes('renew 7')) controller.abort();
    },
  });
  useStandinDir(t, join(dir, 'tctl'));
  const done = publisher.run(controller.signal);
  setTimeout(() => controller.abort(), 10_000).unref();
  await done;
  t.same(
    calls,
    ['acquire', 'renew 7', 'put /teleport/example/tokens/node', 'renew 7', 'put /teleport/example/tokens/proxy', 'renew 7'],
    'each write follows a successful renewal; the CA pin is not written after the lease was lost',
  );
  t.equal(publisher.state.fencing, null);
});

// Seed 004_*: EKS discovery and the Kubernetes Service on one host read one combined token.
const KUBE_DISCOVERY = {
  roles: ['kube', 'discovery'],
  kube: { resources: [{ labels: { env: 'prod' } }] },
  discovery: { aws: [{ types: ['eks' as const], regions: ['*'] }] },
};

t.test('service: the publisher lease tells its holder every join token the assignments and rules need', async (t) => {
  const { store, service } = scratchService(t, 'lease-names');
  const auth = 'i-0aaaaaaaaaaaaaaa1';
  for (const id of [auth, 'i-0bbbbbbbbbbbbbbb2']) await store.enroll(identity(id), 'test', 1);
  await service.assign(auth, { role: 'auth' }, 'test');
  await service.assign('i-0bbbbbbbbbbbbbbb2', { role: 'auth' }, 'test');
  const names = async () => (await service.renewLease(auth, 'publisher', 1)).joinTokenNames;

  t.same((await service.acquireLease(auth, 'publisher')).joinTokenNames, [], 'auth servers alone need no join token');
  t.same((await service.acquireLease('i-0bbbbbbbbbbbbbbb2', 'publisher')).joinTokenNames, [], 'only the holder is told');
  await service.assign('i-0node000000000001', { role: 'node' }, 'test');
  await service.assign('i-0node000000000002', { role: 'node', labels: { env: 'prod' } }, 'test');
  await service.assign('i-0edge000000000001', { role: 'auth-proxy' }, 'test');
  await service.assign('i-0kube000000000001', KUBE_DISCOVERY, 'test');
  t.same(
    await names(),
    ['discovery-kube', 'node'],
    'each name once; a host running discovery and kube needs the combined token; auth-proxy needs none',
  );
  await service.addRule({ name: 'proxies', selector: { Role: 'proxy' }, role: 'proxy' }, 'test');
  t.same(await names(), ['discovery-kube', 'node', 'proxy'], "a rule's role is published before an instance matches it");

  await service.updateSettings({ trustRole: 'root' }, 'test');
  t.same(await names(), ['discovery-kube', 'node', 'proxy', 'trusted_cluster'], 'a root cluster publishes a trusted_cluster token');
  await service.updateSettings({ joinMethod: 'iam', iamTokenName: 'aws-iam-token' }, 'test');
  t.same(await names(), ['trusted_cluster'], 'IAM joining reads no token from SSM');
});

t.test("publisher: a name the lease renewal adds is minted at once, a combined one with tctl's comma-separated types", async (t) => {
  const dir = scratchDir('publisher-names');
  t.teardown(() => removeDir(dir));
  const teleportConfig = join(dir, 'teleport.yaml');
  writeFileSync(teleportConfig, 'auth_service:\n  cluster_name: example\n');
  t.equal(tokenTypesOf('discovery-kube'), 'discovery,kube');
  t.equal(tokenTypesOf('trusted_cluster'), 'trusted_cluster');
  t.equal(tokenTypesOf('auth'), undefined, 'no join token lets a host run auth');
  t.equal(tokenTypesOf('node-node'), undefined);
  const puts: string[] = [];
  let renewals = 0;
  const lease = (joinTokenNames: string[]) => ({
    name: 'publisher',
    holder: 'i-0aaaaaaaaaaaaaaa1',
    fencing: 3,
    expiresUnixMs: Date.now() + 300,
    granted: true,
    periodMs: 300,
    joinTokenNames,
  });
  const controller = new AbortController();
  const publisher = new Publisher({
    config: publisherConfig(dir, teleportConfig, ['proxy']),
    log: createLogger('test', 'silent'),
    instanceId: 'i-0aaaaaaaaaaaaaaa1',
    control: {
      acquireLease: async () => lease(['node']),
      // From the fifth renewal on, an instance running discovery and kube is assigned (and a name from a newer server).
      renewLease: async () => lease(++renewals >= 5 ? ['discovery-kube', 'node', 'windows_desktop'] : ['node']),
      releaseLease: async () => ({ ...lease([]), granted: false }),
    },
    writer: {
      put: async (name) => {
        puts.push(name);
        if (name.endsWith('/discovery-kube')) setTimeout(() => controller.abort(), 200);
        return 1;
      },
    },
    target: () => ({ clusterName: 'example', ssmPrefix: '/teleport' }),
  });
  useStandinDir(t, join(dir, 'tctl'));
  setTimeout(() => controller.abort(), 10_000).unref();
  await publisher.run(controller.signal);
  t.same(
    puts,
    [
      '/teleport/example/tokens/node',
      '/teleport/example/tokens/proxy',
      '/teleport/example/ca-pin-hash',
      '/teleport/example/tokens/discovery-kube',
    ],
    'the derived and configured names at the first publication; the new name alone, at once, long before the rotation',
  );
  const minted = readFileSync(join(dir, 'tctl', 'tokens.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.same(
    minted.map((m) => m.roles),
    [['Node'], ['Proxy'], ['Discovery', 'Kube']],
    'tctl tokens add --type=discovery,kube',
  );
  t.same(publisher.tokenNames(), ['discovery-kube', 'node', 'proxy'], 'a name tctl would not understand is left out');
});

t.test('trusted_cluster resource: a typed value rendered with the yaml library, read back as it was', async (t) => {
  const leaf = leafTrustOf({
    trustRole: 'leaf',
    rootClusterName: 'root.example.com',
    rootWebProxyAddr: 'root.example.com:443',
    rootRoleMap: [
      { remote: '^(.*)$', local: ['remote-$1'] },
      { remote: 'yes', local: ['123', 'null', 'a: b', '#x'] },
    ],
  })!;
  t.equal(leaf.rootTunnelAddr, 'root.example.com:443', "the tunnel defaults to the web proxy's address (TLS routing), as in Teleport");
  t.equal(leafTrustOf({ trustRole: 'root' }), undefined);
  const resource = trustedClusterResource(leaf, '0123456789');
  const back = parse(renderTrustedCluster(resource));
  t.same(
    back,
    {
      kind: 'trusted_cluster',
      version: 'v2',
      metadata: { name: 'root.example.com' },
      spec: {
        enabled: true,
        token: '0123456789',
        web_proxy_addr: 'root.example.com:443',
        tunnel_addr: 'root.example.com:443',
        role_map: [
          { remote: '^(.*)$', local: ['remote-$1'] },
          { remote: 'yes', local: ['123', 'null', 'a: b', '#x'] },
        ],
      },
    },
    'strings that look like numbers, booleans, null or YAML syntax stay strings',
  );
});
