// Fleet health for monitoring, the audit log, and the server's own probes.
import { Type } from '@sinclair/typebox';
import { roleNameOf } from '../../contract/model';
import { certificateHealth } from './certificates';
import type { RestApp, RouteDeps } from './typed';
import { auditView } from './views';
import { KEPT_CHECK, SCANNING_CHECK, storeReadiness } from '../store/readiness';
import { coalesced } from '../coalesce';

const DEFAULT_PAGE = 100;

export default async function fleetRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;

  // Monitoring clients asking together share one read of the counts, the certificates and the rollout (coalesce.ts:
  // each still sees every write that finished before it asked).
  const fleetHealth = coalesced(async () => {
    // Read at the same time, each on a connection of its own on PostgreSQL: one round trip's wait, not three.
    const [rows, certificates, rollout] = await Promise.all([
      service.healthSummary(),
      certificateHealth(service),
      service.activeRolloutSummary(),
    ]);
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
    return {
      total,
      byHealth,
      byRole,
      certificates: { managed: certificates.managed, served: certificates.served },
      alerts: certificates.alerts,
      // The rollout under way, if any (GET /v1/rollouts/{id} for its hosts).
      ...(rollout ? { rollout: rollout.summary } : {}),
    };
  });
  app.get(
    '/v1/health',
    { config: { scope: 'monitor' }, schema: { summary: 'Fleet health: counts by role and state', tags: ['fleet'] } },
    () => fleetHealth(),
  );

  app.get(
    '/v1/audit',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: 'Audit events, oldest first',
        tags: ['fleet'],
        querystring: Type.Object(
          {
            after: Type.Optional(Type.Integer({ minimum: 0, description: 'events with an id greater than this' })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: DEFAULT_PAGE })),
            target: Type.Optional(Type.String({ maxLength: 128, description: 'an instance id, "settings" or "rule:<id>"' })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => {
      // ajv fills in the default; the type cannot know it did.
      const query = { ...request.query, limit: request.query.limit ?? DEFAULT_PAGE };
      const items = (await service.listAudit(query)).map(auditView);
      return { items, next: items.length === query.limit ? items[items.length - 1].id : undefined };
    },
  );

  app.get('/healthz', { config: { scope: 'probe' }, schema: { summary: 'The server process is alive', tags: ['probes'] } }, async () => ({
    status: 'ok',
  }));
  const storeProblem = storeReadiness(
    { checkReadable: () => service.checkStoreReadable() },
    app.log,
    service.storeKind === 'postgres' ? KEPT_CHECK : SCANNING_CHECK,
  );
  app.get(
    '/readyz',
    { config: { scope: 'probe' }, schema: { summary: 'The server can read its store', tags: ['probes'] } },
    async (_request, reply) => {
      const problem = await storeProblem();
      if (problem) return reply.code(503).send({ status: 'store unavailable', reason: problem });
      return { status: 'ok' };
    },
  );
}
