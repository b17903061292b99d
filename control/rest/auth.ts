// REST access: bearer API tokens with scopes, checked in an onRequest hook
// before any body is read. admin (settings, tokens, bindings) > operator
// (assignments, rules, deregistration) > monitor (read-only, probes, metrics).
// A route without an entry below needs monitor when it only reads (GET) and
// admin otherwise: a new write route is closed until someone decides.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiScope, ApiToken } from '../store/store';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { ControlService } from '../service';
import { scopeAllows } from '../trust';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token the request authenticated with. */
    apiToken?: ApiToken;
  }
  interface FastifyContextConfig {
    /** The scope a route needs, or "public"; see requiredScope(). */
    scope?: ApiScope | 'public';
  }
}

export interface AuthOptions {
  /** /healthz, /readyz and /metrics answer without a token. */
  probesPublic: boolean;
}

export const PROBE_ROUTES = ['/healthz', '/readyz', '/metrics'];

/** Scopes of the routes that need more than a GET's monitor. */
export const ROUTE_SCOPES: Readonly<Record<string, ApiScope>> = {
  'PUT /v1/instances/:id/assignment': 'operator',
  'DELETE /v1/instances/:id/assignment': 'operator',
  'DELETE /v1/instances/:id': 'operator',
  'POST /v1/rules': 'operator',
  'DELETE /v1/rules/:id': 'operator',
  'POST /v1/preview': 'operator',
  'POST /v1/certificates/:domain/renew': 'operator',
  'PATCH /v1/settings': 'admin',
  'DELETE /v1/instances/:id/binding': 'admin',
  'GET /v1/api-tokens': 'admin',
  'POST /v1/api-tokens': 'admin',
  'DELETE /v1/api-tokens/:id': 'admin',
  'GET /v1/join-tokens': 'admin',
  'POST /v1/join-tokens': 'admin',
  'DELETE /v1/join-tokens/:id': 'admin',
};

export function requiredScope(
  method: string,
  url: string | undefined,
  config: { scope?: ApiScope | 'public' } | undefined,
  opts: AuthOptions,
): ApiScope | 'public' {
  if (config?.scope) return config.scope;
  if (url && PROBE_ROUTES.includes(url)) return opts.probesPublic ? 'public' : 'monitor';
  const listed = url ? ROUTE_SCOPES[`${method} ${url}`] : undefined;
  if (listed) return listed;
  return method === 'GET' || method === 'HEAD' ? 'monitor' : 'admin';
}

const BEARER = /^Bearer\s+([\x21-\x7e]+)\s*$/i;

export function installAuth(app: FastifyInstance, service: ControlService, opts: AuthOptions): void {
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const url = request.routeOptions.url;
    const need = requiredScope(request.method, url, request.routeOptions.config as { scope?: ApiScope | 'public' } | undefined, opts);
    if (need === 'public') return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!match) {
      reply.header('www-authenticate', 'Bearer realm="teleboot-control"');
      throw new UnauthenticatedError('this route needs an API token: send "Authorization: Bearer <token>"');
    }
    const token = await service.trust.authenticate(match[1]);
    if (!token) {
      reply.header('www-authenticate', 'Bearer realm="teleboot-control", error="invalid_token"');
      request.log.warn({ route: url, method: request.method, ip: request.ip }, 'REST request with an unknown or revoked API token');
      throw new UnauthenticatedError('API token not recognised (unknown or revoked)');
    }
    request.apiToken = token;
    if (!scopeAllows(token.scope, need)) {
      const id = (request.params as { id?: unknown } | undefined)?.id;
      const target = typeof id === 'string' && id.length <= 128 ? id : (url ?? 'rest');
      await service.store.recordAudit(
        `rest:${token.name}`,
        'rest.refused',
        target,
        { method: request.method, route: url, scope: token.scope, needs: need },
        Date.now(),
      );
      throw new ForbiddenError(`API token "${token.name}" has scope ${token.scope}; ${request.method} ${url} needs ${need}`);
    }
  });
}
