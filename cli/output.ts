// --output table|json|yaml for every listing. Tables are borderless columns
// (as nomad and kubectl print them), fitted to the terminal's width.
import Table from 'cli-table3';
import { stringify } from 'yaml';
import { usageError } from './exit-codes';
import { paint, terminalWidth, type Style } from './terminal';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw usageError(`--output: "${value}" is not a format; use one of ${OUTPUT_FORMATS.join(', ')}`);
}

export interface Columns<T> {
  /** Header and cell of each column. */
  [header: string]: (item: T) => string;
}

const GAP = 2;
const MIN_COLUMN = 6;

/** Column widths (gap included) that fit `width`, narrowing the widest columns first. */
export function fitWidths(natural: number[], width: number): number[] {
  const widths = natural.map((w, i) => w + (i < natural.length - 1 ? GAP : 0));
  let total = widths.reduce((a, b) => a + b, 0);
  while (total > width) {
    let widest = -1;
    for (let i = 0; i < widths.length; i++) if (widths[i] > MIN_COLUMN + GAP && (widest < 0 || widths[i] > widths[widest])) widest = i;
    if (widest < 0) break;
    widths[widest]--;
    total--;
  }
  return widths;
}

const visibleLength = (text: string) => text.replace(/\u001b\[\d+m/g, '').length;

export function renderTable(headers: string[], rows: string[][], width = terminalWidth()): string {
  if (rows.length === 0) return '';
  const natural = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const colWidths = fitWidths(natural, width);
  const table = new Table({
    head: headers.map((h) => paint('bold', h)),
    colWidths,
    truncate: '…',
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
  });
  table.push(...rows);
  // cli-table3 pads the last column too; operators copy lines, so trailing blanks go.
  return `${table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')}\n`;
}

/** Prints `data` as JSON or YAML, or its items as a table. */
export function formatList<T>(format: OutputFormat, data: unknown, items: T[], columns: Columns<T>, empty = 'nothing to show'): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (format === 'yaml') return stringify(data);
  if (items.length === 0) return `${empty}\n`;
  const headers = Object.keys(columns);
  return renderTable(
    headers,
    items.map((item) => headers.map((h) => columns[h](item))),
  );
}

/** A value as JSON or YAML; `table` gets `text()`. */
export function formatValue(format: OutputFormat, data: unknown, text: () => string): string {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (format === 'yaml') return stringify(data);
  return text();
}

/** key: value lines, keys aligned, for one record. */
export function keyValues(pairs: Array<[string, string]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${paint('bold', `${k}:`.padEnd(width + 1))} ${v}`).join('\n') + '\n';
}

const HEALTH_STYLES: Record<string, Style> = {
  ready: 'green',
  converging: 'yellow',
  expected: 'yellow',
  unassigned: 'dim',
};

/** Health coloured: green ready, yellow on its way, red anything else (degraded, offline, orphaned). */
export const healthText = (health: string) => paint(HEALTH_STYLES[health] ?? 'red', health);

export const labelsText = (labels: Record<string, string> | undefined | null) =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

export const orDash = (value: string | number | null | undefined) => (value === null || value === undefined || value === '' ? '-' : String(value));
