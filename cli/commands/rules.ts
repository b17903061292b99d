// rules ls | add | rm: EC2 tags -> role, first match wins, for instances that enroll unassigned.
import { Command, Option } from 'commander';
import { ROLE_NAMES } from '../../contract/model';
import { seg, type RuleView } from '../api';
import { CliError, EXIT, usageError } from '../exit-codes';
import { clientOf, collect, commaList, examples, formatOf, keyValueMap, outputOption, print } from '../kit';
import { formatList, formatValue, labelsText, orDash } from '../output';
import { paint } from '../terminal';
import type { RestClient } from '../client';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const RULE_COLUMNS = {
  '#': (r: RuleView & { position: number }) => String(r.position),
  NAME: (r: RuleView) => r.name,
  SELECTOR: (r: RuleView) => labelsText(r.selector),
  ROLE: (r: RuleView) => r.role,
  LABELS: (r: RuleView) => orDash(labelsText(r.labels)),
  ID: (r: RuleView) => r.id,
};

async function listRules(client: RestClient): Promise<RuleView[]> {
  return (await client.get<{ items: RuleView[] }>('/v1/rules')).items;
}

/** A rule by id, or by name when that names exactly one. */
async function ruleId(client: RestClient, idOrName: string): Promise<string> {
  if (UUID.test(idOrName)) return idOrName;
  const named = (await listRules(client)).filter((r) => r.name === idOrName);
  if (named.length === 1) return named[0].id;
  if (named.length === 0)
    throw new CliError(`no rule is named "${idOrName}"; "teleboot rules ls" lists them with their ids`, EXIT.notFound);
  throw usageError(`${named.length} rules are named "${idOrName}"; give the id of one (${named.map((r) => r.id).join(', ')})`);
}

export function rulesCommand(): Command {
  const rules = new Command('rules').description('assignment rules: EC2 tags -> role, in evaluation order (first match wins)');

  const ls = rules
    .command('ls')
    .description('list rules in evaluation order')
    .addOption(outputOption())
    .action(async (_flags: unknown, cmd: Command) => {
      const items = await listRules(clientOf(cmd));
      print(
        formatList(
          formatOf(cmd),
          items,
          items.map((r, position) => ({ ...r, position })),
          RULE_COLUMNS,
          'no rules',
        ),
      );
    });
  examples(ls, 'teleboot rules ls', 'teleboot rules ls -o yaml');

  const add = rules
    .command('add')
    .description('add a rule (at the end, or at --position)')
    .argument('<name>', 'what the rule is for, e.g. edges')
    .requiredOption('--selector <tag=value>', 'EC2 tag that must match; "*" matches any value (repeatable; all must match)', collect)
    .addOption(new Option('--role <role>', 'a role or preset').choices(ROLE_NAMES))
    .addOption(new Option('--roles <list>', 'services, comma-separated').argParser(commaList))
    .option('--label <key=value>', 'Teleport node label (repeatable)', collect)
    .option('--position <n>', '0-based place in the list; the end when absent', (v) => {
      if (!/^\d+$/.test(v)) throw usageError(`--position: "${v}" is not a number (0 is the first place)`);
      return Number(v);
    })
    .addOption(outputOption())
    .action(
      async (
        name: string,
        flags: { selector: string[]; role?: string; roles?: string[]; label?: string[]; position?: number },
        cmd: Command,
      ) => {
        if (!flags.role === !flags.roles) throw usageError('give --role or --roles (one of them)');
        const body = {
          name,
          selector: keyValueMap(flags.selector, '--selector'),
          ...(flags.role ? { role: flags.role } : { roles: flags.roles }),
          ...(flags.label ? { labels: keyValueMap(flags.label, '--label') } : {}),
          ...(flags.position !== undefined ? { position: flags.position } : {}),
        };
        const rule = await clientOf(cmd).call<RuleView>('POST', '/v1/rules', body);
        print(
          formatValue(
            formatOf(cmd),
            rule,
            () => `${paint('green', 'added')} rule ${rule.name} (${rule.id}): ${labelsText(rule.selector)} -> ${rule.role}\n`,
          ),
        );
      },
    );
  examples(
    add,
    'teleboot rules add edges --selector TeleportRole=proxy --role proxy',
    'teleboot rules add nodes --selector TeleportRole=node --role node --label env=prod --position 0',
  );

  const rm = rules
    .command('rm')
    .description('delete a rule')
    .argument('<id-or-name>', 'the rule id (rules ls), or its name when unique')
    .action(async (idOrName: string, _flags: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      const id = await ruleId(client, idOrName);
      try {
        await client.call('DELETE', `/v1/rules/${seg(id)}`);
      } catch (err) {
        if (err instanceof CliError && err.exitCode === EXIT.notFound)
          throw new CliError(`rule ${idOrName} not found; "teleboot rules ls" lists them`, EXIT.notFound);
        throw err;
      }
      print(`${paint('yellow', 'deleted')} rule ${idOrName}\n`);
    });
  examples(rm, 'teleboot rules rm edges', 'teleboot rules rm 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c');
  examples(rules, 'teleboot rules ls', 'teleboot rules add edges --selector TeleportRole=proxy --role proxy');
  return rules;
}
