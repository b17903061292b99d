// Prometheus metrics at /metrics: fleet health by role, computed at scrape.
import type { FastifyInstance } from 'fastify';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { roleNameOf } from '../../common/model';
import type { ControlService } from '../service';

export default async function metricsRoutes(app: FastifyInstance, opts: { service: ControlService }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'teleboot_control_' });
  const { service } = opts;
  new Gauge({
    name: 'teleboot_instances',
    help: 'Instances by role and fleet health',
    labelNames: ['role', 'health'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await service.store.healthSummary(service.clock())) {
        this.inc({ role: row.roles ? roleNameOf(row.roles) : 'unassigned', health: row.health }, row.count);
      }
    },
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['probes'] } }, async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
}
