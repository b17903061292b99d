// EC2 instance identity: the document IMDS serves at
// /latest/dynamic/instance-identity/document and its PKCS#7 (CMS SignedData)
// signature, either
//   /rsa2048  RSA-2048 with SHA-256, the document detached, or
//   /pkcs7    DSA with SHA-1, the document inside the signature,
// checked against AWS's published public certificates (a directory of PEM
// files, shipped under control/data/aws-identity-certs and replaceable in
// config). Parsing is done with the @peculiar ASN.1 schemas; the signature
// itself is checked with node:crypto, which knows both RSA and DSA.
import { createHash, verify as verifySignature, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as asn1js from 'asn1js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ContentInfo, SignedData, id_contentType, id_data, id_messageDigest, id_signedData, type SignerInfo } from '@peculiar/asn1-cms';
import { Name } from '@peculiar/asn1-x509';
import { AWS_REGION_PATTERN } from '../contract/aws-region';

/** Larger inputs are refused before parsing: real ones are about 1.5 KiB and 2 KiB. */
export const MAX_DOCUMENT_BYTES = 4096;
export const MAX_SIGNATURE_BYTES = 16 * 1024;

/** The fields of an identity document teleboot uses. */
export interface IdentityDocument {
  instanceId: string;
  accountId: string;
  region: string;
  availabilityZone: string;
  privateIp: string;
  imageId: string;
  instanceType: string;
  pendingTime?: string;
}

/** The signature does not hold, or the input is not an identity document at all. */
export class IdentityProofError extends Error {}

const DIGESTS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** The shipped directory of AWS's certificates, found from the source tree and from dist/ alike. */
export function shippedCertificatesDir(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'control', 'data', 'aws-identity-certs');
}

/** Every certificate in the .pem/.crt files of a directory (a file may hold several). */
export function loadTrustedCertificates(dir: string): X509Certificate[] {
  const certs: X509Certificate[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!/\.(pem|crt)$/.test(file)) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    for (const block of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      try {
        certs.push(new X509Certificate(block));
      } catch (err) {
        throw new Error(`${join(dir, file)}: not a certificate: ${(err as Error).message}`);
      }
    }
  }
  if (certs.length === 0) throw new Error(`no certificates (*.pem, *.crt) in ${dir}`);
  return certs;
}

function decodeSignature(text: string): Buffer {
  // IMDS serves bare base64; accept the PEM armour too.
  const body = text.replace(/-----(BEGIN|END) PKCS7-----/g, '').replace(/\s+/g, '');
  if (body.length === 0) throw new IdentityProofError('the signature is empty');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new IdentityProofError('the signature is not base64');
  const der = Buffer.from(body, 'base64');
  if (der.length > MAX_SIGNATURE_BYTES) throw new IdentityProofError(`the signature is larger than ${MAX_SIGNATURE_BYTES} bytes`);
  return der;
}

const toBuffer = (b: ArrayBuffer | ArrayBufferView) =>
  ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.from(b);

/** The bytes of an OCTET STRING, primitive or (BER) constructed from pieces. */
function octets(raw: ArrayBuffer): Buffer {
  const parsed = asn1js.fromBER(raw);
  if (parsed.offset === -1) throw new IdentityProofError('the signed content is not valid BER');
  const collect = (node: asn1js.AsnType): Buffer => {
    // asn1js types the value block of a primitive OCTET STRING only; a BER
    // constructed one holds its pieces in `value`, and both fields are checked before use.
    const block = (node as asn1js.OctetString).valueBlock as unknown as {
      isConstructed?: boolean;
      value?: asn1js.AsnType[];
      valueHexView: Uint8Array;
    };
    if (block.isConstructed && block.value) return Buffer.concat(block.value.map(collect));
    return toBuffer(block.valueHexView);
  };
  return collect(parsed.result);
}

function parseSignedData(der: Buffer): SignedData {
  try {
    const info = AsnConvert.parse(der, ContentInfo);
    if (info.contentType !== id_signedData) throw new IdentityProofError(`the signature is PKCS#7 ${info.contentType}, not signedData`);
    return AsnConvert.parse(info.content, SignedData);
  } catch (err) {
    if (err instanceof IdentityProofError) throw err;
    throw new IdentityProofError('the signature is not a PKCS#7 signedData structure');
  }
}

function signerCertificates(signer: SignerInfo, trusted: X509Certificate[]): X509Certificate[] {
  const id = signer.sid.issuerAndSerialNumber;
  if (!id) return trusted;
  const serial = toBuffer(id.serialNumber)
    .toString('hex')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
  const issuer = Buffer.from(AsnConvert.serialize(id.issuer));
  const matching = trusted.filter((c) => {
    const certSerial = c.serialNumber.toUpperCase().replace(/^0+(?=.)/, '');
    return certSerial === serial && Buffer.from(AsnConvert.serialize(AsnConvert.parse(issuerDer(c), Name))).equals(issuer);
  });
  // An unusual encoding of the issuer must not hide the signer: the signature check decides.
  return matching.length ? matching : trusted;
}

/** The issuer Name of a certificate, DER. */
function issuerDer(cert: X509Certificate): Buffer {
  const parsed = asn1js.fromBER(toBuffer(cert.raw));
  // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, sigAlg, issuer, ... } }
  const tbs = (parsed.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const fields = tbs.valueBlock.value;
  const offset = fields[0].idBlock.tagClass === 3 ? 1 : 0; // context-specific [0] version
  return toBuffer(fields[offset + 2].toBER(false));
}

/**
 * The signed attributes of the first signer exactly as they were encoded
 * (the signature covers those bytes, re-tagged as a SET).
 */
function rawSignedAttributes(der: Buffer): Buffer | undefined {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1) return undefined;
  const children = (node: asn1js.AsnType | undefined): asn1js.AsnType[] =>
    ((node as asn1js.Sequence | undefined)?.valueBlock as { value?: asn1js.AsnType[] } | undefined)?.value ?? [];
  // ContentInfo { contentType, [0] { SignedData { ..., signerInfos SET { SignerInfo { ..., [0] signedAttrs, ... } } } } }
  const signedData = children(children(parsed.result)[1])[0];
  const signerInfos = children(signedData).at(-1);
  const signerInfo = children(signerInfos)[0];
  const attrs = children(signerInfo).find((n) => n.idBlock.tagClass === 3 && n.idBlock.tagNumber === 0);
  if (!attrs) return undefined;
  const raw = Buffer.from(toBuffer(attrs.valueBeforeDecodeView));
  raw[0] = 0x31;
  return raw;
}

function checkSigner(signer: SignerInfo, content: Buffer, key: KeyObject, signedAttrs: Buffer | undefined): boolean {
  const hash = DIGESTS[signer.digestAlgorithm.algorithm];
  if (!hash) throw new IdentityProofError(`unsupported digest algorithm ${signer.digestAlgorithm.algorithm}`);
  let signed = content;
  if (signer.signedAttrs) {
    // With signed attributes the signature covers them (re-tagged as a SET),
    // and they carry the content's digest and type.
    const digest = signer.signedAttrs.find((a) => a.attrType === id_messageDigest);
    const type = signer.signedAttrs.find((a) => a.attrType === id_contentType);
    if (!digest || digest.attrValues.length !== 1) throw new IdentityProofError('the signed attributes carry no message digest');
    if (!createHash(hash).update(content).digest().equals(octets(digest.attrValues[0]))) return false;
    if (type) {
      const oid = asn1js.fromBER(type.attrValues[0]).result;
      if (!(oid instanceof asn1js.ObjectIdentifier) || oid.getValue() !== id_data) return false;
    }
    if (!signedAttrs) throw new IdentityProofError('the signed attributes cannot be read');
    signed = signedAttrs;
  }
  const signature = toBuffer(signer.signature.buffer);
  try {
    return verifySignature(hash, signed, key, signature);
  } catch {
    return false;
  }
}

/**
 * Checks that `document` is what AWS signed in `pkcs7` (base64, from IMDS)
 * with one of the trusted certificates. Resolves with the certificate that
 * signed it; throws IdentityProofError otherwise.
 */
export function verifyIdentitySignature(document: string, pkcs7: string, trusted: X509Certificate[]): X509Certificate {
  const content = Buffer.from(document, 'utf8');
  if (content.length > MAX_DOCUMENT_BYTES) throw new IdentityProofError(`the identity document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  const der = decodeSignature(pkcs7);
  const signed = parseSignedData(der);
  if (signed.encapContentInfo.eContentType !== id_data) throw new IdentityProofError('the signed content is not data');
  const eContent = signed.encapContentInfo.eContent;
  if (eContent) {
    // /pkcs7 carries the document itself: it must be byte for byte the one presented.
    const raw = eContent.single ? AsnConvert.serialize(eContent.single) : eContent.any;
    if (!raw || !octets(raw).equals(content)) throw new IdentityProofError('the document differs from the content the signature carries');
  }
  if (signed.signerInfos.length !== 1) throw new IdentityProofError(`expected one signer, found ${signed.signerInfos.length}`);
  const signer = signed.signerInfos[0];
  const signedAttrs = signer.signedAttrs ? rawSignedAttributes(der) : undefined;
  for (const cert of signerCertificates(signer, trusted)) {
    if (checkSigner(signer, content, cert.publicKey, signedAttrs)) return cert;
  }
  throw new IdentityProofError('the signature does not verify against any trusted AWS certificate');
}

const AWS_REGION_RE = new RegExp(AWS_REGION_PATTERN);

/** Parses the document JSON and checks that the fields teleboot relies on are there. */
export function parseIdentityDocument(document: string): IdentityDocument {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(document) as Record<string, unknown>;
  } catch {
    throw new IdentityProofError('the identity document is not JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new IdentityProofError('the identity document is not a JSON object');
  const field = (name: string, re: RegExp): string => {
    const v = doc[name];
    if (typeof v !== 'string' || !re.test(v)) throw new IdentityProofError(`the identity document has no valid ${name}`);
    return v;
  };
  return {
    instanceId: field('instanceId', /^i-[0-9a-f]{8,17}$/),
    accountId: field('accountId', /^\d{12}$/),
    region: field('region', AWS_REGION_RE),
    availabilityZone: field('availabilityZone', /^[a-z0-9-]{1,32}$/),
    privateIp: field('privateIp', /^[0-9a-fA-F.:]{2,45}$/),
    imageId: field('imageId', /^ami-[0-9a-f]{8,17}$/),
    instanceType: field('instanceType', /^[a-z0-9.-]{1,32}$/),
    ...(typeof doc.pendingTime === 'string' ? { pendingTime: doc.pendingTime } : {}),
  };
}
