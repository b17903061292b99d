// EC2 emulator speaking the EC2 Query API (form-encoded POST, XML answers)
// for the real @aws-sdk/client-ec2. Only DescribeInstances, by instance id,
// which the control server calls to confirm an enrollment; its answer and
// error shapes follow the EC2 API reference.
import crypto from 'node:crypto';
import http from 'node:http';
import { listenOnLoopback } from './listener';

export interface Ec2Instance {
  instanceId: string;
  ownerId: string;
  state: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';
  imageId?: string;
  instanceType?: string;
  privateIp?: string;
  tags?: Record<string, string>;
}

export interface Ec2Emulator {
  endpoint: string;
  /** Adds or replaces an instance. */
  put(instance: Ec2Instance): void;
  remove(instanceId: string): void;
  /** Every request that reached HTTP: its action and the instance ids asked for. */
  requests: Array<{ action: string; instanceIds: string[]; signed: boolean }>;
  setUnreachable(on: boolean): void;
  close(): Promise<void>;
}

const STATE_CODES: Record<Ec2Instance['state'], number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};
const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=[^/\s]+\/\d{8}\/[a-z0-9-]+\/ec2\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${crypto.randomUUID()}</RequestID></Response>`;
}

function instanceXml(i: Ec2Instance): string {
  const tags = Object.entries(i.tags ?? {})
    .map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`)
    .join('');
  return [
    '<item>',
    `<instanceId>${i.instanceId}</instanceId>`,
    `<imageId>${i.imageId ?? 'ami-0123456789abcdef0'}</imageId>`,
    `<instanceState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></instanceState>`,
    `<instanceType>${i.instanceType ?? 't3.medium'}</instanceType>`,
    i.privateIp ? `<privateIpAddress>${i.privateIp}</privateIpAddress>` : '',
    tags ? `<tagSet>${tags}</tagSet>` : '',
    '</item>',
  ].join('');
}

export async function startEc2Emulator(): Promise<Ec2Emulator> {
  const instances = new Map<string, Ec2Instance>();
  const requests: Ec2Emulator['requests'] = [];

  function reply(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, {
      'content-type': 'text/xml;charset=UTF-8',
      'content-length': Buffer.byteLength(body),
      'x-amzn-requestid': crypto.randomUUID(),
    });
    res.end(body);
  }

  function handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const form = new URLSearchParams(body);
    const action = form.get('Action') ?? '';
    const ids = [...form.entries()].filter(([k]) => /^InstanceId\.\d+$/.test(k)).map(([, v]) => v);
    const signed = SIGV4.test(String(req.headers.authorization ?? ''));
    requests.push({ action, instanceIds: ids, signed });
    if (!signed) return reply(res, 401, errorXml('AuthFailure', 'AWS was not able to validate the provided access credentials'));
    if (req.method !== 'POST') return reply(res, 400, errorXml('InvalidAction', 'The action or operation requested is invalid.'));
    if (action !== 'DescribeInstances')
      return reply(res, 400, errorXml('InvalidAction', `The action ${action} is not valid for this web service.`));
    for (const id of ids) {
      if (!/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id)) return reply(res, 400, errorXml('InvalidInstanceID.Malformed', `Invalid id: "${id}"`));
    }
    const missing = ids.filter((id) => !instances.has(id));
    if (missing.length) {
      const what =
        missing.length === 1 ? `The instance ID '${missing[0]}' does not exist` : `The instance IDs '${missing.join(', ')}' do not exist`;
      return reply(res, 400, errorXml('InvalidInstanceID.NotFound', what));
    }
    const found = (ids.length ? ids : [...instances.keys()]).map((id) => instances.get(id)!);
    // One reservation per owner, as EC2 groups them by launch.
    const reservations = found
      .map(
        (i) =>
          `<item><reservationId>r-${crypto.randomBytes(8).toString('hex').slice(0, 17)}</reservationId><ownerId>${i.ownerId}</ownerId><groupSet/><instancesSet>${instanceXml(i)}</instancesSet></item>`,
      )
      .join('');
    reply(
      res,
      200,
      `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${crypto.randomUUID()}</requestId><reservationSet>${reservations}</reservationSet></DescribeInstancesResponse>`,
    );
  }

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => handle(req, res, body));
  });
  const listener = await listenOnLoopback(server);
  return {
    endpoint: listener.endpoint,
    put: (i) => void instances.set(i.instanceId, i),
    remove: (id) => void instances.delete(id),
    requests,
    setUnreachable: listener.setUnreachable,
    close: listener.close,
  };
}
