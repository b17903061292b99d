// One error shape for every route: {statusCode, error, message}, where the
// message names the field and the rule, and never carries a stack trace.
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { describeError } from '../../contract/log';
import { NO_CONTROL_MESSAGE, NO_CONTROL_PATTERN } from '../../contract/schema';
import {
  ConflictError,
  ForbiddenError,
  InputError,
  NotFoundError,
  RateLimitedError,
  StoreUnavailableError,
  UnauthenticatedError,
  VersionConflictError,
} from '../errors';
import { withEtag } from './versions';

interface SchemaError {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Record<string, unknown>;
}

/** "body.role: must be string" rather than ajv's "body/role must be string". */
export function formatSchemaErrors(errors: SchemaError[], dataVar: string): Error {
  // propertyNames failures come twice: the inner rule, then the key; keep the key.
  const parts = errors
    .filter((e) => (e as { propertyName?: string }).propertyName === undefined)
    .map((e) => {
      let field = dataVar + e.instancePath.replace(/\//g, '.');
      if (e.keyword === 'required') field += `.${String(e.params.missingProperty)}`;
      if (e.keyword === 'additionalProperties') return `${field}: unknown field "${String(e.params.additionalProperty)}"`;
      if (e.keyword === 'propertyNames') return `${field}: key "${String(e.params.propertyName)}" is not allowed`;
      let message = e.message ?? 'is invalid';
      if (e.keyword === 'enum') message += `: ${(e.params.allowedValues as unknown[]).join(', ')}`;
      if (e.keyword === 'pattern' && e.params.pattern === NO_CONTROL_PATTERN) message = NO_CONTROL_MESSAGE;
      if (e.keyword === 'required') message = 'is required';
      return `${field}: ${message}`;
    });
  return new Error([...new Set(parts)].join('; '));
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof InputError) return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: err.message });
    if (err instanceof NotFoundError) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: err.message });
    if (err instanceof UnauthenticatedError) return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: err.message });
    if (err instanceof ForbiddenError) return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: err.message });
    if (err instanceof RateLimitedError)
      return reply
        .code(429)
        .header('retry-after', String(err.retryAfterSeconds))
        .send({ statusCode: 429, error: 'Too Many Requests', message: err.message });
    if (err instanceof StoreUnavailableError) {
      request.log.warn({ method: request.method, url: request.routeOptions.url, status: 503, reason: err.message }, 'request refused');
      return reply.code(503).header('retry-after', '5').send({ statusCode: 503, error: 'Service Unavailable', message: err.message });
    }
    if (err instanceof VersionConflictError)
      return withEtag(reply.code(409), err.current).send({
        statusCode: 409,
        error: 'Conflict',
        message: err.message,
        currentVersion: err.current,
      });
    if (err instanceof ConflictError) return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: err.message });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const type = String(request.headers['content-type'] ?? 'none').slice(0, 100);
      const message = `content-type "${type}" is not accepted: send the body as JSON with "content-type: application/json"`;
      request.log.warn({ method: request.method, url: request.routeOptions.url, status: 415, reason: message }, 'request refused');
      return reply.code(415).send({ statusCode: 415, error: 'Unsupported Media Type', message });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: describeError(err) }, 'request failed');
      return reply
        .code(500)
        .send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; the control server log has the details' });
    }
    if (status === 400 || status === 413 || status === 415)
      request.log.warn({ method: request.method, url: request.routeOptions.url, status, reason: err.message }, 'request refused');
    return reply.code(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message: err.message });
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}; see /openapi.json` }),
  );
}
