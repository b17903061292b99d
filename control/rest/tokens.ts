// API tokens (REST access) and join tokens (enrollment), for admins. A
// secret is in the response of its creation only; the store keeps its
// SHA-256, lists show everything else.
import { Type } from '@sinclair/typebox';
import { DURATION_PATTERN, parseDuration } from '../../contract/duration';
import { ROLE_NAMES } from '../../contract/model';
import { StringEnum, Text } from '../../contract/schema';
import { API_SCOPES } from '../store/store';
import { API_TOKEN_NAME_PATTERN } from '../trust';
import { actorOf } from './instances';
import { errorView } from './schemas';
import type { RestApp, RouteDeps } from './typed';
import { apiTokenView, joinTokenView } from './views';

const iso = { type: 'string', format: 'date-time' } as const;
const nullableIso = { anyOf: [iso, { type: 'null' }] } as const;

const apiTokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    scope: { type: 'string', enum: [...API_SCOPES] },
    createdAt: iso,
    createdBy: { type: 'string' },
    lastUsedAt: nullableIso,
    revokedAt: nullableIso,
  },
} as const;

const joinTokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    roles: {
      anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'null' }],
      description: 'services an instance enrolled with it may run; null: any',
    },
    expiresAt: iso,
    maxUses: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
    uses: { type: 'integer' },
    usable: { type: 'boolean' },
    createdAt: iso,
    createdBy: { type: 'string' },
    lastUsedAt: nullableIso,
    revokedAt: nullableIso,
  },
} as const;

const withSecret = (schema: typeof apiTokenSchema | typeof joinTokenSchema, what: string) => ({
  type: 'object',
  properties: { ...schema.properties, token: { type: 'string', description: `the ${what}; shown this once, stored only as a hash` } },
});

const idParam = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' }) });

export default async function tokenRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  const { trust } = service;

  app.get(
    '/v1/api-tokens',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'List API tokens (never their secrets)',
        tags: ['access'],
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: apiTokenSchema } } } },
      },
    },
    async () => ({ items: (await service.listApiTokens()).map(apiTokenView) }),
  );

  app.post(
    '/v1/api-tokens',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Create an API token; the response holds its secret, once',
        tags: ['access'],
        body: Type.Object(
          {
            name: Type.String({ pattern: API_TOKEN_NAME_PATTERN, description: 'who or what uses it; names it in the audit log' }),
            scope: StringEnum(API_SCOPES, {
              description: 'admin: settings and tokens; operator: assignments and rules; monitor: read-only',
            }),
          },
          { additionalProperties: false },
        ),
        response: { 201: withSecret(apiTokenSchema, 'bearer token'), 400: errorView, 409: errorView },
      },
    },
    async (request, reply) => {
      const { token, record } = await trust.createApiToken(request.body.name, request.body.scope, actorOf(request));
      return reply.code(201).send({ ...apiTokenView(record), token });
    },
  );

  app.delete(
    '/v1/api-tokens/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Revoke an API token (by id or name)',
        tags: ['access'],
        params: idParam,
        response: { 200: apiTokenSchema, 404: errorView },
      },
    },
    async (request) => apiTokenView(await trust.revokeApiToken(request.params.id, actorOf(request))),
  );

  app.get(
    '/v1/join-tokens',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'List join tokens (never their secrets)',
        tags: ['access'],
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: joinTokenSchema } } } },
      },
    },
    async () => ({ items: (await service.listJoinTokens()).map((t) => joinTokenView(t)) }),
  );

  app.post(
    '/v1/join-tokens',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Create a join token for instances outside EC2 (or development); the response holds its secret, once',
        tags: ['access'],
        body: Type.Object(
          {
            name: Type.String({ pattern: API_TOKEN_NAME_PATTERN }),
            ttl: Type.String({
              pattern: DURATION_PATTERN,
              maxLength: 32,
              description: 'how long it can be used, e.g. "1h" (at most 30 days)',
            }),
            uses: Type.Optional(
              Type.Integer({
                minimum: 1,
                maximum: 100000,
                description: 'how many enrollments it allows; any number until it expires when absent',
              }),
            ),
            roles: Type.Optional(
              Type.Array(Text({ maxLength: 64 }), {
                minItems: 1,
                maxItems: 8,
                description: `roles an instance enrolled with it may get: ${ROLE_NAMES.join(', ')}`,
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: withSecret(joinTokenSchema, 'join token'), 400: errorView },
      },
    },
    async (request, reply) => {
      const { name, ttl, uses, roles } = request.body;
      const { token, record } = await trust.createJoinToken({ name, ttlMs: parseDuration(ttl), maxUses: uses, roles }, actorOf(request));
      return reply.code(201).send({ ...joinTokenView(record), token });
    },
  );

  app.delete(
    '/v1/join-tokens/:id',
    {
      config: { scope: 'admin' },
      schema: { summary: 'Revoke a join token', tags: ['access'], params: idParam, response: { 200: joinTokenSchema, 404: errorView } },
    },
    async (request) => joinTokenView(await trust.revokeJoinToken(request.params.id, actorOf(request))),
  );
}
