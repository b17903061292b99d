// Where the certificate material lives: the certificate and its key in S3
// (live/{domain}/, the layout the proxies and the seed get-cert role use),
// with server-side encryption; the ACME account key in SSM as a SecureString.
// Neither ever goes into the control database or a log.
import { X509Certificate } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { certKeys } from '../../contract/render/plan';
import { createOrReadSecureParameter } from '../ssm-secure-parameter';

export interface CertificateFacts {
  serial: string;
  notBefore: number;
  notAfter: number;
  /** Subject alternative names (DNS). */
  names: string[];
}

/** Facts of the first (leaf) certificate of a PEM chain. */
export function certificateFacts(fullchainPem: string): CertificateFacts {
  const cert = new X509Certificate(fullchainPem);
  const names = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return { serial: cert.serialNumber, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo), names };
}

export interface StoredCertificate extends CertificateFacts {
  etag: string;
}

export interface CertificateBucketOptions {
  s3: S3Client;
  serverSideEncryption: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
}

export class CertificateBucket {
  constructor(private readonly opts: CertificateBucketOptions) {}

  /** The certificate now in S3, or undefined when there is none. */
  async read(bucket: string, domain: string): Promise<StoredCertificate | undefined> {
    let out;
    try {
      out = await this.opts.s3.send(new GetObjectCommand({ Bucket: bucket, Key: certKeys(domain).fullchain }));
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw err;
    }
    const pem = (await out.Body?.transformToString('utf8')) ?? '';
    try {
      return { ...certificateFacts(pem), etag: out.ETag ?? '' };
    } catch {
      // Unreadable content is replaced as if missing, and said so by the caller.
      return undefined;
    }
  }

  private put(bucket: string, key: string, body: string) {
    const { serverSideEncryption, kmsKeyId } = this.opts;
    return this.opts.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: 'application/x-pem-file',
        ServerSideEncryption: serverSideEncryption,
        SSEKMSKeyId: serverSideEncryption === 'aws:kms' ? kmsKeyId : undefined,
      }),
    );
  }

  /**
   * The key first, then the chain: proxies follow the chain's ETag, so when
   * they see a new chain its key is already there.
   */
  async write(bucket: string, domain: string, fullchainPem: string, privkeyPem: string): Promise<string> {
    const keys = certKeys(domain);
    await this.put(bucket, keys.privkey, privkeyPem);
    const out = await this.put(bucket, keys.fullchain, fullchainPem);
    return out.ETag ?? '';
  }
}

/** The ACME account key, kept as an SSM SecureString (created on first use). */
export class AccountKeyParameter {
  constructor(private readonly ssm: SSMClient) {}

  async load(name: string, create: () => Promise<string>): Promise<{ pem: string; created: boolean }> {
    // Created without overwrite: two replicas starting together keep one account.
    const { value, created } = await createOrReadSecureParameter(this.ssm, { name, create, description: 'teleboot ACME account key' });
    return { pem: value, created };
  }
}
