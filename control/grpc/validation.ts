// Message validation: every field of a request checked against its pattern
// and limit before anything acts on it; a refusal names the field.
import { isAwsRegion, isInstanceId, type HostFacts, type InstanceIdentity } from '../../contract/model';
import type { HostFacts__Output } from '../../proto/gen/teleboot/v1/HostFacts';
import type { InstanceIdentity__Output } from '../../proto/gen/teleboot/v1/InstanceIdentity';
import { MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES } from '../ec2-identity';
import type { EnrollmentProof } from '../enrollment';
import { invalid } from './errors';

/** A nonce as agents make them: 32 random bytes, base64url (16-128 of these characters accepted). */
export const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;

/** Integers above this lose precision as JavaScript numbers (2^53). */
const EXACT_LIMIT = 2 ** 53;

/** A uint64 field as a number, refused at 2^53 and above rather than rounded. */
export function uint64Field(field: string, value: number | string | undefined): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0)
    throw invalid(field, `must be an integer from 0 up to 2^53-1 (${EXACT_LIMIT - 1}); larger values are refused, not rounded`);
  return n;
}

/**
 * public_key_pem: exactly one PEM block, labelled PUBLIC KEY, and nothing
 * else (a private key, a certificate or two keys are refused, never read
 * for the key they hold). That it is an ECDSA P-256 key is checked when it
 * is imported (control/pki.ts).
 */
export function publicKeyPemFrom(value: string): string {
  if (!value) throw invalid('public_key_pem', 'is required: the PEM public key the client certificate is issued for');
  limited('public_key_pem', value, 4096);
  const labels = [...value.matchAll(/-----BEGIN ([^\r\n]*?)-----/g)].map((m) => m[1]);
  if (labels.length !== 1)
    throw invalid(
      'public_key_pem',
      `must be exactly one PEM "PUBLIC KEY" block of an ECDSA P-256 key; it holds ${labels.length} PEM blocks`,
    );
  if (labels[0] !== 'PUBLIC KEY')
    throw invalid(
      'public_key_pem',
      `must be a PEM "PUBLIC KEY" block of an ECDSA P-256 key, not a "${labels[0].slice(0, 40)}" block` +
        (/PRIVATE/.test(labels[0]) ? ' (a private key never leaves the host)' : ''),
    );
  if (!/^\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----\s*$/.test(value))
    throw invalid('public_key_pem', 'must be one PEM "PUBLIC KEY" block and nothing before or after it');
  return value;
}

export const limited = (field: string, value: string, max: number): string => {
  if (value.length > max) throw invalid(field, `longer than ${max} characters`);
  return value;
};

export function proofFrom(req: {
  proof?: { kind?: string; joinToken?: string; ec2Identity?: { document?: string; pkcs7Signature?: string } | null } | null;
}): EnrollmentProof {
  const proof = req.proof;
  if (!proof || !proof.kind) throw invalid('proof', 'is required: a join_token or an ec2_identity');
  if (proof.kind === 'joinToken') {
    if (!proof.joinToken) throw invalid('proof.join_token', 'is empty');
    return { joinToken: limited('proof.join_token', proof.joinToken, 256) };
  }
  const ec2 = proof.ec2Identity;
  if (!ec2?.document) throw invalid('proof.ec2_identity.document', 'is required: /latest/dynamic/instance-identity/document');
  if (!ec2.pkcs7Signature)
    throw invalid('proof.ec2_identity.pkcs7_signature', 'is required: /latest/dynamic/instance-identity/rsa2048 or /pkcs7');
  return {
    ec2Identity: {
      document: limited('proof.ec2_identity.document', ec2.document, MAX_DOCUMENT_BYTES),
      pkcs7Signature: limited('proof.ec2_identity.pkcs7_signature', ec2.pkcs7Signature, MAX_SIGNATURE_BYTES * 2),
    },
  };
}

/** The served certificate's expiry, when reported (0 or absent: none). */
export function certificateExpiry(value: number | string | undefined): { certificateExpiresAt?: number } {
  const ms = Number(value ?? 0);
  if (ms === 0) return {};
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalid('proxy_certificate_expires_unix_ms', 'must be a unix time in milliseconds');
  return { certificateExpiresAt: ms };
}

export function identityFrom(msg: InstanceIdentity__Output | null): InstanceIdentity {
  if (!msg) throw invalid('identity', 'is required');
  if (!isInstanceId(msg.instanceId)) throw invalid('identity.instance_id', 'must be an instance id such as i-0123456789abcdef0');
  if (msg.region && !isAwsRegion(msg.region)) throw invalid('identity.region', 'must be an AWS region such as us-east-1');
  if (msg.privateIp && !/^[0-9a-fA-F.:]{2,45}$/.test(msg.privateIp)) throw invalid('identity.private_ip', 'must be an IP address');
  const tags = msg.tags ?? {};
  if (Object.keys(tags).length > 50) throw invalid('identity.tags', 'EC2 allows at most 50 tags');
  for (const [k, v] of Object.entries(tags)) {
    if (k.length === 0 || k.length > 128 || v.length > 256)
      throw invalid(`identity.tags.${k.slice(0, 40)}`, 'tag keys are 1-128 characters, values up to 256');
  }
  return {
    instanceId: msg.instanceId,
    region: msg.region,
    availabilityZone: limited('identity.availability_zone', msg.availabilityZone, 64),
    accountId: limited('identity.account_id', msg.accountId, 32),
    privateIp: msg.privateIp,
    hostname: limited('identity.hostname', msg.hostname, 253),
    instanceType: limited('identity.instance_type', msg.instanceType, 64),
    imageId: limited('identity.image_id', msg.imageId, 64),
    tags,
  };
}

export function factsFrom(msg: HostFacts__Output | null): HostFacts | null {
  if (!msg) return null;
  return {
    os: limited('facts.os', msg.os, 200),
    kernel: limited('facts.kernel', msg.kernel, 200),
    arch: limited('facts.arch', msg.arch, 32),
    cpus: msg.cpus,
    memoryTotalBytes: uint64Field('facts.memory_total_bytes', msg.memoryTotalBytes),
    memoryAvailableBytes: uint64Field('facts.memory_available_bytes', msg.memoryAvailableBytes),
    loadAverage1m: msg.loadAverage_1m ?? 0,
    uptimeSeconds: uint64Field('facts.uptime_seconds', msg.uptimeSeconds),
    rootDiskFreeBytes: uint64Field('facts.root_disk_free_bytes', msg.rootDiskFreeBytes),
  };
}
