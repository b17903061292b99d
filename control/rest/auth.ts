// REST access: bearer API tokens with scopes, checked in an onRequest hook
// before any body is read. admin (settings, tokens, bindings) > operator
// (assignments, rules, deregistration) > monitor (read-only).
//
// Every route declares its scope in its own config (`config: { scope }`);
// the hook reads it, so it applies to every method fastify serves for the
// route, the HEAD it adds for a GET included. A route that declares none is
// refused when it is registered: nothing falls through to a default.
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { API_SCOPES, type ApiScope, type ApiToken } from '../store/store';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { ControlService } from '../service';
import { scopeAllows } from '../trust';

/**
 * What a route needs: an API token of at least this scope, nothing
 * ("public"), or nothing unless rest_auth.probes_public is off, then monitor
 * ("probe": /healthz, /readyz, /metrics).
 */
export type RouteScope = ApiScope | 'public' | 'probe';
export const DECLARABLE_SCOPES: readonly RouteScope[] = [...API_SCOPES, 'public', 'probe'];

declare module 'fastify' {
  interface FastifyRequest {
    /** The API token the request authenticated with. */
    apiToken?: ApiToken;
  }
  interface FastifyContextConfig {
    /** The scope the route needs; every route must declare one. */
    scope?: RouteScope;
  }
}

export interface AuthOptions {
  /** /healthz, /readyz and /metrics answer without a token. */
  probesPublic: boolean;
}

/** The OpenAPI extension that tells clients which scope an operation needs. */
export const SCOPE_EXTENSION = 'x-teleboot-scope';

/** A declared route scope, resolved for this server: an API scope, or public. */
export function effectiveScope(declared: RouteScope, opts: AuthOptions): ApiScope | 'public' {
  if (declared === 'probe') return opts.probesPublic ? 'public' : 'monitor';
  return declared;
}

/** The least a caller needs for any of the scopes (for OPTIONS, which only lists methods). */
function loosest(scopes: Array<ApiScope | 'public'>): ApiScope | 'public' {
  if (scopes.includes('public')) return 'public';
  return [...(scopes as ApiScope[])].sort((a, b) => API_SCOPES.indexOf(b) - API_SCOPES.indexOf(a))[0];
}

/** Methods that only read: limited per API token (rate_limits.rest_reads_per_minute). */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

const BEARER = /^Bearer\s+([\x21-\x7e]+)\s*$/i;

/**
 * Installs the scope check. Call it before any route is registered; then
 * call the returned function after the last one: it adds OPTIONS to every
 * path (204 with Allow), needing the loosest scope among the path's methods.
 */
export function installAuth(app: FastifyInstance, service: ControlService, opts: AuthOptions): () => void {
  const paths = new Map<string, Map<string, ApiScope | 'public'>>();
  app.addHook('onRoute', (route: RouteOptions) => {
    const declared = route.config?.scope;
    const methods = ([] as string[]).concat(route.method);
    if (!declared || !DECLARABLE_SCOPES.includes(declared))
      throw new Error(
        `route ${methods.join(',')} ${route.url} declares no scope: add config: { scope: ${DECLARABLE_SCOPES.map((s) => `'${s}'`).join(' | ')} } to it`,
      );
    const scope = effectiveScope(declared, opts);
    // Told to clients in /openapi.json; a public route needs no token there.
    const documented: Record<string, unknown> = { [SCOPE_EXTENSION]: scope, ...(scope === 'public' ? { security: [] } : {}) };
    route.schema = { ...route.schema, ...documented };
    const known = paths.get(route.url) ?? new Map<string, ApiScope | 'public'>();
    for (const m of methods) if (m !== 'OPTIONS') known.set(m, scope);
    paths.set(route.url, known);
  });

  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const declared = request.routeOptions.config.scope;
    // No declared scope: no route matched (404). Telling what exists needs a token too.
    const need = declared ? effectiveScope(declared, opts) : 'monitor';
    if (need === 'public') return;
    const url = request.routeOptions.url;
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
    if (READS.has(request.method)) service.callLimits.restRead(token.id, request.ip);
    if (!scopeAllows(token.scope, need)) {
      const id = (request.params as { id?: unknown } | undefined)?.id;
      const target = typeof id === 'string' && id.length <= 128 ? id : (url ?? 'rest');
      await service.recordRefusal(`rest:${token.name}`, 'rest.refused', target, {
        reason: 'insufficient-scope',
        method: request.method,
        route: url,
        scope: token.scope,
        needs: need,
      });
      throw new ForbiddenError(`API token "${token.name}" has scope ${token.scope}; ${request.method} ${url} needs ${need}`);
    }
  });

  return () => {
    for (const [url, methods] of paths) {
      if (methods.has('OPTIONS')) continue;
      const allow = ['OPTIONS', ...methods.keys()].sort().join(', ');
      app.options(url, { config: { scope: loosest([...methods.values()]) }, schema: { hide: true } }, async (_request, reply) =>
        reply.code(204).header('allow', allow).send(),
      );
    }
  };
}
