// Config files (agent.yaml, control.yaml) are YAML validated by a JSON
// schema before anything else happens; errors name the setting.
import { readFileSync } from 'node:fs';
import type Ajv from 'ajv';
import type { ErrorObject, JSONSchemaType, Options, Schema, ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { DURATION_PATTERN } from './duration';
import { HOST_PORT_PATTERN } from './address';
import { AWS_REGION_PATTERN } from './aws-region';

export class ConfigError extends Error {}

/** JSON schema fragments the config files share. */
export const HOST_PORT_SCHEMA = { type: 'string', pattern: HOST_PORT_PATTERN } as const;
export const DURATION_SCHEMA = { type: 'string', pattern: DURATION_PATTERN } as const;
export const URL_SCHEMA = { type: 'string', pattern: '^https?://' } as const;
export const REGION_SCHEMA = { type: 'string', pattern: AWS_REGION_PATTERN } as const;

/** How config schemas are compiled (packaging/build compiles the agent's ahead of time with the same). */
export const CONFIG_AJV_OPTIONS: Options = { allErrors: true, useDefaults: true, strict: false };
// Loaded and built at the first schema compiled here: a program whose schema was compiled
// ahead of time (the packaged agent) never evaluates Ajv.
let ajv: Ajv | undefined;

function compiler(): Ajv {
  // A require() where it is needed: an import would evaluate Ajv when this module loads.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (ajv ??= new (require('ajv') as typeof import('ajv')).default(CONFIG_AJV_OPTIONS));
}

/**
 * Validators compiled ahead of time, by the schema they check: the packaged
 * agent's config schema is compiled when it is bundled, so that a boot does
 * not spend tens of milliseconds compiling it (and Ajv's meta-schema).
 */
const precompiled = new Map<unknown, ValidateFunction>();

export function usePrecompiledValidator(schema: unknown, validate: ValidateFunction): void {
  precompiled.set(schema, validate);
}

/** What a value of each shared pattern looks like: errors say this, never the raw regular expression. */
const PATTERN_MEANINGS: Record<string, string> = {
  [HOST_PORT_SCHEMA.pattern]: 'must be host:port, for example 0.0.0.0:7443',
  [DURATION_PATTERN]: 'must be a duration such as 30s, 5m or 1h30m',
  [URL_SCHEMA.pattern]: 'must be an http:// or https:// URL',
  [AWS_REGION_PATTERN]: 'must be an AWS region such as us-east-1',
};

function describe(e: ErrorObject, labels: Record<string, string>): string {
  const path = e.instancePath.replace(/^\//, '').split('/');
  // A value from a command-line flag is named by its flag.
  if (path[0] in labels) path[0] = labels[path[0]];
  const at = path.filter(Boolean).join('.');
  switch (e.keyword) {
    case 'pattern':
      return `${at}: ${PATTERN_MEANINGS[String(e.params.pattern)] ?? `does not have the expected form (${String(e.params.pattern)})`}`;
    case 'required':
      return `${at ? at + '.' : ''}${String(e.params.missingProperty)}: is required`;
    case 'additionalProperties':
      return `${at ? at + '.' : ''}${String(e.params.additionalProperty)}: unknown setting (check the spelling)`;
    case 'enum':
      return `${at}: must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
    default:
      return `${at || '(top level)'}: ${e.message ?? 'is invalid'}`;
  }
}

/**
 * Validates a parsed document; throws ConfigError listing every problem.
 * labels: how to name top-level keys in errors (the flags they came from: {heartbeat_interval: '--heartbeat-interval'}).
 */
export function validateConfig<T>(
  doc: unknown,
  schema: Schema | JSONSchemaType<T>,
  source: string,
  labels: Record<string, string> = {},
): T {
  const validate = (precompiled.get(schema) as ValidateFunction<T> | undefined) ?? compiler().compile<T>(schema);
  if (!validate(doc)) {
    const problems = [...new Set((validate.errors ?? []).map((e) => describe(e, labels)))];
    throw new ConfigError(`${source} is not valid:\n  - ${problems.join('\n  - ')}`);
  }
  return doc;
}

export function loadYamlConfig<T>(path: string, schema: Schema | JSONSchemaType<T>): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
  return validateConfig<T>(doc, schema, path);
}
