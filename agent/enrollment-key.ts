// The key an enrollment certifies. The agent presents it, in a self-signed
// certificate, on the very connection Enroll goes over: the TLS handshake
// proves the agent holds it, so the control server can take the calls that
// follow on that connection as the instance it has just certified, and a
// first boot needs one connection and one TLS context, not two.
import { generateKeyPairSync, sign } from 'node:crypto';
import {
  DER_ECDSA_WITH_SHA256,
  DER_VERSION_3,
  OID_COMMON_NAME,
  derBitString,
  derRdn,
  derSequence,
  derSerial,
  derTime,
  newSerial,
  pem,
} from '../contract/der';

export interface EnrollmentKey {
  /** PKCS#8 PEM; stays on the host. */
  keyPem: string;
  /** SPKI PEM, sent in EnrollRequest.public_key_pem. */
  publicKeyPem: string;
  /** Self-signed, CN = the instance id; the control server trusts nothing in it but the key. */
  selfSignedCertPem: string;
}

const SELF_SIGNED_LIFETIME_MS = 7 * 86_400_000;

/** A fresh ECDSA P-256 key and its self-signed certificate. */
export function newEnrollmentKey(instanceId: string, now = Date.now()): EnrollmentKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  const name = derSequence(derRdn(OID_COMMON_NAME, instanceId));
  const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  // TBSCertificate ::= SEQUENCE { version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo }
  const tbs = derSequence(
    DER_VERSION_3,
    derSerial(newSerial()),
    DER_ECDSA_WITH_SHA256,
    name,
    derSequence(derTime(second(now - 60_000)), derTime(second(now + SELF_SIGNED_LIFETIME_MS))),
    name,
    spkiDer,
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: pem(spkiDer, 'PUBLIC KEY'),
    selfSignedCertPem: pem(derSequence(tbs, DER_ECDSA_WITH_SHA256, derBitString(signature)), 'CERTIFICATE'),
  };
}
