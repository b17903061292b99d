// What the demo prints: step lines, the fleet table, teleport.yaml excerpts
// and the fleet health summary. Plain text; a little bold on a terminal.
import { relative } from 'node:path';

const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
const ansi = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
export const bold = ansi('1');
export const dim = ansi('2');
export const green = ansi('32');
export const red = ansi('31');

const started = Date.now();

export const say = (line = ''): void => void process.stdout.write(`${line}\n`);

export function heading(title: string): void {
  say();
  say(bold(title));
}

/** A step as it happens, with the seconds since the demo started. */
export function step(text: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  say(`${dim(`${seconds}s`)}  ${text}`);
}

/** A path relative to the working directory when that is shorter. */
export function short(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length < path.length && !rel.startsWith('../..') ? rel : path;
}

// Widths are measured without colour codes.
// eslint-disable-next-line no-control-regex
const visible = (s: string) => s.replace(/\x1b\[\d+m/g, '').length;
const pad = (s: string, width: number) => s + ' '.repeat(Math.max(0, width - visible(s)));

export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) => `  ${cells.map((c, i) => pad(c, widths[i])).join('  ')}`.trimEnd();
  say(dim(line(header)));
  for (const row of rows) say(line(row));
}

/** The first `max` lines of a file's text, indented, with a note of what was cut. */
export function excerpt(text: string, max: number): void {
  const lines = text.trimEnd().split('\n');
  for (const l of lines.slice(0, max)) say(`    ${l}`);
  if (lines.length > max) say(dim(`    … ${lines.length - max} more lines`));
}

export interface FleetHealth {
  total: number;
  byHealth: Record<string, number>;
  byRole: Record<string, Record<string, number>>;
}

const counts = (byState: Record<string, number>) =>
  Object.entries(byState)
    .map(([state, n]) => `${n} ${state === 'ready' ? green(state) : state}`)
    .join(', ');

export function healthSummary(h: FleetHealth): void {
  say(`  ${h.total} instance${h.total === 1 ? '' : 's'}: ${counts(h.byHealth)}`);
  const width = Math.max(...Object.keys(h.byRole).map((r) => r.length));
  for (const [role, byState] of Object.entries(h.byRole)) say(`    ${role.padEnd(width)}  ${counts(byState)}`);
}
