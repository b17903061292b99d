// Enrollment and credentials: the client certificate the control server
// issued, kept in the state directory (0600 in 0700) and presented on every
// call; renewal, which is Enroll again with the same nonce and a fresh key,
// once a third of its lifetime is left; and enrolling again when the control
// server no longer knows this instance or its certificate.
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../contract/backoff';
import { writeFileAtomic } from '../contract/files';
import { describeError, type Logger } from '../contract/log';
import type { InstanceIdentity } from '../contract/model';
import { VERSION } from '../contract/version';
import type { AgentConfig } from './config';
import type { ClientCredentials, ControlClient, Enrollment, EnrollProof } from './control-client';
import { InstanceUnknown, isRetryable } from './control-errors';
import type { IdentityProof, IdentitySource } from './identity';
import type { Persist } from './persist';

export const CREDENTIALS_FILE = 'credentials.json';
export const NONCE_FILE = 'nonce';
/** What `nonce()` writes (32 random bytes, base64url) and what the control server accepts. */
const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;

/** The nonce file holds something this agent did not write: an administrator must decide. */
export class NonceFileError extends Error {}

export interface CredentialsDeps {
  config: AgentConfig;
  log: Logger;
  identity: IdentitySource;
  control: ControlClient;
  persist: Persist;
  /** Told of each enrollment: the assignment it returned and the heartbeat interval. */
  onEnrolled(enrollment: Enrollment): void;
}

/** Renew when less than a third of the certificate's lifetime is left. */
export function renewalDueAt(creds: ClientCredentials): number {
  return creds.expiresAt - (creds.expiresAt - creds.issuedAt) / 3;
}

/** Why saved credentials cannot be used; undefined when they can. */
export function unusableBecause(creds: ClientCredentials, instanceId: string, now = Date.now()): string | undefined {
  if (creds.instanceId !== instanceId) return `they are for ${creds.instanceId}`;
  try {
    const cert = new X509Certificate(creds.certPem);
    if (Date.parse(cert.validTo) <= now + 60_000) return 'the certificate has expired';
    const certKey = cert.publicKey.export({ type: 'spki', format: 'der' });
    const ownKey = createPublicKey(creds.keyPem).export({ type: 'spki', format: 'der' });
    if (!certKey.equals(ownKey)) return 'the private key does not match the certificate';
  } catch (err) {
    return `they cannot be read (${describeError(err).split('\n')[0]})`;
  }
  if (now > renewalDueAt(creds)) return 'the certificate is due for renewal';
  return undefined;
}

export class Credentials {
  instance!: InstanceIdentity;
  private creds: ClientCredentials | undefined;
  /** `plan` enrolls in memory only: it writes nothing on the host. */
  private readOnly = false;
  /** Counts enrollments: a call that failed with an older one's certificate needs no new enrollment. */
  private issued = 0;
  private inFlight: Promise<void> | undefined;
  /** EC2 enrollment: the signed document, read alongside the identity at start (undefined when that read failed). */
  private earlyProof: Promise<IdentityProof | undefined> | undefined;

  constructor(private readonly deps: CredentialsDeps) {}

  private get stateDir(): string {
    return this.deps.config.paths.stateDir;
  }

  /** Identity from IMDS, then a valid client certificate (saved, or a new enrollment). */
  async start(signal?: AbortSignal, opts: { readOnly?: boolean } = {}): Promise<void> {
    await this.identify(signal, opts);
    await this.certify(signal);
  }

  /** Identity from IMDS. */
  async identify(signal?: AbortSignal, opts: { readOnly?: boolean } = {}): Promise<void> {
    this.readOnly = opts.readOnly ?? false;
    const { config, identity } = this.deps;
    // A first boot enrolls right after: its signature is read in the same round as the identity.
    if (config.enrollmentMethod === 'ec2' && identity.proof) this.earlyProof = identity.proof(config.ec2Signature).catch(() => undefined);
    this.instance = await this.deps.persist('instance metadata (IMDSv2)', () => this.deps.identity.identity(), signal);
    this.deps.log.info({ instanceId: this.instance.instanceId, region: this.instance.region }, 'identity read from instance metadata');
  }

  /** A valid client certificate: the saved one, or a new enrollment (after identify). */
  async certify(signal?: AbortSignal): Promise<void> {
    if (!this.readOnly) {
      await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      await fs.chmod(this.stateDir, 0o700);
    }
    const saved = await this.load();
    if (saved) {
      this.earlyProof = undefined;
      this.creds = saved;
      this.deps.control.useCredentials(saved);
    } else await this.enroll(signal, 'no usable saved credentials');
  }

  /** The saved credentials when usable; says why not otherwise (a missing file is no news). */
  private async load(): Promise<ClientCredentials | undefined> {
    const path = join(this.stateDir, CREDENTIALS_FILE);
    let saved: ClientCredentials;
    try {
      saved = JSON.parse(await fs.readFile(path, 'utf8')) as ClientCredentials;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.deps.log.warn({ path, err: describeError(err) }, 'saved credentials cannot be read; enrolling again');
      return undefined;
    }
    const why = unusableBecause(saved, this.instance.instanceId);
    if (why) this.deps.log.warn({ path, reason: why }, `saved credentials are not usable: ${why}; enrolling again`);
    return why ? undefined : saved;
  }

  /**
   * The nonce this instance binds at its first enrollment and presents at
   * every later one. A copied identity document without it cannot enroll
   * another machine. A nonce file with anything else in it is never
   * replaced: that would lock the instance out of its binding, or hide a
   * tampering. `plan` creates none for a join token (it enrolls without
   * binding); with EC2 identity it must, and saves it.
   */
  private async nonce(signal?: AbortSignal): Promise<string | undefined> {
    const { config } = this.deps;
    const path = join(this.stateDir, NONCE_FILE);
    let saved: string | undefined;
    try {
      saved = (await fs.readFile(path, 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (saved !== undefined) {
      if (NONCE_RE.test(saved)) return saved;
      throw new NonceFileError(
        `${path} is ${saved ? 'not a nonce this agent wrote' : 'empty'}; it is not replaced silently, since the control server ` +
          `holds this instance to the nonce of its first enrollment. An administrator resets the binding ` +
          `(DELETE /v1/instances/${this.instance.instanceId}/binding), then removes ${path}; the agent binds a new one.`,
      );
    }
    if (this.readOnly && config.enrollmentMethod !== 'ec2') return undefined;
    const nonce = randomBytes(32).toString('base64url');
    await this.deps.persist(`room to save the nonce in ${path}`, () => writeFileAtomic(path, nonce + '\n', { mode: 0o600 }), signal);
    return nonce;
  }

  private async proof(signal?: AbortSignal): Promise<EnrollProof> {
    const { config, identity } = this.deps;
    if (config.enrollmentMethod === 'ec2') {
      const proof = identity.proof?.bind(identity);
      if (!proof) throw new Error('enrollment.method ec2 needs instance metadata (IMDSv2) that serves the signed identity document');
      const early = await this.earlyProof;
      this.earlyProof = undefined;
      if (early) return { ec2Identity: early };
      return { ec2Identity: await this.deps.persist('the signed identity document (IMDSv2)', () => proof(config.ec2Signature), signal) };
    }
    if (!config.joinTokenFile)
      throw new Error(`${config.source}: enrollment.join_token_file is required with enrollment.method join_token`);
    return { joinToken: (await fs.readFile(config.joinTokenFile, 'utf8')).trim() };
  }

  /** Enrolls (or renews: the same call with a fresh key); concurrent callers share one enrollment. */
  enroll(signal: AbortSignal | undefined, reason: string): Promise<void> {
    this.inFlight ??= this.enrollOnce(signal, reason).finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async enrollOnce(signal: AbortSignal | undefined, reason: string): Promise<void> {
    const { config, control } = this.deps;
    // The nonce's write (fsync) and the proof's reads overlap.
    const [nonce, proof] = await Promise.all([this.nonce(signal), this.proof(signal)]);
    this.deps.log.info({ reason }, 'enrolling');
    const enrollment = await this.deps.persist(
      `enrollment at ${config.control.endpoints.join(', ')}`,
      () => control.enroll(this.instance, proof, VERSION, nonce),
      signal,
      { isPermanent: (err) => !isRetryable(err) },
    );
    const creds = enrollment.credentials;
    this.creds = creds;
    this.issued++;
    // The private key lives only here. A state directory that cannot take it
    // (full, read-only) is waited for with backoff, holding the credentials
    // just issued: exiting would make every restart enroll anew.
    const path = join(this.stateDir, CREDENTIALS_FILE);
    if (!this.readOnly)
      await this.deps.persist(
        `room to save the credentials in ${path}`,
        () => writeFileAtomic(path, JSON.stringify(creds), { mode: 0o600 }),
        signal,
      );
    this.deps.log.info({ instanceId: this.instance.instanceId, certificateExpires: new Date(creds.expiresAt).toISOString() }, 'enrolled');
    this.deps.onEnrolled(enrollment);
  }

  /**
   * Calls the control server with backoff; when it no longer knows this
   * instance or its certificate, enrolls again (once for every caller) and
   * calls again.
   */
  call<T>(what: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.deps.persist(
      what,
      async () => {
        const issued = this.issued;
        try {
          return await work();
        } catch (err) {
          if (err instanceof InstanceUnknown) await this.forgotten(err, issued, signal);
          throw err;
        }
      },
      signal,
      { isPermanent: (err) => !isRetryable(err) && !(err instanceof InstanceUnknown) },
    );
  }

  /** The control server refused a certificate of enrollment number `issued`: enroll again unless that is done already. */
  async forgotten(err: InstanceUnknown, issued: number, signal?: AbortSignal): Promise<void> {
    if (issued !== this.issued) return;
    this.deps.log.warn({ err: err.details }, 'the control server does not know this instance; enrolling again (Teleport keeps running)');
    await this.enroll(signal, `the control server does not know this instance: ${err.details}`);
  }

  /** The number of the current enrollment (see forgotten). */
  get enrollment(): number {
    return this.issued;
  }

  /** Duty: renews the certificate when a third of its lifetime is left. */
  async renewWhenDue(signal: AbortSignal): Promise<void> {
    for (;;) {
      const due = this.creds ? renewalDueAt(this.creds) : Date.now();
      // Timers hold at most 2^31-1 ms; look again at least hourly.
      await sleep(Math.min(Math.max(0, due - Date.now()), 3_600_000), signal);
      if (!this.creds || Date.now() >= renewalDueAt(this.creds)) await this.enroll(signal, 'renewal');
    }
  }
}
