// The publisher lease with two control replicas on one PostgreSQL and two
// auth agents racing for it for 60 seconds: the agents start, stop (giving
// the lease back) and crash (leaving it to expire) at random, each talking
// to its own replica over mutual TLS. Every SSM write carries the writer and
// its fencing number (the parameter's description, which the SSM emulator
// records); no two holders ever overlap: each fencing number has one writer,
// and no write under an older holding arrives after one under a newer.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient, type ClientCredentials } from '../agent/control-client';
import { SsmParameterWriter } from '../agent/aws';
import { parsePublisherDescription, Publisher, type LeaseClient } from '../agent/publisher';
import { createLogger } from '../contract/log';
import { testIdentity } from './support/fixtures';
import { AWS_ENV, TCTL_STANDIN } from './support/harness';
import { postgresUnavailable } from './support/postgres';
import { startReplicas } from './support/replicas';

const RACE_MS = 60_000;
const LEASE = '2s';
const AUTH = ['i-0a0000000000race1', 'i-0b0000000000race2'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

t.test(
  'two replicas, two auth agents racing for the publisher lease for 60 s: never two holders',
  { skip: postgresUnavailable() ?? false },
  async (t) => {
    for (const [k, v] of Object.entries(AWS_ENV)) process.env[k] ??= v;
    const { replicas, ssm, dir, caPem, joinToken: token } = await startReplicas(t, 2, { args: ['--publisher-lease', LEASE] });

    // Each auth agent enrolls with its own replica and keeps that replica for the race.
    const credentials: ClientCredentials[] = [];
    for (const [i, id] of AUTH.entries()) {
      const client = new ControlClient({ endpoints: [replicas[i].grpcAddr], caPem });
      const enrolled = await client.enroll(testIdentity(id), token, 'test');
      credentials.push(enrolled.credentials);
      client.close();
      t.equal((await replicas[i].rest('PUT', `/v1/instances/${id}/assignment`, { role: 'auth' })).status, 200);
    }

    const teleportConfig = join(dir, 'teleport.yaml');
    writeFileSync(teleportConfig, 'auth_service:\n  cluster_name: example\n');
    const standin = join(dir, 'tctl');
    mkdirSync(standin);
    const standinBefore = process.env.TCTL_STANDIN_DIR;
    process.env.TCTL_STANDIN_DIR = standin;
    t.teardown(
      () => void (standinBefore === undefined ? delete process.env.TCTL_STANDIN_DIR : (process.env.TCTL_STANDIN_DIR = standinBefore)),
    );
    const writer = new SsmParameterWriter({ region: 'us-east-1', ssmEndpoint: ssm.endpoint });
    const log = createLogger('test', 'silent');
    const stops = { graceful: 0, crashed: 0 };

    /** One auth agent: runs its publisher for a while, stops or crashes, starts again, until the race ends. */
    async function racer(i: number, endAt: number): Promise<void> {
      while (Date.now() < endAt) {
        const client = new ControlClient({ endpoints: [replicas[i].grpcAddr], caPem });
        client.useCredentials(credentials[i]);
        const crash = Math.random() < 0.5;
        // A crashed agent never gives the lease back: it is taken over once it expires on the database's clock.
        const control: LeaseClient = {
          acquireLease: (id, name) => client.acquireLease(id, name),
          renewLease: (id, name, fencing) => client.renewLease(id, name, fencing),
          releaseLease: (id, name, fencing) => (crash ? Promise.reject(new Error('crashed')) : client.releaseLease(id, name, fencing)),
        };
        const publisher = new Publisher({
          config: {
            publisher: { roles: ['node'], tokenTtl: '4h', tokenTtlMs: 4 * 3_600_000, rotateEveryMs: 300 },
            teleport: { tctl: TCTL_STANDIN, binary: '', diagAddr: '', readyTimeoutMs: 0, user: 'root', group: 'root' },
            paths: { teleportConfig, stateDir: dir, teleportDataDir: dir, secretsDir: dir, unitDir: dir, environmentFile: dir },
            retry: { initialMs: 50, maxMs: 200 },
          },
          log,
          control,
          writer,
          instanceId: AUTH[i],
          target: () => ({ clusterName: 'example', ssmPrefix: '/teleport' }),
        });
        const stop = new AbortController();
        const running = publisher.run(stop.signal);
        await sleep(Math.min(between(1500, 5000), Math.max(0, endAt - Date.now())));
        stop.abort();
        await running;
        client.close();
        stops[crash ? 'crashed' : 'graceful']++;
        await sleep(between(0, 300));
      }
    }
    const endAt = Date.now() + RACE_MS;
    await Promise.all([racer(0, endAt), racer(1, endAt)]);
    const publisherWrites = () =>
      ssm.requests
        .filter((r) => r.target === 'PutParameter' && !r.error && r.name?.startsWith('/teleport/example/'))
        .map((r) => ({ name: r.name, ...parsePublisherDescription(r.description ?? '') }));
    // Load can favour one racer for the whole minute (a holder that restarts within the lease keeps it):
    // one that never held the lease then runs alone, and must take it over once the other's holding ends.
    for (const [i, id] of AUTH.entries())
      for (let round = 0; round < 4 && !publisherWrites().some((w) => w.instanceId === id); round++) await racer(i, Date.now() + 8_000);

    const writes = publisherWrites();
    t.ok(writes.length >= 20, `the holders wrote (${writes.length} SSM writes; ${stops.graceful} stops, ${stops.crashed} crashes)`);
    t.same(
      writes.filter((w) => w.fencing === undefined),
      [],
      'every SSM write carries its writer and fencing number',
    );
    const writerOf = new Map<number, Set<string>>();
    for (const w of writes) writerOf.set(w.fencing!, (writerOf.get(w.fencing!) ?? new Set()).add(w.instanceId!));
    t.same(
      [...writerOf].filter(([, ids]) => ids.size > 1).map(([fencing, ids]) => [fencing, [...ids]]),
      [],
      'each fencing number has one writer',
    );
    const backwards = writes.filter((w, k) => k > 0 && w.fencing! < writes[k - 1].fencing!);
    t.same(backwards, [], 'no write under an older holding arrives after one under a newer');
    // Liveness, not safety: the holdings count swings with load (a holder that restarts within the lease keeps its number).
    t.ok(writerOf.size >= 2, `the lease changed hands (${writerOf.size} holdings wrote)`);
    t.same(new Set(writes.map((w) => w.instanceId)), new Set(AUTH), 'both agents held it');

    // The database's account: every new holding starts after the one before it ended, with a higher number.
    const audit = (await replicas[0].rest('GET', '/v1/audit?target=lease:publisher&limit=1000')).body.items as Array<{
      id: number;
      at: string;
      action: string;
      details: { fencing: number; previousExpiredAt: string | null };
    }>;
    const acquisitions = audit.filter((e) => e.action === 'lease.acquire').sort((a, b) => a.id - b.id);
    t.ok(acquisitions.length >= writerOf.size, `${acquisitions.length} holdings`);
    const overlapping = acquisitions.filter(
      (e, k) =>
        (k > 0 && e.details.fencing <= acquisitions[k - 1].details.fencing) ||
        (e.details.previousExpiredAt !== null && Date.parse(e.at) < Date.parse(e.details.previousExpiredAt)),
    );
    t.same(overlapping, [], 'fencing numbers strictly grow, and no holding began before the previous one ended');
  },
);
