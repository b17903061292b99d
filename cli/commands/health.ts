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
  /** One line per reason it is not: "2 degraded", "alert: certificate ...". */
  problems: string[];
}

/** The states that make the fleet unhealthy, among those it has instances in. */
export const unhealthyStates = (health: HealthView, strict: boolean): string[] =>
  Object.entries(health.byHealth)
    .filter(([state, count]) => count > 0 && !HEALTHY_STATES.includes(state) && (strict || !PENDING_STATES.includes(state)))
    .map(([state]) => state);

const alertText = (alert: HealthView['alerts'][number]) => (typeof alert === 'string' ? alert : (alert.message ?? JSON.stringify(alert)));

export function judge(health: HealthView, strict: boolean): Verdict {
  const problems = [
    ...unhealthyStates(health, strict).map((state) => `${health.byHealth[state]} ${state}`),
    ...(health.alerts ?? []).map((alert) => `alert: ${alertText(alert)}`),
  ];
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
        const states = unhealthyStates(answer, flags.strict === true);
        const unhealthy: InstanceView[] = [];
        for (const state of states)
          unhealthy.push(...(await client.get<Page<InstanceView>>(`/v1/instances${query({ health: state, limit: 20 })}`)).items);
        const headline = verdict.healthy
          ? `${paint('green', 'healthy')}: ${answer.total} instance(s)`
          : `${paint('red', 'unhealthy')}: ${states.map((s) => `${answer.byHealth[s]} ${s}`).join(', ') || 'alerts'} of ${answer.total} instance(s)`;
        text = `${headline}\n`;
        if (answer.total > 0) text += `\n${countsTable(answer)}`;
        const alerts = (answer.alerts ?? []).map(alertText);
        if (alerts.length) text += `\n${paint('bold', 'ALERTS')}\n${alerts.map((a) => `  ${a}`).join('\n')}\n`;
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
