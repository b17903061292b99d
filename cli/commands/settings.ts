// settings get | set: the cluster-wide settings (PATCH semantics: only what is given changes).
import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { CliError, EXIT, usageError } from '../exit-codes';
import { clientOf, examples, formatOf, outputOption, print, readObjectFile } from '../kit';
import { formatValue, keyValues } from '../output';
import { paint } from '../terminal';

type Settings = Record<string, unknown>;

/** {storage: {type: "dir"}} -> [["storage.type", "dir"]]; lists and scalars as one value. */
export function flatten(value: unknown, prefix = ''): Array<[string, string]> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value))
    return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  return [[prefix, typeof value === 'string' ? value : JSON.stringify(value)]];
}

function valueAt(settings: Settings, path: string[]): unknown {
  let at: unknown = settings;
  for (const key of path) at = typeof at === 'object' && at !== null ? (at as Settings)[key] : undefined;
  return at;
}

/** The text of key=value as the type the setting has now; "null" removes an optional setting. */
export function coerce(text: string, current: unknown, key: string): unknown {
  if (text === 'null') return null;
  switch (typeof current) {
    case 'string':
      return text;
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw usageError(`${key}: "${text}" is not a number`);
      return n;
    }
    case 'boolean':
      if (text !== 'true' && text !== 'false') throw usageError(`${key}: "${text}" is not true or false`);
      return text === 'true';
    default:
      break;
  }
  // A list or object now, or not set: JSON/YAML for structured values and plain numbers and booleans; text otherwise.
  if (typeof current === 'object' || /^[[{]|^(true|false)$|^-?\d+(\.\d+)?$/.test(text.trim())) {
    try {
      return parseYaml(text) as unknown;
    } catch (err) {
      throw usageError(`${key}: "${text}" is not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return text;
}

/** key=value pairs (keys may be dotted: storage.type=dynamodb) over the current settings, as a PATCH body. */
export function settingsPatch(pairs: string[], current: Settings, fromFile: Settings = {}): Settings {
  const patch: Settings = { ...fromFile };
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw usageError(`"${pair}" is not key=value (e.g. clusterName=prod, storage.type=dynamodb)`);
    const path = pair.slice(0, at).split('.');
    if (path.some((p) => p === '')) throw usageError(`"${pair.slice(0, at)}" is not a setting name`);
    const value = coerce(pair.slice(at + 1), valueAt(current, path), path.join('.'));
    if (path.length === 1) {
      patch[path[0]] = value;
      continue;
    }
    // A nested setting: the whole object it sits in, changed at one place.
    const top = structuredClone((patch[path[0]] ?? current[path[0]] ?? {}) as Settings);
    let node = top;
    for (const key of path.slice(1, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
      node = node[key] as Settings;
    }
    node[path[path.length - 1]] = value;
    patch[path[0]] = top;
  }
  return patch;
}

export function settingsCommand(): Command {
  const settings = new Command('settings').description('cluster settings: read, and change some at once (validated when saved)');

  const get = settings
    .command('get')
    .description('print the cluster settings, or one of them')
    .argument('[key]', 'one setting, dotted for nested ones (storage.type)')
    .addOption(outputOption())
    .action(async (key: string | undefined, _flags: unknown, cmd: Command) => {
      const all = await clientOf(cmd).get<Settings>('/v1/settings');
      if (!key) return print(formatValue(formatOf(cmd), all, () => keyValues(flatten(all))));
      const value = valueAt(all, key.split('.'));
      if (value === undefined) throw new CliError(`setting ${key} is not set; "teleboot settings get" lists those that are`, EXIT.notFound);
      print(
        formatValue(formatOf(cmd), value, () =>
          typeof value === 'object' ? keyValues(flatten(value, key)) : `${typeof value === 'string' ? value : JSON.stringify(value)}\n`,
        ),
      );
    });
  examples(get, 'teleboot settings get', 'teleboot settings get proxyPublicAddr', 'teleboot settings get -o yaml > settings.yaml');

  const set = settings
    .command('set')
    .description('change settings: key=value pairs and/or a JSON/YAML file; "key=null" removes an optional one')
    .argument('[key=value...]', 'settings to change; dotted keys reach nested ones (storage.tableName=teleport)')
    .option('--file <file>', 'JSON or YAML file of settings to change (the pairs win over it)')
    .addOption(outputOption())
    .action(async (pairs: string[], flags: { file?: string }, cmd: Command) => {
      if (pairs.length === 0 && !flags.file) throw usageError('give key=value pairs and/or --file FILE');
      const fromFile = flags.file ? readObjectFile(flags.file, '--file') : {};
      const client = clientOf(cmd);
      // Pairs are read against the settings as they are (a nested one sends its whole object), so the
      // change is made on that version (If-Match): one saved meanwhile by someone else is never overwritten.
      const { value: current, etag } = pairs.length ? await client.getVersioned<Settings>('/v1/settings') : { value: {}, etag: undefined };
      const patch = settingsPatch(pairs, current, fromFile);
      const saved = await client.call<Settings>('PATCH', '/v1/settings', patch, etag ? { 'if-match': etag } : {});
      print(
        formatValue(
          formatOf(cmd),
          saved,
          () => `${paint('green', 'saved')} ${Object.keys(patch).join(', ')}; assigned instances re-render their config\n`,
        ),
      );
    });
  examples(
    set,
    'teleboot settings set clusterName=prod authAddr=auth.internal:3025 region=us-east-1',
    'teleboot settings set storage.type=dynamodb storage.tableName=teleport-state',
    'teleboot settings set --file settings.yaml',
  );
  examples(settings, 'teleboot settings get', 'teleboot settings set clusterName=prod');
  return settings;
}
