// The proxy certificate end to end: the control server (own process) manages
// it with pebble over HTTP-01; a proxy agent (own process, stand-in Teleport)
// boots with an expiring certificate from S3, reports its expiry, and
// monitoring sees the alert. An operator asks for a renewal; the control
// server orders, stores the new certificate in S3; the proxy notices the new
// ETag, swaps the files and reloads Teleport (SIGHUP, no restart), and the
// alert clears. Afterwards nothing secret is found in the logs or in the
// temporary directories, which is where the old scripts left tokens and
// certbot state.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { startAgentProcess, until } from './support/harness';
import { certificateValidBetween, secretNeedle } from './support/fixtures';
import { pebbleAvailable, startPebble, type Pebble } from './support/pebble';
import { CLUSTER, startWorld, type World } from './support/world';

const DOMAIN = 'teleport.example.com';
const DAY = 86_400_000;

/** What the stand-in Teleport serves now (its diag listener's /standin/https). */
function served(diagAddr: string): Promise<{ certificates: Array<{ serial: string; notAfter: string }>; reloads: number } | undefined> {
  return new Promise((resolve) => {
    const req = request(`http://${diagAddr}/standin/https`, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(body) : undefined));
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** Every regular file under a directory, with its mode. */
function filesUnder(dir: string): Array<{ path: string; mode: number }> {
  const out: Array<{ path: string; mode: number }> = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push({ path: p, mode: statSync(p).mode & 0o777 });
  }
  return out;
}

if (!pebbleAvailable()) {
  t.skip('pebble and pebble-challtestsrv are not installed (apt-get install pebble; .ci/run does)', () => {});
} else {
  const tmpBefore = new Set(readdirSync(tmpdir()));
  // The agent outlives the subtest that starts it: it stops when the file's tests end.
  const root = t;
  let pebble: Pebble;
  let world: World;
  const now = Date.now();
  let expiring: { fullchain: string; privkey: string };

  t.before(async () => {
    pebble = await startPebble();
    expiring = await certificateValidBetween(DOMAIN, new Date(now - 80 * DAY), new Date(now + 10 * DAY));
    world = await startWorld('e2e-certificates', {
      proxyCertificate: expiring,
      controlConfig: ({ s3Endpoint, ssmEndpoint }) => {
        const caFile = join(tmpdir(), `teleboot-e2e-pebble-ca-${process.pid}.pem`);
        writeFileSync(caFile, pebble.caPem);
        return {
          acme: {
            directory_url: pebble.directoryUrl,
            directory_ca_file: caFile,
            email: 'ops@example.com',
            terms_of_service_agreed: true,
            challenge: 'http-01',
            http01_listen: `127.0.0.1:${pebble.httpPort}`,
            // Long: what the test sees comes from the checks a settings change and a renewal request start at once.
            check_interval: '1h',
            // 10 of 90 days left is not due yet at 5%: the operator asks for the renewal.
            renew_remaining_fraction: 0.05,
          },
          aws: { s3_endpoint: s3Endpoint, s3_force_path_style: true, ssm_endpoint: ssmEndpoint },
        };
      },
    });
  });
  t.teardown(async () => {
    await world?.close();
    await pebble?.stop();
  });

  let proxy: { id: string; diagAddr: string; logs: () => string; secretsDir: string };

  t.test('a proxy serving an expiring certificate shows as an alert', async (t) => {
    const { control } = world;
    const imds = await world.instance();
    const id = imds.instance.instanceId;
    t.equal((await control.rest('PUT', `/v1/instances/${id}/assignment`, { role: 'proxy' })).status, 200);
    const files = await world.agentConfig(imds, 'process', '500ms');
    const config = parse(readFileSync(files.configFile, 'utf8'));
    config.certificate_check_interval = '300ms';
    writeFileSync(files.configFile, stringify(config));
    const agent = startAgentProcess(root, files);
    proxy = { id, diagAddr: files.diagAddr, logs: agent.logs, secretsDir: files.secretsDir };
    const instance = await control.waitForInstance(id, (i: any) => i.health === 'ready' && i.status?.certificateExpiresAt);
    t.equal(
      instance.status.certificateExpiresAt,
      new Date(new X509Certificate(expiring.fullchain).validTo).toISOString(),
      'the proxy reports when its certificate expires',
    );
    const health = (await control.rest('GET', '/v1/health')).body;
    t.match(
      health.alerts,
      [/teleport\.example\.com expires .* \(9\.\d days, alert below 14\)/, new RegExp(`instance ${id} serves a certificate that expires`)],
      'the managed and the served certificate are both alerts',
    );
    t.equal(health.certificates.managed[0].state, 'valid', 'not due for renewal at 5%');
    t.equal(health.certificates.served[0].alert, true);
    const metrics = (await control.rest('GET', '/metrics')).body as string;
    const expiry = new RegExp(`teleboot_certificate_expiry_seconds\\{source="served",domain="",instance="${id}"\\} (\\d+)`).exec(metrics);
    t.ok(
      expiry && Number(expiry[1]) < 10 * 86_400 && Number(expiry[1]) > 9 * 86_400,
      "Prometheus sees the served certificate's seconds left",
    );
  });

  t.test('an operator renews it; the proxy reloads the new certificate without a restart', async (t) => {
    const { control } = world;
    const before = await served(proxy.diagAddr);
    t.equal(
      before?.certificates[0].serial,
      new X509Certificate(expiring.fullchain).serialNumber,
      'Teleport serves the expiring certificate',
    );
    t.equal((await control.rest('POST', `/v1/certificates/${DOMAIN}/renew`)).status, 202, 'the renewal is accepted');
    t.equal((await control.rest('POST', '/v1/certificates/other.example.com/renew')).status, 404, 'an unknown domain is a 404');

    const record = await until('the renewed certificate', async () => {
      const m = (await control.rest('GET', '/v1/certificates')).body.managed[0];
      return m.serial !== before?.certificates[0].serial && m.state === 'valid' ? m : undefined;
    });
    const out = await world.s3.client.send(new GetObjectCommand({ Bucket: CLUSTER.s3Bucket, Key: `live/${DOMAIN}/fullchain.pem` }));
    const inS3 = new X509Certificate(await out.Body!.transformToString());
    t.equal(inS3.serialNumber, record.serial, 'S3 holds the new certificate');

    const after = await until('Teleport serving the new certificate', async () => {
      const s = await served(proxy.diagAddr);
      return s?.certificates[0]?.serial === record.serial ? s : undefined;
    });
    t.ok(after.reloads >= 1, 'Teleport reloaded (SIGHUP): its reload count went up, which a restart would reset');
    t.match(proxy.logs(), /the proxy certificate in S3 changed; applying it/, 'the agent says why it acts');
    const key = statSync(join(proxy.secretsDir, 'proxy-privkey.pem'));
    t.equal(key.mode & 0o777, 0o600, 'the new key is written 0600');

    const instance = await control.waitForInstance(
      proxy.id,
      (i: any) => i.status?.certificateExpiresAt === new Date(inS3.validTo).toISOString(),
    );
    t.equal(instance.health, 'ready', 'the proxy is ready with the new certificate');
    const health = (await control.rest('GET', '/v1/health')).body;
    t.same(health.alerts, [], 'no alert remains');
  });

  t.test('nothing secret in clear in the logs or the temporary directories', async (t) => {
    const account = world.ssm.get(`/teleport/${CLUSTER.clusterName}/acme/account-key`)?.value;
    t.ok(account, 'the ACME account key is in SSM');
    const newKey = readFileSync(join(proxy.secretsDir, 'proxy-privkey.pem'), 'utf8');
    const secrets: Array<[string, string]> = [
      ['ACME account key', secretNeedle(account!)],
      ['new certificate key', secretNeedle(newKey)],
      ['old certificate key', secretNeedle(expiring.privkey)],
      ['proxy join token', world.tokens.proxy],
    ];
    const logs = world.control.logs + proxy.logs();
    for (const [what, value] of secrets) t.notOk(logs.includes(value), `the ${what} is in no log`);

    // Where secrets may rest: the agent's secrets directory (0600 files) and S3's own storage.
    const allowed = [proxy.secretsDir, join(world.dir, 's3')];
    const scanned = [...readdirSync(tmpdir())].filter((e) => !tmpBefore.has(e)).map((e) => join(tmpdir(), e));
    scanned.push(world.dir);
    let files = 0;
    for (const root of scanned) {
      for (const f of filesUnder(root)) {
        if (allowed.some((a) => f.path.startsWith(a + '/'))) {
          if (f.path.startsWith(proxy.secretsDir) && /privkey|join-token/.test(f.path)) t.equal(f.mode, 0o600, `${f.path} is 0600`);
          continue;
        }
        files++;
        const text = readFileSync(f.path).toString('latin1');
        for (const [what, value] of secrets) if (text.includes(value)) t.fail(`the ${what} is in clear in ${f.path}`);
      }
    }
    t.ok(files > 10, `${files} files scanned (control data, agent state, configs, logs)`);

    // certbot's state (account, renewal config, archive) used to be synced to the bucket: only the live pair is there.
    const listed = await world.s3.client.send(new ListObjectsV2Command({ Bucket: CLUSTER.s3Bucket }));
    t.same(
      (listed.Contents ?? []).map((o) => o.Key).sort(),
      [`live/${DOMAIN}/fullchain.pem`, `live/${DOMAIN}/privkey.pem`],
      'the bucket holds the certificate and its key, nothing else',
    );
  });
}
