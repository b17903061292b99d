// rules ls | add | rm | apply: EC2 tags -> role, first match wins, for instances that enroll unassigned
// (apply: to the instances already enrolled, as one rollout).
import { Command, Option } from 'commander';
import { ROLE_NAMES } from '../../contract/model';
import { seg, type RuleView } from '../api';
import { CliError, EXIT, usageError } from '../exit-codes';
import { clientOf, collect, commaList, examples, formatOf, keyValueMap, outputOption, print } from '../kit';
import { formatList, formatValue, labelsText, orDash, renderTable } from '../output';
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
  rules.addCommand(applyCommand());
  examples(
    rules,
    'teleboot rules ls',
    'teleboot rules add edges --selector TeleportRole=proxy --role proxy',
    'teleboot rules apply edges --dry-run',
  );
  return rules;
}

interface RuleApplyView {
  dryRun: boolean;
  rule: { id: string; name: string; role: string };
  changes: Array<{ instanceId: string; hostname: string; from: string | null; to: string }>;
  skipped: Array<{ instanceId: string; hostname: string; reason: string; detail: string }>;
  unchanged: number;
  rollout?: { id: string; state: string };
}

function applyText(r: RuleApplyView): string {
  const verb = r.dryRun ? 'would change' : 'changes';
  let out = `rule ${r.rule.name} (${r.rule.role}) ${verb} ${r.changes.length} hosts; ${r.skipped.length} left alone, ${r.unchanged} unchanged\n`;
  if (r.changes.length > 0)
    out += `\n${renderTable(
      ['INSTANCE', 'HOSTNAME', 'ROLE'],
      r.changes.map((c) => [c.instanceId, c.hostname, `${paint('red', `- ${c.from ?? '(none)'}`)} ${paint('green', `+ ${c.to}`)}`]),
    )}`;
  if (r.skipped.length > 0)
    out += `\n${paint('bold', 'left alone:')}\n${renderTable(
      ['INSTANCE', 'HOSTNAME', 'REASON', 'DETAIL'],
      r.skipped.map((x) => [x.instanceId, x.hostname, x.reason, x.detail]),
    )}`;
  if (r.rollout) out += `\nrollout ${r.rollout.id} is ${r.rollout.state}: "teleboot rollouts show ${r.rollout.id}" follows it\n`;
  else if (r.dryRun && r.changes.length > 0) out += `\nrun it again without --dry-run to roll it out (auth first, at the cluster's pace)\n`;
  return out;
}

function applyCommand(): Command {
  const apply = new Command('apply')
    .description(
      'apply a rule to the enrolled instances it matches, as one rollout (auth first, at the pace); hosts whose assignment an operator set are left alone unless --override-explicit',
    )
    .argument('<id-or-name>', 'the rule id (rules ls), or its name when unique')
    .option('--dry-run', 'only list the hosts and their role change; nothing is saved')
    .option('--override-explicit', 'also change hosts whose assignment an operator set')
    .option('--all-at-once', 'release every host at once, without pace or halt (the audited emergency escape)')
    .addOption(outputOption())
    .action(async (idOrName: string, flags: { dryRun?: boolean; overrideExplicit?: boolean; allAtOnce?: boolean }, cmd: Command) => {
      const client = clientOf(cmd);
      const id = await ruleId(client, idOrName);
      const body = {
        dryRun: !!flags.dryRun,
        overrideExplicit: !!flags.overrideExplicit,
        ...(flags.allAtOnce ? { rollout: { strategy: 'all-at-once' } } : {}),
      };
      const r = await client.call<RuleApplyView>('POST', `/v1/rules/${seg(id)}/apply`, body);
      print(formatValue(formatOf(cmd), r, () => applyText(r)));
    });
  return examples(
    apply,
    'teleboot rules apply edges --dry-run',
    'teleboot rules apply edges',
    'teleboot rules apply edges --override-explicit -o json',
  );
}
