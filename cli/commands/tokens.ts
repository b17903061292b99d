// tokens api|join ls | create | rm: REST API tokens and enrollment join tokens (admin scope).
// A secret is shown once, in the answer to its creation; lists never hold one.
import { Command, Option } from 'commander';
import { ROLE_NAMES } from '../../contract/model';
import { seg, type ApiTokenView, type JoinTokenView } from '../api';
import { usageError } from '../exit-codes';
import { ago, clientOf, commaList, examples, formatOf, outputOption, print } from '../kit';
import { formatList, formatValue, keyValues, orDash, type Columns } from '../output';
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

/** ls, create (given: its flags differ) and rm of a kind of token; ls and rm are the same for both kinds. */
function tokenCommands<T extends { name: string; id: string }>(
  group: Command,
  kind: { noun: string; path: string; columns: Columns<T>; key: string; lsExample: string; rmExample: string },
  addCreate: () => void,
): void {
  const ls = group
    .command('ls')
    .description(`list ${kind.noun}s (never their secrets)`)
    .addOption(outputOption())
    .action(async (_flags: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).get<{ items: T[] }>(kind.path);
      print(formatList(formatOf(cmd), items, items, kind.columns, `no ${kind.noun}s`));
    });
  examples(ls, kind.lsExample);
  addCreate();
  const rm = group
    .command('rm')
    .description(`revoke ${kind.noun.startsWith('A') ? 'an' : 'a'} ${kind.noun}`)
    .argument(`<${kind.key}>`, kind.key === 'id' ? 'its id (ls shows it)' : 'its id or name')
    .action(async (key: string, _flags: unknown, cmd: Command) => {
      const token = await clientOf(cmd).call<T>('DELETE', `${kind.path}/${seg(key)}`);
      print(`${paint('yellow', 'revoked')} ${kind.noun} ${token.name} (${token.id})\n`);
    });
  examples(rm, kind.rmExample);
}

function apiTokens(): Command {
  const api = new Command('api').description('API tokens: bearer tokens for the REST API and this CLI');
  tokenCommands<ApiTokenView>(
    api,
    {
      noun: 'API token',
      path: '/v1/api-tokens',
      columns: API_COLUMNS,
      key: 'id-or-name',
      lsExample: 'teleboot tokens api ls',
      rmExample: 'teleboot tokens api rm grafana',
    },
    () => {
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
    },
  );
  examples(api, 'teleboot tokens api ls', 'teleboot tokens api create --name grafana --scope monitor');
  return api;
}

function joinTokens(): Command {
  const join = new Command('join').description('join tokens: enrollment for hosts outside EC2 (or development)');
  tokenCommands<JoinTokenView>(
    join,
    {
      noun: 'join token',
      path: '/v1/join-tokens',
      columns: JOIN_COLUMNS,
      key: 'id',
      lsExample: 'teleboot tokens join ls',
      rmExample: 'teleboot tokens join rm 3f1c2a9e-5b7d-4c1e-9a0b-2d4e6f8a1b3c',
    },
    () => {
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
    },
  );
  examples(join, 'teleboot tokens join ls', 'teleboot tokens join create --name lab --ttl 1h --roles node');
  return join;
}

export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('API tokens and join tokens (needs an admin token)');
  tokens.addCommand(apiTokens());
  tokens.addCommand(joinTokens());
  return examples(tokens, 'teleboot tokens api create --name ci --scope operator', 'teleboot tokens join ls');
}
