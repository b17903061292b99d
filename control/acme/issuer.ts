// One ACME order, step by step (RFC 8555): account, order, one challenge per
// name, finalize with a fresh key, download the chain. The steps are spelled
// out rather than left to acme-client's auto() so that each one is logged as
// progress and a failed challenge reports the CA's own reason.
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import * as acme from 'acme-client';
import type { Logger } from '../../contract/log';
import type { AcmeConfig } from './config';

/** Makes a challenge answerable, and takes it down again. */
export interface ChallengeSolver {
  readonly type: 'http-01' | 'dns-01';
  /** Publishes the answers of every name at once (DNS-01 may put several values on one record). */
  present(answers: ChallengeAnswer[]): Promise<void>;
  cleanup(answers: ChallengeAnswer[]): Promise<void>;
}

export interface ChallengeAnswer {
  /** The name being proven (without "*."). */
  domain: string;
  token: string;
  /** For HTTP-01 the key authorization; for DNS-01 its digest, the TXT value. */
  value: string;
}

export interface IssuedCertificate {
  fullchainPem: string;
  privkeyPem: string;
}

/** The ACME server refused or the challenge failed: the message says which name and why. */
export class AcmeError extends Error {}

let trustedDirectoryCa: string | undefined;

/**
 * acme-client sends its requests through one shared axios instance; a private
 * ACME server's CA (pebble in tests, a corporate CA) is added to it here.
 */
function trustDirectoryCa(file: string | undefined): void {
  if (!file || file === trustedDirectoryCa) return;
  const ca = readFileSync(file, 'utf8');
  acme.axios.defaults.httpsAgent = new HttpsAgent({ ca, keepAlive: true });
  trustedDirectoryCa = file;
}

async function createKey(type: AcmeConfig['keyType']): Promise<Buffer> {
  switch (type) {
    case 'ecdsa-p256':
      return acme.crypto.createPrivateEcdsaKey('P-256');
    case 'ecdsa-p384':
      return acme.crypto.createPrivateEcdsaKey('P-384');
    case 'rsa-2048':
      return acme.crypto.createPrivateRsaKey(2048);
    case 'rsa-4096':
      return acme.crypto.createPrivateRsaKey(4096);
  }
}

/** A new account key (ECDSA P-256, as Let's Encrypt recommends). */
export async function createAccountKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
}

/** The CA's explanation of a failed challenge or order, from the RFC 8555 problem document. */
function problemOf(err: unknown): string {
  const detail = (err as { response?: { data?: { detail?: string; type?: string } } }).response?.data;
  if (detail?.detail) return `${detail.detail}${detail.type ? ` (${detail.type})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

export interface IssueOptions {
  config: Pick<AcmeConfig, 'directoryUrl' | 'email' | 'directoryCaFile' | 'keyType'>;
  accountKeyPem: string;
  domains: string[];
  solver: ChallengeSolver;
  log: Logger;
}

export async function issueCertificate(opts: IssueOptions): Promise<IssuedCertificate> {
  const { config, domains, solver, log } = opts;
  trustDirectoryCa(config.directoryCaFile);
  const client = new acme.Client({
    directoryUrl: config.directoryUrl,
    accountKey: opts.accountKeyPem,
    backoffAttempts: 10,
    backoffMin: 200,
    backoffMax: 5000,
  });
  const step = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw new AcmeError(`${what}: ${problemOf(err)}`);
    }
  };

  await step(`registering the ACME account at ${config.directoryUrl}`, () =>
    client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${config.email}`] }),
  );
  const order = await step(`ordering a certificate for ${domains.join(', ')}`, () =>
    client.createOrder({ identifiers: domains.map((value) => ({ type: 'dns', value })) }),
  );
  log.info({ domains, order: order.url }, 'ACME order created');
  const authorizations = await step("reading the order's authorizations", () => client.getAuthorizations(order));

  const pending: Array<{ answer: ChallengeAnswer; challenge: acme.Authorization['challenges'][number] }> = [];
  for (const authz of authorizations) {
    if (authz.status === 'valid') continue;
    const name = authz.identifier.value;
    const challenge = authz.challenges.find((c) => c.type === solver.type);
    if (!challenge)
      throw new AcmeError(
        `the ACME server offers no ${solver.type} challenge for ${name} (offered: ${authz.challenges.map((c) => c.type).join(', ')})`,
      );
    const value = await client.getChallengeKeyAuthorization(challenge);
    pending.push({ answer: { domain: name, token: challenge.token, value }, challenge });
  }

  const answers = pending.map((p) => p.answer);
  if (answers.length > 0) {
    await step(`publishing the ${solver.type} answers`, () => solver.present(answers));
    log.info({ domains: answers.map((a) => a.domain), challenge: solver.type }, 'ACME challenge answers published');
  }
  try {
    for (const { answer, challenge } of pending) {
      await step(`the ${solver.type} challenge for ${answer.domain} was not accepted`, async () => {
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      });
      log.info({ domain: answer.domain, challenge: solver.type }, 'ACME challenge valid');
    }
  } finally {
    if (answers.length > 0)
      await solver.cleanup(answers).catch((err) => log.warn({ err: problemOf(err) }, 'removing the ACME challenge answers failed'));
  }

  const key = await createKey(config.keyType);
  const [, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: domains }, key);
  const issued = await step('finalizing the order', async () => client.waitForValidStatus(await client.finalizeOrder(order, csr)));
  const fullchainPem = await step('downloading the certificate', () => client.getCertificate(issued));
  return { fullchainPem, privkeyPem: key.toString() };
}
