// EC2 Instance Metadata Service emulator configured as IMDSv2-only (HttpTokens=required),
// for the real MetadataService from @aws-sdk/ec2-metadata-service.
import crypto from 'node:crypto';
import http from 'node:http';
import type { InstanceIdentity } from '../../contract/model';
import { listenOnLoopback } from './listener';

/** An instance as metadata describes it; the same fields as the agent's identity. */
export interface ImdsInstance extends Omit<InstanceIdentity, 'tags'> {
  /** undefined: the instance does not expose tags in metadata (tags/ answers 404). */
  tags?: Record<string, string>;
}

/**
 * Signs an identity document as AWS does (see identity-signer.ts): `pkcs7`
 * (DSA, document inside), `rsa2048` (RSA-2048, detached) and `signature`
 * (bare RSA). A signer may leave some out: that path then answers 404.
 */
export type ImdsSigner = (document: string) => { pkcs7?: string; rsa2048?: string; signature?: string };

export interface ImdsEmulator {
  endpoint: string;
  /** Live: changes (for example to tags) show in later answers. */
  instance: ImdsInstance;
  setUnreachable(on: boolean): void;
  /** The next n requests (token PUTs included) answer with this status (default 503). */
  failNext(n: number, status?: number): void;
  /** Every request that reached HTTP; `token` says whether it carried an X-aws-ec2-metadata-token header. */
  requests: Array<{ method: string; path: string; token: boolean }>;
  close(): Promise<void>;
}

const MAX_TTL = 21600;

function hex(n: number): string {
  return crypto
    .randomBytes(Math.ceil(n / 2))
    .toString('hex')
    .slice(0, n);
}

function int(lo: number, hi: number): number {
  return crypto.randomInt(lo, hi + 1);
}

/** Private DNS name the way EC2 forms it (us-east-1 keeps the old ec2.internal domain). */
function privateDns(ip: string, region: string): string {
  const domain = region === 'us-east-1' ? 'ec2.internal' : `${region}.compute.internal`;
  return `ip-${ip.replace(/\./g, '-')}.${domain}`;
}

export function fakeInstance(overrides: Partial<ImdsInstance> = {}): ImdsInstance {
  const region = overrides.region ?? 'us-east-1';
  const privateIp = overrides.privateIp ?? `10.0.${int(0, 255)}.${int(4, 254)}`;
  return {
    instanceId: `i-0${hex(16)}`,
    accountId: String(int(100000000000, 999999999999)),
    instanceType: 't3.medium',
    imageId: `ami-0${hex(16)}`,
    ...overrides,
    region,
    availabilityZone: overrides.availabilityZone ?? `${region}a`,
    privateIp,
    hostname: overrides.hostname ?? privateDns(privateIp, region),
  };
}

/** Graviton families (t4g, m6g, c7gn, r8g, ...) are arm64. */
function architecture(instanceType: string): string {
  return /^[a-z]+\d+g[a-z]*\./.test(instanceType) ? 'arm64' : 'x86_64';
}

/** The identity document as EC2 prints it: pretty JSON with " : " separators and explicit nulls. */
function identityDocument(i: ImdsInstance, pendingTime: string): string {
  const fields: Array<[string, string | null]> = [
    ['accountId', i.accountId],
    ['architecture', architecture(i.instanceType)],
    ['availabilityZone', i.availabilityZone],
    ['billingProducts', null],
    ['devpayProductCodes', null],
    ['marketplaceProductCodes', null],
    ['imageId', i.imageId],
    ['instanceId', i.instanceId],
    ['instanceType', i.instanceType],
    ['kernelId', null],
    ['pendingTime', pendingTime],
    ['privateIp', i.privateIp],
    ['ramdiskId', null],
    ['region', i.region],
    ['version', '2017-09-30'],
  ];
  return `{\n${fields.map(([k, v]) => `  ${JSON.stringify(k)} : ${JSON.stringify(v)}`).join(',\n')}\n}`;
}

type Tree = { [key: string]: string | Tree | undefined };

function errorPage(status: number, text: string): string {
  return `<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n <head>\n  <title>${status} - ${text}</title>\n </head>\n <body>\n  <h1>${status} - ${text}</h1>\n </body>\n</html>\n`;
}

export async function startImdsEmulator(instance: ImdsInstance, opts: { port?: number; signer?: ImdsSigner } = {}): Promise<ImdsEmulator> {
  const tokens = new Map<string, number>(); // token -> expiry (ms since epoch)
  const requests: ImdsEmulator['requests'] = [];
  const pendingTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const signatures = new Map<string, ReturnType<ImdsSigner>>();
  let failures = { left: 0, status: 503 };
  const emulator = { instance };

  function sign(doc: string) {
    if (!opts.signer) return undefined;
    // Sign each distinct document once so repeated reads return identical bytes, as on EC2.
    let s = signatures.get(doc);
    if (!s) signatures.set(doc, (s = opts.signer(doc)));
    return s;
  }

  function tree(): Tree {
    const i = emulator.instance;
    const doc = identityDocument(i, pendingTime);
    const metaData: Tree = {
      'ami-id': i.imageId,
      'ami-launch-index': '0',
      hostname: i.hostname,
      'instance-id': i.instanceId,
      'instance-life-cycle': 'on-demand',
      'instance-type': i.instanceType,
      'local-hostname': i.hostname,
      'local-ipv4': i.privateIp,
      placement: { 'availability-zone': i.availabilityZone, region: i.region },
      services: { domain: 'amazonaws.com', partition: 'aws' },
      tags: i.tags && { instance: Object.fromEntries(Object.entries(i.tags)) },
    };
    return {
      'meta-data': metaData,
      dynamic: {
        'instance-identity': { document: doc, pkcs7: sign(doc)?.pkcs7, rsa2048: sign(doc)?.rsa2048, signature: sign(doc)?.signature },
      },
    };
  }

  function reply(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
    res.writeHead(status, {
      'content-type': status === 200 ? 'text/plain' : 'text/html',
      'content-length': Buffer.byteLength(body),
      server: 'EC2ws',
      ...headers,
    });
    res.end(body);
  }
  const notFound = (res: http.ServerResponse) => reply(res, 404, errorPage(404, 'Not Found'));

  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The SDK joins the endpoint's "/" with "/latest/...", so "//latest/..." must mean the same.
    const path = (req.url ?? '/').split('?')[0].replace(/\/{2,}/g, '/');
    const token = req.headers['x-aws-ec2-metadata-token'];
    requests.push({ method: req.method ?? '', path, token: token !== undefined });

    if (failures.left > 0) {
      failures.left--;
      return reply(res, failures.status, errorPage(failures.status, http.STATUS_CODES[failures.status] ?? 'Error'));
    }

    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return reply(res, 405, errorPage(405, 'Method Not Allowed'), { allow: 'PUT' });
      // IMDS refuses token requests that went through a proxy.
      if (req.headers['x-forwarded-for'] !== undefined) return reply(res, 403, errorPage(403, 'Forbidden'));
      const ttlHeader = String(req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ?? '');
      const ttl = /^\d+$/.test(ttlHeader) ? Number(ttlHeader) : NaN;
      if (!(ttl >= 1 && ttl <= MAX_TTL)) return reply(res, 400, errorPage(400, 'Bad Request'));
      const t = crypto.randomBytes(42).toString('base64');
      tokens.set(t, Date.now() + ttl * 1000);
      return reply(res, 200, t, { 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, errorPage(405, 'Method Not Allowed'));
    // IMDSv2 only: a missing, unknown or expired token is 401, whatever the path.
    const expiry = typeof token === 'string' ? tokens.get(token) : undefined;
    if (expiry === undefined || expiry <= Date.now()) return reply(res, 401, errorPage(401, 'Unauthorized'));

    const parts = path.split('/').filter(Boolean);
    if (parts[0] !== 'latest') return notFound(res);
    let node: string | Tree | undefined = tree();
    for (const p of parts.slice(1)) {
      node = typeof node === 'object' ? node[p] : undefined;
      if (node === undefined) return notFound(res);
    }
    if (typeof node === 'string') return reply(res, 200, node);
    // A directory lists its entries, sub-directories with a trailing slash.
    const listing = Object.entries(node)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => (typeof v === 'object' ? `${k}/` : k))
      .sort();
    return reply(res, 200, listing.join('\n'));
  }

  const server = http.createServer(handle);
  const listener = await listenOnLoopback(server, opts.port);

  return {
    endpoint: listener.endpoint,
    get instance() {
      return emulator.instance;
    },
    set instance(i: ImdsInstance) {
      emulator.instance = i;
    },
    requests,
    setUnreachable: listener.setUnreachable,
    failNext(n, status = 503) {
      failures = { left: n, status };
    },
    close: listener.close,
  };
}
