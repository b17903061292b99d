// Cluster-wide settings: read, and change part of them at once.
import type { RestApp, RouteDeps } from './typed';
import { actorOf } from './instances';
import { clusterSettings, errorView, settingsChange, versionConflictView } from './schemas';
import { etagOf, ifMatchVersion } from './versions';

export default async function settingsRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/settings',
    {
      config: { scope: 'monitor' },
      schema: { summary: 'Read the cluster settings', tags: ['settings'], response: { 200: clusterSettings } },
    },
    async (_request, reply) => {
      const { value, version } = await service.getVersionedSettings();
      return reply.header('etag', etagOf(version)).send(value);
    },
  );
  app.patch(
    '/v1/settings',
    {
      config: { scope: 'admin' },
      schema: {
        summary:
          'Change cluster settings; the hosts whose files change get them in a rollout (GET /v1/rollouts). With If-Match (the ETag of GET /v1/settings), only if nobody changed them since (409 otherwise)',
        tags: ['settings'],
        body: settingsChange,
        response: { 200: clusterSettings, 400: errorView, 409: versionConflictView },
      },
    },
    async (request, reply) => {
      const { rollout, ...patch } = request.body;
      const { value, version } = await service.updateVersionedSettings(patch, actorOf(request), {
        basedOn: ifMatchVersion(request),
        ...(rollout?.strategy ? { strategy: rollout.strategy } : {}),
      });
      return reply.header('etag', etagOf(version)).send(value);
    },
  );
}
