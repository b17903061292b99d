// What the ACME tests stand on: the Route 53 emulator, exercised through the
// real @aws-sdk/client-route-53, and real pebble + pebble-challtestsrv, so that
// a DNS-01 record written to "Route 53" is what pebble's validation sees.
import { X509Certificate } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import t from 'tap';
import * as acme from 'acme-client';
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  GetHostedZoneCommand,
  InvalidChangeBatch,
  ListHostedZonesByNameCommand,
  ListHostedZonesCommand,
  ListResourceRecordSetsCommand,
  NoSuchHostedZone,
  Route53Client,
  type Change,
  type RRType,
} from '@aws-sdk/client-route-53';
import { startRoute53Emulator, type Route53EmulatorOptions } from './emulators/route53';
import { restRequest } from './support/harness';
import { pebbleAvailable, startPebble } from './support/pebble';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' };
const ZONE = 'Z0123456789ABC';
const ZONES = [
  { name: 'example.com.', id: ZONE },
  { name: 'sub.example.com', id: 'Z0SUB' },
  { name: 'example.org.', id: '/hostedzone/Z0ORG' },
];
const CHALLENGE = '_acme-challenge.proxy.example.com.';

async function route53Setup(t: tap.Test, opts: Partial<Route53EmulatorOptions> = {}) {
  const r53 = await startRoute53Emulator({ zones: ZONES, ...opts });
  t.teardown(() => r53.close());
  const client = new Route53Client({ endpoint: r53.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  t.teardown(() => client.destroy());
  const change = (...changes: Change[]) =>
    client.send(new ChangeResourceRecordSetsCommand({ HostedZoneId: ZONE, ChangeBatch: { Changes: changes } }));
  const status = async (id: string) => (await client.send(new GetChangeCommand({ Id: id }))).ChangeInfo?.Status;
  const txtSets = async () =>
    (await client.send(new ListResourceRecordSetsCommand({ HostedZoneId: ZONE }))).ResourceRecordSets?.filter((s) => s.Type === 'TXT');
  return { r53, client, change, status, txtSets };
}

const rr = (action: Change['Action'], name: string, type: RRType, values: string[], ttl: number): Change => ({
  Action: action,
  ResourceRecordSet: { Name: name, Type: type, TTL: ttl, ResourceRecords: values.map((Value) => ({ Value })) },
});
const txt = (action: Change['Action'], name: string, values: string[], ttl = 60) => rr(action, name, 'TXT', values, ttl);

t.test('Route 53: zones are found by name, ordered with the labels reversed', async (t) => {
  const { client } = await route53Setup(t);
  const first = await client.send(new ListHostedZonesByNameCommand({ DNSName: 'example.com', MaxItems: 1 }));
  t.match(first.HostedZones, [
    { Id: `/hostedzone/${ZONE}`, Name: 'example.com.', Config: { PrivateZone: false }, ResourceRecordSetCount: 2 },
  ]);
  t.match(first, { DNSName: 'example.com', IsTruncated: true, MaxItems: 1, NextDNSName: 'sub.example.com.', NextHostedZoneId: 'Z0SUB' });

  const all = await client.send(new ListHostedZonesByNameCommand({}));
  t.same(
    all.HostedZones?.map((z) => z.Name),
    ['example.com.', 'sub.example.com.', 'example.org.'],
    'com.example < com.example.sub < org.example',
  );
  const inside = await client.send(new ListHostedZonesByNameCommand({ DNSName: 'proxy.example.com', MaxItems: 1 }));
  t.equal(inside.HostedZones?.[0]?.Name, 'sub.example.com.', 'a name inside a zone does not find that zone: callers walk up the labels');

  const zone = await client.send(new GetHostedZoneCommand({ Id: `/hostedzone/${ZONE}` }));
  t.equal(zone.HostedZone?.Name, 'example.com.');
  t.equal(zone.DelegationSet?.NameServers?.length, 4);

  const page = await client.send(new ListHostedZonesCommand({ MaxItems: 2 }));
  t.match(page, { IsTruncated: true, NextMarker: 'Z0ORG' });
  const rest = await client.send(new ListHostedZonesCommand({ Marker: page.NextMarker }));
  t.same(
    rest.HostedZones?.map((z) => z.Id),
    ['/hostedzone/Z0ORG'],
  );
});

t.test('Route 53: an UPSERT is PENDING, then INSYNC, and listed until DELETE', async (t) => {
  const { r53, client, change, status, txtSets } = await route53Setup(t);
  const out = await change(txt('UPSERT', CHALLENGE, ['"token-1"']));
  t.equal(out.ChangeInfo?.Status, 'PENDING');
  t.match(out.ChangeInfo?.Id, /^\/change\/C[0-9A-Z]+$/);
  t.ok(out.ChangeInfo?.SubmittedAt instanceof Date);
  t.equal(await status(out.ChangeInfo!.Id!), 'INSYNC', 'with no delay, the first poll is INSYNC');

  const listed = await client.send(new ListResourceRecordSetsCommand({ HostedZoneId: ZONE }));
  t.same(
    listed.ResourceRecordSets?.map((s) => `${s.Name} ${s.Type}`),
    ['example.com. NS', 'example.com. SOA', `${CHALLENGE} TXT`],
    'the zone keeps its own NS and SOA',
  );
  t.match(listed.ResourceRecordSets?.[2], { TTL: 60, ResourceRecords: [{ Value: '"token-1"' }] });
  const from = await client.send(
    new ListResourceRecordSetsCommand({ HostedZoneId: ZONE, StartRecordName: 'example.com', StartRecordType: 'SOA', MaxItems: 1 }),
  );
  t.match(from, { IsTruncated: true, NextRecordName: CHALLENGE, NextRecordType: 'TXT', ResourceRecordSets: [{ Type: 'SOA' }] });

  await change(txt('UPSERT', CHALLENGE, ['"token-1"', '"token-2"']));
  t.same(r53.records(ZONE).find((s) => s.type === 'TXT')?.values, ['"token-1"', '"token-2"'], 'UPSERT replaces the whole set');
  await change(txt('DELETE', CHALLENGE, ['"token-2"', '"token-1"']));
  t.same(await txtSets(), []);
  t.same(
    r53.changes.map((c) => c.changes.map((x) => `${x.action} ${x.name}`)),
    [[`UPSERT ${CHALLENGE}`], [`UPSERT ${CHALLENGE}`], [`DELETE ${CHALLENGE}`]],
  );
});

t.test('Route 53: a change stays PENDING for insyncAfterMs', async (t) => {
  const { change, status } = await route53Setup(t, { insyncAfterMs: 150 });
  const id = (await change(txt('CREATE', CHALLENGE, ['"a"']))).ChangeInfo!.Id!;
  t.equal(await status(id), 'PENDING');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(await status(id), 'INSYNC');
});

t.test('Route 53: a change that challtestsrv did not take never reaches INSYNC', async (t) => {
  const { r53, change, status } = await route53Setup(t, { challtestsrv: 'http://127.0.0.1:1' });
  const id = (await change(txt('UPSERT', CHALLENGE, ['"a"']))).ChangeInfo!.Id!;
  t.equal(await status(id), 'PENDING', 'as if the record never reached the name servers');
  t.match(r53.changes[0].mirrorError, /fetch failed/);
});

t.test("Route 53: change batches follow Route 53's rules, all or nothing", async (t) => {
  const { r53, client, change, txtSets } = await route53Setup(t);
  await change(txt('CREATE', CHALLENGE, ['"a"']));
  const before = r53.records();
  const soa = before.find((s) => s.type === 'SOA')!;

  const exists = await change(txt('CREATE', CHALLENGE, ['"b"'])).catch((e: unknown) => e);
  t.ok(exists instanceof InvalidChangeBatch, 'the modelled exception class');
  t.match(exists, {
    name: 'InvalidChangeBatch',
    message: `[Tried to create resource record set [name='${CHALLENGE}', type='TXT'] but it already exists]`,
    $metadata: { httpStatusCode: 400 },
  });
  const refusals: Array<[string, Change[], RegExp]> = [
    ['an unquoted TXT value', [txt('UPSERT', '_acme-challenge.x.example.com', ['abc'])], /Value should be enclosed in quotation marks/],
    ['a name outside the zone', [txt('UPSERT', '_acme-challenge.example.org.', ['"a"'])], /not permitted in zone example\.com\./],
    ['DELETE with other values', [txt('DELETE', CHALLENGE, ['"b"'])], /values provided do not match/],
    ['DELETE with another TTL', [txt('DELETE', CHALLENGE, ['"a"'], 300)], /values provided do not match/],
    ['DELETE of a missing set', [txt('DELETE', `x.${CHALLENGE}`, ['"a"'])], /but it was not found/],
    ['an A record that is no IPv4 address', [rr('UPSERT', 'a.example.com', 'A', ['example.net'], 60)], /ARRDATAIllegalIPv4Address/],
    ['the zone apex SOA', [rr('DELETE', soa.name, 'SOA', soa.values, soa.ttl)], /exactly one SOA/],
    ['a good change beside a bad one', [txt('CREATE', 'ok.example.com', ['"fine"']), txt('DELETE', CHALLENGE, ['"zzz"'])], /do not match/],
  ];
  for (const [what, changes, message] of refusals) {
    await t.rejects(change(...changes), { name: 'InvalidChangeBatch', message }, what);
  }
  await t.rejects(
    change({ Action: 'CREATE', ResourceRecordSet: { Name: 'a.example.com', Type: 'TXT' } }),
    { name: 'InvalidInput', $metadata: { httpStatusCode: 400 } },
    'TTL and records are required',
  );
  t.same(r53.records(), before, 'refused batches changed nothing');
  t.equal(r53.changes.length, 1);

  await change(txt('DELETE', CHALLENGE, ['"a"']), txt('CREATE', CHALLENGE, ['"b"']));
  t.match(await txtSets(), [{ Name: CHALLENGE, ResourceRecords: [{ Value: '"b"' }] }], 'DELETE then CREATE in one batch replaces');
  await change(rr('CREATE', '*.example.com', 'A', ['192.0.2.1'], 60));
  t.match(await txtSets(), [{ Name: CHALLENGE }], 'other types are their own sets');
  const wild = await client.send(
    new ListResourceRecordSetsCommand({ HostedZoneId: ZONE, StartRecordName: '*.example.com', StartRecordType: 'A', MaxItems: 1 }),
  );
  t.equal(wild.ResourceRecordSets?.[0]?.Name, '\\052.example.com.', "Route 53 writes a wildcard's '*' as \\052");
});

t.test('Route 53: unknown zones and changes', async (t) => {
  const { client, change } = await route53Setup(t);
  const err = await client.send(new GetHostedZoneCommand({ Id: 'ZNOPE' })).catch((e: unknown) => e);
  t.ok(err instanceof NoSuchHostedZone);
  t.match(err, { message: 'No hosted zone found with ID: ZNOPE', $metadata: { httpStatusCode: 404 } });
  await t.rejects(client.send(new ListResourceRecordSetsCommand({ HostedZoneId: 'ZNOPE' })), { name: 'NoSuchHostedZone' });
  await t.rejects(
    client.send(
      new ChangeResourceRecordSetsCommand({ HostedZoneId: 'ZNOPE', ChangeBatch: { Changes: [txt('UPSERT', CHALLENGE, ['"a"'])] } }),
    ),
    { name: 'NoSuchHostedZone' },
  );
  await t.rejects(client.send(new GetChangeCommand({ Id: '/change/C0000000000000' })), {
    name: 'NoSuchChange',
    $metadata: { httpStatusCode: 404 },
  });
  t.ok(await change(txt('UPSERT', CHALLENGE, ['"a"'])), 'the known zone still works');
});

t.test('Route 53: unsigned requests are refused; unreachable fails', async (t) => {
  const { r53, client } = await route53Setup(t);
  const res = await fetch(`${r53.endpoint}/2013-04-01/hostedzone`);
  t.equal(res.status, 403);
  t.match(
    await res.text(),
    /<ErrorResponse xmlns="https:\/\/route53\.amazonaws\.com\/doc\/2013-04-01\/"><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code>/,
  );

  r53.setUnreachable(true);
  await t.rejects(client.send(new ListHostedZonesCommand({})), { code: 'ECONNRESET' });
  r53.setUnreachable(false);
  t.ok(await client.send(new ListHostedZonesCommand({})));
});

const skip = pebbleAvailable() ? false : 'pebble and pebble-challtestsrv are not on PATH (Debian: apt-get install pebble)';

t.test('pebble and challtestsrv', { skip }, async (t) => {
  const pebble = await startPebble();
  t.teardown(() => pebble.stop());
  const dns = new Resolver();
  dns.setServers([`127.0.0.1:${pebble.dnsPort}`]);
  const answers = (name: string) =>
    dns.resolveTxt(name).then(
      (rs) => rs.map((chunks) => chunks.join('')).sort(),
      (e: NodeJS.ErrnoException) => e.code,
    );

  t.test('TXT records written through Route 53 are what challtestsrv answers', async (t) => {
    const { change } = await route53Setup(t, { challtestsrv: pebble.challtestsrvUrl });
    await change(txt('UPSERT', CHALLENGE, ['"one"', '"two \\"quoted\\""']));
    t.same(await answers(CHALLENGE), ['one', 'two "quoted"'], 'values unquoted, as a DNS client sees them');
    await change(txt('UPSERT', CHALLENGE, ['"three"']));
    t.same(await answers(CHALLENGE), ['three'], 'a replaced set leaves no old value behind');
    await change(txt('DELETE', CHALLENGE, ['"three"']));
    t.equal(await answers(CHALLENGE), 'ENODATA', 'gone after DELETE');
    t.same(await dns.resolve4('proxy.example.com'), ['127.0.0.1'], 'every name resolves to this host');
    await t.rejects(dns.resolve6('proxy.example.com'), { code: 'ENODATA' }, 'and to no IPv6 address, which pebble would dial first');
  });

  t.test("pebble's directory and CA", async (t) => {
    const url = new URL(pebble.directoryUrl);
    const dir = await restRequest<Record<string, string>>({ port: Number(url.port), ca: pebble.caPem }, 'GET', url.pathname);
    t.equal(dir.status, 200);
    for (const key of ['newNonce', 'newAccount', 'newOrder']) t.match(dir.body[key], /^https:\/\/127\.0\.0\.1:\d+\//, key);
    const root = new X509Certificate(await pebble.rootsPem());
    const intermediate = new X509Certificate(await pebble.intermediatePem());
    t.match(root.subject, /Pebble Root CA/);
    t.ok(intermediate.verify(root.publicKey), 'the intermediate is signed by the root');
  });

  t.test('pebble validates DNS-01 through Route 53 and HTTP-01 on httpPort', async (t) => {
    const { change } = await route53Setup(t, { challtestsrv: pebble.challtestsrvUrl });
    const tokens = new Map<string, string>();
    const site = http.createServer((req, res) => res.end(tokens.get(req.url?.split('/').pop() ?? '') ?? ''));
    await new Promise<void>((r) => site.listen(pebble.httpPort, '127.0.0.1', r));
    t.teardown(() => site.close());

    // acme-client sends everything through one shared axios instance.
    acme.axios.defaults.httpsAgent = new HttpsAgent({ ca: pebble.caPem });
    // Its default first wait for a pending challenge is 5 s; pebble with NOSLEEP needs milliseconds.
    const client = new acme.Client({
      directoryUrl: pebble.directoryUrl,
      accountKey: await acme.crypto.createPrivateEcdsaKey(),
      backoffMin: 50,
      backoffMax: 500,
    });
    const issue = async (name: string, type: 'dns-01' | 'http-01') => {
      const [, csr] = await acme.crypto.createCsr({ commonName: name });
      return client.auto({
        csr,
        termsOfServiceAgreed: true,
        challengePriority: [type],
        skipChallengeVerification: true,
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          if (challenge.type === 'http-01') tokens.set(challenge.token, keyAuthorization);
          else await change(txt('UPSERT', `_acme-challenge.${authz.identifier.value}`, [`"${keyAuthorization}"`]));
        },
        challengeRemoveFn: async () => undefined,
      });
    };
    const intermediate = new X509Certificate(await pebble.intermediatePem());
    for (const [name, type] of [
      ['*.example.com', 'dns-01'],
      ['proxy.example.com', 'http-01'],
    ] as const) {
      const leaf = new X509Certificate(await issue(name, type));
      t.match(leaf.subjectAltName, `DNS:${name}`, `${type} for ${name}`);
      t.ok(leaf.verify(intermediate.publicKey), "signed by pebble's intermediate");
    }
  });
});
