// The test stand-in for AWS's instance identity signing keys. It signs
// identity documents the way IMDS serves their signatures:
//   pkcs7     CMS SignedData, DSA with SHA-1, the document inside (as AWS's DSA key does)
//   rsa2048   CMS SignedData, RSA-2048 with SHA-256, the document detached
//   signature the bare base64 RSA SHA-256 signature
// Each with signed attributes (content type, signing time, message digest),
// signer named by issuer and serial, no certificates inside, as AWS does. The
// test control server trusts `certificatesPem` exactly as production trusts
// AWS's published certificates.
import 'reflect-metadata';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as x509 from '@peculiar/x509';
import type { ImdsSigner } from './imds';

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  signingTime: '1.2.840.113549.1.9.5',
  messageDigest: '1.2.840.113549.1.9.4',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  dsaWithSha1: '1.2.840.10040.4.3',
};

interface SigningKey {
  key: KeyObject;
  hash: 'sha1' | 'sha256';
  certDer: Buffer;
  issuer: ArrayBuffer;
  serial: Buffer;
  kind: 'rsa' | 'dsa';
}

const seq = (...value: asn1js.AsnType[]) => new asn1js.Sequence({ value });
const oid = (value: string) => new asn1js.ObjectIdentifier({ value });
const algorithm = (id: string, withNull: boolean) => seq(oid(id), ...(withNull ? [new asn1js.Null()] : []));
const fromDer = (der: ArrayBuffer | Buffer) => asn1js.fromBER(der instanceof Buffer ? new Uint8Array(der) : der).result;
const der = (node: asn1js.AsnType) => Buffer.from(node.toBER(false));
const time = (d: Date) => (d.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: d }) : new asn1js.GeneralizedTime({ valueDate: d }));

function selfSigned(kind: 'rsa' | 'dsa', subject: string): SigningKey {
  const { publicKey, privateKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 });
  const hash = kind === 'rsa' ? 'sha256' : 'sha1';
  const sigAlg = () => (kind === 'rsa' ? algorithm(OID.sha256WithRsa, true) : algorithm(OID.dsaWithSha1, false));
  const name = new x509.Name(subject).toArrayBuffer();
  const serial = randomBytes(8);
  serial[0] = (serial[0] % 0x7f) + 1;
  const now = Date.now();
  // A version 1 certificate, like AWS's own.
  const tbs = seq(
    new asn1js.Integer({ valueHex: new Uint8Array(serial) }),
    sigAlg(),
    fromDer(name),
    seq(time(new Date(now - 86_400_000)), time(new Date(now + 3650 * 86_400_000))),
    fromDer(name),
    fromDer(publicKey.export({ type: 'spki', format: 'der' })),
  );
  const signature = sign(hash, der(tbs), privateKey);
  const cert = seq(tbs, sigAlg(), new asn1js.BitString({ valueHex: new Uint8Array(signature) }));
  return { key: privateKey, hash, certDer: der(cert), issuer: name, serial, kind };
}

function cms(k: SigningKey, document: string, attached: boolean): string {
  const content = Buffer.from(document, 'utf8');
  const digestAlg = () => algorithm(k.hash === 'sha1' ? OID.sha1 : OID.sha256, true);
  const attributes = [
    seq(oid(OID.contentType), new asn1js.Set({ value: [oid(OID.data)] })),
    seq(oid(OID.signingTime), new asn1js.Set({ value: [new asn1js.UTCTime({ valueDate: new Date() })] })),
    seq(
      oid(OID.messageDigest),
      new asn1js.Set({ value: [new asn1js.OctetString({ valueHex: new Uint8Array(createHash(k.hash).update(content).digest()) })] }),
    ),
  ].sort((a, b) => Buffer.compare(der(a), der(b)));
  const signature = sign(k.hash, der(new asn1js.Set({ value: attributes })), k.key);
  const signerInfo = seq(
    new asn1js.Integer({ value: 1 }),
    seq(fromDer(k.issuer), new asn1js.Integer({ valueHex: new Uint8Array(k.serial) })),
    digestAlg(),
    new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: attributes }),
    k.kind === 'rsa' ? algorithm(OID.rsaEncryption, true) : algorithm(OID.dsaWithSha1, false),
    new asn1js.OctetString({ valueHex: new Uint8Array(signature) }),
  );
  const encapsulated = seq(
    oid(OID.data),
    ...(attached
      ? [
          new asn1js.Constructed({
            idBlock: { tagClass: 3, tagNumber: 0 },
            value: [new asn1js.OctetString({ valueHex: new Uint8Array(content) })],
          }),
        ]
      : []),
  );
  const signedData = seq(
    new asn1js.Integer({ value: 1 }),
    new asn1js.Set({ value: [digestAlg()] }),
    encapsulated,
    new asn1js.Set({ value: [signerInfo] }),
  );
  const contentInfo = seq(oid(OID.signedData), new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [signedData] }));
  // IMDS serves the base64 in lines of 64 characters.
  return der(contentInfo)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim();
}

const pem = (certDer: Buffer) =>
  `-----BEGIN CERTIFICATE-----\n${certDer
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim()}\n-----END CERTIFICATE-----\n`;

export interface IdentitySigner {
  /** The certificates a control server must trust (both keys), PEM. */
  certificatesPem: string;
  /** For startImdsEmulator({ signer }). */
  signer: ImdsSigner;
}

/** A new pair of signing keys (DSA for pkcs7, RSA-2048 for rsa2048 and signature), as a test's "AWS". */
export function createIdentitySigner(name = 'teleboot test AWS'): IdentitySigner {
  const dsa = selfSigned('dsa', `C=US, ST=Washington State, L=Seattle, O=${name}`);
  const rsa = selfSigned('rsa', `C=US, ST=Washington State, L=Seattle, O=${name}, CN=rsa2048`);
  return {
    certificatesPem: pem(dsa.certDer) + pem(rsa.certDer),
    signer: (document) => ({
      pkcs7: cms(dsa, document, true),
      rsa2048: cms(rsa, document, false),
      signature: sign('sha256', Buffer.from(document, 'utf8'), rsa.key).toString('base64'),
    }),
  };
}
