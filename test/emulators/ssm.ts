// SSM Parameter Store emulator speaking AWS JSON 1.1 over HTTP, for the real
// @aws-sdk/client-ssm. Only the Parameter Store actions teleboot uses are
// implemented; their validation and error shapes follow the SSM API reference
// so that code under test sees the same exceptions it would see in AWS.
import crypto from 'node:crypto';
import http from 'node:http';
import { listenOnLoopback } from './listener';

export type ParameterType = 'String' | 'SecureString' | 'StringList';
type Tier = 'Standard' | 'Advanced';

export interface SsmEmulator {
  endpoint: string;
  /** Seed a parameter (creates it, or overwrites it bumping Version, like PutParameter with Overwrite). */
  put(name: string, value: string, type?: ParameterType): void;
  get(name: string): { value: string; type: string; version: number; lastModified: Date; keyId?: string } | undefined;
  /** make the next n requests fail with HTTP 503 / 'ServiceUnavailable' (or a given status), for retry tests */
  failNext(n: number, status?: number): void;
  /** while true every request is refused at TCP level (connection closed) */
  setUnreachable(on: boolean): void;
  /** Every request that reached HTTP, failed ones included. `target` is the action ('GetParameter');
   *  `name` is Name, Path, or the Names joined with ','; `error` the error type answered (none: it succeeded). Never the values. */
  requests: Array<{ target: string; name?: string; error?: string; description?: string }>;
  close(): Promise<void>;
}

interface Stored {
  name: string;
  value: string;
  type: ParameterType;
  version: number;
  lastModified: Date;
  tier: Tier;
  keyId?: string;
  /** What GetParameter returns for a SecureString without WithDecryption: fixed per version, like KMS output. */
  ciphertext?: string;
}

class SsmError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const TYPES: readonly string[] = ['String', 'SecureString', 'StringList'];
const STANDARD_MAX = 4096;
const ADVANCED_MAX = 8192;
const MAX_DEPTH = 15;
const DEFAULT_KEY = 'alias/aws/ssm';
// Shape of a SigV4 Authorization header; the signature itself cannot be checked (we do not know the secret).
const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=[0-9a-f]{64}$/;

/** Stand-in for a KMS ciphertext blob: real ones are base64 and start with AQICAH (bytes 01 02 02 00 78). */
function encrypt(key: Buffer, plaintext: string): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return Buffer.concat([Buffer.from([1, 2, 2, 0, 0x78]), iv, c.getAuthTag(), body]).toString('base64');
}

function validateName(name: unknown): string {
  if (typeof name !== 'string' || name.length < 1 || name.length > 2048) {
    throw new SsmError(
      'ValidationException',
      `1 validation error detected: Value at 'name' failed to satisfy constraint: Member must have length between 1 and 2048`,
    );
  }
  if (/^\/?(aws|ssm)/i.test(name)) {
    throw new SsmError('ValidationException', `Parameter name: can't be prefixed with "aws" or "ssm" (case-insensitive).`);
  }
  if (!/^[a-zA-Z0-9_.\-/]+$/.test(name) || name.endsWith('/') || name.includes('//')) {
    throw new SsmError(
      'ValidationException',
      `Parameter name: ${name} is not valid. Only a mix of letters, numbers and the symbols . - _ / are allowed.`,
    );
  }
  if (name.includes('/') && !name.startsWith('/')) {
    throw new SsmError('ValidationException', 'Parameter name must be a fully qualified name.');
  }
  if (name.split('/').filter(Boolean).length > MAX_DEPTH) {
    throw new SsmError('HierarchyLevelLimitExceededException', `A hierarchy can have a maximum of ${MAX_DEPTH} levels.`);
  }
  return name;
}

/** A JSON field as AWS would echo it back: strings as they are, anything else as its JSON. */
function asString(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function asBool(v: unknown): boolean {
  return v === true;
}

export async function startSsmEmulator(opts: { port?: number } = {}): Promise<SsmEmulator> {
  const params = new Map<string, Stored>();
  const kmsKey = crypto.randomBytes(32);
  const requests: SsmEmulator['requests'] = [];
  let failures: { left: number; status: number } = { left: 0, status: 503 };

  function store(name: string, value: string, type: ParameterType, tier: Tier, keyId?: string): Stored {
    const prev = params.get(name);
    const p: Stored = {
      name,
      value,
      type,
      tier,
      version: (prev?.version ?? 0) + 1,
      lastModified: new Date(),
      keyId: type === 'SecureString' ? (keyId ?? DEFAULT_KEY) : undefined,
      ciphertext: type === 'SecureString' ? encrypt(kmsKey, value) : undefined,
    };
    params.set(name, p);
    return p;
  }

  function render(p: Stored, decrypt: boolean, region: string, account: string) {
    const arnName = p.name.startsWith('/') ? p.name : `/${p.name}`;
    return {
      Name: p.name,
      Type: p.type,
      // SecureString values leave the service in clear only when the caller asked for decryption.
      Value: p.type === 'SecureString' && !decrypt ? p.ciphertext : p.value,
      Version: p.version,
      // awsJson 1.1 timestamps are epoch seconds with a fraction.
      LastModifiedDate: p.lastModified.getTime() / 1000,
      ARN: `arn:aws:ssm:${region}:${account}:parameter${arnName}`,
      DataType: 'text',
    };
  }

  type Ctx = { region: string; account: string };
  type Body = Record<string, unknown>;

  const actions: Record<string, (b: Body, ctx: Ctx) => unknown> = {
    GetParameter(b, ctx) {
      const name = asString(b.Name);
      const p = params.get(name);
      if (!p) throw new SsmError('ParameterNotFound', `Parameter ${name} not found.`);
      return { Parameter: render(p, asBool(b.WithDecryption), ctx.region, ctx.account) };
    },

    GetParameters(b, ctx) {
      const names = Array.isArray(b.Names) ? [...new Set(b.Names.map(String))] : [];
      if (names.length < 1 || names.length > 10) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10`,
        );
      }
      const found = names.filter((n) => params.has(n));
      return {
        Parameters: found.map((n) => render(params.get(n)!, asBool(b.WithDecryption), ctx.region, ctx.account)),
        InvalidParameters: names.filter((n) => !params.has(n)),
      };
    },

    GetParametersByPath(b, ctx) {
      const path = asString(b.Path);
      if (!path.startsWith('/') || path.split('/').filter(Boolean).length > MAX_DEPTH) {
        throw new SsmError(
          'ValidationException',
          `The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash "/".`,
        );
      }
      const max = b.MaxResults === undefined ? 10 : Number(b.MaxResults);
      if (!Number.isInteger(max) || max < 1 || max > 10) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value '${String(b.MaxResults)}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10`,
        );
      }
      const prefix = path.endsWith('/') ? path : `${path}/`;
      const recursive = asBool(b.Recursive);
      const matches = [...params.keys()]
        .filter((n) => {
          // A single-level name like "foo" sits directly under the root "/".
          const full = n.startsWith('/') ? n : `/${n}`;
          if (!full.startsWith(prefix)) return false;
          return recursive || !full.slice(prefix.length).includes('/');
        })
        .sort();
      let start = 0;
      if (b.NextToken !== undefined) {
        // Opaque to callers; records the request it belongs to and where to resume.
        let token: { path?: string; after?: string } = {};
        try {
          token = JSON.parse(Buffer.from(asString(b.NextToken), 'base64').toString('utf8'));
        } catch {
          /* falls through to the check below */
        }
        if (token.path !== path || typeof token.after !== 'string') {
          throw new SsmError('InvalidNextToken', 'The specified token is not valid.');
        }
        const after = token.after;
        start = matches.findIndex((n) => n > after);
        if (start < 0) start = matches.length;
      }
      const page = matches.slice(start, start + max);
      const more = start + max < matches.length;
      return {
        Parameters: page.map((n) => render(params.get(n)!, asBool(b.WithDecryption), ctx.region, ctx.account)),
        ...(more ? { NextToken: Buffer.from(JSON.stringify({ path, after: page[page.length - 1] })).toString('base64') } : {}),
      };
    },

    PutParameter(b) {
      const name = validateName(b.Name);
      const value = b.Value;
      if (typeof value !== 'string' || value.length < 1) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1`,
        );
      }
      const prev = params.get(name);
      if (prev && !asBool(b.Overwrite)) {
        throw new SsmError(
          'ParameterAlreadyExists',
          'The parameter already exists. To overwrite this request, set the overwrite option in the request to true.',
        );
      }
      if (b.Type !== undefined && !TYPES.includes(asString(b.Type))) {
        throw new SsmError(
          'ValidationException',
          `1 validation error detected: Value '${asString(b.Type)}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]`,
        );
      }
      // Type may be left out when updating, never when creating; it cannot change.
      const type = (b.Type ?? prev?.type) as ParameterType | undefined;
      if (!type) throw new SsmError('ValidationException', 'A parameter type is required when you create a parameter.');
      if (prev && prev.type !== type) {
        throw new SsmError(
          'HierarchyTypeMismatchException',
          'The parameter type specified in the request does not match the type of the existing parameter. You must create a new, unique parameter.',
        );
      }
      const keyId = b.KeyId === undefined ? undefined : asString(b.KeyId);
      if (keyId !== undefined) {
        if (type !== 'SecureString') throw new SsmError('ValidationException', 'KeyId is required for SecureString type parameter only.');
        if (!/^(alias\/[\w/-]+|arn:aws[\w-]*:kms:[\w-]+:\d{12}:(key|alias)\/[\w/-]+|[0-9a-f-]{36})$/.test(keyId)) {
          throw new SsmError('InvalidKeyId', `Invalid KeyId: ${keyId}`);
        }
      }
      let tier: Tier;
      switch (b.Tier ?? (prev ? prev.tier : 'Standard')) {
        case 'Standard':
          tier = 'Standard';
          break;
        case 'Advanced':
          tier = 'Advanced';
          break;
        case 'Intelligent-Tiering':
          tier = value.length > STANDARD_MAX || prev?.tier === 'Advanced' ? 'Advanced' : 'Standard';
          break;
        default:
          throw new SsmError(
            'ValidationException',
            `1 validation error detected: Value '${String(b.Tier)}' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]`,
          );
      }
      if (prev?.tier === 'Advanced' && tier === 'Standard') {
        throw new SsmError(
          'ValidationException',
          "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier.",
        );
      }
      if (value.length > (tier === 'Standard' ? STANDARD_MAX : ADVANCED_MAX)) {
        throw new SsmError(
          'ValidationException',
          tier === 'Standard'
            ? 'Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier.'
            : 'Advanced tier parameters support a maximum parameter value of 8192 characters.',
        );
      }
      const p = store(name, value, type, tier, keyId ?? prev?.keyId);
      return { Version: p.version, Tier: p.tier };
    },

    DeleteParameter(b) {
      const name = asString(b.Name);
      if (!params.delete(name)) throw new SsmError('ParameterNotFound', `Parameter ${name} not found.`);
      return {};
    },
  };

  function send(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': crypto.randomUUID(),
    });
    res.end(text);
  }

  function sendError(res: http.ServerResponse, e: SsmError): void {
    // The request being answered is the last one recorded: handle() answers synchronously.
    requests[requests.length - 1].error = e.type;
    send(res, e.status, { __type: e.type, message: e.message });
  }

  function failure(status: number): SsmError {
    if (status === 503) return new SsmError('ServiceUnavailable', 'Service Unavailable', 503);
    if (status === 500) return new SsmError('InternalServerError', 'Internal Server Error', 500);
    if (status === 400 || status === 429) return new SsmError('ThrottlingException', 'Rate exceeded', status);
    return new SsmError('InternalFailure', `Injected failure (HTTP ${status})`, status);
  }

  function handle(req: http.IncomingMessage, raw: string, res: http.ServerResponse): void {
    const targetHeader = String(req.headers['x-amz-target'] ?? '');
    const action = targetHeader.startsWith('AmazonSSM.') ? targetHeader.slice('AmazonSSM.'.length) : targetHeader;
    let body: Body | undefined;
    try {
      const parsed: unknown = JSON.parse(raw || '{}');
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Body;
    } catch {
      body = undefined;
    }
    const name =
      body === undefined
        ? undefined
        : typeof body.Name === 'string'
          ? body.Name
          : typeof body.Path === 'string'
            ? body.Path
            : Array.isArray(body.Names)
              ? body.Names.map(String).join(',')
              : undefined;
    // PutParameter's Description (never a value): the publisher writes its fencing number there.
    const description = typeof body?.Description === 'string' ? { description: body.Description } : {};
    requests.push(name === undefined ? { target: action, ...description } : { target: action, name, ...description });

    if (failures.left > 0) {
      failures.left--;
      return sendError(res, failure(failures.status));
    }
    const auth = req.headers.authorization;
    if (!auth) return sendError(res, new SsmError('MissingAuthenticationTokenException', 'Missing Authentication Token'));
    const m = SIGV4.exec(auth);
    if (!m || !req.headers['x-amz-date']) {
      return sendError(
        res,
        new SsmError(
          'IncompleteSignatureException',
          `Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an X-Amz-Date header.`,
        ),
      );
    }
    if (m[4] !== 'ssm') {
      return sendError(res, new SsmError('InvalidSignatureException', `Credential should be scoped to correct service: 'ssm'.`));
    }
    if (req.method !== 'POST' || !targetHeader.startsWith('AmazonSSM.') || !(action in actions)) {
      return sendError(res, new SsmError('UnknownOperationException', ''));
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1') || body === undefined) {
      return sendError(res, new SsmError('SerializationException', 'Start of structure or map found where not expected.'));
    }
    try {
      send(res, 200, actions[action](body, { region: m[3], account: '123456789012' }));
    } catch (e) {
      if (e instanceof SsmError) return sendError(res, e);
      throw e;
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  const listener = await listenOnLoopback(server, opts.port);

  return {
    endpoint: listener.endpoint,
    requests,
    put(name, value, type = 'String') {
      const prev = params.get(name);
      store(name, value, type, prev?.tier ?? (value.length > STANDARD_MAX ? 'Advanced' : 'Standard'), prev?.keyId);
    },
    get(name) {
      const p = params.get(name);
      return p && { value: p.value, type: p.type, version: p.version, lastModified: p.lastModified, keyId: p.keyId };
    },
    failNext(n, status = 503) {
      failures = { left: n, status };
    },
    setUnreachable: listener.setUnreachable,
    close: listener.close,
  };
}
