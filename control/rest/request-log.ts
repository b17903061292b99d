// One log line per REST request, when it is answered. Reads that succeed are
// logged at debug (as Nomad and Consul log HTTP requests): monitoring polls
// /v1/health and lists all day, and two info lines per poll cost the server
// 5-8 % of its CPU under load. Writes and failures stay at info or above.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function installRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    const level = status >= 500 ? 'error' : status >= 400 ? 'info' : READS.has(request.method) ? 'debug' : 'info';
    // A line that would not be written is not built either (request.ip, the elapsed time): most requests are reads at debug.
    // request.log is a child of the pino logger the app is built with (app.ts).
    if (!(request.log as Logger).isLevelEnabled(level)) return;
    request.log[level](
      { method: request.method, url: request.url, status, ms: Math.round(reply.elapsedTime * 10) / 10, remote: request.ip },
      'request answered',
    );
  });
}
