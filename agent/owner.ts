// Resolves the user and group Teleport runs as to numeric ids, for the
// owner of the files the agent writes.
import { readFileSync } from 'node:fs';

function lookup(file: string, name: string, idField: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name) return Number(fields[idField]);
  }
  return undefined;
}

export function resolveOwner(user: string, group: string): { uid: number; gid: number } {
  const uid = user === 'root' ? 0 : lookup('/etc/passwd', user, 2);
  const gid = group === 'root' ? 0 : lookup('/etc/group', group, 2);
  if (uid === undefined) throw new Error(`teleport.user: no user "${user}" on this host (create it in the AMI or use root)`);
  if (gid === undefined) throw new Error(`teleport.group: no group "${group}" on this host`);
  return { uid, gid };
}
