// Cluster-wide settings: read, and change part of them at once.
import type { RestApp, RouteDeps } from './typed';
import { actorOf } from './instances';
import { clusterSettings, errorView } from './schemas';

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
        summary: 'Change cluster settings; instances re-render their config',
        tags: ['settings'],
        body: clusterSettings,
        response: { 200: clusterSettings, 400: errorView },
      },
    },
    async (request) => service.updateSettings(request.body, actorOf(request)),
  );
}
