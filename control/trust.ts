// Who may do what: the REST API tokens (scoped, stored hashed), join tokens
// created over REST, the instance bindings (trust on first use), and the
// check every mutual-TLS call goes through (the certificate was issued by
// Enroll, is not revoked, and is of the instance the call is about).
import { randomBytes, randomUUID } from 'node:crypto';
import { servicesOf, ROLE_NAMES, type ServiceRole } from '../contract/model';
import { sha256Hex } from './enrollment';
import { ForbiddenError, InputError, NotFoundError, UnauthenticatedError } from './errors';
import { batched } from './coalesce';
import { normalizeSerial } from './pki';
import { API_SCOPES, type ApiScope, type ApiToken, type JoinToken, type Store } from './store/store';

export const API_TOKEN_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$';
const nameRe = new RegExp(API_TOKEN_NAME_PATTERN);

/** Does a token of scope `have` allow what needs `need`? admin > operator > monitor. */
export function scopeAllows(have: ApiScope, need: ApiScope): boolean {
  return API_SCOPES.indexOf(have) <= API_SCOPES.indexOf(need);
}

/** A new secret: a recognisable prefix and 256 random bits. */
export const newSecret = (prefix: string) => `${prefix}_${randomBytes(32).toString('base64url')}`;

export interface JoinTokenInput {
  name: string;
  ttlMs: number;
  maxUses?: number;
  /** Role names (presets expand to their services); absent: any role. */
  roles?: string[];
}

export const MAX_JOIN_TOKEN_TTL_MS = 30 * 86_400_000;

/** Minimum seconds between two last-used updates of one API token (reads should not each write). */
const TOUCH_INTERVAL_MS = 60_000;

export class Trust {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls checked together (a thousand agents reporting at once) read their certificates together. */
  private readonly issuedCertificate = batched(
    async (serials: string[]) => new Map((await this.store.getCertificates(serials)).map((c) => [c.serial, c])),
  );

  // ------------------------------------------------------------ API tokens

  async createApiToken(name: string, scope: ApiScope, actor: string): Promise<{ token: string; record: ApiToken }> {
    if (!nameRe.test(name))
      throw new InputError('name', 'letters, digits, ".", "_", "@" and "-", up to 64 characters, starting with a letter or digit');
    if (!API_SCOPES.includes(scope)) throw new InputError('scope', `must be one of ${API_SCOPES.join(', ')}`);
    const token = newSecret('tbk');
    const record = await this.store.createApiToken({ id: randomUUID(), name, scope, tokenHash: sha256Hex(token) }, actor, this.now());
    return { token, record };
  }

  /**
   * Requests that come together with one token (a monitoring client's, a
   * dashboard's) share its read (coalesce.ts: each still sees a revocation
   * that finished before it asked).
   */
  private readonly activeApiToken = batched(
    async (hashes: string[]) =>
      new Map(await Promise.all(hashes.map(async (hash) => [hash, await this.store.findApiToken(hash)] as const))),
  );

  /** The active token a bearer secret belongs to, or undefined. */
  async authenticate(secret: string): Promise<ApiToken | undefined> {
    if (secret.length < 16 || secret.length > 256) return undefined;
    const token = await this.activeApiToken(sha256Hex(secret));
    const now = this.now();
    if (token && (token.lastUsedAt === null || now - token.lastUsedAt > TOUCH_INTERVAL_MS)) await this.store.touchApiToken(token.id, now);
    return token;
  }

  async revokeApiToken(idOrName: string, actor: string): Promise<ApiToken> {
    const revoked = await this.store.revokeApiToken(idOrName, actor, this.now());
    if (!revoked) throw new NotFoundError(`no active API token with id or name "${idOrName}"`);
    return revoked;
  }

  // ------------------------------------------------------------ join tokens

  async createJoinToken(input: JoinTokenInput, actor: string): Promise<{ token: string; record: JoinToken }> {
    if (!nameRe.test(input.name)) throw new InputError('name', 'letters, digits, ".", "_", "@" and "-", up to 64 characters');
    if (!(input.ttlMs >= 1000 && input.ttlMs <= MAX_JOIN_TOKEN_TTL_MS))
      throw new InputError('ttl', 'between 1s and 30 days, for example "1h"');
    if (input.maxUses !== undefined && !(Number.isInteger(input.maxUses) && input.maxUses >= 1))
      throw new InputError('uses', 'a whole number of at least 1');
    let roles: ServiceRole[] | null = null;
    if (input.roles) {
      const services = new Set<ServiceRole>();
      input.roles.forEach((name, i) => {
        const expanded = servicesOf(name);
        if (!expanded) throw new InputError(`roles[${i}]`, `unknown role "${name}"; known roles: ${ROLE_NAMES.join(', ')}`);
        expanded.forEach((s) => services.add(s));
      });
      roles = [...services].sort();
    }
    const token = newSecret('tbj');
    const now = this.now();
    const record = await this.store.createJoinToken(
      {
        id: randomUUID(),
        name: input.name,
        tokenHash: sha256Hex(token),
        roles,
        expiresAt: now + input.ttlMs,
        maxUses: input.maxUses ?? null,
      },
      actor,
      now,
    );
    return { token, record };
  }

  async revokeJoinToken(id: string, actor: string): Promise<JoinToken> {
    const revoked = await this.store.revokeJoinToken(id, actor, this.now());
    if (!revoked) throw new NotFoundError(`no active join token ${id}`);
    return revoked;
  }

  // ------------------------------------------------------------ instances

  async resetBinding(instanceId: string, actor: string): Promise<void> {
    if (!(await this.store.resetBinding(instanceId, actor, this.now())))
      throw new NotFoundError(`instance ${instanceId} has no nonce binding`);
  }

  /**
   * Every mutual-TLS call: the client certificate (its CN and serial, as
   * the TLS layer verified them against the control CA) must be one Enroll
   * issued, not revoked, and of `instanceId`. Refusals that point at an
   * attempt to act for another instance, or with a revoked certificate, are
   * recorded in the audit log.
   */
  async authorizeCall(cert: { commonName?: string; serial?: string }, instanceId: string, method: string): Promise<void> {
    const cn = cert.commonName;
    if (!cn || !cert.serial) throw new UnauthenticatedError('this call needs the client certificate issued by Enroll; enroll first');
    const issued = await this.issuedCertificate(normalizeSerial(cert.serial));
    if (!issued || issued.instanceId !== cn)
      throw new UnauthenticatedError('this client certificate is not one the control server issued; enroll again');
    if (issued.revokedAt !== null) {
      await this.store.recordRefusal(
        `agent:${cn}`,
        'rpc.refused',
        instanceId || cn,
        { method, reason: 'certificate-revoked', serial: issued.serial },
        this.now(),
      );
      throw new UnauthenticatedError('this client certificate was revoked (the instance was deregistered); enroll again');
    }
    if (cn !== instanceId) {
      await this.store.recordRefusal(
        `agent:${cn}`,
        'rpc.refused',
        instanceId,
        { method, reason: 'instance-mismatch', certificateOf: cn },
        this.now(),
      );
      throw new ForbiddenError(`the client certificate belongs to ${cn}, not to ${instanceId}`);
    }
  }
}
