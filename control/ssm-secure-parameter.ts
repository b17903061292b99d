// A secret kept as an SSM SecureString that replicas create at first use:
// read it; when it is missing, create it with PutParameter without Overwrite,
// so that of replicas starting together exactly one wins
// (ParameterAlreadyExists) and the others read what the winner wrote.
import { GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';

export interface SecureParameterSpec {
  name: string;
  /** The value to store when the parameter does not exist yet; called at most once. */
  create: () => Promise<string> | string;
  /** The KMS key to encrypt with (default: the account's aws/ssm key). */
  kmsKeyId?: string;
  description: string;
}

export interface SecureParameterValue {
  value: string;
  /** This call stored it (its `create` value won). */
  created: boolean;
}

const errorName = (err: unknown): string | undefined => (err as { name?: string }).name;

/** The decrypted value, or undefined when the parameter does not exist. */
export async function readSecureParameter(ssm: SSMClient, name: string): Promise<string | undefined> {
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    return out.Parameter?.Value ?? '';
  } catch (err) {
    if (errorName(err) === 'ParameterNotFound') return undefined;
    throw err;
  }
}

export async function createOrReadSecureParameter(ssm: SSMClient, spec: SecureParameterSpec): Promise<SecureParameterValue> {
  const existing = await readSecureParameter(ssm, spec.name);
  if (existing !== undefined) return { value: existing, created: false };
  const value = await spec.create();
  try {
    await ssm.send(
      new PutParameterCommand({
        Name: spec.name,
        Value: value,
        Type: 'SecureString',
        KeyId: spec.kmsKeyId,
        Overwrite: false,
        Description: spec.description,
      }),
    );
    return { value, created: true };
  } catch (err) {
    if (errorName(err) !== 'ParameterAlreadyExists') throw err;
    // Another replica (or process) created it first: theirs is the one.
    const winner = await readSecureParameter(ssm, spec.name);
    if (winner === undefined) throw new Error(`SSM parameter ${spec.name} existed a moment ago and is gone now; start again`);
    return { value: winner, created: false };
  }
}
