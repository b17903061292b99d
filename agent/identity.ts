// Who this instance is, from the EC2 instance metadata service (IMDSv2).
import http from 'node:http';
import https from 'node:https';
import type { InstanceIdentity } from '../common/model';

export interface IdentityProof {
  document: string;
  /** Base64 CMS SignedData: /pkcs7 (DSA, SHA-1) or /rsa2048 (RSA-2048, SHA-256). */
  pkcs7Signature: string;
}

export interface IdentitySource {
  identity(): Promise<InstanceIdentity>;
  /** The identity document exactly as IMDS serves it, and its AWS signature. */
  proof?(signature?: 'pkcs7' | 'rsa2048'): Promise<IdentityProof>;
}

const TOKEN_TTL_SECONDS = 300;
const TIMEOUT_MS = 2000;
/** After the first try (1 s and 1.2 s apart), unless IMDS answered 400, 403 or 404: as the SDK's MetadataService. */
const RETRIES = 2;
/** Metadata answers are a few KiB at most. */
const MAX_BODY_BYTES = 1024 * 1024;

/** An IMDS answer other than 200; `$metadata.httpStatusCode` as the AWS SDK reports it. */
export class ImdsError extends Error {
  readonly $metadata: { httpStatusCode?: number };
  constructor(message: string, status?: number) {
    super(message);
    this.$metadata = { httpStatusCode: status };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * IMDSv2 only: a session token first (PUT), then reads that carry it, all
 * over one kept-alive connection. The endpoint is aws.imds_endpoint from
 * agent.yaml, else AWS_EC2_METADATA_SERVICE_ENDPOINT, else EC2's
 * link-local address. (The SDK's MetadataService opens a connection per
 * request and looks its settings up again on every instance; the agent
 * makes a handful of reads at boot.)
 */
export class ImdsIdentitySource implements IdentitySource {
  private readonly endpoint: URL;
  private readonly agent: http.Agent;
  private session: { token: Promise<string>; renewAt: number } | undefined;

  constructor(endpoint?: string) {
    this.endpoint = new URL(endpoint ?? process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? 'http://169.254.169.254');
    const Agent = this.endpoint.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** One HTTP exchange; the body of a 200, ImdsError otherwise. */
  private exchange(method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<string> {
    const { protocol, hostname, port, pathname } = this.endpoint;
    const request = protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(
        // The endpoint's path, if any, prefixes /latest/...; "//" would not be the same path.
        { method, hostname: hostname.replace(/^\[|\]$/g, ''), port, path: `${pathname.replace(/\/+$/, '')}/latest/${path}`, headers, agent: this.agent, timeout: TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) req.destroy(new ImdsError(`metadata ${path}: answer larger than ${MAX_BODY_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status === 200) resolve(Buffer.concat(chunks).toString('utf8'));
            else reject(new ImdsError(`metadata ${path}: IMDS answered ${status}`, status));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new ImdsError(`metadata ${path}: no answer within ${TIMEOUT_MS} ms`)));
      req.on('error', (err) => reject(err instanceof ImdsError ? err : new ImdsError(`metadata ${path}: ${err.message}`)));
      req.end();
    });
  }

  private async withRetries(work: () => Promise<string>): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        const status = (err as ImdsError).$metadata?.httpStatusCode;
        if (attempt >= RETRIES || status === 400 || status === 403 || status === 404) throw err;
        await sleep(1000 * 1.2 ** attempt);
      }
    }
  }

  private token(): Promise<string> {
    const now = Date.now();
    if (!this.session || now >= this.session.renewAt) {
      const token = this.withRetries(() => this.exchange('PUT', 'api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) }));
      this.session = { token, renewAt: now + (TOKEN_TTL_SECONDS - 60) * 1000 };
      token.catch(() => (this.session = undefined));
    }
    return this.session.token;
  }

  private async get(path: string): Promise<string> {
    const token = await this.token();
    return this.withRetries(() => this.exchange('GET', path, { 'x-aws-ec2-metadata-token': token }));
  }

  /** Instance tags, when the instance exposes them in metadata; {} otherwise. */
  private async tags(): Promise<Record<string, string>> {
    let keys: string[];
    try {
      keys = (await this.get('meta-data/tags/instance')).split('\n').filter(Boolean);
    } catch {
      return {};
    }
    const values = await Promise.all(keys.map((k) => this.get(`meta-data/tags/instance/${encodeURIComponent(k)}`)));
    return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
  }

  /**
   * The document and one of its signatures: `pkcs7` (DSA; the control
   * server ships AWS's DSA certificates) by default, or `rsa2048` (its
   * regional RSA-2048 certificates must then be in the server's
   * certificates_dir). Falls back to the other one where IMDS lacks it.
   */
  async proof(signature: 'pkcs7' | 'rsa2048' = 'pkcs7'): Promise<IdentityProof> {
    const document = await this.get('dynamic/instance-identity/document');
    const other = signature === 'pkcs7' ? 'rsa2048' : 'pkcs7';
    let pkcs7Signature: string;
    try {
      pkcs7Signature = await this.get(`dynamic/instance-identity/${signature}`);
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
      pkcs7Signature = await this.get(`dynamic/instance-identity/${other}`);
    }
    return { document, pkcs7Signature };
  }

  async identity(): Promise<InstanceIdentity> {
    const document = JSON.parse(await this.get('dynamic/instance-identity/document')) as Record<string, string>;
    const [hostname, tags] = await Promise.all([this.get('meta-data/local-hostname'), this.tags()]);
    return {
      instanceId: document.instanceId,
      region: document.region,
      availabilityZone: document.availabilityZone,
      accountId: document.accountId,
      privateIp: document.privateIp,
      hostname,
      instanceType: document.instanceType,
      imageId: document.imageId,
      tags,
    };
  }
}
