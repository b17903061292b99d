// tokens api|join ls | create | rm: REST API tokens and enrollment join tokens (admin scope).
// A secret is shown once, in the answer to its creation; lists never hold one.
import { Command, Option } from 'commander';
import { ROLE_NAMES } from '../../contract/model';
import { seg, type ApiTokenView, type JoinTokenView } from '../api';
import { usageError } from '../exit-codes';
import { ago, clientOf, commaList, examples, formatOf, outputOption, print } from '../kit';
import { formatList, formatValue, keyValues, orDash } from '../output';
import { paint } from '../terminal';

const API_SCOPES = ['monitor', 'operator', 'admin'];

const state = (t: { revokedAt: string | null; usable?: boolean }) =>
  t.revokedAt ? paint('dim', 'revoked') : t.usable === false ? paint('yellow', 'unusable') : paint('green', 'active');

const API_COLUMNS = {
  NAME: (t: ApiTokenView) => t.name,
  SCOPE: (t: ApiTokenView) => t.scope,
  STATE: state,
  'LAST USED': (t: ApiTokenView) => ago(t.lastUsedAt),
  CREATED: (t: ApiTokenView) => `${t.createdAt} by ${t.createdBy}`,
  ID: (t: ApiTokenView) => t.id,
};

const JOIN_COLUMNS = {
  NAME: (t: JoinTokenView) => t.name,
  ROLES: (t: JoinTokenView) => (t.roles ? t.roles.join(',') : 'any'),
  STATE: state,
  USES: (t: JoinTokenView) => `${t.uses}/${t.maxUses ?? '∞'}`,
  EXPIRES: (t: JoinTokenView) => t.expiresAt,
  'LAST USED': (t: JoinTokenView) => ago(t.lastUsedAt),
  ID: (t: JoinTokenView) => t.id,
};

/** The answer to a creation: the secret once, marked as such, and what it is. */
function created(kind: string, token: { name: string; id: string; token?: string }, facts: Array<[string, string]>): string {
  return (
    keyValues([['Name', token.name], ['ID', token.id], ...facts, ['Token', token.token ?? '(none returned)']]) +
    paint('yellow', `\nThe ${kind} is shown this once and stored only as a hash: keep it now.\n`)
  );
}

function apiTokens(): Command {
  const api = new Command('api').description('API tokens: bearer tokens for the REST API and this CLI');
  const ls = api
    .command('ls')
    .description('list API tokens (never their secrets)')
    .addOption(outputOption())
    .action(async (_flags: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).get<{ items: ApiTokenView[] }>('/v1/api-tokens');
      print(formatList(formatOf(cmd), items, items, API_COLUMNS, 'no API tokens'));
    });
  examples(ls, 'teleboot tokens api ls');

  const create = api
    .command('create')
    .description('create an API token; its secret is printed once')
    .requiredOption('--name <name>', 'who or what uses it; names it in the audit log')
    .addOption(
      new Option('--scope <scope>', 'monitor: read-only; operator: assignments and rules; admin: everything')
        .choices(API_SCOPES)
        .makeOptionMandatory(),
    )
    .addOption(outputOption())
    .action(async (flags: { name: string; scope: string }, cmd: Command) => {
      const token = await clientOf(cmd).call<ApiTokenView>('POST', '/v1/api-tokens', { name: flags.name, scope: flags.scope });
      print(formatValue(formatOf(cmd), token, () => created('API token', token, [['Scope', token.scope]])));
    });
  examples(
    create,
    'teleboot tokens api create --name grafana --scope monitor',
    'teleboot tokens api create --name ci --scope operator -o json | jq -r .token',
  );

  const rm = api
    .command('rm')
    .description('revoke an API token')
    .argument('<id-or-name>', 'its id or name')
    .action(async (idOrName: string, _flags: unknown, cmd: Command) => {
      const token = await clientOf(cmd).call<ApiTokenView>('DELETE', `/v1/api-tokens/${seg(idOrName)}`);
      print(`${paint('yellow', 'revoked')} API token ${token.name} (${token.id})\n`);
    });
  examples(rm, 'teleboot tokens api rm grafana');
  examples(api, 'teleboot tokens api ls', 'teleboot tokens api create --name grafana --scope monitor');
  return api;
}

function joinTokens(): Command {
  const join = new Command('join').description('join tokens: enrollment for hosts outside EC2 (or development)');
  const ls = join
    .command('ls')
    .description('list join tokens (never their secrets)')
    .addOption(outputOption())
    .action(async (_flags: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).get<{ items: JoinTokenView[] }>('/v1/join-tokens');
      print(formatList(formatOf(cmd), items, items, JOIN_COLUMNS, 'no join tokens'));
    });
  examples(ls, 'teleboot tokens join ls');

  const create = join
    .command('create')
    .description('create a join token; its secret is printed once')
    .requiredOption('--name <name>', 'what it is for, e.g. lab')
    .requiredOption('--ttl <duration>', 'how long it can be used, e.g. 1h (at most 30 days)')
    .option('--uses <n>', 'how many enrollments it allows (any number until it expires when absent)', (v) => {
      if (!/^[1-9]\d*$/.test(v)) throw usageError(`--uses: "${v}" is not a positive whole number`);
      return Number(v);
    })
    .option(
      '--roles <list>',
      `roles an instance enrolled with it may get, comma-separated (${ROLE_NAMES.join(', ')}); any when absent`,
      commaList,
    )
    .addOption(outputOption())
    .action(async (flags: { name: string; ttl: string; uses?: number; roles?: string[] }, cmd: Command) => {
      const body = {
        name: flags.name,
        ttl: flags.ttl,
        ...(flags.uses ? { uses: flags.uses } : {}),
        ...(flags.roles ? { roles: flags.roles } : {}),
      };
      const token = await clientOf(cmd).call<JoinTokenView>('POST', '/v1/join-tokens', body);
      print(
        formatValue(formatOf(cmd), token, () =>
          created('join token', token, [
            ['Roles', token.roles ? token.roles.join(', ') : 'any'],
            ['Expires', token.expiresAt],
            ['Uses', orDash(token.maxUses)],
          ]),
        ),
      );
    });
  examples(create, 'teleboot tokens join create --name lab --ttl 1h --uses 5 --roles node');

  const rm = join
    .command('rm')
    .description('revoke a join token')
    .argument('<id>', 'its id (tokens join ls)')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const token = await clientOf(cmd).call<JoinTokenView>('DELETE', `/v1/join-tokens/${seg(id)}`);
      print(`${paint('yellow', 'revoked')} join token ${token.name} (${token.id})\n`);
    });
  examples(rm, 'teleboot tokens join rm 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c');
  examples(join, 'teleboot tokens join ls', 'teleboot tokens join create --name lab --ttl 1h --roles node');
  return join;
}

export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('API tokens and join tokens (needs an admin token)');
  tokens.addCommand(apiTokens());
  tokens.addCommand(joinTokens());
  return examples(tokens, 'teleboot tokens api create --name ci --scope operator', 'teleboot tokens join ls');
}
