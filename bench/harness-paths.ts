// Workaround, to drop once test/support/harness.ts finds the repository root
// itself: it computes REPO as resolve(__dirname, '../..'), which is the
// repository only when run from the TypeScript sources (tap). Compiled into
// dist/test/support/ it points at dist/, so CONTROL_BIN, AGENT_BIN and
// TELEPORT_STANDIN name files that do not exist. The compiled module reads its
// own exports at call time, so correcting them here is enough.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function packageRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export function fixHarnessPaths(): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const harness = require('../test/support/harness') as Record<string, unknown>;
  const repo = packageRoot(__dirname);
  if (harness.REPO === repo) return;
  Object.assign(harness, {
    REPO: repo,
    CONTROL_BIN: join(repo, 'dist/control/main.js'),
    AGENT_BIN: join(repo, 'dist/agent/main.js'),
    TELEPORT_STANDIN: join(repo, 'test/bin/teleport'),
  });
}
