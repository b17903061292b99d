// The control server's own certificate authority: it signs the server
// certificate of the gRPC and REST listeners (when none is configured) and
// the short-lived client certificates that enrolled agents present.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs this.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, randomBytes, sign, webcrypto, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
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

// The CA's key identifier is the same in every certificate it signs.
const authorityKeyIds = new WeakMap<CertificateAuthority, Promise<x509.AuthorityKeyIdentifierExtension>>();
function authorityKeyId(ca: CertificateAuthority): Promise<x509.AuthorityKeyIdentifierExtension> {
  let ext = authorityKeyIds.get(ca);
  if (!ext) authorityKeyIds.set(ca, (ext = x509.AuthorityKeyIdentifierExtension.create(ca.cert, false)));
  return ext;
}

async function issue(
  ca: CertificateAuthority,
  subject: string,
  publicKey: CryptoKey,
  lifetimeMs: number,
  extensions: x509.Extension[],
  serialNumber = newSerial(),
): Promise<{ pem: string; notAfter: Date }> {
  const now = Date.now();
  // X.509 times have whole seconds; the certificate says what this says.
  const notAfter = new Date(Math.floor((now + lifetimeMs) / 1000) * 1000);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    signingAlgorithm: SIGN_ALG,
    publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await authorityKeyId(ca),
      ...extensions,
    ],
  });
  return { pem: cert.toString('pem') + '\n', notAfter };
}

/** A server certificate for the listeners, valid for the given DNS names and IPs. */
export async function issueServerCertificate(ca: CertificateAuthority, names: string[], lifetimeDays = 825): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const altNames = names.map((n) => ({ type: /^[\d.]+$|:/.test(n) ? ('ip' as const) : ('dns' as const), value: n }));
  const { pem: certPem } = await issue(ca, `CN=${names[0] ?? 'teleboot-control'}`, keys.publicKey, lifetimeDays * 86_400_000, [
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
export async function importClientPublicKey(publicKeyPem: string): Promise<KeyObject> {
  let key: KeyObject | undefined;
  try {
    key = createPublicKey({ key: publicKeyPem, format: 'pem' });
  } catch {
    /* reported below */
  }
  if (key?.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PublicKeyError('public_key_pem must be a PEM "PUBLIC KEY" (SPKI) of an ECDSA P-256 key');
  }
  return key;
}

/** What every client certificate of one CA shares, built once. */
interface ClientTemplate {
  issuer: asn1.Name;
  signingKey: KeyObject;
  algorithm: asn1.AlgorithmIdentifier;
  algorithmDer: Buffer;
  extensions: asn1.Extension[];
}

const clientTemplates = new WeakMap<CertificateAuthority, Promise<ClientTemplate>>();

function clientTemplate(ca: CertificateAuthority): Promise<ClientTemplate> {
  let template = clientTemplates.get(ca);
  if (!template) {
    template = (async () => {
      const extensions = [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ];
      const algorithm = new asn1.AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
      return {
        issuer: AsnConvert.parse(ca.cert.rawData, asn1.Certificate).tbsCertificate.subject,
        signingKey: createPrivateKey(ca.keyPem),
        algorithm,
        algorithmDer: Buffer.from(AsnConvert.serialize(algorithm)),
        extensions: extensions.map((e) => AsnConvert.parse(e.rawData, asn1.Extension)),
      };
    })();
    clientTemplates.set(ca, template);
  }
  return template;
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** DER length octets: short form below 128, long form above. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const derSequence = (...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
};
// No unused bits: the leading 0x00 octet.
const derBitString = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([0x03]), derLength(bytes.length + 1), Buffer.from([0x00]), bytes]);
const arrayBufferOf = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/**
 * Signs a client certificate for an enrolled instance. The agent keeps its
 * private key; only its public key (SPKI PEM, ECDSA P-256) comes over the wire.
 * Every enrollment signs one, so the certificate is assembled from a per-CA
 * template and signed in place, without the general generator's round trips.
 */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  instanceId: string,
  publicKey: string | KeyObject,
  lifetimeMs: number,
): Promise<{ certPem: string; expiresAt: Date; serial: string }> {
  const key = typeof publicKey === 'string' ? await importClientPublicKey(publicKey) : publicKey;
  const template = await clientTemplate(ca);
  const serial = newSerial();
  const now = Date.now();
  // X.509 times have whole seconds; the certificate says what this returns.
  const notAfter = new Date(Math.floor((now + lifetimeMs) / 1000) * 1000);
  const tbs = new asn1.TBSCertificate({
    version: asn1.Version.v3,
    serialNumber: arrayBufferOf(Buffer.from(serial, 'hex')),
    signature: template.algorithm,
    issuer: template.issuer,
    validity: new asn1.Validity({ notBefore: new Date(Math.floor((now - 60_000) / 1000) * 1000), notAfter }),
    subject: AsnConvert.parse(new x509.Name(`CN=${instanceId}, O=teleboot-agent`).toArrayBuffer(), asn1.Name),
    subjectPublicKeyInfo: AsnConvert.parse(key.export({ type: 'spki', format: 'der' }), asn1.SubjectPublicKeyInfo),
    extensions: new asn1.Extensions(template.extensions),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign('sha256', tbsDer, { key: template.signingKey, dsaEncoding: 'der' });
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  const der = derSequence(tbsDer, template.algorithmDer, derBitString(signature));
  // newSerial's first byte is 01-7f, so TLS stacks print it exactly as generated.
  return { certPem: toPem(arrayBufferOf(der), 'CERTIFICATE'), expiresAt: notAfter, serial: normalizeSerial(serial) };
}
