// Small helpers shared by both command-line programs.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line; usage: the help of the command it concerns (default: the program's). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

export function parseFlags<T>(args: string[], options: NonNullable<ParseArgsConfig['options']>, usage?: string): T {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true })
      .values as T;
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
}

/** Runs main; prints errors without a stack trace (operators read them) and exits non-zero. */
export function runMain(main: () => Promise<number | void>, usage: string): void {
  // The AWS SDK's notice that its releases after January 2027 need Node.js 22
  // speaks to whoever builds teleboot (the packages carry their own Node.js),
  // not to an operator reading the journal, who can do nothing about it.
  // Setting the variable to anything but "true" brings it back.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  main().then(
    // Exit explicitly: open gRPC channels or a supervised child must not keep
    // a finished command alive.
    (code) => process.exit(typeof code === 'number' ? code : 0),
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      if (err instanceof UsageError) process.stderr.write(`\n${err.usage ?? usage}`);
      if (process.env.TELEBOOT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exit(err instanceof UsageError ? 64 : 1);
    },
  );
}

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/** Flags and operands of a command that takes operands ("tokens revoke NAME", "import ami FILE"), with -h/--help; a bad flag is a UsageError. */
export function parseCommandLine<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, usage?: string) {
  try {
    return parseArgs({ args, options: { ...options, ...HELP }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
}
