// Assignment rules: EC2 tag selector -> role, first match wins, applied when
// an instance enrolls without an explicit assignment, or to the instances
// already enrolled on request (POST /v1/rules/{id}/apply, a rollout).
import { Type } from '@sinclair/typebox';
import { StringEnum } from '../../contract/schema';
import { RolloutRequest } from '../../contract/settings';
import { actorOf } from './instances';
import { rolloutSummary } from './rollouts';
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
  const host = { instanceId: Type.String(), hostname: Type.String() };
  app.post(
    '/v1/rules/:id/apply',
    {
      config: { scope: 'operator' },
      schema: {
        summary:
          'Apply a rule to the enrolled instances it matches, as one rollout (auth first, at the pace); dryRun only lists each host and its role change. Hosts whose assignment an operator set are left alone unless overrideExplicit',
        tags: ['rules'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        body: Type.Optional(
          Type.Object(
            {
              dryRun: Type.Optional(Type.Boolean({ description: 'only the plan: nothing is saved' })),
              overrideExplicit: Type.Optional(Type.Boolean({ description: 'also hosts whose assignment an operator set' })),
              rollout: Type.Optional(RolloutRequest),
            },
            { additionalProperties: false },
          ),
        ),
        response: {
          200: Type.Object({
            dryRun: Type.Boolean(),
            rule: Type.Object({ id: Type.String(), name: Type.String(), role: Type.String() }),
            changes: Type.Array(Type.Object({ ...host, from: Type.Union([Type.String(), Type.Null()]), to: Type.String() })),
            skipped: Type.Array(
              Type.Object({
                ...host,
                reason: StringEnum(['explicit-assignment', 'earlier-rule', 'roles-not-allowed'] as const),
                detail: Type.String(),
              }),
            ),
            unchanged: Type.Integer({ description: 'hosts the rule matches that have its assignment already' }),
            rollout: Type.Optional(rolloutSummary),
          }),
          400: errorView,
          404: errorView,
        },
      },
    },
    async (request) => {
      const body = request.body ?? {};
      return service.applyRule(request.params.id, {
        actor: actorOf(request),
        ...(body.dryRun !== undefined ? { dryRun: body.dryRun } : {}),
        ...(body.overrideExplicit !== undefined ? { overrideExplicit: body.overrideExplicit } : {}),
        ...(body.rollout?.strategy ? { strategy: body.rollout.strategy } : {}),
      });
    },
  );
}
