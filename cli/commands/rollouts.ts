// rollouts ls | show | pause | resume | abort: changes rolling out in waves
// (auth, proxy, the rest) and the operator's hand on them (docs/ROLLOUTS.md).
import { Command, Option } from 'commander';
import { query, seg } from '../api';
import { CliError, EXIT } from '../exit-codes';
import { ago, clientOf, examples, formatOf, outputOption, print } from '../kit';
import { formatList, formatValue, keyValues, orDash, renderTable } from '../output';
import { paint, type Style } from '../terminal';

type Counts = Record<'pending' | 'applying' | 'ready' | 'failed' | 'skipped' | 'total', number>;

interface RolloutSummaryView {
  id: string;
  kind: 'change' | 'rollback';
  strategy: string;
  state: string;
  startedBy: string;
  reason: string;
  createdAt: number;
  updatedAt: number;
  note?: string;
  currentWave?: string;
  hosts: Counts;
}

interface RolloutView extends RolloutSummaryView {
  groups: Record<string, Counts & { maxUnavailable: number; failureThreshold: number }>;
  roles: Record<string, Counts>;
  hostStates: Array<{
    instanceId: string;
    role: string;
    group: string;
    state: string;
    fromGeneration: number;
    toGeneration: number;
    message?: string;
    logTail?: string[];
  }>;
  diffs: Array<{ role: string; hosts: number; changes: Array<{ instanceIds: string[]; files: Array<{ path: string; diff: string }> }> }>;
  supersedes?: string;
  supersededBy?: string;
  rollbackOf?: string;
}

const STATE_STYLES: Record<string, Style> = {
  running: 'yellow',
  paused: 'yellow',
  completed: 'green',
  ready: 'green',
  applying: 'yellow',
  pending: 'dim',
  skipped: 'dim',
};
const stateText = (state: string) => paint(STATE_STYLES[state] ?? 'red', state);
const iso = (ms: number) => new Date(ms).toISOString();
const countsText = (c: Counts) =>
  `${c.ready}/${c.total} ready, ${c.applying} applying, ${c.failed} failed, ${c.pending} pending${c.skipped ? `, ${c.skipped} skipped (offline)` : ''}`;

const COLUMNS = {
  ID: (r: RolloutSummaryView) => r.id,
  STATE: (r: RolloutSummaryView) => stateText(r.state),
  KIND: (r: RolloutSummaryView) => (r.strategy === 'all-at-once' ? `${r.kind} (all at once)` : r.kind),
  WAVE: (r: RolloutSummaryView) => orDash(r.currentWave),
  HOSTS: (r: RolloutSummaryView) => `${r.hosts.ready}/${r.hosts.total}${r.hosts.failed ? ` (${r.hosts.failed} failed)` : ''}`,
  REASON: (r: RolloutSummaryView) => r.reason,
  BY: (r: RolloutSummaryView) => r.startedBy,
  STARTED: (r: RolloutSummaryView) => ago(iso(r.createdAt)),
};

function showText(r: RolloutView): string {
  const pairs: Array<[string, string]> = [
    ['id', r.id],
    ['state', stateText(r.state) + (r.note ? ` (${r.note})` : '')],
    ['kind', `${r.kind}, ${r.strategy}`],
    ['reason', r.reason],
    ['started by', `${r.startedBy}, ${ago(iso(r.createdAt))}`],
    ['wave', orDash(r.currentWave)],
    ['hosts', countsText(r.hosts)],
  ];
  if (r.supersedes) pairs.push(['supersedes', r.supersedes]);
  if (r.supersededBy) pairs.push(['superseded by', r.supersededBy]);
  if (r.rollbackOf) pairs.push(['rollback of', r.rollbackOf]);
  let out = keyValues(pairs);
  const groups = Object.entries(r.groups).filter(([, c]) => c.total > 0);
  out += `\n${renderTable(
    ['GROUP', 'HOSTS', 'MAX UNAVAILABLE', 'FAILURE THRESHOLD'],
    groups.map(([g, c]) => [g, countsText(c), String(c.maxUnavailable), String(c.failureThreshold)]),
  )}`;
  out += `\n${renderTable(
    ['INSTANCE', 'ROLE', 'STATE', 'GENERATION', 'MESSAGE'],
    r.hostStates.map((h) => [
      h.instanceId,
      h.role,
      stateText(h.state),
      `${h.fromGeneration} -> ${h.toGeneration}`,
      orDash(h.message?.split('\n')[0]),
    ]),
  )}`;
  for (const h of r.hostStates.filter((x) => x.state === 'failed' && x.logTail?.length))
    out += `\n${paint('bold', `${h.instanceId}: Teleport's last log lines`)}\n${h.logTail!.join('\n')}\n`;
  for (const d of r.diffs)
    for (const c of d.changes)
      for (const f of c.files) out += `\n${paint('bold', `${d.role} (${c.instanceIds.length} hosts): ${f.path}`)}\n${f.diff}\n`;
  return out;
}

function operation(name: 'pause' | 'resume' | 'abort', description: string, example: string): Command {
  const cmd = new Command(name)
    .description(description)
    .argument('<id>', 'the rollout id (rollouts ls)')
    .addOption(outputOption())
    .action(async (id: string, _flags: unknown, c: Command) => {
      let r: RolloutSummaryView;
      try {
        r = await clientOf(c).call<RolloutSummaryView>('POST', `/v1/rollouts/${seg(id)}/${name}`, {});
      } catch (err) {
        if (err instanceof CliError && err.exitCode === EXIT.notFound)
          throw new CliError(`rollout ${id} not found; "teleboot rollouts ls" lists them`, EXIT.notFound);
        throw err;
      }
      print(formatValue(formatOf(c), r, () => `rollout ${r.id} is ${stateText(r.state)}${r.note ? `: ${r.note}` : ''}\n`));
    });
  return examples(cmd, example);
}

export function rolloutsCommand(): Command {
  const rollouts = new Command('rollouts').description(
    'changes rolling out in waves (auth, proxy, the rest): progress, pause, resume, abort',
  );

  const ls = rollouts
    .command('ls')
    .description('list rollouts, newest first')
    .addOption(new Option('--limit <n>', 'how many').default('20'))
    .addOption(outputOption())
    .action(async (flags: { limit: string }, cmd: Command) => {
      const page = await clientOf(cmd).get<{ items: RolloutSummaryView[]; next?: string }>(`/v1/rollouts${query({ limit: flags.limit })}`);
      print(formatList(formatOf(cmd), page, page.items, COLUMNS, 'no rollouts'));
    });
  examples(ls, 'teleboot rollouts ls', 'teleboot rollouts ls --limit 5 -o json');

  const show = rollouts
    .command('show')
    .description("a rollout's progress per group and host (a failed host's message and log lines) and its diffs")
    .argument('<id>', 'the rollout id (rollouts ls)')
    .addOption(outputOption())
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const r = await clientOf(cmd).get<RolloutView>(`/v1/rollouts/${seg(id)}`);
      print(formatValue(formatOf(cmd), r, () => showText(r)));
    });
  examples(
    show,
    'teleboot rollouts show 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c',
    'teleboot rollouts show 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c -o yaml',
  );

  rollouts.addCommand(
    operation(
      'pause',
      'pause a running rollout: no host is released until resumed',
      'teleboot rollouts pause 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c',
    ),
  );
  rollouts.addCommand(
    operation(
      'resume',
      'resume a paused or halted rollout (a halted one tries its failed hosts again)',
      'teleboot rollouts resume 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c',
    ),
  );
  rollouts.addCommand(
    operation(
      'abort',
      'abort a rollout: the hosts it reached roll back to their files before it, as a rollout of its own; the settings or assignments it changed are put back',
      'teleboot rollouts abort 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c',
    ),
  );
  examples(rollouts, 'teleboot rollouts ls', 'teleboot rollouts show <id>', 'teleboot rollouts abort <id>');
  return rollouts;
}
