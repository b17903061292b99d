// Route 53 emulator speaking the REST-XML API (2013-04-01) over HTTP, for the
// real @aws-sdk/client-route-53. Hosted zones are given up front; record sets
// change only through ChangeResourceRecordSets, with Route 53's batch rules, so
// that ACME DNS-01 code meets the same refusals it would meet in AWS.
//
// Optionally every TXT record set is mirrored into pebble-challtestsrv, whose
// DNS server pebble's validation authority queries: what the code under test
// writes to "Route 53" is then what the CA sees.
import crypto from 'node:crypto';
import http from 'node:http';
import { isIPv4 } from 'node:net';
import { listenOnLoopback } from './listener';

export interface HostedZoneSpec {
  /** 'example.com.' (the trailing dot is optional) */
  name: string;
  /** 'Z0123456789ABC' (a '/hostedzone/' prefix is accepted) */
  id: string;
}

export interface RecordSet {
  zoneId: string;
  /** lower case, fully qualified with the trailing dot; a wildcard is '*', not Route 53's '\052' */
  name: string;
  type: string;
  ttl: number;
  /** as Route 53 holds them: TXT values keep their quotes */
  values: string[];
}

export type ChangeAction = 'CREATE' | 'UPSERT' | 'DELETE';

export interface ChangeLogEntry {
  /** without the '/change/' prefix */
  id: string;
  zoneId: string;
  comment?: string;
  submittedAt: Date;
  status: 'PENDING' | 'INSYNC';
  changes: Array<{ action: ChangeAction } & Omit<RecordSet, 'zoneId'>>;
  /** why the change never reached INSYNC: mirroring it into challtestsrv failed */
  mirrorError?: string;
}

export interface Route53EmulatorOptions {
  zones: HostedZoneSpec[];
  /** pebble-challtestsrv's management URL; TXT record sets are mirrored there */
  challtestsrv?: string;
  /** how long a change stays PENDING (0: INSYNC from the first GetChange on) */
  insyncAfterMs?: number;
  port?: number;
}

export interface Route53Emulator {
  endpoint: string;
  /** current record sets (the zones' own SOA and NS included), in ListResourceRecordSets order */
  records(zoneId?: string): RecordSet[];
  /** every accepted change batch, oldest first */
  changes: ChangeLogEntry[];
  /** while true every request is refused at TCP level (connection closed) */
  setUnreachable(on: boolean): void;
  close(): Promise<void>;
}

class Route53Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const invalidInput = (message: string) => new Route53Error(400, 'InvalidInput', message);

const XMLNS = 'https://route53.amazonaws.com/doc/2013-04-01/';
const TYPES = ['SOA', 'A', 'TXT', 'NS', 'CNAME', 'MX', 'NAPTR', 'PTR', 'SRV', 'SPF', 'AAAA', 'CAA', 'DS', 'TLSA', 'SSHFP', 'SVCB', 'HTTPS'];
// Shape of a SigV4 Authorization header; the signature itself cannot be checked (we do not know the secret).
const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=([^/\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=[0-9a-f]{64}$/;
// One or more quoted character-strings: what Route 53 demands of a TXT value.
const QUOTED = /"((?:[^"\\]|\\.)*)"/g;
const TXT_VALUE = /^\s*"(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*\s*$/;

// ---- XML, as much as Route 53 requests need: elements and text, no CDATA.

interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? whole;
  });
}

function parseXml(src: string): XmlElement {
  const malformed = () => invalidInput('Could not parse XML');
  const open = /<([A-Za-z_][\w.:-]*)(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(\/?)>/y;
  let i = 0;
  const skipProlog = () => {
    for (;;) {
      while (/\s/.test(src[i] ?? '')) i++;
      const end = src.startsWith('<?', i) ? src.indexOf('?>', i) + 2 : src.startsWith('<!--', i) ? src.indexOf('-->', i) + 3 : -1;
      if (end < 0) return;
      if (end < i) throw malformed();
      i = end;
    }
  };
  const element = (): XmlElement => {
    open.lastIndex = i;
    const m = open.exec(src);
    if (!m) throw malformed();
    i = open.lastIndex;
    const el: XmlElement = { name: m[1], children: [], text: '' };
    if (m[2]) return el;
    for (;;) {
      const lt = src.indexOf('<', i);
      if (lt < 0) throw malformed();
      el.text += decodeEntities(src.slice(i, lt));
      i = lt;
      if (src.startsWith('</', i)) {
        const close = `</${el.name}>`;
        if (!src.startsWith(close, i)) throw malformed();
        i += close.length;
        return el;
      }
      if (src.startsWith('<!--', i)) {
        i = src.indexOf('-->', i) + 3;
        if (i < 3) throw malformed();
      } else {
        el.children.push(element());
      }
    }
  };
  skipProlog();
  const root = element();
  skipProlog();
  if (i !== src.length) throw malformed();
  return root;
}

const child = (el: XmlElement | undefined, name: string) => el?.children.find((c) => c.name === name);
const childrenNamed = (el: XmlElement | undefined, name: string) => el?.children.filter((c) => c.name === name) ?? [];

const ESCAPES: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' };
const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => ESCAPES[c]);
/** `<name>inner</name>`; inner is already XML. */
const x = (name: string, inner: string | number | boolean) => `<${name}>${inner}</${name}>`;
/** `<name>text</name>` with the text escaped. */
const xt = (name: string, text: string) => x(name, escapeXml(text));
const document = (root: string, inner: string) => `<?xml version="1.0"?>\n<${root} xmlns="${XMLNS}">${inner}</${root}>`;

// ---- Names

/** Route 53's form: lower case, absolute; '\052' (how Route 53 writes '*') read back as '*'. */
function normalizeName(name: string): string {
  const n = name.trim().toLowerCase().replace(/\\052/g, '*');
  return n.endsWith('.') ? n : `${n}.`;
}

/** 'www.example.com.' -> 'com.example.www.': the order Route 53 lists zones and records in. */
const reversed = (name: string) => name.split('.').filter(Boolean).reverse().join('.') + '.';
const wireName = (name: string) => name.replace(/\*/g, '\\052');
const inZone = (name: string, zone: string) => name === zone || name.endsWith(`.${zone}`);

/** The text a DNS client sees for a TXT value: its quoted strings joined, escapes resolved. */
export function unquoteTxt(value: string): string {
  return [...value.matchAll(QUOTED)]
    .map((m) => m[1].replace(/\\(\d{3}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e, 8)) : e)))
    .join('');
}

/** Route 53's complaint about one value, if any. */
function badValue(type: string, value: string): string | undefined {
  const fatal = (problem: string) => `Invalid Resource Record: 'FATAL problem: ${problem} encountered with '${value}''`;
  if (type === 'TXT' || type === 'SPF') {
    if (!TXT_VALUE.test(value)) return fatal('InvalidCharacterString (Value should be enclosed in quotation marks)');
    if ([...value.matchAll(QUOTED)].some((m) => unquoteTxt(`"${m[1]}"`).length > 255)) return fatal('TXTRDATATooLong (Value is too long)');
  }
  if (type === 'A' && !isIPv4(value)) return fatal('ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address)');
  return undefined;
}

// ---- The emulator

interface Zone {
  id: string;
  name: string;
  nameServers: string[];
  /** keyed `${name} ${type}` */
  sets: Map<string, RecordSet>;
}

const setKey = (name: string, type: string) => `${name} ${type}`;
/** Plain code-unit order, as Route 53 sorts (not the locale's). */
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byListOrder = (a: RecordSet, b: RecordSet) => compare(reversed(a.name), reversed(b.name)) || compare(a.type, b.type);

/** A Route 53 style identifier: a letter, then upper-case letters and digits. */
const newId = (prefix: string) => prefix + crypto.randomBytes(7).toString('hex').toUpperCase();

function parseMaxItems(raw: string | null, fallback: number): number {
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw invalidInput(
      `1 validation error detected: Value '${raw}' at 'maxItems' failed to satisfy constraint: Member must be a positive integer`,
    );
  return Math.min(n, fallback);
}

export async function startRoute53Emulator(opts: Route53EmulatorOptions): Promise<Route53Emulator> {
  const insyncAfterMs = opts.insyncAfterMs ?? 0;
  const zones = new Map<string, Zone>();
  for (const spec of opts.zones) {
    const id = spec.id.replace(/^\/hostedzone\//, '');
    const name = normalizeName(spec.name);
    const n = zones.size;
    const nameServers = [
      `ns-${100 + n}.awsdns-${10 + n}.com.`,
      `ns-${600 + n}.awsdns-${20 + n}.net.`,
      `ns-${1100 + n}.awsdns-${30 + n}.org.`,
      `ns-${1600 + n}.awsdns-${40 + n}.co.uk.`,
    ];
    const sets = new Map<string, RecordSet>();
    // Every Route 53 zone starts with these two, and keeps them.
    sets.set(setKey(name, 'NS'), { zoneId: id, name, type: 'NS', ttl: 172800, values: nameServers });
    sets.set(setKey(name, 'SOA'), {
      zoneId: id,
      name,
      type: 'SOA',
      ttl: 900,
      values: [`${nameServers[0]} awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400`],
    });
    zones.set(id, { id, name, nameServers, sets });
  }
  const changes: ChangeLogEntry[] = [];
  // Mirroring runs one batch at a time, so challtestsrv ends in the order the batches were accepted.
  let mirrorQueue = Promise.resolve();

  function zoneById(rawId: string): Zone {
    const id = decodeURIComponent(rawId);
    const zone = zones.get(id);
    if (!zone) throw new Route53Error(404, 'NoSuchHostedZone', `No hosted zone found with ID: ${id}`);
    return zone;
  }

  const hostedZoneXml = (z: Zone) =>
    x(
      'HostedZone',
      xt('Id', `/hostedzone/${z.id}`) +
        xt('Name', wireName(z.name)) +
        xt('CallerReference', `teleboot-emulator-${z.id}`) +
        x('Config', x('PrivateZone', false)) +
        x('ResourceRecordSetCount', z.sets.size),
    );

  const recordSetXml = (s: RecordSet) =>
    x(
      'ResourceRecordSet',
      xt('Name', wireName(s.name)) +
        xt('Type', s.type) +
        x('TTL', s.ttl) +
        x('ResourceRecords', s.values.map((v) => x('ResourceRecord', xt('Value', v))).join('')),
    );

  const changeInfoXml = (c: ChangeLogEntry) =>
    x(
      'ChangeInfo',
      xt('Id', `/change/${c.id}`) +
        xt('Status', c.status) +
        xt('SubmittedAt', c.submittedAt.toISOString()) +
        (c.comment === undefined ? '' : xt('Comment', c.comment)),
    );

  async function mirror(hosts: Map<string, string[]>): Promise<void> {
    const post = async (path: string, body: object) => {
      const res = await fetch(new URL(path, opts.challtestsrv), { method: 'POST', body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`challtestsrv ${path}: HTTP ${res.status} ${await res.text()}`);
    };
    for (const [host, values] of hosts) {
      // challtestsrv only appends; clearing first makes it hold exactly the record set.
      await post('/clear-txt', { host });
      for (const value of values) await post('/set-txt', { host, value: unquoteTxt(value) });
    }
  }

  function parseChange(el: XmlElement, n: number): { action: ChangeAction } & Omit<RecordSet, 'zoneId'> {
    const action = child(el, 'Action')?.text ?? '';
    if (action !== 'CREATE' && action !== 'UPSERT' && action !== 'DELETE') {
      throw invalidInput(
        `1 validation error detected: Value '${action}' at 'changeBatch.changes.${n}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [UPSERT, DELETE, CREATE]`,
      );
    }
    const rrs = child(el, 'ResourceRecordSet');
    const name = child(rrs, 'Name')?.text ?? '';
    const type = child(rrs, 'Type')?.text ?? '';
    if (!name) throw invalidInput(`Invalid request: Missing field 'Name' in Change with [Action=${action}, Type=${type}]`);
    if (!TYPES.includes(type)) {
      throw invalidInput(
        `1 validation error detected: Value '${type}' at 'changeBatch.changes.${n}.member.resourceRecordSet.type' failed to satisfy constraint: Member must satisfy enum value set: [${TYPES.join(', ')}]`,
      );
    }
    for (const unsupported of ['AliasTarget', 'SetIdentifier', 'TrafficPolicyInstanceId']) {
      if (child(rrs, unsupported)) throw invalidInput(`${unsupported} is not supported by this emulator`);
    }
    const ttlText = child(rrs, 'TTL')?.text;
    const records = child(rrs, 'ResourceRecords');
    if (ttlText === undefined || !records) {
      throw invalidInput(
        `Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=${action}, Name=${name}, Type=${type}, SetIdentifier=null]`,
      );
    }
    const ttl = Number(ttlText);
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2147483647) throw invalidInput(`Invalid TTL: ${ttlText}`);
    const values = childrenNamed(records, 'ResourceRecord').map((r) => child(r, 'Value')?.text ?? '');
    if (values.length === 0)
      throw invalidInput(
        `1 validation error detected: Value at 'changeBatch.changes.${n}.member.resourceRecordSet.resourceRecords' failed to satisfy constraint: Member must have length greater than or equal to 1`,
      );
    return { action, name: normalizeName(name), type, ttl, values };
  }

  async function changeResourceRecordSets(zone: Zone, body: string): Promise<string> {
    const root = parseXml(body);
    const batch = child(root, 'ChangeBatch');
    const changeEls = childrenNamed(child(batch, 'Changes'), 'Change');
    if (root.name !== 'ChangeResourceRecordSetsRequest' || changeEls.length === 0) {
      throw invalidInput(
        `1 validation error detected: Value at 'changeBatch.changes' failed to satisfy constraint: Member must have length greater than or equal to 1`,
      );
    }
    const parsed = changeEls.map((el, i) => parseChange(el, i + 1));

    // Applied in order to a copy, so a DELETE then CREATE of one set in one batch is a replacement,
    // and any refusal leaves the zone as it was.
    const next = new Map(zone.sets);
    const problems: string[] = [];
    for (const c of parsed) {
      const what = `resource record set [name='${wireName(c.name)}', type='${c.type}']`;
      if (!inZone(c.name, zone.name)) {
        problems.push(`RRSet with DNS name ${wireName(c.name)} is not permitted in zone ${wireName(zone.name)}`);
        continue;
      }
      const bad = c.values.map((v) => badValue(c.type, v)).find(Boolean);
      if (bad) {
        problems.push(bad);
        continue;
      }
      const dup = c.values.find((v, i) => c.values.indexOf(v) !== i);
      if (dup !== undefined) {
        problems.push(`Duplicate Resource Record: '${dup}'`);
        continue;
      }
      const key = setKey(c.name, c.type);
      const current = next.get(key);
      if (c.action === 'CREATE' && current) {
        problems.push(`Tried to create ${what} but it already exists`);
      } else if (c.action === 'DELETE' && !current) {
        problems.push(`Tried to delete ${what} but it was not found`);
      } else if (c.action === 'DELETE') {
        const same = current!.ttl === c.ttl && [...current!.values].sort().join('\n') === [...c.values].sort().join('\n');
        if (!same) problems.push(`Tried to delete ${what} but the values provided do not match the current values`);
        else next.delete(key);
      } else {
        next.set(key, { zoneId: zone.id, name: c.name, type: c.type, ttl: c.ttl, values: c.values });
      }
    }
    if (!next.has(setKey(zone.name, 'SOA'))) problems.push('A HostedZone must contain exactly one SOA record.');
    if (!next.has(setKey(zone.name, 'NS'))) problems.push('A HostedZone must contain at least one NS record for the zone itself.');
    if (problems.length > 0) throw new Route53Error(400, 'InvalidChangeBatch', `[${problems.join(', ')}]`);

    zone.sets = next;
    const comment = child(batch, 'Comment')?.text;
    const entry: ChangeLogEntry = { id: newId('C'), zoneId: zone.id, submittedAt: new Date(), status: 'PENDING', changes: parsed };
    if (comment !== undefined) entry.comment = comment;
    changes.push(entry);

    const txtHosts = new Map<string, string[]>();
    for (const c of parsed) if (c.type === 'TXT') txtHosts.set(c.name, next.get(setKey(c.name, 'TXT'))?.values ?? []);
    const synced = mirrorQueue.then(() => (opts.challtestsrv && txtHosts.size > 0 ? mirror(txtHosts) : undefined));
    mirrorQueue = synced.catch(() => undefined);
    const reply = document('ChangeResourceRecordSetsResponse', changeInfoXml(entry));
    // Answered once mirrored, so that with no delay the first GetChange already reports INSYNC.
    await synced.then(
      () => setTimeout(() => (entry.status = 'INSYNC'), insyncAfterMs).unref(),
      (e: unknown) => (entry.mirrorError = e instanceof Error ? e.message : String(e)),
    );
    return reply;
  }

  function listHostedZones(q: URLSearchParams): string {
    const max = parseMaxItems(q.get('maxitems'), 100);
    const all = [...zones.values()];
    const marker = q.get('marker');
    const start = marker === null ? 0 : all.findIndex((z) => z.id === marker);
    if (start < 0) throw invalidInput(`Invalid marker: ${marker}`);
    const page = all.slice(start, start + max);
    const more = all[start + max];
    return document(
      'ListHostedZonesResponse',
      x('HostedZones', page.map(hostedZoneXml).join('')) +
        (marker === null ? '' : xt('Marker', marker)) +
        x('IsTruncated', !!more) +
        (more ? xt('NextMarker', more.id) : '') +
        x('MaxItems', max),
    );
  }

  function listHostedZonesByName(q: URLSearchParams): string {
    const max = parseMaxItems(q.get('maxitems'), 100);
    const dnsName = q.get('dnsname');
    const zoneId = q.get('hostedzoneid');
    if (zoneId !== null && dnsName === null)
      throw invalidInput('The input is not valid: DNSName is required when HostedZoneId is specified.');
    const sorted = [...zones.values()].sort((a, b) => compare(reversed(a.name), reversed(b.name)) || compare(a.id, b.id));
    const from = dnsName === null ? '' : reversed(normalizeName(dnsName));
    const start = sorted.findIndex((z) => reversed(z.name) > from || (reversed(z.name) === from && (zoneId === null || z.id >= zoneId)));
    const rest = start < 0 ? [] : sorted.slice(start);
    const more = rest[max];
    return document(
      'ListHostedZonesByNameResponse',
      x('HostedZones', rest.slice(0, max).map(hostedZoneXml).join('')) +
        (dnsName === null ? '' : xt('DNSName', dnsName)) +
        (zoneId === null ? '' : xt('HostedZoneId', zoneId)) +
        x('IsTruncated', !!more) +
        (more ? xt('NextDNSName', wireName(more.name)) + xt('NextHostedZoneId', more.id) : '') +
        x('MaxItems', max),
    );
  }

  function listResourceRecordSets(zone: Zone, q: URLSearchParams): string {
    const max = parseMaxItems(q.get('maxitems'), 300);
    const name = q.get('name');
    const type = q.get('type');
    if (type !== null && name === null) throw invalidInput('The input is not valid: Type is specified but Name is not.');
    const sorted = [...zone.sets.values()].sort(byListOrder);
    const from = { name: name === null ? '' : normalizeName(name), type: type ?? '' };
    const rest = name === null ? sorted : sorted.filter((s) => byListOrder(s, { ...s, ...from }) >= 0);
    const more = rest[max];
    return document(
      'ListResourceRecordSetsResponse',
      x('ResourceRecordSets', rest.slice(0, max).map(recordSetXml).join('')) +
        x('IsTruncated', !!more) +
        (more ? xt('NextRecordName', wireName(more.name)) + xt('NextRecordType', more.type) : '') +
        x('MaxItems', max),
    );
  }

  async function route(method: string, url: URL, body: string): Promise<string> {
    const p = url.pathname.replace(/\/$/, '').split('/').slice(1);
    if (p[0] !== '2013-04-01') throw new Route53Error(404, 'UnknownOperationException', `No operation at ${method} ${url.pathname}`);
    const [, kind, id, sub] = p;
    if (method === 'GET' && kind === 'hostedzone' && id === undefined) return listHostedZones(url.searchParams);
    if (method === 'GET' && kind === 'hostedzonesbyname' && id === undefined) return listHostedZonesByName(url.searchParams);
    if (method === 'GET' && kind === 'hostedzone' && id && sub === undefined) {
      const z = zoneById(id);
      return document(
        'GetHostedZoneResponse',
        hostedZoneXml(z) + x('DelegationSet', x('NameServers', z.nameServers.map((ns) => xt('NameServer', ns.slice(0, -1))).join(''))),
      );
    }
    if (kind === 'hostedzone' && id && sub === 'rrset' && p.length === 4) {
      if (method === 'POST') return changeResourceRecordSets(zoneById(id), body);
      if (method === 'GET') return listResourceRecordSets(zoneById(id), url.searchParams);
    }
    if (method === 'GET' && kind === 'change' && id && sub === undefined) {
      const c = changes.find((e) => e.id === decodeURIComponent(id));
      if (!c) throw new Route53Error(404, 'NoSuchChange', 'A change with the specified change ID does not exist.');
      return document('GetChangeResponse', changeInfoXml(c));
    }
    throw new Route53Error(404, 'UnknownOperationException', `No operation at ${method} ${url.pathname}`);
  }

  function send(res: http.ServerResponse, status: number, xml: string): void {
    res.writeHead(status, {
      'content-type': 'text/xml',
      'content-length': Buffer.byteLength(xml),
      'x-amzn-requestid': crypto.randomUUID(),
    });
    res.end(xml);
  }

  function sendError(res: http.ServerResponse, e: Route53Error): void {
    const type = e.status >= 500 ? 'Receiver' : 'Sender';
    send(
      res,
      e.status,
      document(
        'ErrorResponse',
        x('Error', xt('Type', type) + xt('Code', e.code) + xt('Message', e.message)) + xt('RequestId', crypto.randomUUID()),
      ),
    );
  }

  async function handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> {
    const auth = req.headers.authorization;
    if (!auth) return sendError(res, new Route53Error(403, 'MissingAuthenticationToken', 'Missing Authentication Token'));
    const m = SIGV4.exec(auth);
    if (!m || !req.headers['x-amz-date']) {
      return sendError(
        res,
        new Route53Error(
          403,
          'IncompleteSignature',
          `Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an X-Amz-Date header.`,
        ),
      );
    }
    if (m[4] !== 'route53')
      return sendError(res, new Route53Error(403, 'SignatureDoesNotMatch', `Credential should be scoped to correct service: 'route53'.`));
    try {
      send(res, 200, await route(req.method ?? 'GET', new URL(req.url ?? '/', 'http://route53'), body));
    } catch (e) {
      if (e instanceof Route53Error) return sendError(res, e);
      sendError(res, new Route53Error(500, 'InternalFailure', e instanceof Error ? e.message : String(e)));
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  const listener = await listenOnLoopback(server, opts.port);

  return {
    endpoint: listener.endpoint,
    changes,
    records(zoneId) {
      const wanted = zoneId === undefined ? [...zones.values()] : [zoneById(zoneId.replace(/^\/hostedzone\//, ''))];
      return wanted.flatMap((z) => [...z.sets.values()].sort(byListOrder).map((s) => ({ ...s, values: [...s.values] })));
    },
    setUnreachable: listener.setUnreachable,
    async close() {
      await mirrorQueue;
      await listener.close();
    },
  };
}
