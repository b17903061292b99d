// instances ls | show: the fleet as the control server sees it.
import { Command, Option } from 'commander';
import { HEALTH_STATES, SERVICE_ROLES } from '../../contract/model';
import { seg, type InstanceView } from '../api';
import { usageError } from '../exit-codes';
import { fetchAll } from '../paging';
import { ago, clientOf, examples, formatOf, outputOption, print } from '../kit';
import { formatList, formatValue, healthText, keyValues, labelsText, orDash } from '../output';

const PAGE_SIZE = 500;

function pageSize(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 1000) throw usageError(`--page-size: "${value}" is not a whole number from 1 to 1000`);
  return n;
}

const generationText = (i: InstanceView) => (i.assignment ? `${i.appliedGeneration}/${i.generation}` : '-');
/** The health state, and "drifted" when files were changed by hand on the host. */
const healthOf = (i: InstanceView) => `${healthText(i.health)}${i.drifted ? ', drifted' : ''}`;
const indented = (text: string) =>
  text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

export const INSTANCE_COLUMNS = {
  INSTANCE: (i: InstanceView) => i.instanceId,
  ROLE: (i: InstanceView) => i.assignment?.role ?? '-',
  HEALTH: healthOf,
  APPLIED: generationText,
  TELEPORT: (i: InstanceView) => orDash(i.status?.teleportVersion),
  'LAST SEEN': (i: InstanceView) => ago(i.lastSeenAt),
  ADDRESS: (i: InstanceView) => orDash(i.identity?.privateIp),
  LABELS: (i: InstanceView) => orDash(labelsText(i.assignment?.labels)),
  MESSAGE: (i: InstanceView) => orDash(i.status?.message),
};

export function describeInstance(i: InstanceView): string {
  const logTail = i.status?.logTail ?? [];
  const sections = [
    ...(logTail.length ? [`Teleport log (last ${logTail.length} lines, secrets masked):\n${indented(logTail.join('\n'))}`] : []),
    ...(i.status?.drift ?? []).map((d) => `Changed by hand: ${d.path}\n${indented(d.diff)}`),
  ];
  return [describeFields(i).trimEnd(), ...sections].join('\n\n') + '\n';
}

function describeFields(i: InstanceView): string {
  const a = i.assignment;
  const options = a ? Object.keys(a).filter((k) => !['role', 'roles', 'labels', 'nodename'].includes(k)) : [];
  return keyValues([
    ['Instance', i.instanceId],
    ['Health', healthOf(i)],
    ['Role', a ? `${a.role} (${a.roles.join(', ')})` : 'none'],
    ['Labels', orDash(labelsText(a?.labels))],
    ...(a?.nodename ? ([['Nodename', a.nodename]] as Array<[string, string]>) : []),
    ...(options.length ? ([['Options', options.join(', ')]] as Array<[string, string]>) : []),
    ['Generation', `${i.generation} (applied ${i.appliedGeneration})`],
    ['State', i.status ? `${orDash(i.status.state)}${i.status.message ? `: ${i.status.message}` : ''}` : '-'],
    ['Agent', orDash(i.status?.agentVersion)],
    ['Teleport', orDash(i.status?.teleportVersion)],
    ['Address', orDash(i.identity?.privateIp)],
    ['Hostname', orDash(i.identity?.hostname)],
    ['Zone', orDash(i.identity?.availabilityZone)],
    ['Type', orDash(i.identity?.instanceType)],
    ['Enrolled', i.enrolledAt ? `${i.enrolledAt} via ${orDash(i.enrolledVia)}` : 'not yet'],
    ['Last seen', i.lastSeenAt ? `${i.lastSeenAt} (${ago(i.lastSeenAt)})` : '-'],
  ]);
}

export function instancesCommand(): Command {
  const instances = new Command('instances').description('list and inspect instances');

  const ls = instances
    .command('ls')
    .description('list instances, every page (filter by service role and health)')
    .addOption(new Option('--role <role>', 'only instances that run this service').choices([...SERVICE_ROLES]))
    .addOption(new Option('--health <state>', 'only instances in this health state').choices([...HEALTH_STATES]))
    .option('--page-size <n>', 'instances per request (1-1000)', pageSize, PAGE_SIZE)
    .addOption(outputOption())
    .action(async (opts: { role?: string; health?: string; pageSize: number }, cmd: Command) => {
      const items = await fetchAll<InstanceView, string>(
        clientOf(cmd),
        '/v1/instances',
        { role: opts.role, health: opts.health, limit: opts.pageSize },
        'instances',
      );
      print(formatList(formatOf(cmd), items, items, INSTANCE_COLUMNS, 'no instances'));
    });
  examples(ls, 'teleboot instances ls --role proxy --health degraded', "teleboot instances ls -o json | jq -r '.[].instanceId'");

  const show = instances
    .command('show')
    .description('show one instance: identity, assignment, generations, last status')
    .argument('<id>', 'EC2 instance id (or host name outside EC2)')
    .addOption(outputOption())
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const instance = await clientOf(cmd).get<InstanceView>(`/v1/instances/${seg(id)}`);
      print(formatValue(formatOf(cmd), instance, () => describeInstance(instance)));
    });
  examples(show, 'teleboot instances show i-0123456789abcdef0', 'teleboot instances show i-0123456789abcdef0 -o yaml');
  examples(instances, 'teleboot instances ls', 'teleboot instances show i-0123456789abcdef0');
  return instances;
}
