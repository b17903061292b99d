// The control server's own certificate authority: it signs the server
// certificate of the gRPC and REST listeners (when none is configured) and
// the short-lived client certificates that enrolled agents present.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs this.
import 'reflect-metadata';
import { randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const subtle = webcrypto.subtle;

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label) + '\n';
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return subtle.importKey('pkcs8', der, EC_ALG, true, ['sign']) as Promise<CryptoKey>;
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  return toPem(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export async function createCertificateAuthority(commonName: string, lifetimeDays = 3650): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetimeDays * 86_400_000),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivateKey(keys.privateKey), cert, key: keys.privateKey };
}

export async function loadCertificateAuthority(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  return { certPem, keyPem, cert: new x509.X509Certificate(certPem), key: await importPrivateKey(keyPem) };
}

async function issue(
  ca: CertificateAuthority,
  subject: string,
  publicKey: CryptoKey,
  lifetimeMs: number,
  extensions: x509.Extension[],
  serialNumber = newSerial(),
): Promise<string> {
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetimeMs),
    signingAlgorithm: SIGN_ALG,
    publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      ...extensions,
    ],
  });
  return cert.toString('pem') + '\n';
}

/** A server certificate for the listeners, valid for the given DNS names and IPs. */
export async function issueServerCertificate(ca: CertificateAuthority, names: string[], lifetimeDays = 825): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const altNames = names.map((n) => ({ type: /^[\d.]+$|:/.test(n) ? ('ip' as const) : ('dns' as const), value: n }));
  const certPem = await issue(ca, `CN=${names[0] ?? 'teleboot-control'}`, keys.publicKey, lifetimeDays * 86_400_000, [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(altNames),
  ]);
  return { certPem, keyPem: await exportPrivateKey(keys.privateKey) };
}

export class PublicKeyError extends Error {}

/**
 * A random positive 128-bit serial whose first byte is 01-7f, so that its
 * hex form is the same whichever tool prints it (no sign padding, no
 * dropped leading zero).
 */
export function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] % 0x7f) + 1;
  return bytes.toString('hex').toUpperCase();
}

/** Serials as TLS stacks print them: upper-case hex, no separators, no leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial.replace(/[^0-9a-fA-F]/g, '').toUpperCase().replace(/^0+(?=.)/, '');
}

/** Imports the agent's public key (SPKI PEM, ECDSA P-256); PublicKeyError when it is not one. */
export async function importClientPublicKey(publicKeyPem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(publicKeyPem);
    return (await subtle.importKey('spki', der, EC_ALG, true, ['verify'])) as CryptoKey;
  } catch {
    throw new PublicKeyError('public_key_pem must be a PEM "PUBLIC KEY" (SPKI) of an ECDSA P-256 key');
  }
}

/**
 * Signs a client certificate for an enrolled instance. The agent keeps its
 * private key; only its public key (SPKI PEM, ECDSA P-256) comes over the wire.
 */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  instanceId: string,
  publicKey: string | CryptoKey,
  lifetimeMs: number,
): Promise<{ certPem: string; expiresAt: Date; serial: string }> {
  const key = typeof publicKey === 'string' ? await importClientPublicKey(publicKey) : publicKey;
  const serial = newSerial();
  const certPem = await issue(
    ca,
    `CN=${instanceId}, O=teleboot-agent`,
    key,
    lifetimeMs,
    [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
    serial,
  );
  const cert = new NodeX509(certPem);
  return { certPem, expiresAt: new Date(cert.validTo), serial: normalizeSerial(cert.serialNumber) };
}
