// Assignment rules: EC2 tag selector -> role, first match wins, applied when
// an instance enrolls without an explicit assignment.
import type { FastifyInstance } from 'fastify';
import type { ControlService } from '../service';
import { actorOf } from './instances';
import { errorView, ruleBody } from './schemas';
import { ruleView } from './views';

interface RuleBody {
  name: string;
  selector: Record<string, string>;
  role?: string;
  roles?: string[];
  labels?: Record<string, string>;
  position?: number;
}

export default async function ruleRoutes(app: FastifyInstance, opts: { service: ControlService }) {
  const { service } = opts;
  app.get(
    '/v1/rules',
    { config: { scope: 'monitor' }, schema: { summary: 'List rules in evaluation order', tags: ['rules'] } },
    async () => ({
      items: (await service.store.listRules()).map(ruleView),
    }),
  );
  app.post<{ Body: RuleBody }>(
    '/v1/rules',
    { config: { scope: 'operator' }, schema: { summary: 'Add a rule', tags: ['rules'], body: ruleBody, response: { 400: errorView } } },
    async (request, reply) => reply.code(201).send(ruleView(await service.addRule(request.body, actorOf(request)))),
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/rules/:id',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Delete a rule',
        tags: ['rules'],
        params: { type: 'object', properties: { id: { type: 'string', format: 'uuid' } } },
        response: { 404: errorView },
      },
    },
    async (request, reply) => {
      await service.deleteRule(request.params.id, actorOf(request));
      return reply.code(204).send();
    },
  );
}
