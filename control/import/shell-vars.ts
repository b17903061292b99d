// Reads a file of shell variable assignments such as the Teleport AMI's
// /etc/teleport.d/conf (KEY=value lines, sourced by its scripts). Only
// literal values are read: a command substitution or a variable expansion
// would need a shell to run, and is refused naming the line.
export class ShellVarsError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** KEY=value, KEY="value", KEY='value', with optional "export"; blank lines and # comments skipped. */
export function parseShellVars(text: string, file: string): Map<string, string> {
  const vars = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file}:${i + 1}`;
    const m = /^(?:export\s+)?([^=\s]+)=(.*)$/.exec(line);
    if (!m || !NAME.test(m[1])) throw new ShellVarsError(`${where}: expected NAME=value, got ${JSON.stringify(line)}`);
    vars.set(m[1], literal(m[2], where));
  });
  return vars;
}

function literal(value: string, where: string): string {
  const v = value.replace(/\s+#.*$/, '').trim();
  if (v.startsWith("'")) {
    if (!/^'[^']*'$/.test(v)) throw new ShellVarsError(`${where}: unterminated single quote`);
    return v.slice(1, -1);
  }
  const inner = v.startsWith('"') ? (/^"((?:[^"\\]|\\.)*)"$/.exec(v)?.[1] ?? null) : v;
  if (inner === null) throw new ShellVarsError(`${where}: unterminated double quote`);
  if (/\$|`/.test(inner.replace(/\\[$`]/g, ''))) {
    throw new ShellVarsError(`${where}: ${JSON.stringify(v)} needs a shell to expand ($ or backquote); write the value itself`);
  }
  if (!v.startsWith('"') && /\s/.test(inner)) throw new ShellVarsError(`${where}: a value with spaces must be quoted`);
  return inner.replace(/\\(.)/g, '$1');
}
