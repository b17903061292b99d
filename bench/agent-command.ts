// Which agent the boot bench runs (BENCH_AGENT):
//   packaged  the single executable the .deb/.rpm installs (default: what a host runs)
//   runtime   the same bundle run by a Node.js binary (the private-runtime alternative)
//   source    the tsc build, dist/agent/main.js (what the tests run)
// The first two are built into dist/bench-agent once per bench run, as `npm run package` builds them.
import { join } from 'node:path';
import { buildAgentExecutable } from '../packaging/build/main';
import { withTrainingBoot } from '../packaging/build/training';
import { packageVersion } from '../packaging/build/bundle';
import { AGENT_BIN, REPO } from '../test/support/harness';

export type AgentKind = 'packaged' | 'runtime' | 'source';

export function agentKind(value = process.env.BENCH_AGENT ?? 'packaged'): AgentKind {
  if (value === 'packaged' || value === 'runtime' || value === 'source') return value;
  throw new Error(`BENCH_AGENT=${value}: use packaged, runtime or source`);
}

/** argv that starts the agent of that kind (before its own arguments). */
export async function agentCommand(kind: AgentKind): Promise<string[]> {
  if (kind === 'source') return [process.execPath, AGENT_BIN];
  // Built as `npm run package` builds it: its code cache trained by a whole boot.
  const built = await withTrainingBoot((training) => buildAgentExecutable(join(REPO, 'dist', 'bench-agent'), packageVersion(), training));
  return kind === 'packaged' ? [built.executable] : [process.execPath, built.bundle];
}
