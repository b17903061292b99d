// Cluster-wide settings: read, and change part of them at once.
import type { FastifyInstance } from 'fastify';
import type { ClusterSettings } from '../../contract/model';
import type { ControlService } from '../service';
import { actorOf } from './instances';
import { clusterSettings, errorView } from './schemas';

export default async function settingsRoutes(app: FastifyInstance, opts: { service: ControlService }) {
  const { service } = opts;
  app.get(
    '/v1/settings',
    {
      config: { scope: 'monitor' },
      schema: { summary: 'Read the cluster settings', tags: ['settings'], response: { 200: clusterSettings } },
    },
    async () => service.store.getSettings(),
  );
  app.patch<{ Body: Partial<ClusterSettings> }>(
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
