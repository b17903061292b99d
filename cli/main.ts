#!/usr/bin/env node
// teleboot: the operators' command line for teleboot-control's REST API.
import { CommanderError } from 'commander';
import { CliError, EXIT } from './exit-codes';
import { buildProgram } from './program';
import { paint, colorsOn } from './terminal';

/** Exits once stdout has taken everything written (pipes are asynchronous on some systems). */
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

async function main(): Promise<void> {
  // `teleboot ... | head`: the reader has what it wanted; not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
  try {
    await buildProgram().parseAsync(process.argv);
    exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the error or the help already.
      const done = ['commander.helpDisplayed', 'commander.version'].includes(err.code);
      return exit(done ? EXIT.ok : EXIT.usage);
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${paint('red', 'error:', colorsOn(process.stderr))} ${message}\n`);
    if (process.env.TELEBOOT_DEBUG && err instanceof Error && !(err instanceof CliError)) process.stderr.write(`${err.stack}\n`);
    exit(err instanceof CliError ? err.exitCode : EXIT.failed);
  }
}

void main();
