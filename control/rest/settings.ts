// Cluster-wide settings: read, and change part of them at once.
import type { RestApp, RouteDeps } from './typed';
import { actorOf } from './instances';
import { clusterSettings, errorView } from './schemas';
import { settingsVersion } from '../store/store';

export default async function settingsRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/settings',
    {
      config: { scope: 'monitor' },
      schema: { summary: 'Read the cluster settings', tags: ['settings'], response: { 200: clusterSettings } },
    },
    async (_request, reply) => {
      const settings = await service.getSettings();
      return reply.header('etag', `"${settingsVersion(settings)}"`).send(settings);
    },
  );
  app.patch(
    '/v1/settings',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Change cluster settings; instances re-render their config',
        description:
          'With If-Match (the ETag of GET /v1/settings) the change is refused with 409 when the settings changed since they were read.',
        tags: ['settings'],
        body: clusterSettings,
        response: { 200: clusterSettings, 400: errorView, 409: errorView },
      },
    },
    async (request, reply) => {
      // If-Match: the ETag of a GET; a PATCH based on settings changed since is a conflict (409).
      const tag = request.headers['if-match']?.replace(/^W\//, '').replace(/^"|"$/g, '');
      const ifMatch = tag === '*' ? undefined : tag;
      const settings = await service.updateSettings(request.body, actorOf(request), ifMatch);
      return reply.header('etag', `"${settingsVersion(settings)}"`).send(settings);
    },
  );
}
