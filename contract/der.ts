// The few DER encodings X.509 certificates are assembled from, shared by the
// control server's CA (client certificates from a template) and the agent
// (the self-signed certificate of its enrollment key).
import { randomBytes } from 'node:crypto';

export const OID_COMMON_NAME = Buffer.from('0603550403', 'hex');
export const OID_ORGANIZATION = Buffer.from('060355040a', 'hex');
/** version [0] EXPLICIT INTEGER 2 (v3). */
export const DER_VERSION_3 = Buffer.from('a003020102', 'hex');
/** AlgorithmIdentifier { ecdsa-with-SHA256 } (RFC 5758: no parameters). */
export const DER_ECDSA_WITH_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

/** DER length octets: short form below 128, long form above. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function derTlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

export const derSequence = (...parts: Buffer[]): Buffer => derTlv(0x30, ...parts);
// No unused bits: the leading 0x00 octet.
export const derBitString = (bytes: Buffer): Buffer => derTlv(0x03, Buffer.from([0x00]), bytes);

/** X.509 Time of whole seconds: UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
export function derTime(date: Date): Buffer {
  const two = (n: number) => String(n).padStart(2, '0');
  const year = date.getUTCFullYear();
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return year >= 1950 && year < 2050
    ? derTlv(0x17, Buffer.from(two(year % 100) + rest, 'latin1'))
    : derTlv(0x18, Buffer.from(String(year).padStart(4, '0') + rest, 'latin1'));
}

/** A DirectoryString as @peculiar/x509 picks it: PrintableString when the text allows, UTF8String otherwise. */
const derDirectoryString = (text: string): Buffer =>
  derTlv(/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text) ? 0x13 : 0x0c, Buffer.from(text, 'utf8'));
/** One RelativeDistinguishedName of one attribute. */
export const derRdn = (oid: Buffer, value: string): Buffer => derTlv(0x31, derSequence(oid, derDirectoryString(value)));

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

/** serialNumber INTEGER of a serial from newSerial (positive as it is, no padding). */
export const derSerial = (serial: string): Buffer => derTlv(0x02, Buffer.from(serial, 'hex'));

/** PEM armour, 64 characters a line. */
export function pem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
