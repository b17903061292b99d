// The REST API: one plugin per concern, validated by JSON schema, documented
// at /openapi.json.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import rateLimit from '@fastify/rate-limit';
import type { Logger } from '../../contract/log';
import type { ControlService } from '../service';
import { formatSchemaErrors, installErrorHandler } from './errors';
import certificateRoutes from './certificates';
import fleetRoutes from './fleet';
import instanceRoutes from './instances';
import metricsRoutes from './metrics';
import ruleRoutes from './rules';
import rolloutRoutes from './rollouts';
import previewRoutes from './preview';
import settingsRoutes from './settings';
import tokenRoutes from './tokens';
import { installAuth, type AuthOptions } from './auth';
import { isLoopback, type RateLimitOptions } from '../rate-limit';
import { validatorCompiler } from './validators';
import { checkUnsafeIntegerParameters, parseJsonBody } from './json-body';
import { installRequestLog } from './request-log';

export interface RestOptions {
  service: ControlService;
  logger: Logger;
  https?: { key: string; cert: string };
  version: string;
  /** Bearer API tokens; probes public or not. */
  auth?: AuthOptions;
  /** Write requests (not GET) per minute per client address; 429 beyond. */
  writeRateLimit?: RateLimitOptions;
}

export async function buildRestApp(opts: RestOptions): Promise<FastifyInstance> {
  // fastify's own logger type, which pino's satisfies: the plugins and hooks take the default instance type.
  const loggerInstance: FastifyBaseLogger = opts.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: 64 * 1024,
    // request-log.ts writes one line per request, at a level by method and status.
    logController: new LogController({ disableRequestLogging: true }),
    ...(opts.https ? { https: opts.https } : {}),
    schemaErrorFormatter: (errors, dataVar) => formatSchemaErrors(errors, dataVar),
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'teleboot-control', version: opts.version, description: 'Roles, settings, rules and health of a Teleport fleet' },
      components: {
        securitySchemes: { apiToken: { type: 'http', scheme: 'bearer', description: 'an API token; scopes admin > operator > monitor' } },
      },
      security: [{ apiToken: [] }],
    },
  });
  // Unknown fields are refused, not silently dropped: a typo must not look accepted.
  app.setValidatorCompiler(validatorCompiler());
  installErrorHandler(app);
  installRequestLog(app);
  // JSON only, read strictly (json-body.ts); any other content type gets 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema as Record<string, Parameters<typeof checkUnsafeIntegerParameters>[1]> | undefined;
    checkUnsafeIntegerParameters(request.query, schema?.querystring, 'querystring');
    checkUnsafeIntegerParameters(request.params, schema?.params, 'params');
  });
  const limit = opts.writeRateLimit;
  if (limit && limit.perMinute > 0) {
    await app.register(rateLimit, {
      global: true,
      // This replica's share of the fleet-wide rate (replica-share.ts).
      max: () => Math.max(1, Math.floor(limit.perMinute * (limit.share?.() ?? 1))),
      timeWindow: 60_000,
      keyGenerator: (request) => request.ip,
      allowList: (request) => request.method === 'GET' || request.method === 'HEAD' || (limit.exemptLoopback && isLoopback(request.ip)),
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        error: 'Too Many Requests',
        message: `more than ${limit.perMinute} write requests a minute from this address; retry in ${context.after}`,
      }),
    });
  }
  const addOptionsRoutes = installAuth(app, opts.service, opts.auth ?? { probesPublic: true });
  const deps = { service: opts.service };
  await app.register(instanceRoutes, deps);
  await app.register(previewRoutes, deps);
  await app.register(settingsRoutes, deps);
  await app.register(ruleRoutes, deps);
  await app.register(rolloutRoutes, deps);
  await app.register(fleetRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(tokenRoutes, deps);
  await app.register(certificateRoutes, deps);
  app.get('/openapi.json', { config: { scope: 'monitor' }, schema: { hide: true } }, async () => app.swagger());
  addOptionsRoutes();
  return app;
}
