// Assignment rules: EC2 tag selector -> role, first match wins, applied when
// an instance enrolls without an explicit assignment.
import { Type } from '@sinclair/typebox';
import { actorOf } from './instances';
import { errorView, ruleBody, ruleView as ruleSchema } from './schemas';
import type { RestApp, RouteDeps } from './typed';
import { ruleView } from './views';

export default async function ruleRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/rules',
    { config: { scope: 'monitor' }, schema: { summary: 'List rules in evaluation order', tags: ['rules'] } },
    async () => ({
      items: (await service.listRules()).map(ruleView),
    }),
  );
  app.post(
    '/v1/rules',
    {
      config: { scope: 'operator' },
      schema: { summary: 'Add a rule', tags: ['rules'], body: ruleBody, response: { 201: ruleSchema, 400: errorView } },
    },
    async (request, reply) => reply.code(201).send(ruleView(await service.addRule(request.body, actorOf(request)))),
  );
  app.delete(
    '/v1/rules/:id',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Delete a rule',
        tags: ['rules'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 204: { type: 'null' }, 404: errorView },
      },
    },
    async (request, reply) => {
      await service.deleteRule(request.params.id, actorOf(request));
      return reply.code(204).send();
    },
  );
}
