// Instances: list (filter by role and health, paginated), read one,
// assign and unassign a role, deregister.
import { Type } from '@sinclair/typebox';
import { HEALTH_STATES, SERVICE_ROLES } from '../../contract/model';
import { StringEnum } from '../../contract/schema';
import type { ApiToken } from '../store/store';
import { assignmentBody, errorView, instanceIdParam, instanceView as instanceSchema } from './schemas';
import type { RestApp, RouteDeps } from './typed';
import { InstancePages, instanceView } from './views';

const DEFAULT_PAGE = 100;

export default async function instanceRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  const pages = new InstancePages();

  app.get(
    '/v1/instances',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: 'List instances',
        tags: ['instances'],
        querystring: Type.Object(
          {
            role: Type.Optional(StringEnum(SERVICE_ROLES, { description: 'instances that run this service' })),
            health: Type.Optional(StringEnum(HEALTH_STATES)),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: DEFAULT_PAGE })),
            after: Type.Optional(Type.String({ maxLength: 64, description: 'the "next" cursor of the previous page' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: instanceSchema }, next: { type: 'string' } } } },
      },
    },
    async (request, reply) => {
      // ajv fills in the default; the type cannot know it did.
      const [{ clock, ...page }, held] = await Promise.all([
        service.listInstanceViews({ ...request.query, limit: request.query.limit ?? DEFAULT_PAGE }, pages.cachedView),
        service.rolloutStates(),
      ]);
      // Already JSON of what the schema declares (views.ts InstancePages): sent as it is.
      return reply.type('application/json; charset=utf-8').send(pages.render(page, clock, held));
    },
  );

  app.get(
    '/v1/instances/:id',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: 'Get one instance',
        tags: ['instances'],
        params: instanceIdParam,
        response: { 200: instanceSchema, 404: errorView },
      },
    },
    async (request) => instanceView(await service.getInstance(request.params.id), (await service.rolloutStates()).get(request.params.id)),
  );

  app.put(
    '/v1/instances/:id/assignment',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Assign a role (also before the instance first boots)',
        tags: ['instances'],
        params: instanceIdParam,
        body: assignmentBody,
        response: { 200: instanceSchema, 400: errorView },
      },
    },
    async (request) => {
      const { rollout, ...input } = request.body;
      await service.assign(request.params.id, input, actorOf(request), rollout?.strategy);
      return instanceView(await service.getInstance(request.params.id));
    },
  );

  app.delete(
    '/v1/instances/:id/assignment',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Remove the assignment',
        tags: ['instances'],
        params: instanceIdParam,
        response: { 200: instanceSchema, 404: errorView },
      },
    },
    async (request) => {
      await service.unassign(request.params.id, actorOf(request));
      return instanceView(await service.getInstance(request.params.id));
    },
  );

  app.delete(
    '/v1/instances/:id/binding',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Forget the nonce bound at first enrollment, so that the next enrollment of this id binds a new one (a re-imaged host)',
        tags: ['instances'],
        params: instanceIdParam,
        response: { 204: { type: 'null' }, 404: errorView },
      },
    },
    async (request, reply) => {
      await service.trust.resetBinding(request.params.id, actorOf(request));
      return reply.code(204).send();
    },
  );

  app.delete(
    '/v1/instances/:id',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Deregister an instance',
        tags: ['instances'],
        params: instanceIdParam,
        response: { 204: { type: 'null' }, 404: errorView },
      },
    },
    async (request, reply) => {
      await service.deleteInstance(request.params.id, actorOf(request));
      return reply.code(204).send();
    },
  );
}

type Headers = Record<string, string | string[] | undefined>;

/**
 * Who made a change, for the audit log: "rest:<API token name>", and
 * "rest:<token name>/<name>" when the caller names itself with
 * X-Teleboot-Actor (a note, not an identity: the token is the identity).
 */
export function actorOf(source: { headers: Headers; apiToken?: ApiToken } | Headers): string {
  const headers = (
    typeof source.headers === 'object' && source.headers !== null && !Array.isArray(source.headers) ? source.headers : source
  ) as Headers;
  const token = (source as { apiToken?: ApiToken }).apiToken;
  const who = headers['x-teleboot-actor'];
  const named = typeof who === 'string' && /^[\w.@-]{1,64}$/.test(who) ? who : undefined;
  if (token) return named && named !== token.name ? `rest:${token.name}/${named}` : `rest:${token.name}`;
  return `rest:${named ?? 'anonymous'}`;
}
