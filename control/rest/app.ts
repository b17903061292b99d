// The REST API: one plugin per concern, validated by JSON schema, documented
// at /openapi.json.
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from '../../common/log';
import type { ControlService } from '../service';
import { formatSchemaErrors, installErrorHandler } from './errors';
import fleetRoutes from './fleet';
import instanceRoutes from './instances';
import metricsRoutes from './metrics';
import ruleRoutes from './rules';
import settingsRoutes from './settings';
import { validatorCompiler } from './validators';

export interface RestOptions {
  service: ControlService;
  logger: Logger;
  https?: { key: string; cert: string };
  version: string;
}

export async function buildRestApp(opts: RestOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: 64 * 1024,
    ...(opts.https ? { https: opts.https } : {}),
    schemaErrorFormatter: (errors, dataVar) => formatSchemaErrors(errors, dataVar),
  }) as unknown as FastifyInstance;
  await app.register(swagger, {
    openapi: {
      info: { title: 'teleboot-control', version: opts.version, description: 'Roles, settings, rules and health of a Teleport fleet' },
    },
  });
  // Unknown fields are refused, not silently dropped: a typo must not look accepted.
  app.setValidatorCompiler(validatorCompiler());
  installErrorHandler(app);
  const deps = { service: opts.service };
  await app.register(instanceRoutes, deps);
  await app.register(settingsRoutes, deps);
  await app.register(ruleRoutes, deps);
  await app.register(fleetRoutes, deps);
  await app.register(metricsRoutes, deps);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
