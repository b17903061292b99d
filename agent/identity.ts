// Who this instance is, from the EC2 instance metadata service (IMDSv2).
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import type { InstanceIdentity } from '../contract/model';
import { IMDS_TOKEN_TTL_SECONDS, imdsEndpoint, takeEarlyImds, type EarlyAnswer, type EarlyImds } from './imds-early';

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

const TOKEN_TTL_SECONDS = IMDS_TOKEN_TTL_SECONDS;
/** Statuses the SDK client does not retry: an early read that got one is as final as the SDK's own would be. */
const FINAL_STATUSES = new Set([400, 403, 404]);

/** The error the SDK client throws for such an answer (callers look at $metadata.httpStatusCode). */
function statusError(answer: Extract<EarlyAnswer, { status: number }>): Error {
  return Object.assign(new Error(`Error making request to the metadata service: Error: Request failed with status code ${answer.status}`), {
    $metadata: { httpStatusCode: answer.status },
  });
}

export class ImdsIdentitySource implements IdentitySource {
  private readonly imds: MetadataService;
  private session: { token: Promise<string>; renewAt: number } | undefined;
  /** The identity document as last read: it does not change while the instance runs, and a first boot needs it twice. */
  private documentRead: Promise<string> | undefined;
  /** The reads the packaged agent started before its modules loaded (agent/imds-early.ts), each used once. */
  private early: EarlyImds | undefined;
  private earlyTokenUsed = false;

  constructor(endpoint?: string) {
    // IMDSv2 only. The SDK client would fetch a session token before every
    // read; this source fetches one per session and sends it with each read
    // itself, and never reads without one. The endpoint is resolved here, as
    // the early reads resolve it, so both go to the same place.
    const resolved = imdsEndpoint(endpoint);
    this.early = takeEarlyImds(resolved);
    this.imds = new MetadataService({
      endpoint: resolved,
      disableFetchToken: true,
      tokenTtl: TOKEN_TTL_SECONDS,
      httpOptions: { timeout: 2000 },
      retries: 2,
    });
  }

  private token(): Promise<string> {
    const now = Date.now();
    const early = this.early;
    if (!this.session && early && !this.earlyTokenUsed) {
      this.earlyTokenUsed = true;
      const token = early.token.then((t) => ('status' in t && t.status === 200 && t.body ? t.body : this.imds.fetchMetadataToken()));
      this.session = { token, renewAt: early.startedAt + (TOKEN_TTL_SECONDS - 60) * 1000 };
      token.catch(() => (this.session = undefined));
    }
    if (!this.session || now >= this.session.renewAt) {
      const token = this.imds.fetchMetadataToken();
      this.session = { token, renewAt: now + (TOKEN_TTL_SECONDS - 60) * 1000 };
      token.catch(() => (this.session = undefined));
    }
    return this.session.token;
  }

  private async get(path: string): Promise<string> {
    const early = this.early?.reads.get(path);
    if (early) {
      this.early!.reads.delete(path);
      const answer = await early;
      if ('status' in answer && answer.status === 200) return answer.body;
      if ('status' in answer && FINAL_STATUSES.has(answer.status)) throw statusError(answer);
      // No answer, or one the SDK client would retry: it reads again.
    }
    return this.imds.request(`/latest/${path}`, { headers: { 'x-aws-ec2-metadata-token': await this.token() } });
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
    const other = signature === 'pkcs7' ? 'rsa2048' : 'pkcs7';
    const signed = this.get(`dynamic/instance-identity/${signature}`).catch((err: unknown) => {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
      return this.get(`dynamic/instance-identity/${other}`);
    });
    const [document, pkcs7Signature] = await Promise.all([this.document(), signed]);
    return { document, pkcs7Signature };
  }

  /** Read once; a failed read is read again next time. */
  private document(): Promise<string> {
    const read = (this.documentRead ??= this.get('dynamic/instance-identity/document'));
    read.catch(() => (this.documentRead = undefined));
    return read;
  }

  async identity(): Promise<InstanceIdentity> {
    // One round after the session token: the document, the hostname and the tag keys at once.
    const [text, hostname, tags] = await Promise.all([this.document(), this.get('meta-data/local-hostname'), this.tags()]);
    const document = JSON.parse(text) as Record<string, string>;
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
