// Values several tests share: one instance's identity, one cluster's
// settings, one CA pin, certificates. Nothing here starts anything.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { ClusterSettings, InstanceIdentity } from '../../contract/model';

export const TEST_PIN = `sha256:${'ab'.repeat(32)}`;

export const TEST_CLUSTER: ClusterSettings = {
  clusterName: 'main',
  authAddr: 'auth.example.internal:3025',
  proxyPublicAddr: 'teleport.example.com:443',
  s3Bucket: 'example-teleport',
  ssmPrefix: '/teleport',
  region: 'us-east-1',
  storage: { type: 'dir' },
  // Proxies listen on 3080 behind a load balancer on 443, as in Teleport's AMI.
  behindLoadBalancer: true,
};

/** The files teleport.yaml names, at the agent's default paths. */
export const TEST_RENDER_FILES = {
  dataDir: '/var/lib/teleport',
  joinTokenFile: '/var/lib/teleboot/secrets/join-token',
  certFile: '/var/lib/teleboot/secrets/proxy-fullchain.pem',
  keyFile: '/var/lib/teleboot/secrets/proxy-privkey.pem',
  licenseFile: '/var/lib/teleboot/secrets/license.pem',
};

/** An EC2 instance as IMDS would describe it, with the given id. */
export const testIdentity = (id: string): InstanceIdentity => ({
  instanceId: id,
  region: 'us-east-1',
  availabilityZone: 'us-east-1b',
  accountId: '123456789012',
  privateIp: '10.1.2.3',
  hostname: 'ip-10-1-2-3.ec2.internal',
  instanceType: 'm6i.large',
  imageId: 'ami-0abc',
  tags: {},
});

/**
 * A self-signed proxy certificate valid between two instants, as an
 * expiring Let's Encrypt certificate would look in S3 (a chain of one,
 * which Teleport trusts as its own root).
 */
export async function certificateValidBetween(
  domain: string,
  notBefore: Date,
  notAfter: Date,
): Promise<{ fullchain: string; privkey: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  // Safe: Node's webcrypto is the Web Crypto API; @types/node declares it as its own type, not the DOM's Crypto.
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^./, '1'),
    name: `CN=${domain}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: domain }]),
      new x509.BasicConstraintsExtension(false, undefined, true),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privkey = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { fullchain: cert.toString('pem') + '\n', privkey };
}

/**
 * A piece of a secret distinctive enough to search files and logs for: for a
 * PEM, 48 characters from the middle of its body (the first ones are an
 * ASN.1 header that every key of a type shares); otherwise the value itself.
 */
export function secretNeedle(secret: string): string {
  const body = /-----BEGIN [A-Z ]+-----([\s\S]+?)-----END/.exec(secret)?.[1].replace(/\s+/g, '');
  if (!body) return secret.trim();
  const middle = Math.floor(body.length / 2) - 24;
  return body.slice(middle, middle + 48);
}
