// --output table|json|yaml for every listing. Tables are borderless columns
// (as nomad and kubectl print them), fitted to the terminal's width.
import { stripVTControlCharacters } from 'node:util';
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

/**
 * Widths (each with its gap) of the columns that fit `width`: as many as fit
 * from the left at their natural width, the last of them cut to what is
 * left (at least MIN_COLUMN); the rest are left out (-o json has them all).
 * A first column wider than the terminal is cut.
 */
export function fitWidths(natural: number[], width: number): number[] {
  for (let shown = natural.length; shown > 1; shown--) {
    const before = natural.slice(0, shown - 1).reduce((sum, w) => sum + w + GAP, 0);
    const last = natural[shown - 1];
    const room = width - before;
    if (room >= Math.min(last, MIN_COLUMN)) return [...natural.slice(0, shown - 1), Math.min(last, room)].map((w) => w + GAP);
  }
  return [Math.max(MIN_COLUMN, Math.min(natural[0], width)) + GAP];
}

const visibleLength = (text: string) => stripVTControlCharacters(text).length;

export function renderTable(headers: string[], rows: string[][], width = terminalWidth()): string {
  if (rows.length === 0) return '';
  const natural = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const colWidths = fitWidths(natural, width);
  headers = headers.slice(0, colWidths.length);
  rows = rows.map((r) => r.slice(0, colWidths.length));
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
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': GAP, compact: true },
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

export const orDash = (value: string | number | null | undefined) =>
  value === null || value === undefined || value === '' ? '-' : String(value);
