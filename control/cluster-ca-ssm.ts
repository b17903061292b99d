// The cluster CA and join token in SSM Parameter Store (ca.source
// ssm:/<prefix>), shared by every replica: `<prefix>/ca` holds the CA's
// certificate and private key (PEM) and `<prefix>/join-token` the bootstrap
// join token, both SecureStrings (KMS-encrypted; never in the database).
// The first replica to start creates them (PutParameter without Overwrite:
// exactly one wins, the others read the winner's); a data directory that
// already holds a CA or join token (one host becoming several) puts those
// there instead, so that agents keep trusting them. Each replica issues its
// own server certificate from the CA, kept in memory with its key.
import { randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Logger } from '../contract/log';
import { StartRefused } from './cluster-identity';
import type { ControlConfig } from './config';
import { dataDirFiles, FileExistsError, writeNewFile } from './data-dir';
import { createCertificateAuthority, issueServerCertificate, loadCertificateAuthority, type CertificateAuthority } from './pki';
import { createOrReadSecureParameter } from './ssm-secure-parameter';
import { readPair, type TlsMaterial } from './tls-material';

export const caParameterName = (prefix: string): string => `${prefix}/ca`;
export const joinTokenParameterName = (prefix: string): string => `${prefix}/join-token`;

export interface SharedClusterIdentity {
  tls: TlsMaterial;
  /** The bootstrap join token every replica accepts (with enrollment.bootstrap_token). */
  bootstrapToken?: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/;
const PEM_KEY = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/;

/** What an operator does about a damaged or unexpected parameter. */
const parameterHint = (name: string) =>
  `Put back an earlier version (aws ssm get-parameter-history --name ${name} --with-decryption, then ` +
  `aws ssm put-parameter --overwrite), or the CA agents trust from your backup; a new CA would cut off every agent`;

/** The CA in a parameter's value: a PEM certificate of a CA and its ECDSA P-256 key; refused naming the parameter otherwise. */
async function caFromParameter(value: string, name: string): Promise<CertificateAuthority> {
  const damaged = (what: string) =>
    new StartRefused(
      `SSM parameter ${name} does not hold the cluster CA: ${what}. It must hold the CA certificate and its private key ` +
        `(PEM, as teleboot-control writes them). ${parameterHint(name)}`,
    );
  const certPem = PEM_CERT.exec(value)?.[0];
  const keyPem = PEM_KEY.exec(value)?.[0];
  if (!certPem) throw damaged('no PEM certificate in it');
  if (!keyPem) throw damaged('no PEM private key (PKCS#8) in it');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw damaged(`the certificate cannot be read (${(err as Error).message})`);
  }
  if (!cert.ca) throw damaged(`the certificate (${cert.subject}) is not a CA certificate`);
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch (err) {
    throw damaged(`the private key cannot be read (${(err as Error).message})`);
  }
  if (!matches) throw damaged('the private key is not the certificate’s');
  return loadCertificateAuthority(certPem.endsWith('\n') ? certPem : certPem + '\n', keyPem).catch((err: Error) => {
    throw damaged(`the key is not an ECDSA P-256 key (${err.message})`);
  });
}

/**
 * Writes a copy of a shared value into `path` when it is missing (0600 or
 * 0644), never over another file: returns what the file holds when it holds
 * something else. Replicas sharing a directory write the same content.
 */
function placeCopy(path: string, content: string, mode: number): 'same' | 'written' | { differs: true } {
  for (;;) {
    if (existsSync(path)) return readFileSync(path, 'utf8').trim() === content.trim() ? 'same' : { differs: true };
    try {
      writeNewFile(path, content, mode);
      return 'written';
    } catch (err) {
      if (!(err instanceof FileExistsError)) throw err;
    }
  }
}

async function loadSharedCa(
  ssm: SSMClient,
  prefix: string,
  config: ControlConfig,
  log: Logger,
  fresh: boolean,
): Promise<CertificateAuthority> {
  const name = caParameterName(prefix);
  const files = dataDirFiles(config);
  // A CA key pair in the data directory (one host becoming several) is the one agents trust already.
  const local = existsSync(files.caKey)
    ? readPair({ what: 'CA key pair', certFile: files.caCert, keyFile: files.caKey }, config.dataDir)
    : undefined;
  const { value, created } = await createOrReadSecureParameter(ssm, {
    name,
    kmsKeyId: config.ca.kmsKeyId,
    description: 'teleboot-control cluster CA: certificate and private key (PEM)',
    async create() {
      if (local) return local.certPem + local.keyPem;
      if (!fresh)
        throw new StartRefused(
          `SSM parameter ${name} does not exist, but the database ${config.storePath} already issued certificates and tokens ` +
            `from a CA: a new one would cut off every agent. Put the CA agents trust into ${name} (its certificate and private ` +
            `key, PEM, one SecureString), or start with ca.source data_dir`,
        );
      const ca = await createCertificateAuthority('teleboot-control CA');
      return ca.certPem + ca.keyPem;
    },
  });
  const ca = await caFromParameter(value, name);
  if (created) log.info({ parameter: name, from: local ? files.caKey : 'new' }, 'stored the cluster CA in SSM; every replica uses it');
  else log.info({ parameter: name }, 'using the cluster CA from SSM');
  if (local && !local.cert.raw.equals(new X509Certificate(ca.certPem).raw))
    throw new StartRefused(
      `${files.caKey} holds a CA other than the one in SSM parameter ${name}: agents trusting one would not trust replicas ` +
        `using the other. Move ${files.caCert} and ${files.caKey} away (keep them while agents hold certificates from them), ` +
        `or put that CA into ${name}`,
    );
  // The certificate alone, for agents' control.ca_file and for operators.
  const copy = placeCopy(files.caCert, ca.certPem, 0o644);
  if (typeof copy === 'object')
    throw new StartRefused(
      `${files.caCert} holds a CA certificate other than the one in SSM parameter ${name}: agents given that file would ` +
        `not trust this replica. Move it away; it is written again from ${name}`,
    );
  if (copy === 'written') log.info({ caFile: files.caCert }, 'wrote the cluster CA certificate; give agents this file as control.ca_file');
  return ca;
}

async function loadSharedJoinToken(ssm: SSMClient, prefix: string, config: ControlConfig, log: Logger): Promise<string> {
  const name = joinTokenParameterName(prefix);
  const path = config.joinTokenFile;
  const local = existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
  const { value, created } = await createOrReadSecureParameter(ssm, {
    name,
    kmsKeyId: config.ca.kmsKeyId,
    description: 'teleboot-control bootstrap join token',
    create: () => local || randomBytes(24).toString('base64url'),
  });
  const token = value.trim();
  if (token.length < 16)
    throw new StartRefused(`SSM parameter ${name} holds a join token shorter than 16 characters; put a long random value there`);
  if (created) log.info({ parameter: name, from: local ? path : 'new' }, 'stored the join token in SSM; every replica accepts it');
  const copy = placeCopy(path, token + '\n', 0o600);
  if (typeof copy === 'object')
    throw new StartRefused(
      `${path} holds a join token other than SSM parameter ${name}: every replica must accept the same token. ` +
        `Move ${path} away (it is written again from ${name}), or put its token into ${name}`,
    );
  if (copy === 'written') log.info({ path }, 'wrote the join token; give agents this file as enrollment.join_token_file');
  return token;
}

/** This replica's server key pair: configured files, or issued now from the shared CA and kept in memory. */
async function serverKeyPair(ca: CertificateAuthority, config: ControlConfig, log: Logger): Promise<TlsMaterial> {
  if (config.tls.certFile) {
    const files = dataDirFiles(config);
    const pair = readPair({ what: 'server key pair', certFile: files.serverCert, keyFile: files.serverKey }, config.dataDir);
    if (!pair) throw new StartRefused(`tls.cert_file ${files.serverCert} and tls.key_file ${files.serverKey} do not exist`);
    return { ca, certPem: pair.certPem, keyPem: pair.keyPem };
  }
  const pair = await issueServerCertificate(ca, config.tls.serverNames);
  log.info({ names: config.tls.serverNames }, "issued this replica's server certificate from the cluster CA (kept in memory)");
  return { ca, ...pair };
}

/** The CA, this replica's server key pair and the join token, from SSM under `prefix`. */
export async function loadSharedClusterIdentity(
  prefix: string,
  config: ControlConfig,
  log: Logger,
  fresh: boolean,
): Promise<SharedClusterIdentity> {
  const ssm = new SSMClient({ region: config.aws.region, endpoint: config.aws.ssmEndpoint });
  try {
    const ca = await loadSharedCa(ssm, prefix, config, log, fresh);
    const bootstrapToken = config.bootstrapToken ? await loadSharedJoinToken(ssm, prefix, config, log) : undefined;
    return { tls: await serverKeyPair(ca, config, log), bootstrapToken };
  } catch (err) {
    if (err instanceof StartRefused) throw err;
    throw new StartRefused(
      `ca.source ssm:${prefix}: SSM Parameter Store did not answer as needed (${(err as Error).name}: ${(err as Error).message}). ` +
        'Check aws.region (or AWS_REGION), aws.ssm_endpoint, and that this replica may ssm:GetParameter and ssm:PutParameter ' +
        `on ${prefix}/* and use its KMS key (kms:Decrypt, kms:Encrypt)`,
    );
  } finally {
    ssm.destroy();
  }
}
