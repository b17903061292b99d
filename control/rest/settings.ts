// Cluster-wide settings: read, and change part of them at once.
import type { RestApp, RouteDeps } from './typed';
import { actorOf } from './instances';
import { clusterSettings, errorView, settingsChange } from './schemas';

export default async function settingsRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/settings',
    {
      config: { scope: 'monitor' },
      schema: { summary: 'Read the cluster settings', tags: ['settings'], response: { 200: clusterSettings } },
    },
    async () => service.getSettings(),
  );
  app.patch(
    '/v1/settings',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Change cluster settings; the hosts whose files change get them in a rollout (GET /v1/rollouts)',
        tags: ['settings'],
        body: settingsChange,
        response: { 200: clusterSettings, 400: errorView },
      },
    },
    async (request) => {
      const { rollout, ...patch } = request.body;
      return service.updateSettings(patch, actorOf(request), rollout?.strategy);
    },
  );
}
