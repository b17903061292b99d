// Assignment rules: EC2 tag selector -> role, first match wins, applied when
// an instance enrolls without an explicit assignment.
import { Type } from '@sinclair/typebox';
import { actorOf } from './instances';
import { errorView, ruleBody, ruleView as ruleSchema, versionConflictView } from './schemas';
import type { RestApp, RouteDeps } from './typed';
import { ruleView } from './views';
import { etagOf, ifMatchVersion } from './versions';

export default async function ruleRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/rules',
    { config: { scope: 'monitor' }, schema: { summary: 'List rules in evaluation order', tags: ['rules'] } },
    async (_request, reply) => {
      const { value, version } = await service.listVersionedRules();
      return reply.header('etag', etagOf(version)).send({ items: value.map(ruleView) });
    },
  );
  app.post(
    '/v1/rules',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Add a rule. With If-Match (the ETag of GET /v1/rules), only if nobody changed the rules since (409 otherwise)',
        tags: ['rules'],
        body: ruleBody,
        response: { 201: ruleSchema, 400: errorView, 409: versionConflictView },
      },
    },
    async (request, reply) => {
      const { value, version } = await service.addVersionedRule(request.body, actorOf(request), ifMatchVersion(request));
      return reply.code(201).header('etag', etagOf(version)).send(ruleView(value));
    },
  );
  app.delete(
    '/v1/rules/:id',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Delete a rule. With If-Match (the ETag of GET /v1/rules), only if nobody changed the rules since (409 otherwise)',
        tags: ['rules'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 204: { type: 'null' }, 404: errorView, 409: versionConflictView },
      },
    },
    async (request, reply) => {
      const version = await service.deleteRule(request.params.id, actorOf(request), ifMatchVersion(request));
      return reply.code(204).header('etag', etagOf(version)).send();
    },
  );
}
