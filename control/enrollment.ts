// Proof of identity at enrollment is pluggable: a pre-shared join token
// today, the signed EC2 instance identity document as another verifier.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { InstanceIdentity } from '../common/model';

export interface EnrollmentProof {
  joinToken?: string;
  ec2Identity?: { document: string; pkcs7Signature: string };
}

export class EnrollmentDenied extends Error {}

export interface EnrollmentVerifier {
  /** Resolves with the identity to record, or rejects with EnrollmentDenied saying why. */
  verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<InstanceIdentity>;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Accepts a join token whose SHA-256 matches one of the configured ones; the token itself is not kept. */
export class JoinTokenVerifier implements EnrollmentVerifier {
  private readonly hashes: Buffer[];

  constructor(tokens: string[]) {
    this.hashes = tokens.map(sha256);
  }

  async verify(identity: InstanceIdentity, proof: EnrollmentProof): Promise<InstanceIdentity> {
    if (!proof.joinToken) throw new EnrollmentDenied('this control server accepts join tokens: set enrollment.join_token_file in agent.yaml');
    const presented = sha256(proof.joinToken);
    // Compare against every hash so the time taken does not tell which matched.
    let ok = false;
    for (const h of this.hashes) ok = timingSafeEqual(h, presented) || ok;
    if (!ok) throw new EnrollmentDenied('join token not recognised');
    return identity;
  }
}
