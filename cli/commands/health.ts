// health: the fleet's state for people and for monitoring scripts (exit 2 when unhealthy).
import { Command } from 'commander';
import { query, type HealthView, type InstanceView, type Page } from '../api';
import { EXIT } from '../exit-codes';
import { ago, clientOf, examples, formatOf, outputOption, print } from '../kit';
import { formatValue, healthText, orDash, renderTable } from '../output';
import { paint } from '../terminal';

/** Healthy: running what it should (ready), or enrolled with nothing to run (unassigned). */
export const HEALTHY_STATES = ['ready', 'unassigned'];
/** On their way: assigned but not enrolled yet (expected), or applying a change (converging). Unhealthy only with --strict. */
export const PENDING_STATES = ['expected', 'converging'];
// Any other state (degraded, offline, orphaned, or one this CLI does not know yet) is unhealthy.

export interface Verdict {
  healthy: boolean;
  /** One line per reason it is not. */
  problems: string[];
}

export function judge(health: HealthView, strict: boolean): Verdict {
  const problems: string[] = [];
  for (const [state, count] of Object.entries(health.byHealth)) {
    if (count === 0 || HEALTHY_STATES.includes(state)) continue;
    if (PENDING_STATES.includes(state) && !strict) continue;
    problems.push(`${count} ${state}`);
  }
  for (const alert of health.alerts ?? [])
    problems.push(`alert: ${typeof alert === 'string' ? alert : (alert.message ?? JSON.stringify(alert))}`);
  return { healthy: problems.length === 0, problems };
}

function countsTable(health: HealthView): string {
  const states = Object.keys(health.byHealth);
  const roles = Object.keys(health.byRole).sort();
  return renderTable(
    ['ROLE', ...states.map((s) => s.toUpperCase()), 'TOTAL'],
    [
      ...roles.map((role) => {
        const counts = health.byRole[role];
        return [role, ...states.map((s) => String(counts[s] ?? 0)), String(Object.values(counts).reduce((a, b) => a + b, 0))];
      }),
      [paint('bold', 'all'), ...states.map((s) => String(health.byHealth[s])), String(health.total)],
    ],
  );
}

export function healthCommand(): Command {
  const health = new Command('health')
    .description(
      `fleet health: counts by role and state, alerts, the unhealthy instances; exits ${EXIT.unhealthy} when an instance is degraded, offline or orphaned, or on an alert (--strict: also ${PENDING_STATES.join(' or ')})`,
    )
    .option('--strict', `count ${PENDING_STATES.join(' and ')} instances as unhealthy too (a rollout that must have landed)`)
    .addOption(outputOption())
    .action(async (flags: { strict?: boolean }, cmd: Command) => {
      const client = clientOf(cmd);
      const answer = await client.get<HealthView>('/v1/health');
      const verdict = judge(answer, flags.strict === true);
      const format = formatOf(cmd);
      let text = '';
      if (format === 'table') {
        // The instances behind each problem, a page of each state.
        const states = Object.keys(answer.byHealth).filter((s) => verdict.problems.some((p) => p.endsWith(` ${s}`)));
        const unhealthy: InstanceView[] = [];
        for (const state of states)
          unhealthy.push(...(await client.get<Page<InstanceView>>(`/v1/instances${query({ health: state, limit: 20 })}`)).items);
        const headline = verdict.healthy
          ? `${paint('green', 'healthy')}: ${answer.total} instance(s)`
          : `${paint('red', 'unhealthy')}: ${verdict.problems.filter((p) => !p.startsWith('alert: ')).join(', ') || 'alerts'} of ${answer.total} instance(s)`;
        text = `${headline}\n`;
        if (answer.total > 0) text += `\n${countsTable(answer)}`;
        const alerts = verdict.problems.filter((p) => p.startsWith('alert: '));
        if (alerts.length) text += `\n${paint('bold', 'ALERTS')}\n${alerts.map((a) => `  ${a.slice('alert: '.length)}`).join('\n')}\n`;
        if (unhealthy.length)
          text += `\n${renderTable(
            ['INSTANCE', 'ROLE', 'HEALTH', 'LAST SEEN', 'MESSAGE'],
            unhealthy.map((i) => [
              i.instanceId,
              i.assignment?.role ?? '-',
              healthText(i.health),
              ago(i.lastSeenAt),
              orDash(i.status?.message),
            ]),
          )}`;
      }
      print(formatValue(format, { ...answer, ...verdict }, () => text));
      if (!verdict.healthy) process.exitCode = EXIT.unhealthy;
    });
  examples(
    health,
    'teleboot health',
    'teleboot health --strict -o json   # after a rollout: every assigned instance ready',
    'teleboot health > /dev/null || page-oncall "teleport fleet unhealthy"',
  );
  return health;
}
