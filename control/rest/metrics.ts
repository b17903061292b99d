// Prometheus metrics at /metrics: fleet health by role and the store's size, computed at scrape.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { roleNameOf } from '../../contract/model';
import type { RestApp, RouteDeps } from './typed';

export default async function metricsRoutes(app: RestApp, opts: RouteDeps) {
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
      for (const row of await service.healthSummary()) {
        this.inc({ role: row.roles ? roleNameOf(row.roles) : 'unassigned', health: row.health }, row.count);
      }
    },
  });
  new Gauge({
    name: 'teleboot_certificate_expiry_seconds',
    help: 'Seconds until a proxy certificate expires: the one managed from ACME (source="managed") and those the proxies serve (source="served")',
    labelNames: ['source', 'domain', 'instance'],
    registers: [registry],
    async collect() {
      this.reset();
      const now = service.clock().now;
      for (const c of await service.listProxyCertificates()) {
        if (c.notAfter !== null) this.set({ source: 'managed', domain: c.domain, instance: '' }, (c.notAfter - now) / 1000);
      }
      for (const s of await service.listServedCertificates())
        this.set({ source: 'served', domain: '', instance: s.instanceId }, (s.expiresAt - now) / 1000);
    },
  });
  new Gauge({
    name: 'teleboot_certificate_order_failures',
    help: 'Consecutive failed ACME orders of a managed proxy certificate',
    labelNames: ['domain'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const c of await service.listProxyCertificates()) this.set({ domain: c.domain }, c.failures);
    },
  });
  new Gauge({
    name: 'teleboot_rollout_hosts',
    help: 'Hosts of the rollout under way by role group and state (pending, applying, ready, failed); none without one',
    labelNames: ['group', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of (await service.activeRolloutSummary())?.samples ?? []) this.set(s.labels, s.value);
    },
  });
  new Gauge({
    name: 'teleboot_store_bytes',
    help: 'Bytes the store takes on disk: the database and its write-ahead log',
    registers: [registry],
    async collect() {
      this.set(await service.storeBytes());
    },
  });
  app.get(
    '/metrics',
    { config: { scope: 'probe' }, schema: { summary: 'Prometheus metrics', tags: ['probes'] } },
    async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
}
