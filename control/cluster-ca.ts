// Where the cluster CA lives (`ca.source` in control.yaml, `--ca-source`):
// the data directory (one host, the default), or SSM Parameter Store, which
// every replica reads, so that all of them issue from one CA and accept the
// same join token. This module is the setting alone; it loads no AWS code.
import { ConfigError } from '../contract/config-file';

export type CaSource = { kind: 'data_dir' } | { kind: 'ssm'; prefix: string };

export interface CaConfig {
  source: CaSource;
  /** With ssm: the KMS key the SecureStrings are encrypted with (default: the account's aws/ssm key). */
  kmsKeyId?: string;
}

export interface CaConfigFile {
  source?: string;
  kms_key_id?: string;
}

export const CA_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { source: { type: 'string', minLength: 1 }, kms_key_id: { type: 'string', minLength: 1 } },
} as const;

/** An SSM parameter path: "/" then names of letters, digits and . - _ separated by single "/". */
const SSM_PREFIX_RE = /^(\/[A-Za-z0-9_.-]+){1,13}$/;
const SSM_SOURCE_HELP = 'data_dir, or ssm:/<parameter prefix> such as ssm:/teleboot/prod';

/**
 * The CA setting from the flag or the file. `where` names the value in
 * errors: "--ca-source", or "<file>: ca.source".
 */
export function caConfigFrom(source: string | undefined, kmsKeyId: string | undefined, where: string, file: string): CaConfig {
  if (source === undefined || source === 'data_dir') {
    if (kmsKeyId !== undefined) throw new ConfigError(`${file}: ca.kms_key_id is only used with ca.source ssm:/<parameter prefix>`);
    return { source: { kind: 'data_dir' } };
  }
  const m = /^ssm:(.*)$/.exec(source);
  if (!m) throw new ConfigError(`${where}: must be ${SSM_SOURCE_HELP}, got ${JSON.stringify(source)}`);
  const prefix = m[1];
  if (!SSM_PREFIX_RE.test(prefix))
    throw new ConfigError(
      `${where}: ${JSON.stringify(prefix)} is not an SSM parameter path: it starts with "/" and has up to 13 names ` +
        `of letters, digits, ".", "-" and "_" separated by single "/" (for example ssm:/teleboot/prod)`,
    );
  if (/^\/(aws|ssm)/i.test(prefix))
    throw new ConfigError(`${where}: SSM reserves names beginning with /aws and /ssm; choose another prefix`);
  return { source: { kind: 'ssm', prefix }, kmsKeyId };
}

/** How the source is shown in logs and errors. */
export const describeCaSource = (source: CaSource): string => (source.kind === 'ssm' ? `ssm:${source.prefix}` : 'data_dir');
