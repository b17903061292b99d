// Temporary files a killed write left behind (writeFileAtomic writes
// `.NAME.<12 hex>.tmp` beside NAME, then renames it): removed at start.
// One of them may be a copy of a secret (secrets/.join-token.*.tmp).
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isTemporaryOf } from '../contract/files';
import { describeError, type Logger } from '../contract/log';
import type { AgentConfig } from './config';
import { installLayoutOf } from './teleport-install';

/**
 * The directories the agent writes into, each with the names it writes
 * there (undefined: every name, for directories the agent owns). In shared
 * directories such as /etc only the temporaries of the agent's own files go.
 */
function writtenPlaces(config: AgentConfig): Map<string, Set<string> | undefined> {
  const places = new Map<string, Set<string> | undefined>([
    [config.paths.stateDir, undefined],
    [config.paths.secretsDir, undefined],
  ]);
  const own = (path: string) => {
    const dir = dirname(path);
    if (places.has(dir) && places.get(dir) === undefined) return;
    places.set(dir, new Set([...(places.get(dir) ?? []), basename(path)]));
  };
  own(config.paths.teleportConfig);
  own(config.paths.environmentFile);
  own(join(config.paths.unitDir, config.serviceManager.unitName));
  // The links a Teleport release install switches (agent/teleport-install.ts).
  const { installDir, links } = installLayoutOf(config);
  for (const link of [...Object.values(links), join(installDir, 'current'), join(installDir, 'previous')]) own(link);
  return places;
}

/** Removes the temporaries; returns their paths. A directory that cannot be read is skipped (it may not exist yet). */
export async function removeStaleTemporaries(config: AgentConfig, log: Logger): Promise<string[]> {
  const removed: string[] = [];
  for (const [dir, names] of writtenPlaces(config)) {
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!isTemporaryOf(entry, names)) continue;
      const path = join(dir, entry);
      try {
        await fs.rm(path, { force: true });
        removed.push(path);
      } catch (err) {
        log.warn({ path, err: describeError(err) }, 'cannot remove a temporary file left by an interrupted write');
      }
    }
  }
  if (removed.length > 0) log.info({ removed }, 'removed temporary files left by interrupted writes');
  return removed;
}
