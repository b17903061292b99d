// The control server's own certificate authority: it signs the server
// certificate of the gRPC and REST listeners (when none is configured) and
// the short-lived client certificates that enrolled agents present.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs this.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, sign, webcrypto, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import {
  DER_ECDSA_WITH_SHA256,
  DER_VERSION_3,
  OID_COMMON_NAME,
  OID_ORGANIZATION,
  derBitString,
  derRdn,
  derSequence,
  derSerial,
  derTime,
  derTlv,
  newSerial,
  pem,
} from '../contract/der';

// Safe: Node's webcrypto is the Web Crypto API; @types/node declares it as its own type, not the DOM's Crypto.
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

async function importPrivateKey(keyPem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  return subtle.importKey('pkcs8', der, EC_ALG, true, ['sign']);
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return await subtle.generateKey(EC_ALG, true, ['sign', 'verify']);
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  return pem(Buffer.from(await subtle.exportKey('pkcs8', key)), 'PRIVATE KEY');
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
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), await authorityKeyId(ca), ...extensions],
  });
  return { pem: cert.toString('pem') + '\n', notAfter };
}

/** The key pair of a PKCS#8 PEM private key (ECDSA P-256). */
async function keyPairOf(keyPem: string): Promise<CryptoKeyPair> {
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return {
    privateKey: await importPrivateKey(keyPem),
    publicKey: await subtle.importKey('spki', spki, EC_ALG, true, ['verify']),
  };
}

/**
 * A server certificate for the listeners, valid for the given DNS names and
 * IPs: for `keyPem` when given (a renewal keeps its key), else for a new key.
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  names: string[],
  lifetimeDays = 825,
  keyPem?: string,
): Promise<KeyPairPem> {
  const keys = keyPem ? await keyPairOf(keyPem) : await generateKeyPair();
  const altNames = names.map((n) => ({ type: /^[\d.]+$|:/.test(n) ? ('ip' as const) : ('dns' as const), value: n }));
  const { pem: certPem } = await issue(ca, `CN=${names[0] ?? 'teleboot-control'}`, keys.publicKey, lifetimeDays * 86_400_000, [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(altNames),
  ]);
  return { certPem, keyPem: await exportPrivateKey(keys.privateKey) };
}

export class PublicKeyError extends Error {}

/** Serials as TLS stacks print them: upper-case hex, no separators, no leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial
    .replace(/[^0-9a-fA-F]/g, '')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
}

/**
 * An agent's public key, checked: the DER SubjectPublicKeyInfo of an ECDSA
 * P-256 key whose point lies on the curve.
 */
export interface ClientPublicKey {
  readonly spkiDer: Buffer;
}

// SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 }, BIT STRING of an uncompressed point (04 || x || y).
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200' + '04', 'hex');
const P256 = {
  p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
};

/** y² = x³ - 3x + b (mod p), with both coordinates reduced: what OpenSSL checks when it imports the point. */
function onP256(x: bigint, y: bigint): boolean {
  const { p, b } = P256;
  if (x >= p || y >= p) return false;
  return (y * y) % p === (((((x * x) % p) * x - 3n * x + b) % p) + p) % p;
}

/** The usual form, as agents send it, read without a trip through OpenSSL's decoders; undefined for any other form. */
function uncompressedP256(publicKeyPem: string): ClientPublicKey | undefined {
  const m = /^\s*-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----\s*$/.exec(publicKeyPem);
  if (!m) return undefined;
  const base64 = m[1].replace(/\s+/g, '');
  const der = Buffer.from(base64, 'base64');
  if (der.toString('base64') !== base64) return undefined;
  if (der.length !== P256_SPKI_PREFIX.length + 64 || !der.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX)) return undefined;
  const coordinate = (at: number) => BigInt(`0x${der.toString('hex', at, at + 32)}`);
  const x = coordinate(P256_SPKI_PREFIX.length);
  const y = coordinate(P256_SPKI_PREFIX.length + 32);
  return onP256(x, y) ? { spkiDer: der } : undefined;
}

/**
 * Whether `key` (the key of a certificate a TLS client presented) is the key
 * of `spkiDer`. For the usual uncompressed P-256 form, its coordinates are
 * compared: a JWK export reads them straight off the key, where a DER export
 * goes through OpenSSL 3's encoder lookup (measured 6 against 170 µs, once per
 * enrollment).
 */
export function isKeyOf(key: KeyObject, spkiDer: Buffer): boolean {
  if (key.asymmetricKeyType !== 'ec') return false;
  const at = P256_SPKI_PREFIX.length;
  // Any other form (a compressed point): compared as keys, whatever their encoding.
  if (spkiDer.length !== at + 64 || !spkiDer.subarray(0, at).equals(P256_SPKI_PREFIX))
    return key.equals(createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }));
  let jwk;
  try {
    jwk = key.export({ format: 'jwk' });
  } catch {
    return false; // a curve JWK has no name for: not P-256
  }
  return (
    jwk.crv === 'P-256' &&
    Buffer.from(jwk.x ?? '', 'base64url').equals(spkiDer.subarray(at, at + 32)) &&
    Buffer.from(jwk.y ?? '', 'base64url').equals(spkiDer.subarray(at + 32))
  );
}

/** Imports the agent's public key (SPKI PEM, ECDSA P-256); PublicKeyError when it is not one. */
export async function importClientPublicKey(publicKeyPem: string): Promise<ClientPublicKey> {
  const usual = uncompressedP256(publicKeyPem);
  if (usual) return usual;
  // Any other encoding OpenSSL reads (a compressed point, say): the slower general path.
  let key: KeyObject | undefined;
  try {
    key = createPublicKey({ key: publicKeyPem, format: 'pem' });
  } catch {
    /* reported below */
  }
  if (key?.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PublicKeyError('public_key_pem must be a PEM "PUBLIC KEY" (SPKI) of an ECDSA P-256 key');
  }
  return { spkiDer: key.export({ type: 'spki', format: 'der' }) };
}

/** What every client certificate of one CA shares, encoded once. */
interface ClientTemplate {
  signingKey: KeyObject;
  /** signature AlgorithmIdentifier (also the certificate's signatureAlgorithm). */
  algorithmDer: Buffer;
  /** The CA's subject. */
  issuerDer: Buffer;
  /** [3] EXPLICIT Extensions. */
  extensionsDer: Buffer;
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
      ].map((e) => AsnConvert.parse(e.rawData, asn1.Extension));
      const der = (value: unknown) => Buffer.from(AsnConvert.serialize(value));
      return {
        signingKey: createPrivateKey(ca.keyPem),
        algorithmDer: DER_ECDSA_WITH_SHA256,
        issuerDer: der(AsnConvert.parse(ca.cert.rawData, asn1.Certificate).tbsCertificate.subject),
        extensionsDer: derTlv(0xa3, der(new asn1.Extensions(extensions))),
      };
    })();
    clientTemplates.set(ca, template);
  }
  return template;
}

/**
 * Signs a client certificate for an enrolled instance. The agent keeps its
 * private key; only its public key (SPKI PEM, ECDSA P-256) comes over the wire.
 * Every enrollment signs one, so the certificate is assembled in DER from a
 * per-CA template (issuer, algorithm and extensions encoded once) and signed
 * in place, without the general generator's round trips.
 */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  instanceId: string,
  publicKey: string | ClientPublicKey,
  lifetimeMs: number,
): Promise<{ certPem: string; expiresAt: Date; serial: string }> {
  const key = typeof publicKey === 'string' ? await importClientPublicKey(publicKey) : publicKey;
  const template = await clientTemplate(ca);
  const serial = newSerial();
  const now = Date.now();
  // X.509 times have whole seconds; the certificate says what this returns.
  const notAfter = new Date(Math.floor((now + lifetimeMs) / 1000) * 1000);
  const notBefore = new Date(Math.floor((now - 60_000) / 1000) * 1000);
  // TBSCertificate ::= SEQUENCE { version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions }
  const tbsDer = derSequence(
    DER_VERSION_3,
    // newSerial's first byte is 01-7f: a positive INTEGER as it is, no padding.
    derSerial(serial),
    template.algorithmDer,
    template.issuerDer,
    derSequence(derTime(notBefore), derTime(notAfter)),
    derSequence(derRdn(OID_COMMON_NAME, instanceId), derRdn(OID_ORGANIZATION, 'teleboot-agent')),
    key.spkiDer,
    template.extensionsDer,
  );
  const signature = sign('sha256', tbsDer, { key: template.signingKey, dsaEncoding: 'der' });
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  const der = derSequence(tbsDer, template.algorithmDer, derBitString(signature));
  // newSerial's first byte is 01-7f, so TLS stacks print it exactly as generated.
  return { certPem: pem(der, 'CERTIFICATE'), expiresAt: notAfter, serial: normalizeSerial(serial) };
}
