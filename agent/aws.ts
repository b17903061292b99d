// What the agent takes from AWS: join token, CA pin and license from SSM
// Parameter Store, the proxy's certificate from S3. Names follow the
// conventions of Teleport's AMI and the seed Ansible roles.
import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetParametersCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';

/** Refuse anything larger: a token or PEM bundle is a few KiB at most. */
export const MAX_SECRET_BYTES = 256 * 1024;

export class MissingSecretError extends Error {}
/** An S3 object that is not there (a Teleport release not published to the bucket). */
export class MissingObjectError extends Error {}

export interface AwsEndpoints {
  region: string;
  ssmEndpoint?: string;
  s3Endpoint?: string;
  s3ForcePathStyle?: boolean;
}

// Names of what is fetched, shared with the renderer's plan (and the control server's preview).
export { certKeys, ssmNames } from '../contract/render/plan';

export interface SecretSource {
  /** Values of SSM parameters (SecureStrings decrypted); MissingSecretError names any that do not exist. */
  parameters(names: string[]): Promise<Record<string, string>>;
  /** An S3 object's content and ETag. */
  object(bucket: string, key: string): Promise<{ body: string; etag: string }>;
  /** An S3 object's ETag without its content; undefined when it does not exist. */
  etag(bucket: string, key: string): Promise<string | undefined>;
  /**
   * Streams an S3 object into `file` (created, never overwritten; 0600),
   * hashing it on the way: a release tarball is never held in memory.
   * MissingObjectError when the object does not exist.
   */
  download(bucket: string, key: string, file: string): Promise<{ bytes: number; sha256: string }>;
  /** Starts what the first read needs anyway (AWS credentials: an instance profile's are read from IMDS), without waiting. */
  warm?(): void;
}

export class AwsSecretSource implements SecretSource {
  private readonly ssm: SSMClient;
  private s3Client: Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> | undefined;

  constructor(private readonly opts: AwsEndpoints) {
    // The agent retries with its own backoff and logs what it waits for.
    this.ssm = new SSMClient({ region: opts.region, endpoint: opts.ssmEndpoint, maxAttempts: 1 });
  }

  warm(): void {
    // Memoized by the client: the first GetParameters finds them resolved. A failure here is
    // not remembered; that read resolves them again and reports it.
    this.ssm.config.credentials().catch(() => {});
  }

  /** Loaded and built at the first S3 read: only the hosts that serve a certificate from S3 pay for the S3 client at boot. */
  private s3(): Promise<{ client: S3Client; sdk: typeof import('@aws-sdk/client-s3') }> {
    const { region, s3Endpoint, s3ForcePathStyle } = this.opts;
    return (this.s3Client ??= import('@aws-sdk/client-s3').then((sdk) => ({
      sdk,
      client: new sdk.S3Client({ region, endpoint: s3Endpoint, forcePathStyle: s3ForcePathStyle, maxAttempts: 1 }),
    })));
  }

  async parameters(names: string[]): Promise<Record<string, string>> {
    if (names.length === 0) return {};
    const out = await this.ssm.send(new GetParametersCommand({ Names: names, WithDecryption: true }));
    if (out.InvalidParameters?.length) {
      throw new MissingSecretError(`SSM parameter ${out.InvalidParameters.join(', ')} does not exist yet (the auth server publishes it)`);
    }
    const values: Record<string, string> = {};
    for (const p of out.Parameters ?? []) {
      if (!p.Name || p.Value === undefined) continue;
      if (Buffer.byteLength(p.Value) > MAX_SECRET_BYTES)
        throw new Error(`SSM parameter ${p.Name} is larger than ${MAX_SECRET_BYTES} bytes`);
      values[p.Name] = p.Value;
    }
    return values;
  }

  async object(bucket: string, key: string): Promise<{ body: string; etag: string }> {
    const { client, sdk } = await this.s3();
    let out;
    try {
      out = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey')
        throw new MissingSecretError(`s3://${bucket}/${key} does not exist yet (the certificate is issued by the control server)`);
      throw err;
    }
    if ((out.ContentLength ?? 0) > MAX_SECRET_BYTES) {
      out.Body?.transformToWebStream()
        .cancel()
        .catch(() => {});
      throw new Error(`s3://${bucket}/${key} is larger than ${MAX_SECRET_BYTES} bytes`);
    }
    const body = (await out.Body?.transformToString('utf8')) ?? '';
    if (Buffer.byteLength(body) > MAX_SECRET_BYTES) throw new Error(`s3://${bucket}/${key} is larger than ${MAX_SECRET_BYTES} bytes`);
    return { body, etag: out.ETag ?? '' };
  }

  async download(bucket: string, key: string, file: string): Promise<{ bytes: number; sha256: string }> {
    const { client, sdk } = await this.s3();
    let out;
    try {
      out = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') throw new MissingObjectError(`s3://${bucket}/${key} does not exist`);
      throw err;
    }
    if (!(out.Body instanceof Readable)) throw new Error(`s3://${bucket}/${key}: the S3 client gave no stream`);
    const hash = createHash('sha256');
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(out.Body, count, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
    return { bytes, sha256: hash.digest('hex') };
  }

  async etag(bucket: string, key: string): Promise<string | undefined> {
    const { client, sdk } = await this.s3();
    try {
      return (await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag ?? '';
    } catch (err) {
      // HEAD answers carry no body: a missing object is a bare 404 ("NotFound").
      if (['NotFound', 'NoSuchKey'].includes((err as { name?: string }).name ?? '')) return undefined;
      throw err;
    }
  }
}

/** Where the publisher writes: SSM parameters, overwritten in place. */
export interface ParameterWriter {
  /** Creates or overwrites a parameter (with its description, when given); returns its new version. */
  put(name: string, value: string, type: 'String' | 'SecureString', description?: string): Promise<number>;
}

export class SsmParameterWriter implements ParameterWriter {
  private readonly ssm: SSMClient;

  constructor(opts: Pick<AwsEndpoints, 'region' | 'ssmEndpoint'>) {
    this.ssm = new SSMClient({ region: opts.region, endpoint: opts.ssmEndpoint, maxAttempts: 1 });
  }

  async put(name: string, value: string, type: 'String' | 'SecureString', description?: string): Promise<number> {
    const out = await this.ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: value,
        Type: type,
        Overwrite: true,
        ...(description ? { Description: description } : {}),
      }),
    );
    return out.Version ?? 0;
  }
}
