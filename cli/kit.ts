// What every command shares: the client from the global connection flags,
// --output, examples in --help (kept for the reference page), and parsing
// of key=value flags and input files.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { resolveConnection, type ConnectionFlags } from './connection';
import { RestClient } from './client';
import { usageError } from './exit-codes';
import { OUTPUT_FORMATS, type OutputFormat } from './output';

export function clientOf(cmd: Command): RestClient {
  return new RestClient(resolveConnection(cmd.optsWithGlobals<ConnectionFlags>()));
}

export const outputOption = () => new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS]).default('table');

export const formatOf = (cmd: Command): OutputFormat => cmd.opts<{ output: OutputFormat }>().output;

export const print = (text: string) => {
  if (text) process.stdout.write(text);
};

const EXAMPLES = new WeakMap<Command, string[]>();

/** Adds examples to the command's --help (and to docs/CLI.md). */
export function examples(cmd: Command, ...lines: string[]): Command {
  EXAMPLES.set(cmd, lines);
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => (l.startsWith('#') ? `  ${l}` : `  $ ${l}`)).join('\n')}\n`);
}

export const examplesOf = (cmd: Command): string[] => EXAMPLES.get(cmd) ?? [];

/** Repeatable option: collects every value. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** "a,b,c" -> ["a","b","c"]. */
export const commaList = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);

/** ["k=v", ...] -> {k: v}; an error names the flag and shows the form. */
export function keyValueMap(pairs: string[] | undefined, flag: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw usageError(`${flag}: "${pair}" is not key=value (e.g. ${flag} env=prod)`);
    map[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return map;
}

/** A JSON or YAML file holding one object (YAML is a superset of JSON, so one parser reads both). */
export function readObjectFile(path: string, flag: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(
      `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw usageError(`${flag}: ${path} is not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw usageError(`${flag}: ${path} must hold an object (keys and values), not ${Array.isArray(data) ? 'a list' : typeof data}`);
  return data as Record<string, unknown>;
}

/** "12s ago", "3m ago", "2h ago", "4d ago" from an ISO time; "-" when absent. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}
