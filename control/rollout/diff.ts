// What a change does to one host's files, for the operator: a unified diff
// per changed file (jsdiff), secrets masked, the host's own values (id,
// hostname, IP) written as placeholders so hosts of one role with the same
// change show one diff.
import { createTwoFilesPatch } from 'diff';
import { maskProxyCredentials } from '../../contract/render/plan';
import type { FileDiff } from './model';

/** A file as the rollout compares it: for a secret file, `content` is whatever identifies it (its source), never shown. */
export interface RolloutFile {
  path: string;
  content: string;
  secret: boolean;
}

/** Values unique to a host, replaced by {instanceId}, {hostname}, {privateIp} in its diffs. */
export interface HostValues {
  instanceId: string;
  hostname?: string;
  privateIp?: string;
}

const SECRET_ADDED = 'secret file is added (content not shown)\n';
const SECRET_CHANGED = 'secret file changes (content not shown)\n';
const SECRET_REMOVED = 'secret file is removed\n';
const MASKED_VALUES_CHANGE = 'only masked (secret) values change\n';

const PRIVATE_KEY_BLOCK = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g;
// YAML/env keys whose value is a secret itself (a path to one, starting with "/", is not).
const SECRET_VALUE = /^(\s*(?:-\s+)?["']?(?:auth_token|token|password|secret|license)["']?\s*[:=]\s*)(?!["']?\/)(\S.*)$/gim;

/** `text` with secrets masked: private key blocks, proxy passwords in URLs, token and password values. */
export function maskSecrets(text: string): string {
  return maskProxyCredentials(text)
    .replace(PRIVATE_KEY_BLOCK, '-----BEGIN $1PRIVATE KEY----- (masked) -----END $1PRIVATE KEY-----')
    .replace(SECRET_VALUE, '$1(masked)');
}

function placeholders(text: string, host: HostValues): string {
  const values: Array<[string, string | undefined]> = [
    ['{instanceId}', host.instanceId],
    ['{hostname}', host.hostname],
    ['{privateIp}', host.privateIp],
  ];
  // Longest first, so a hostname holding the IP ("ip-10-0-0-5") is replaced whole.
  values.sort((a, b) => (b[1]?.length ?? 0) - (a[1]?.length ?? 0));
  let out = text;
  for (const [name, value] of values) if (value && value.length >= 3) out = out.split(value).join(name);
  return out;
}

/**
 * The files that differ between `before` and `after` (added, changed,
 * removed), in `after`'s order then the removed ones. Empty: the change does
 * not touch this host.
 */
export function diffFiles(before: readonly RolloutFile[], after: readonly RolloutFile[], host: HostValues): FileDiff[] {
  const old = new Map(before.map((f) => [f.path, f]));
  const diffs: FileDiff[] = [];
  const describe = (f: RolloutFile | undefined, text: string) => (f ? placeholders(maskSecrets(text), host) : '');
  for (const file of after) {
    const was = old.get(file.path);
    old.delete(file.path);
    if (was && was.content === file.content && was.secret === file.secret) continue;
    if (file.secret || was?.secret) {
      diffs.push({ path: file.path, diff: was ? SECRET_CHANGED : SECRET_ADDED });
      continue;
    }
    const [from, to] = [describe(was, was?.content ?? ''), describe(file, file.content)];
    // Masked alike, the change is in a secret value (a proxy password): say so without showing it.
    diffs.push({ path: file.path, diff: was && from === to ? MASKED_VALUES_CHANGE : unified(file.path, from, to, !was, false) });
  }
  for (const was of old.values()) {
    diffs.push({
      path: was.path,
      diff: was.secret ? SECRET_REMOVED : unified(was.path, describe(was, was.content), '', false, true),
    });
  }
  return diffs;
}

function unified(path: string, before: string, after: string, added: boolean, removed: boolean): string {
  return createTwoFilesPatch(added ? '/dev/null' : `a${path}`, removed ? '/dev/null' : `b${path}`, before, after, undefined, undefined, {
    context: 3,
  })
    .split('\n')
    .filter((line) => !/^={5,}$/.test(line))
    .join('\n');
}

/** The diff that undoes `diff`: what a rollback puts back. */
export function reverseDiff(diff: FileDiff): FileDiff {
  const lines = diff.diff.split('\n');
  if (!lines[0]?.startsWith('--- ')) {
    const secret = diff.diff === SECRET_ADDED ? SECRET_REMOVED : diff.diff === SECRET_REMOVED ? SECRET_ADDED : diff.diff;
    return { path: diff.path, diff: secret };
  }
  const out: string[] = [];
  let removed: string[] = [];
  let added: string[] = [];
  // A run of changed lines reads "-old" then "+new"; reversed, the new lines go first, as removals.
  const flush = () => {
    out.push(...added.map((l) => `-${l.slice(1)}`), ...removed.map((l) => `+${l.slice(1)}`));
    removed = [];
    added = [];
  };
  for (const [i, line] of lines.entries()) {
    if (i === 0) out.push(`--- ${swapNull(lines[1]?.slice(4) ?? '', line.slice(4), 'a')}`);
    else if (i === 1) out.push(`+++ ${swapNull(lines[0]?.slice(4) ?? '', line.slice(4), 'b')}`);
    else if (line.startsWith('-')) removed.push(line);
    else if (line.startsWith('+')) added.push(line);
    else {
      flush();
      out.push(line.replace(/^@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@/, '@@ -$2 +$1 @@'));
    }
  }
  flush();
  return { path: diff.path, diff: out.join('\n') };
}

/** The other side's file name on this side: /dev/null stays /dev/null, a/path and b/path keep their side's letter. */
function swapNull(other: string, own: string, side: 'a' | 'b'): string {
  if (other === '/dev/null') return other;
  return own === '/dev/null' ? `${side}${other.slice(1)}` : own;
}
