// The acme and aws sections of control.yaml: defaults, and bad input refused
// before the server starts, with a message naming the setting.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadControlConfig } from '../control/config';

const dir = mkdtempSync(join(tmpdir(), 'teleboot-acme-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function load(yaml: Record<string, unknown>) {
  const file = join(dir, `control-${n++}.yaml`);
  writeFileSync(file, stringify(yaml));
  return loadControlConfig({ config: file });
}
const minimal = { email: 'ops@example.com', terms_of_service_agreed: true };

t.test("defaults: Let's Encrypt, HTTP-01 on port 80, renewal at a third of the lifetime, alert at 14 days", async (t) => {
  const { acme, aws } = load({ acme: minimal });
  t.match(acme, {
    directoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
    challenge: 'http-01',
    http01Listen: '0.0.0.0:80',
    keyType: 'ecdsa-p256',
    serverSideEncryption: 'AES256',
    alertBeforeMs: 14 * 86_400_000,
    checkIntervalMs: 3_600_000,
  });
  t.equal(acme!.renewRemainingFraction, 1 / 3);
  t.same(aws, { region: undefined, s3Endpoint: undefined, s3ForcePathStyle: false, ssmEndpoint: undefined, route53Endpoint: undefined });
  t.equal(load({}).acme, undefined, 'no acme section: no certificate management');
});

t.test('bad settings are refused with the setting named', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['terms not agreed', { acme: { email: 'ops@example.com' } }, /terms_of_service_agreed/],
    ['terms refused', { acme: { ...minimal, terms_of_service_agreed: false } }, /terms_of_service_agreed/],
    ['no email', { acme: { terms_of_service_agreed: true } }, /email/],
    ['unknown challenge', { acme: { ...minimal, challenge: 'tls-alpn-01' } }, /challenge/],
    ['fraction out of range', { acme: { ...minimal, renew_remaining_fraction: 1.5 } }, /renew_remaining_fraction/],
    ['not a duration', { acme: { ...minimal, check_interval: 'hourly' } }, /check_interval/],
    [
      'wildcard with HTTP-01',
      { acme: { ...minimal, additional_domains: ['*.example.com'] } },
      /wildcard name can only be proven with acme\.challenge: dns-01/,
    ],
    [
      'KMS key without aws:kms',
      { acme: { ...minimal, kms_key_id: 'alias/x' } },
      /kms_key_id is only used with acme\.server_side_encryption: aws:kms/,
    ],
    ['a typo', { acme: { ...minimal, chalenge: 'dns-01' } }, /chalenge/],
    ['bad endpoint', { aws: { s3_endpoint: 'localhost:9000' } }, /s3_endpoint/],
  ];
  for (const [what, yaml, message] of cases) t.throws(() => load(yaml), { message }, what);
});
