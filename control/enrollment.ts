// Proof of identity at enrollment is pluggable. Each verifier turns a proof
// into a verified enrollment (who the instance is, how it proved it, what
// roles it may claim) or refuses with EnrollmentDenied saying why:
// - the pre-shared bootstrap token (config enrollment.join_token_file),
// - join tokens created over REST (hashed, TTL, uses, allowed roles),
// - the EC2 instance identity document signed by AWS.
// The nonce binding (trust on first use) is applied by the store, in the
// same transaction as the enrollment.
import { createHash, timingSafeEqual, type X509Certificate } from 'node:crypto';
import type { InstanceIdentity, ServiceRole } from '../contract/model';
import { IdentityProofError, parseIdentityDocument, verifyIdentitySignature } from './ec2-identity';
import type { Ec2InstanceLookup } from './ec2-lookup';
import { joinTokenProblem, type Store } from './store/store';

export interface EnrollmentProof {
  joinToken?: string;
  ec2Identity?: { document: string; pkcs7Signature: string };
}

/** Why an enrollment was refused, recorded in the audit log (never a secret). */
export type DenialReason =
  | 'no-proof'
  | 'token-unknown'
  | 'token-unusable'
  | 'bad-signature'
  | 'identity-mismatch'
  | 'account-not-allowed'
  | 'region-not-allowed'
  | 'instance-not-found'
  | 'instance-not-running'
  | 'nonce-required'
  | 'nonce-mismatch'
  | 'role-not-allowed'
  | 'method-disabled';

export class EnrollmentDenied extends Error {
  constructor(
    message: string,
    readonly reason: DenialReason = 'token-unknown',
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The verifier could not decide now (AWS unreachable): the agent should retry. */
export class VerifierUnavailable extends Error {}

export interface VerifiedEnrollment {
  /** The identity to record: for EC2, the signed document's fields win over what the agent claimed. */
  identity: InstanceIdentity;
  method: 'ec2' | 'join-token' | 'bootstrap-token';
  /** Recorded on the instance: "ec2", "join-token:<id>", "bootstrap-token". */
  via: string;
  /** Services the instance may run; null when the proof does not restrict them. */
  allowedRoles: ServiceRole[] | null;
  /** A REST-created join token whose use is counted with the enrollment. */
  joinTokenId?: string;
  /** For the audit log. */
  details: Record<string, unknown>;
}

export interface EnrollmentVerifier {
  /** Resolves with the verified enrollment, or rejects with EnrollmentDenied saying why. */
  verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<VerifiedEnrollment>;
}

export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Join tokens: the pre-shared bootstrap token(s) from the configuration,
 * then the ones created over REST. Only hashes are compared and kept.
 */
export class JoinTokenVerifier implements EnrollmentVerifier {
  private readonly hashes: Buffer[];

  constructor(
    bootstrapTokens: string[],
    private readonly store?: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.hashes = bootstrapTokens.map(sha256);
  }

  async verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<VerifiedEnrollment> {
    if (!proof.joinToken)
      throw new EnrollmentDenied('this control server expects a join token: set enrollment.join_token_file in agent.yaml', 'no-proof');
    const presented = sha256(proof.joinToken);
    // Compare against every hash so the time taken does not tell which matched.
    let bootstrap = false;
    for (const h of this.hashes) bootstrap = timingSafeEqual(h, presented) || bootstrap;
    if (bootstrap) return { identity, method: 'bootstrap-token', via: 'bootstrap-token', allowedRoles: null, details: {} };
    const token = this.store ? await this.store.findJoinToken(presented.toString('hex')) : undefined;
    if (!token) throw new EnrollmentDenied('join token not recognised', 'token-unknown');
    const problem = joinTokenProblem(token, this.now());
    if (problem) throw new EnrollmentDenied(problem, 'token-unusable', { joinToken: token.name, joinTokenId: token.id });
    return {
      identity,
      method: 'join-token',
      via: `join-token:${token.id}`,
      allowedRoles: token.roles,
      joinTokenId: token.id,
      details: { joinToken: token.name, joinTokenId: token.id },
    };
  }
}

export interface Ec2VerifierOptions {
  trusted: X509Certificate[];
  /** Accounts whose instances may enroll; required (an empty list refuses every instance). */
  allowedAccounts: string[];
  /** Regions instances may enroll from; empty: any. */
  allowedRegions: string[];
  /** When set, ec2:DescribeInstances confirms the instance runs and supplies its tags. */
  lookup?: Ec2InstanceLookup;
}

/** The EC2 instance identity document and its PKCS#7 signature, from IMDS. */
export class Ec2IdentityVerifier implements EnrollmentVerifier {
  constructor(private readonly opts: Ec2VerifierOptions) {}

  async verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<VerifiedEnrollment> {
    const ec2 = proof.ec2Identity;
    if (!ec2?.document || !ec2.pkcs7Signature)
      throw new EnrollmentDenied('ec2_identity needs the identity document and its PKCS#7 signature', 'no-proof');
    let doc;
    try {
      verifyIdentitySignature(ec2.document, ec2.pkcs7Signature, this.opts.trusted);
      doc = parseIdentityDocument(ec2.document);
    } catch (err) {
      if (err instanceof IdentityProofError)
        throw new EnrollmentDenied(`instance identity document refused: ${err.message}`, 'bad-signature');
      throw err;
    }
    const details = { accountId: doc.accountId, region: doc.region, documentInstanceId: doc.instanceId };
    if (doc.instanceId !== identity.instanceId) {
      throw new EnrollmentDenied(
        `the signed identity document is of ${doc.instanceId}, not of ${identity.instanceId}`,
        'identity-mismatch',
        details,
      );
    }
    if (!this.opts.allowedAccounts.includes(doc.accountId)) {
      throw new EnrollmentDenied(`account ${doc.accountId} is not in enrollment.ec2.allowed_accounts`, 'account-not-allowed', details);
    }
    if (this.opts.allowedRegions.length > 0 && !this.opts.allowedRegions.includes(doc.region)) {
      throw new EnrollmentDenied(`region ${doc.region} is not in enrollment.ec2.allowed_regions`, 'region-not-allowed', details);
    }
    let tags = identity.tags;
    if (this.opts.lookup) {
      const found = await this.opts.lookup.describe(doc.region, doc.instanceId);
      if (!found)
        throw new EnrollmentDenied(`ec2:DescribeInstances does not know ${doc.instanceId} in ${doc.region}`, 'instance-not-found', details);
      if (found.state !== 'running' && found.state !== 'pending') {
        throw new EnrollmentDenied(`instance ${doc.instanceId} is ${found.state}, not running`, 'instance-not-running', {
          ...details,
          state: found.state,
        });
      }
      // The tags EC2 reports are authoritative; those the agent read from metadata are not.
      tags = found.tags;
    }
    return {
      identity: {
        ...identity,
        instanceId: doc.instanceId,
        accountId: doc.accountId,
        region: doc.region,
        availabilityZone: doc.availabilityZone,
        privateIp: doc.privateIp,
        imageId: doc.imageId,
        instanceType: doc.instanceType,
        tags,
      },
      method: 'ec2',
      via: 'ec2',
      allowedRoles: null,
      details,
    };
  }
}

/** Sends each proof to the verifier of its kind. */
export class ProofVerifier implements EnrollmentVerifier {
  constructor(private readonly verifiers: { joinToken?: EnrollmentVerifier; ec2?: EnrollmentVerifier }) {}

  async verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<VerifiedEnrollment> {
    if (proof.ec2Identity) {
      if (!this.verifiers.ec2)
        throw new EnrollmentDenied('EC2 identity enrollment is not enabled on this control server (enrollment.ec2)', 'method-disabled');
      return this.verifiers.ec2.verify(identity, proof);
    }
    if (proof.joinToken !== undefined) {
      if (!this.verifiers.joinToken)
        throw new EnrollmentDenied('join token enrollment is disabled on this control server', 'method-disabled');
      return this.verifiers.joinToken.verify(identity, proof);
    }
    throw new EnrollmentDenied('no proof of identity', 'no-proof');
  }
}
