// The version both executables report, from package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'teleboot' && pkg.version) return pkg.version;
    }
  }
  return '0.0.0-unknown';
}

// packaging/build compiles the version into the one-file programs, which have no package.json beside them.
declare const TELEBOOT_BUNDLED_VERSION: string | undefined;

export const VERSION = typeof TELEBOOT_BUNDLED_VERSION === 'string' ? TELEBOOT_BUNDLED_VERSION : findVersion();
