// What the terminal can show: colours only on a TTY (NO_COLOR turns them
// off, FORCE_COLOR on), its width, and a progress line on stderr.
import type { WriteStream } from 'node:tty';

type Stream = NodeJS.WriteStream | WriteStream;

/** https://no-color.org: NO_COLOR set to anything non-empty turns colours off; FORCE_COLOR (set, not "0") turns them on. */
export function colorsOn(stream: Stream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const CODES = { red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39], bold: [1, 22], dim: [2, 22] } as const;
export type Style = keyof typeof CODES;

export function paint(style: Style, text: string, on = colorsOn()): string {
  if (!on) return text;
  const [open, close] = CODES[style];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}

/** Columns of the terminal on stdout; unlimited when not a terminal (a pipe wants whole lines) unless COLUMNS says. */
export function terminalWidth(stream: Stream = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  if (stream.isTTY && stream.columns) return stream.columns;
  const fromEnv = Number(env.COLUMNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Number.POSITIVE_INFINITY;
}

/** One line on stderr, rewritten in place, only when stderr is a terminal: progress never mixes into piped output. */
export class Progress {
  private shown = false;
  constructor(private readonly stream: Stream = process.stderr) {}

  update(text: string): void {
    if (!this.stream.isTTY) return;
    this.stream.write(`\r\u001b[K${text}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.stream.write('\r\u001b[K');
    this.shown = false;
  }
}
