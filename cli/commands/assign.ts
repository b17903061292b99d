// assign | unassign | preview: what an instance should run, and the files it would get.
import { Command, Option } from 'commander';
import { ROLE_NAMES, SERVICE_ROLES } from '../../contract/model';
import { seg, type InstanceView, type PreviewView } from '../api';
import { CliError, EXIT, usageError } from '../exit-codes';
import { clientOf, collect, commaList, examples, formatOf, keyValueMap, outputOption, print, readObjectFile } from '../kit';
import { formatValue } from '../output';
import { colorsOn, paint } from '../terminal';

interface AssignFlags {
  role?: string;
  roles?: string[];
  label?: string[];
  nodename?: string;
  options?: string;
}

export function assignmentBody(flags: AssignFlags): Record<string, unknown> {
  const body: Record<string, unknown> = flags.options ? readObjectFile(flags.options, '--options') : {};
  if (flags.role && flags.roles) throw usageError('give --role or --roles, not both');
  if (flags.role) {
    body.role = flags.role;
    delete body.roles;
  }
  if (flags.roles) {
    body.roles = flags.roles;
    delete body.role;
  }
  if (body.role === undefined && body.roles === undefined)
    throw usageError(`give --role (${ROLE_NAMES.join(', ')}) or --roles (a comma-separated list of ${SERVICE_ROLES.join(', ')})`);
  const labels = keyValueMap(flags.label, '--label');
  if (Object.keys(labels).length) body.labels = { ...(body.labels ?? {}), ...labels };
  if (flags.nodename) body.nodename = flags.nodename;
  return body;
}

const rolesOption = () => new Option('--roles <list>', 'services, comma-separated (e.g. auth,proxy)').argParser(commaList);

export function assignCommands(): Command[] {
  const assign = new Command('assign')
    .description('assign a role to an instance (also before it first boots); its agent applies it at once')
    .argument('<id>', 'EC2 instance id (or host name outside EC2)')
    .addOption(new Option('--role <role>', 'a role or preset').choices(ROLE_NAMES))
    .addOption(rolesOption())
    .option('--label <key=value>', 'Teleport node label (repeatable)', collect)
    .option('--nodename <name>', "Teleport nodename instead of the instance's hostname")
    .option(
      '--options <file>',
      'JSON or YAML file with role options: kube, apps, databases, discovery, commandLabels, advertiseIp, joinVia',
    )
    .addOption(outputOption())
    .action(async (id: string, flags: AssignFlags, cmd: Command) => {
      const instance = await clientOf(cmd).call<InstanceView>('PUT', `/v1/instances/${seg(id)}/assignment`, assignmentBody(flags));
      print(
        formatValue(
          formatOf(cmd),
          instance,
          () => `${paint('green', 'assigned')} ${instance.instanceId}: ${instance.assignment?.role} (generation ${instance.generation})\n`,
        ),
      );
    });
  examples(
    assign,
    'teleboot assign i-0123456789abcdef0 --role node --label env=prod --label team=db',
    'teleboot assign i-0123456789abcdef0 --roles auth,proxy',
    'teleboot assign i-0123456789abcdef0 --role kube --options kube.yaml   # kube.yaml: {kube: {resources: [{labels: {"*": "*"}}]}}',
  );

  const unassign = new Command('unassign')
    .description("remove an instance's assignment; its agent stops Teleport")
    .argument('<id>', 'EC2 instance id (or host name outside EC2)')
    .addOption(outputOption())
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const instance = await clientOf(cmd).call<InstanceView>('DELETE', `/v1/instances/${seg(id)}/assignment`);
      print(
        formatValue(
          formatOf(cmd),
          instance,
          () => `${paint('yellow', 'unassigned')} ${instance.instanceId} (generation ${instance.generation})\n`,
        ),
      );
    });
  examples(unassign, 'teleboot unassign i-0123456789abcdef0');

  const preview = new Command('preview')
    .description('print the teleport.yaml an instance would get (secrets masked); -o json|yaml for every file and fetch')
    .argument('<id>', 'EC2 instance id (or host name outside EC2)')
    .addOption(outputOption())
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      let answer: PreviewView;
      try {
        answer = await client.get<PreviewView>(`/v1/instances/${seg(id)}/config`);
      } catch (err) {
        // 409: the instance exists but has nothing to run.
        if (err instanceof CliError && /has no assignment/.test(err.message))
          throw new CliError(
            `instance ${id} has no assignment, so nothing would be written; assign it first: teleboot assign ${id} --role node`,
            EXIT.failed,
          );
        throw err;
      }
      print(formatValue(formatOf(cmd), answer, () => answer.teleportYaml ?? ''));
      for (const p of answer.problems ?? [])
        process.stderr.write(
          `${paint('red', 'problem', colorsOn(process.stderr))}: ${p.path ? `${p.path}: ` : ''}${p.message}${p.field ? ` (change ${p.field})` : ''}\n`,
        );
      if (!answer.valid) {
        process.stderr.write('the agent would refuse this config and write nothing\n');
        process.exitCode = EXIT.unhealthy;
      }
    });
  examples(preview, 'teleboot preview i-0123456789abcdef0 > teleport.yaml', 'teleboot preview i-0123456789abcdef0 -o json | jq .fetches');
  return [assign, unassign, preview];
}
