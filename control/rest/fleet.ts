// Fleet health for monitoring, the audit log, and the server's own probes.
import type { FastifyInstance } from 'fastify';
import { roleNameOf } from '../../contract/model';
import type { ControlService } from '../service';
import { certificateHealth } from './certificates';
import { auditView } from './views';
import { storeReadiness } from '../store/readiness';

export default async function fleetRoutes(app: FastifyInstance, opts: { service: ControlService }) {
  const { service } = opts;

  app.get('/v1/health', { schema: { summary: 'Fleet health: counts by role and state', tags: ['fleet'] } }, async () => {
    const rows = await service.store.healthSummary(service.clock());
    const byRole: Record<string, Record<string, number>> = {};
    const byHealth: Record<string, number> = {};
    let total = 0;
    for (const row of rows) {
      const role = row.roles ? roleNameOf(row.roles) : 'unassigned';
      byRole[role] ??= {};
      byRole[role][row.health] = (byRole[role][row.health] ?? 0) + row.count;
      byHealth[row.health] = (byHealth[row.health] ?? 0) + row.count;
      total += row.count;
    }
    const certificates = await certificateHealth(service);
    return {
      total,
      byHealth,
      byRole,
      certificates: { managed: certificates.managed, served: certificates.served },
      alerts: certificates.alerts,
    };
  });

  app.get<{ Querystring: { after?: number; limit: number; target?: string } }>(
    '/v1/audit',
    {
      schema: {
        summary: 'Audit events, oldest first',
        tags: ['fleet'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: { type: 'integer', minimum: 0, description: 'events with an id greater than this' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            target: { type: 'string', maxLength: 128, description: 'an instance id, "settings" or "rule:<id>"' },
          },
        },
      },
    },
    async (request) => {
      const items = (await service.store.listAudit(request.query)).map(auditView);
      return { items, next: items.length === request.query.limit ? items[items.length - 1].id : undefined };
    },
  );

  app.get('/healthz', { schema: { summary: 'The server process is alive', tags: ['probes'] } }, async () => ({ status: 'ok' }));
  const storeProblem = storeReadiness(service.store, app.log);
  app.get('/readyz', { schema: { summary: 'The server can read its store', tags: ['probes'] } }, async (_request, reply) => {
    const problem = await storeProblem();
    if (problem) return reply.code(503).send({ status: 'store unavailable', reason: problem });
    return { status: 'ok' };
  });
}
