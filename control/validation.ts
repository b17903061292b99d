// Semantic checks of what operators save, so that a mistake is refused at
// the REST call instead of at boot on every instance. Shape and types are
// checked earlier by the REST schemas.
import { LABEL_KEY_PATTERN, type Assignment, type ClusterSettings } from '../common/model';
import { InputError } from './errors';

const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const labelKeyRe = new RegExp(LABEL_KEY_PATTERN);

export function isHostPort(value: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  if (!m) return false;
  const port = Number(m[2]);
  const host = m[1];
  return port > 0 && port < 65536 && (host.startsWith('[') || IPV4_RE.test(host) || HOST_RE.test(host));
}

export function isHostname(value: string): boolean {
  return HOST_RE.test(value);
}

function check(ok: boolean, field: string, reason: string): void {
  if (!ok) throw new InputError(field, reason);
}

export function validateClusterSettings(s: ClusterSettings): void {
  check(s.clusterName === '' || /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(s.clusterName), 'clusterName', 'letters, digits, ".", "_" and "-" only, starting with a letter or digit');
  check(s.authAddr === '' || isHostPort(s.authAddr), 'authAddr', `"${s.authAddr}" is not host:port, for example auth.example.internal:3025`);
  check(s.proxyPublicAddr === '' || isHostPort(s.proxyPublicAddr), 'proxyPublicAddr', `"${s.proxyPublicAddr}" is not host:port, for example teleport.example.com:443`);
  check(s.s3Bucket === '' || /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s.s3Bucket), 's3Bucket', 'an S3 bucket name: 3 to 63 lower-case letters, digits, "." and "-"');
  check(/^\/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.-]$/.test(s.ssmPrefix) && !s.ssmPrefix.includes('//'), 'ssmPrefix', 'an SSM path such as /teleport: starts with "/", no trailing "/"');
  check(s.region === '' || /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(s.region), 'region', `"${s.region}" is not an AWS region name such as us-east-1`);
  if (s.storage.type === 'dynamodb') {
    check(!!s.storage.tableName && /^[A-Za-z0-9_.-]{3,255}$/.test(s.storage.tableName), 'storage.tableName', 'DynamoDB storage needs a table name (3-255 of A-Z a-z 0-9 _ . -)');
    check(!s.storage.region || /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(s.storage.region), 'storage.region', 'not an AWS region name');
  }
}

export function validateAssignment(a: Assignment): void {
  for (const key of Object.keys(a.labels)) {
    check(labelKeyRe.test(key), `labels.${key}`, 'label keys are letters, digits, ".", "_", "/" and "-", up to 63 characters');
  }
  check(a.nodename === undefined || isHostname(a.nodename), 'nodename', 'a host name: letters, digits, "-" and "."');
}
