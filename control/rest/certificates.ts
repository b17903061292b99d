// The proxy certificate as monitoring sees it: the one the control server
// manages (from ACME) and the ones the proxies report serving, each with an
// alert when it is closer to expiry than the alert threshold.
import { Type } from '@sinclair/typebox';
import type { ControlService } from '../service';
import type { ProxyCertificate, ServedCertificate } from '../store/store';
import { actorOf } from './instances';
import { errorView } from './schemas';
import type { RestApp, RouteDeps } from './typed';

const DAY_MS = 24 * 3_600_000;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const daysLeft = (notAfter: number, now: number) => Math.floor(((notAfter - now) / DAY_MS) * 10) / 10;

export function managedView(c: ProxyCertificate, now: number, alertMs: number) {
  return {
    domain: c.domain,
    state: c.state,
    serial: c.serial,
    notBefore: iso(c.notBefore),
    notAfter: iso(c.notAfter),
    daysLeft: c.notAfter === null ? null : daysLeft(c.notAfter, now),
    alert: c.notAfter === null ? c.state === 'failing' : c.notAfter - now < alertMs,
    issuedAt: iso(c.issuedAt),
    checkedAt: iso(c.checkedAt),
    lastAttemptAt: iso(c.lastAttemptAt),
    failures: c.failures,
    lastError: c.lastError,
    nextAttemptAt: iso(c.nextAttemptAt),
    renewRequested: c.renewRequested,
  };
}

export function servedView(s: ServedCertificate, now: number, alertMs: number) {
  return {
    instanceId: s.instanceId,
    notAfter: iso(s.expiresAt),
    daysLeft: daysLeft(s.expiresAt, now),
    alert: s.expiresAt - now < alertMs,
    reportedAt: iso(s.reportedAt),
  };
}

/** Every certificate with its alert flag, and one line per problem for the fleet health. */
export async function certificateHealth(service: ControlService) {
  const { now } = service.clock();
  const alertMs = service.certificateAlertMs;
  const [proxies, servers] = await Promise.all([service.listProxyCertificates(), service.listServedCertificates()]);
  const managed = proxies.map((c) => managedView(c, now, alertMs));
  const served = servers.map((s) => servedView(s, now, alertMs));
  const alerts: string[] = [];
  const alertDays = Math.round(alertMs / DAY_MS);
  for (const c of managed) {
    if (c.state === 'failing')
      alerts.push(`certificate ${c.domain}: ordering failed ${c.failures} time(s): ${c.lastError ?? 'unknown error'}`);
    if (c.alert && c.notAfter) alerts.push(`certificate ${c.domain} expires ${c.notAfter} (${c.daysLeft} days, alert below ${alertDays})`);
  }
  for (const s of served)
    if (s.alert)
      alerts.push(
        `instance ${s.instanceId} serves a certificate that expires ${s.notAfter} (${s.daysLeft} days, alert below ${alertDays})`,
      );
  return { alertBeforeDays: alertDays, managed, served, alerts };
}

export default async function certificateRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/certificates',
    {
      config: { scope: 'monitor' },
      schema: { summary: 'Proxy certificates: managed (ACME) and served (reported by proxies), with alerts', tags: ['certificates'] },
    },
    async () => certificateHealth(service),
  );
  app.post(
    '/v1/certificates/:domain/renew',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Renew a managed certificate now, before it is due',
        tags: ['certificates'],
        params: Type.Object({ domain: Type.String({ maxLength: 253 }) }),
        response: { 202: Type.Object({ domain: Type.String(), renewRequested: Type.Boolean() }), 404: errorView },
      },
    },
    async (request, reply) => {
      const { domain } = request.params;
      await service.requestRenewal(domain, actorOf(request));
      return reply.code(202).send({ domain, renewRequested: true });
    },
  );
}
